// The app's own TF.js runtime: the TF.js packages with only the kernels and ops BinBot's models
// and its photo preprocessing use, for esbuild.
//
// Why: TF.js registers every kernel of every backend, every gradient and every op when it is
// imported (the inference worker was 697 kB of minified JavaScript). Browsers keep no code
// cache for a worker's script, so every start of the app compiled and ran all of it before the
// first prediction. This plugin bundles what TF.js's own "custom bundle" tooling would: tfjs-core
// without gradients and optimizers, and the wasm and cpu backends with the kernels below only.
//
// What it may not leave out: conversion runs every converted model in Node through this same
// runtime (conversion/js/run_tfjs.mjs, bundled with this plugin), so a model that needs a kernel
// or op missing here fails conversion with the kernel's name, never on a phone.

import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);

/**
 * TF.js kernel names: those of the graphs conversion writes (fused convolutions, residual adds,
 * pooling, the dense head and its softmax), of their unfused forms (bundles converted before
 * conversion/fold.py, still in registries for rollbacks), and of the photo's last resize
 * (webclient/src/preprocess.js does orientation, crop and box means in plain JavaScript).
 * Transpose is there for the wasm backend's Mean, which calls it for the pooling's axes: its
 * WebAssembly function is only bound when the Transpose kernel is registered.
 */
export const RUNTIME_KERNELS = [
  'Add', 'AddN', 'BatchMatMul', 'Cast', 'Conv2D', 'DepthwiseConv2dNative', 'ExpandDims',
  'FusedConv2D', 'FusedDepthwiseConv2D', 'Identity', 'Mean', 'Multiply', 'PadV2', 'Relu', 'Relu6',
  'Reshape', 'ResizeBilinear', 'Softmax', 'Sub', 'Transpose', '_FusedMatMul',
];

/**
 * TensorFlow graph ops the app can run (model.json's `op` fields): those conversion writes
 * (conversion/fold.py folds MobileNetV2's batch normalisations and paddings into the
 * convolutions) and the unfused forms older bundles have (separate Pad, Relu6, Mul, AddV2,
 * AddN). TF.js's converter maps only these; a model with any other op is refused at load with
 * the op's name.
 */
export const GRAPH_OPS = [
  'Add', 'AddN', 'AddV2', 'BiasAdd', 'Const', 'Conv2D', 'DepthwiseConv2d', 'DepthwiseConv2dNative',
  'FusedDepthwiseConv2dNative', 'Identity', 'MatMul', 'Mean', 'Mul', 'Pad', 'PadV2', 'Placeholder',
  'PlaceholderWithDefault', 'Relu', 'Relu6', 'Reshape', 'Softmax', 'Sub', '_FusedConv2D', '_FusedMatMul',
];

/**
 * tfjs-core ops that the graph-model executor may call for those graphs (it reaches every op
 * through one module, tfjs-core's ops_for_converter); the rest stay out of the bundle.
 */
export const CONVERTER_OPS = [
  'add', 'addN', 'conv2d', 'depthwiseConv2d', 'fused', 'matMul', 'mean', 'mul', 'pad', 'relu', 'relu6',
  'reshape', 'softmax', 'sub',
];

const CORE = /^@tensorflow\/tfjs-core$/;
const OPS_FOR_CONVERTER = /^@tensorflow\/tfjs-core\/dist\/ops\/ops_for_converter$/;
const BACKEND = /^@tensorflow\/tfjs-backend-(wasm|cpu)$/;
const OP_LIST = /[\\/]tfjs-converter[\\/]dist[\\/]operations[\\/]op_list[\\/]\w+\.js$/;

/**
 * One of the converter's op lists (`export const json = [...]`, plain data: how each TF op's
 * inputs and attributes map to a tfjs-core op) with only GRAPH_OPS kept.
 */
async function opListModule(file) {
  const source = await readFile(file, 'utf8');
  if (!/^export const json = \[/m.test(source) || /^import /m.test(source)) {
    throw new Error(`${file}: not a plain op list (a new TF.js?)`);
  }
  // Evaluated at build time only: a data file of the pinned TF.js package.
  const json = new Function(source.replace(/^export const json = /m, 'return '))();
  const kept = json.filter((op) => GRAPH_OPS.includes(op.tfOpName));
  return `export const json = ${JSON.stringify(kept)};`;
}

/**
 * Each kernel's config export in a backend, as its register_all_kernels.js imports it:
 * `import { fusedConv2DConfig } from './kernels/FusedConv2D';`.
 */
async function kernelConfigs(backend) {
  const file = require.resolve(`@tensorflow/tfjs-backend-${backend}/dist/register_all_kernels.js`);
  const source = await readFile(file, 'utf8');
  const configs = new Map();
  for (const [, config, kernel] of source.matchAll(/import \{ (\w+Config) \} from '\.\/kernels\/(\w+)';/g)) {
    configs.set(kernel, config);
  }
  return configs;
}

/** A backend's entry point: its base (the backend itself) with RUNTIME_KERNELS registered. */
async function backendModule(backend) {
  const lines = [`import { registerKernel } from '@tensorflow/tfjs-core';`];
  const names = [];
  const configs = await kernelConfigs(backend);
  for (const [i, kernel] of RUNTIME_KERNELS.entries()) {
    const config = configs.get(kernel);
    if (!config) throw new Error(`tfjs-backend-${backend} registers no kernel ${kernel} (a new TF.js?)`);
    lines.push(`import { ${config} as k${i} } from '@tensorflow/tfjs-backend-${backend}/dist/kernels/${kernel}.js';`);
    names.push(`k${i}`);
  }
  lines.push(`for (const config of [${names.join(', ')}]) registerKernel(config);`);
  lines.push(`export * from '@tensorflow/tfjs-backend-${backend}/dist/base.js';`);
  return lines.join('\n');
}

/** esbuild plugin: the app's TF.js (see above) wherever TF.js packages are imported. */
export function leanTfjs() {
  const here = path.dirname(require.resolve('@tensorflow/tfjs-core/package.json'));
  return {
    name: 'lean-tfjs',
    setup(builder) {
      builder.onResolve({ filter: CORE }, () => ({ path: 'core', namespace: 'lean-tfjs' }));
      builder.onResolve({ filter: OPS_FOR_CONVERTER }, () => ({ path: 'ops', namespace: 'lean-tfjs' }));
      builder.onResolve({ filter: BACKEND }, ({ path: name }) => ({ path: name.match(BACKEND)[1], namespace: 'lean-tfjs' }));
      builder.onLoad({ filter: OP_LIST }, async ({ path: file }) => ({ contents: await opListModule(file), loader: 'js' }));
      builder.onLoad({ filter: /.*/, namespace: 'lean-tfjs' }, async ({ path: which }) => {
        let contents;
        if (which === 'core') {
          // base.js is tfjs-core without gradients, optimizers and chained ops; base_side_effects
          // sets up the engine, flags and platforms it cannot run without.
          contents = `import '@tensorflow/tfjs-core/dist/base_side_effects.js';\nexport * from '@tensorflow/tfjs-core/dist/base.js';`;
        } else if (which === 'ops') {
          contents = `export { ${CONVERTER_OPS.join(', ')} } from '@tensorflow/tfjs-core/dist/ops/ops.js';`;
        } else {
          contents = await backendModule(which);
        }
        return { contents, loader: 'js', resolveDir: here };
      });
    },
  };
}
