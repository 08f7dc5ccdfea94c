/**
 * Is a photo one of the model's kinds at all? The JavaScript twin of training/openset.py:
 * the same score from the same embedding, with the arrays and threshold the bundle carries
 * (openset.json). Conversion runs this file in Node and checks it against Python's scores.
 * Plain arrays and loops: a few thousand multiply-adds, nothing to hand to TF.js.
 */

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
  const { method, arrays, k } = openset;
  if (method === 'max_softmax') return Math.max(...probabilities);
  if (method === 'mahalanobis') return mahalanobis(Array.from(embedding), arrays);
  const unit = normalise(Array.from(embedding));
  if (method === 'prototype') return Math.max(...arrays.prototypes.map((p) => dot(p, unit)));
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
