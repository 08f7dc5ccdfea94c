/**
 * Is a photo one of the model's kinds at all? The JavaScript twin of training/openset.py:
 * the same score from the same embedding, with the arrays and threshold the bundle carries
 * (openset.json). Conversion runs this file in Node and checks it against Python's scores.
 * Plain arrays and loops: a few hundred thousand multiply-adds, nothing to hand to TF.js.
 * The arrays arrive as base64 float16 (a sixth of their size as decimal text).
 */

import { decodeFloat16 } from './weights.js';

/** Bytes of base64 text: the browser's own decoder where it has one, else a plain loop (a
 * mapping callback per byte took 15 ms on this machine for a 200 kB file, on the page's thread). */
function base64Bytes(text) {
  if (typeof Uint8Array.fromBase64 === 'function') return Uint8Array.fromBase64(text);
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** One array of openset.json: rows of Float32Array (a plain list in files from older runs). */
function decodeArray(encoded) {
  if (Array.isArray(encoded)) return encoded;
  const bytes = base64Bytes(encoded.base64);
  const values = decodeFloat16(new Uint16Array(bytes.buffer)); // little-endian, as TF.js assumes
  if (encoded.shape.length === 1) return values;
  const width = encoded.shape[1];
  return Array.from({ length: encoded.shape[0] }, (_, row) => values.subarray(row * width, (row + 1) * width));
}

/** The scorer in a bundle's openset.json, its arrays decoded. */
export function parseOpenSet(text) {
  const scorer = JSON.parse(text);
  const arrays = Object.fromEntries(Object.entries(scorer.arrays).map(([name, a]) => [name, decodeArray(a)]));
  return { ...scorer, arrays };
}

const PROTOTYPE_METHODS = new Set(['prototype', 'prototype_confidence', 'multi_prototype_confidence']);

function normalise(vector) {
  let norm = 0;
  for (const v of vector) norm += v * v;
  norm = Math.sqrt(norm) + 1e-12;
  return vector.map((v) => v / norm);
}

function dot(a, b) {
  let sum = 0;
  for (let i = 0; i < a.length; i += 1) sum += a[i] * b[i];
  return sum;
}

function mahalanobis(embedding, { mean, components, class_means: classMeans, precision }) {
  const centred = embedding.map((v, i) => v - mean[i]);
  const projected = components.map((row) => dot(row, centred));
  let best = Infinity;
  for (const classMean of classMeans) {
    const delta = projected.map((v, i) => v - classMean[i]);
    const distance = dot(delta, precision.map((row) => dot(row, delta)));
    best = Math.min(best, distance);
  }
  return -best;
}

/** The open-set score of one photo: higher means more like the kinds the model knows. */
export function openSetScore(openset, embedding, probabilities) {
  const { method, arrays, k, weight } = openset;
  if (method === 'max_softmax') return Math.max(...probabilities);
  if (method === 'mahalanobis') return mahalanobis(Array.from(embedding), arrays);
  const unit = normalise(Array.from(embedding));
  if (PROTOTYPE_METHODS.has(method)) {
    // One row per kind, or several (multi_prototype_confidence): the nearest row counts.
    const similarity = Math.max(...arrays.prototypes.map((p) => dot(p, unit)));
    if (method === 'prototype') return similarity;
    return similarity + weight * Math.log(Math.max(Math.max(...probabilities), 1e-12));
  }
  if (method === 'knn') {
    const similarities = arrays.reference.map((r) => dot(r, unit)).sort((a, b) => b - a);
    return similarities[k - 1];
  }
  throw new Error(`unknown open-set method ${method}`);
}

/** known | unsure | unknown: what the app may say about a photo. */
export function verdict(openset, embedding, probabilities, sureAbove) {
  if (openset && openSetScore(openset, embedding, probabilities) < openset.threshold) return 'unknown';
  return Math.max(...probabilities) >= sureAbove ? 'known' : 'unsure';
}
