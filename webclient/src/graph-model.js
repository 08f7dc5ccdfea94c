/**
 * Load a BinBot model bundle (TF.js graph model) from bytes already in memory.
 *
 * Why the folding: the uint8 bundles store each large kernel as per-channel uint8 codes plus
 * two float32 vectors, and a Mul + AddV2 in the graph rebuilds the float kernel (see
 * conversion/quantize.py). TF.js graph models have no constant folding, so without help every
 * inference would rebuild every kernel again (measured: +16 ms per image in wasm). Folding
 * those constant-only nodes once here keeps the small download and the float32 speed.
 *
 * Like preprocess.js, every function takes the TF.js namespace first, so the browser worker
 * and the Node verification runner load models the same way.
 */

const FOLDABLE = new Set(['Mul', 'AddV2', 'Add', 'Sub']);
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

/**
 * Replace every Mul/AddV2/Add/Sub node whose inputs are all constants by a float32 constant.
 * Returns new {modelTopology, weightSpecs, weightData}; the input is left untouched.
 */
export async function foldConstants(tf, { modelTopology, weightSpecs, weightData }) {
  const tensors = tf.io.decodeWeights(weightData, weightSpecs);
  const nodes = modelTopology.node.map((node) => ({ ...node }));
  const byName = new Map(nodes.map((node) => [node.name, node]));
  let folded = 0;
  let changed = true;
  while (changed) {
    changed = false;
    for (const node of nodes) {
      if (!FOLDABLE.has(node.op)) continue;
      const inputs = (node.input ?? []).map(nodeName);
      if (!inputs.every((name) => byName.get(name)?.op === 'Const' && tensors[name])) continue;
      const [a, b] = inputs.map((name) => tensors[name]);
      const ops = { Mul: tf.mul, AddV2: tf.add, Add: tf.add, Sub: tf.sub };
      const value = ops[node.op](a, b);
      tensors[node.name] = value;
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
  const keptNames = new Set(kept.map((node) => node.name));
  const named = Object.entries(tensors)
    .filter(([name]) => keptNames.has(name))
    .map(([name, tensor]) => ({ name, tensor }));
  const encoded = await tf.io.encodeWeights(named);
  tf.dispose(Object.values(tensors));
  return {
    modelTopology: { ...modelTopology, node: kept },
    weightSpecs: encoded.specs,
    weightData: encoded.data,
    folded,
  };
}

/**
 * model.json (parsed) + its shards (ArrayBuffers, in manifest order) -> a GraphModel.
 */
export async function loadBundle(tf, loadGraphModel, modelJson, shards) {
  const weightSpecs = modelJson.weightsManifest.flatMap((group) => group.weights);
  const artifacts = await foldConstants(tf, {
    modelTopology: modelJson.modelTopology,
    weightSpecs,
    weightData: concatBuffers(shards),
  });
  const model = await loadGraphModel(
    tf.io.fromMemory({
      modelTopology: artifacts.modelTopology,
      weightSpecs: artifacts.weightSpecs,
      weightData: artifacts.weightData,
      format: modelJson.format,
      generatedBy: modelJson.generatedBy,
      convertedBy: modelJson.convertedBy,
      signature: modelJson.signature,
      userDefinedMetadata: modelJson.userDefinedMetadata,
    }),
  );
  return { model, folded: artifacts.folded };
}

/** The shard paths of a model.json, in the order their bytes concatenate. */
export function shardPaths(modelJson) {
  return modelJson.weightsManifest.flatMap((group) => group.paths);
}
