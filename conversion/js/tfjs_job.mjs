// Run a converted TF.js graph model in Node, the way the browser will: the web app's own TF.js
// runtime (webclient/src/tfjs.js, bundled with only the app's kernels by tfjs-lean.mjs) with the
// wasm backend, images cropped and resized by the web client's own preprocessing module.
// Conversion compares what this writes with the Keras model. run_tfjs.mjs bundles and starts it.
//
// Images arrive as decoded RGB bytes (Python decodes them with Pillow, which is bit-identical
// to TensorFlow's and browsers' libjpeg-turbo): what is tested here is everything after the
// decoder, i.e. orientation, crop, resize and the converted model.
//
// JOB.json: {"model_dir": "...", "input": "image:0", "outputs": {"probabilities": "...",
//            "embedding": "..."}, "warmup": 3, "openset": "openset.json" (optional),
//            "images": [{"rgb": "x.rgb", "width": 150, "height": 150, "orientation": 1}]}
// RESULT.json: {"backend", "simd", "load_ms", "probabilities": [[...]],
//               "embeddings": [[...]], "latency_ms": [...], "openset_scores": [...]}

import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

import { loadBundle, shardPaths } from '../../webclient/src/graph-model.js';
import { openSetScore, parseOpenSet } from '../../webclient/src/openset.js';
import { loadGraphModel, setWasmPaths, tf } from '../../webclient/src/tfjs.js';

/** Read model.json and its weight shards from a folder and load them like the web client. */
async function loadModelFromDir(dir) {
  const modelJson = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8'));
  const shards = await Promise.all(shardPaths(modelJson).map((p) => readFile(path.join(dir, p))));
  const { model } = await loadBundle(tf, loadGraphModel, modelJson, shards);
  return model;
}

/**
 * Run JOB.json, write RESULT.json. `preprocessPath`: the web client's preprocessing unless the
 * job names another (tests check that a wrong one fails); `wasmDir`: TF.js's .wasm files.
 */
export async function runJob(jobFile, resultFile, { preprocessPath, wasmDir }) {
  const job = JSON.parse(await readFile(jobFile, 'utf8'));
  const { modelInputFromPixels } = await import(pathToFileURL(job.preprocess_module ?? preprocessPath).href);
  const openset = job.openset ? parseOpenSet(await readFile(job.openset, 'utf8')) : null;
  setWasmPaths(wasmDir + path.sep);
  if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend did not initialise');
  await tf.ready();

  const loadStart = performance.now();
  const model = await loadModelFromDir(job.model_dir);
  const loadMs = performance.now() - loadStart;
  const outputs = [job.outputs.probabilities, job.outputs.embedding];

  const run = (input) => {
    const [probabilities, embedding] = model.execute({ [job.input]: input }, outputs);
    const result = { probabilities: probabilities.dataSync(), embedding: embedding.dataSync() };
    tf.dispose([probabilities, embedding]);
    return result;
  };

  const inputs = [];
  for (const image of job.images) {
    const rgb = await readFile(image.rgb);
    if (rgb.length !== image.width * image.height * 3) throw new Error(`${image.rgb}: wrong size`);
    const pixels = { data: rgb, width: image.width, height: image.height, channels: 3 };
    inputs.push(modelInputFromPixels(tf, pixels, image.orientation ?? 1));
  }
  for (let i = 0; i < Math.min(job.warmup ?? 3, inputs.length); i += 1) run(inputs[i]);

  const result = {
    backend: tf.getBackend(),
    simd: await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'),
    load_ms: loadMs,
    probabilities: [],
    embeddings: [],
    latency_ms: [],
    openset_scores: [],
  };
  for (const input of inputs) {
    const start = performance.now();
    const { probabilities, embedding } = run(input);
    result.latency_ms.push(performance.now() - start);
    result.probabilities.push(Array.from(probabilities));
    result.embeddings.push(Array.from(embedding, (v) => Math.round(v * 1e5) / 1e5));
    if (openset) result.openset_scores.push(openSetScore(openset, embedding, probabilities));
    input.dispose();
  }
  await writeFile(resultFile, JSON.stringify(result));
}
