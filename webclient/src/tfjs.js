/**
 * The parts of TF.js the app uses, gathered in one object shaped like the `tf` namespace.
 *
 * Why not `import * as tf`: a namespace handed to other modules (preprocess.js and
 * graph-model.js take `tf` as an argument, so that any TF.js can drive them) keeps every
 * export of tfjs-core in the bundle. Named imports let the bundler leave the rest out,
 * and the build (tfjs-lean.mjs) leaves out the kernels no model of ours runs.
 */

import {
  dispose, env, expandDims, getBackend, io, ready, setBackend, tensor3d, tidy,
} from '@tensorflow/tfjs-core';
import { resizeBilinear } from '@tensorflow/tfjs-core/dist/ops/image/resize_bilinear.js';
import '@tensorflow/tfjs-backend-cpu'; // the fallback where WebAssembly is missing (?backend=cpu)

export { loadGraphModel } from '@tensorflow/tfjs-converter';
export { getThreadsCount, setThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';

export const tf = {
  dispose, env, expandDims, getBackend, io: { fromMemory: io.fromMemory }, ready, setBackend, tensor3d, tidy,
  image: { resizeBilinear },
};
