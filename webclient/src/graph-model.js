/**
 * Load a BinBot model bundle (TF.js graph model) from bytes already in memory.
 *
 * Why the folding: the uint8 bundles store each large kernel as per-channel uint8 codes plus
 * two float32 vectors, and a Mul + AddV2 in the graph rebuilds the float kernel (see
 * conversion/quantize.py). TF.js graph models have no constant folding, so without help every
 * inference would rebuild every kernel again (measured: +16 ms per image in wasm). Folding
 * those constant-only nodes once here keeps the small download and the float32 speed.
 *
 * The folding is plain JavaScript (weights.js decodes the bytes), so the page prepares a model
 * while the inference worker is still starting the wasm runtime; only loading it needs TF.js.
 * The browser and the Node verification runner load models the same way.
 */

import { decodeWeights, encodeWeights, timeSlicer } from './weights.js';

const nodeName = (input) => input.replace(/^\^/, '').split(':')[0];

/** Concatenate ArrayBuffers / typed arrays into one ArrayBuffer. */
export function concatBuffers(parts) {
  const total = parts.reduce((sum, part) => sum + part.byteLength, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    const bytes = part instanceof ArrayBuffer ? new Uint8Array(part)
      : new Uint8Array(part.buffer, part.byteOffset, part.byteLength);
    out.set(bytes, offset);
    offset += bytes.byteLength;
  }
  return out.buffer;
}

// Float32Array stores round each double result to float32: for one +, - or * of two float32
// values that is exactly float32 arithmetic (double has more than 2 x 24 + 2 bits).
const FOLDABLE = new Set(['Mul', 'AddV2', 'Add', 'Sub']);

/** NumPy broadcasting of two shapes; throws when they do not broadcast. */
function broadcastShape(a, b) {
  const rank = Math.max(a.length, b.length);
  return Array.from({ length: rank }, (_, i) => {
    const x = a[a.length - rank + i] ?? 1;
    const y = b[b.length - rank + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) throw new Error(`shapes ${a} and ${b} do not broadcast`);
    return Math.max(x, y);
  });
}

/** Each output position's element strides into `shape` broadcast to `outShape` (0: repeated). */
function broadcastStrides(shape, outShape) {
  const strides = new Array(outShape.length).fill(0);
  let stride = 1;
  for (let i = shape.length - 1; i >= 0; i -= 1) {
    strides[outShape.length - shape.length + i] = shape[i] === 1 ? 0 : stride;
    stride *= shape[i];
  }
  return strides;
}

/** One row along the last axis: out[o + t] = a[i + t * sa] (op) b[j + t * sb]. */
function row(op, out, o, n, a, i, sa, b, j, sb) {
  if (op === 'Mul') for (let t = 0; t < n; t += 1) out[o + t] = a[i + t * sa] * b[j + t * sb];
  else if (op === 'Sub') for (let t = 0; t < n; t += 1) out[o + t] = a[i + t * sa] - b[j + t * sb];
  else for (let t = 0; t < n; t += 1) out[o + t] = a[i + t * sa] + b[j + t * sb];
}

/** `op` elementwise on two float32 tensors with broadcasting, in float32 as TF.js computes. */
function elementwise(op, a, b) {
  const shape = broadcastShape(a.shape, b.shape);
  const dims = shape.length ? shape : [1];
  const out = new Float32Array(dims.reduce((n, d) => n * d, 1));
  const strideA = broadcastStrides(a.shape, dims);
  const strideB = broadcastStrides(b.shape, dims);
  const last = dims.length - 1;
  const index = new Array(last).fill(0);
  let i = 0;
  let j = 0;
  for (let o = 0; o < out.length; o += dims[last]) {
    row(op, out, o, dims[last], a.values, i, strideA[last], b.values, j, strideB[last]);
    for (let axis = last - 1; axis >= 0; axis -= 1) { // odometer over the outer axes
      index[axis] += 1;
      i += strideA[axis];
      j += strideB[axis];
      if (index[axis] < dims[axis]) break;
      i -= strideA[axis] * dims[axis];
      j -= strideB[axis] * dims[axis];
      index[axis] = 0;
    }
  }
  return { shape, dtype: 'float32', values: out };
}

/**
 * Replace every Mul/AddV2/Add/Sub node whose two inputs are float32 constants by a float32
 * constant, in plain JavaScript. Returns new {modelTopology, weightSpecs, weightData, folded};
 * the input is left untouched.
 */
export async function foldConstants({ modelTopology, weightSpecs, weightData }) {
  const pause = timeSlicer();
  const tensors = await decodeWeights(weightData, weightSpecs, pause);
  const nodes = modelTopology.node.map((node) => ({ ...node }));
  const byName = new Map(nodes.map((node) => [node.name, node]));
  const constant = (name) => byName.get(name)?.op === 'Const' && tensors.get(name)?.dtype === 'float32';
  let folded = 0;
  let changed = true;
  while (changed) {
    changed = false;
    for (const node of nodes) {
      const inputs = (node.input ?? []).map(nodeName);
      if (!FOLDABLE.has(node.op) || inputs.length !== 2 || !inputs.every(constant)) continue;
      await pause();
      const value = elementwise(node.op, tensors.get(inputs[0]), tensors.get(inputs[1]));
      tensors.set(node.name, value);
      node.op = 'Const';
      node.input = [];
      node.attr = {
        value: { tensor: { dtype: 'DT_FLOAT', tensorShape: { dim: value.shape.map((d) => ({ size: String(d) })) } } },
        dtype: { type: 'DT_FLOAT' },
      };
      folded += 1;
      changed = true;
    }
  }
  // Drop constants nothing reads any more (the uint8 codes and per-channel vectors).
  const used = new Set();
  for (const node of nodes) for (const input of node.input ?? []) used.add(nodeName(input));
  const kept = nodes.filter((node) => node.op !== 'Const' || used.has(node.name));
  const named = kept.filter((node) => tensors.has(node.name))
    .map((node) => ({ name: node.name, ...tensors.get(node.name) }));
  const { specs, data } = encodeWeights(named);
  return { modelTopology: { ...modelTopology, node: kept }, weightSpecs: specs, weightData: data, folded };
}

/**
 * model.json (parsed) + its shards (ArrayBuffers, in manifest order) -> a prepared bundle:
 * the weights decoded and folded, and what else loadPrepared needs. Plain JavaScript, in
 * slices of a few ms (weights.js timeSlicer).
 */
export async function prepareBundle(modelJson, shards) {
  const artifacts = await foldConstants({
    modelTopology: modelJson.modelTopology,
    weightSpecs: modelJson.weightsManifest.flatMap((group) => group.weights),
    weightData: concatBuffers(shards),
  });
  const { format, generatedBy, convertedBy, signature, userDefinedMetadata } = modelJson;
  return { ...artifacts, format, generatedBy, convertedBy, signature, userDefinedMetadata };
}

/** A prepared bundle -> a GraphModel, on TF.js's current backend. */
export async function loadPrepared(tf, loadGraphModel, prepared) {
  const { folded, ...artifacts } = prepared;
  return { model: await loadGraphModel(tf.io.fromMemory(artifacts)), folded };
}

/** model.json (parsed) + its shards (ArrayBuffers, in manifest order) -> a GraphModel. */
export async function loadBundle(tf, loadGraphModel, modelJson, shards) {
  return loadPrepared(tf, loadGraphModel, await prepareBundle(modelJson, shards));
}

/** The shard paths of a model.json, in the order their bytes concatenate. */
export function shardPaths(modelJson) {
  return modelJson.weightsManifest.flatMap((group) => group.paths);
}
