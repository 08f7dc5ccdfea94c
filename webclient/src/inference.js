/**
 * Everything that touches TF.js: backend choice, model loading, decoding and classifying.
 *
 * Runs inside the inference worker (so the page never freezes during a prediction), or on the
 * page itself in a browser without module-free workers or OffscreenCanvas.
 *
 * Backend: wasm (SIMD, and threads when the page is cross-origin isolated) is the fast one on
 * phone and laptop CPUs; the plain JavaScript cpu backend is the fallback where WebAssembly
 * is unavailable.
 */

import { loadPrepared } from './graph-model.js';
import { modelInputFromBlockMeans, modelInputFromPixels, squareBlockMeans } from './preprocess.js';
import { getThreadsCount, loadGraphModel, setThreadsCount, setWasmPaths, tf } from './tfjs.js';

let current = null; // { model, version, labels, inputNode, outputNodes, size }

/**
 * TF.js's wasm backend sizes its thread pool at half of what navigator.hardwareConcurrency says
 * (tfjs-backend-wasm's backend.cc; tfjs issues #6081 and #8513): one thread on a 2-core device,
 * half the cores of a phone. Its Emscripten runtime reads navigator.hardwareConcurrency when the
 * backend starts, so this worker reports twice the thread count it wants, and the pool gets it.
 * Only in the inference worker: the page's own navigator is left alone.
 */
function uncapThreadPool(threads) {
  const inWorker = typeof WorkerGlobalScope === 'function' && self instanceof WorkerGlobalScope;
  if (!inWorker || !self.crossOriginIsolated || threads < 2) return false;
  Object.defineProperty(self.navigator, 'hardwareConcurrency', { value: threads * 2, configurable: true });
  return true;
}

export async function initBackend(wasmBase, preferred = 'wasm', threads = 0, capped = false) {
  setWasmPaths(wasmBase);
  if (threads > 0) setThreadsCount(threads); // only used when the page is cross-origin isolated
  const uncapped = !capped && uncapThreadPool(threads);
  globalThis.BINBOT_PTHREAD_POOL_SIZE = Math.max(1, threads); // workers started up front (build.mjs)
  let backend = 'cpu';
  if (preferred === 'wasm' && typeof WebAssembly === 'object') {
    try {
      if (await tf.setBackend('wasm')) backend = 'wasm';
    } catch { /* fall through to cpu */ }
  }
  if (backend !== 'wasm') await tf.setBackend('cpu');
  await tf.ready();
  const info = { backend: tf.getBackend(), simd: false, threads: 1 };
  if (info.backend === 'wasm') {
    info.simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
    const multithread = await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT');
    // What the pool really has: TF.js's own cap unless uncapped (its getThreadsCount() says
    // what was asked for, not what the pool got).
    const cores = navigator.hardwareConcurrency || 1;
    info.threads = !multithread ? 1 : uncapped ? getThreadsCount() : Math.max(1, Math.min(getThreadsCount(), Math.floor(cores / 2)));
    info.isolated = self.crossOriginIsolated ?? false;
    info.multithread = multithread;
  }
  return info;
}

/**
 * Load a version, prepared by the page (graph-model.js prepareBundle: its weights decoded and
 * folded in plain JavaScript while this worker started the runtime); the previous model keeps
 * answering until this one is ready.
 * `warmUp: false` skips the first run on a blank picture, for when a photo is already waiting.
 */
export async function loadModel({ version, manifest, prepared, warmUp = true }) {
  const started = performance.now();
  const { model, folded } = await loadPrepared(tf, loadGraphModel, prepared);
  const inputNode = manifest.input.node;
  const outputNodes = [manifest.outputs.probabilities.node, manifest.outputs.embedding.node];
  const [size] = manifest.input.resize.size; // the page checked the recipe (model-contract.js)
  // The first run sets up every kernel, the photo's resize and crop among them: do it now, on
  // a blank little picture, rather than on the user's first photo (unless that photo is
  // already waiting: then its own run is the first).
  if (warmUp) {
    const blank = { data: new Uint8ClampedArray(4 * 16 * 12), width: 16, height: 12 };
    tf.tidy(() => {
      const outputs = model.execute({ [inputNode]: modelInputFromPixels(tf, blank, 1, size) }, outputNodes);
      outputs.forEach((output) => output.dataSync());
    });
  }
  const previous = current;
  current = { model, version, labels: manifest.labels, inputNode, outputNodes, size };
  previous?.model.dispose();
  return { version, folded, loadMs: performance.now() - started };
}

/** A canvas to draw on: a worker's OffscreenCanvas, or the page's canvas element. */
function newCanvas(width, height) {
  return typeof OffscreenCanvas === 'function'
    ? new OffscreenCanvas(width, height)
    : Object.assign(document.createElement('canvas'), { width, height });
}

/** A 2D context to read pixels back from. */
function readableContext(width, height) {
  const context = newCanvas(width, height).getContext('2d', { willReadFrequently: true });
  context.imageSmoothingEnabled = false; // pixels are copied 1:1, never resampled
  return context;
}

const HEIF_BRANDS = { heic: 'HEIC', heix: 'HEIC', heim: 'HEIC', heis: 'HEIC', hevc: 'HEIC', hevx: 'HEIC', mif1: 'HEIF', msf1: 'HEIF' };

/**
 * "HEIC" or "HEIF" when the file is one (an iPhone's default photo format, which only Safari
 * decodes), else null: its `ftyp` box names the brand (binbot/formats.py does the same).
 */
async function heifName(blob) {
  const head = new Uint8Array(await blob.slice(0, 64).arrayBuffer());
  const text = (from, to) => String.fromCharCode(...head.subarray(from, to));
  if (head.length < 16 || text(4, 8) !== 'ftyp') return null;
  const boxSize = new DataView(head.buffer).getUint32(0);
  const brands = [text(8, 12)];
  for (let i = 16; i + 4 <= Math.min(boxSize, head.length); i += 4) brands.push(text(i, i + 4));
  return brands.map((brand) => HEIF_BRANDS[brand]).find(Boolean) ?? null;
}

/**
 * Decode a photo upright (the browser applies the EXIF orientation) and reduce it to the block
 * means of its centre square (preprocess.js), reading the decoded image a strip of rows at a
 * time: a phone's 50 MP photo is never copied whole into JavaScript memory.
 */
async function decodeToBlockMeans(blob, size) {
  const bitmap = await createImageBitmap(blob, {
    imageOrientation: 'from-image',
    colorSpaceConversion: 'none', // training images were decoded without colour management
    premultiplyAlpha: 'none',
  }).catch(async () => {
    const name = await heifName(blob);
    throw new Error(name
      ? `this is a ${name} photo, which this browser cannot read: take it with BinBot's camera, or share it as JPEG`
      : 'this file is not an image the browser can read');
  });
  const { width, height } = bitmap;
  try {
    let context = null;
    const readRows = (top, rows, left, crop) => {
      if (context?.canvas.width !== crop || context.canvas.height !== rows) context = readableContext(crop, rows);
      // Transparency on white (binbot/pixels.py), which also hides the last strip's pixels.
      context.fillStyle = '#ffffff';
      context.fillRect(0, 0, crop, rows);
      context.drawImage(bitmap, left, top, crop, rows, 0, 0, crop, rows);
      return { data: context.getImageData(0, 0, crop, rows).data, channels: 4, rowBytes: crop * 4, offset: 0 };
    };
    return { square: squareBlockMeans(width, height, size, readRows), width, height };
  } finally {
    bitmap.close();
  }
}

/** Classify a photo: every class's probability, best first, with timings. */
export async function classify(blob) {
  if (!current) throw new Error('no model is loaded yet');
  const { model, inputNode, outputNodes, labels, version, size } = current;
  const t0 = performance.now();
  const decoded = await decodeToBlockMeans(blob, size);
  const t1 = performance.now();
  const input = modelInputFromBlockMeans(tf, decoded.square, size);
  const t2 = performance.now();
  const outputs = model.execute({ [inputNode]: input }, outputNodes);
  const [probabilities, embedding] = (await Promise.all(outputs.map((o) => o.data()))).map((d) => Array.from(d));
  const t3 = performance.now();
  tf.dispose([input, ...outputs]);
  const ranked = probabilities
    .map((p, i) => ({ label: labels[i], probability: p }))
    .sort((a, b) => b.probability - a.probability);
  return {
    version,
    ranked,
    probabilities,
    embedding,
    width: decoded.width,
    height: decoded.height,
    timings: { decodeMs: t1 - t0, preprocessMs: t2 - t1, inferMs: t3 - t2 },
  };
}

/** An upright JPEG of at most `maxSide` pixels: what a correction uploads. */
export async function downscaleForUpload(blob, maxSide = 1024, quality = 0.9) {
  // Decoded as for classifying: the server keeps the picture the model saw, not a colour-managed
  // one, and transparency lies on white there too (a JPEG has none: it would turn black).
  const probe = await createImageBitmap(blob, {
    imageOrientation: 'from-image', colorSpaceConversion: 'none', premultiplyAlpha: 'none',
  });
  const scale = Math.min(1, maxSide / Math.max(probe.width, probe.height));
  const width = Math.max(1, Math.round(probe.width * scale));
  const height = Math.max(1, Math.round(probe.height * scale));
  const canvas = newCanvas(width, height);
  const context = canvas.getContext('2d');
  context.imageSmoothingQuality = 'high';
  context.fillStyle = '#ffffff';
  context.fillRect(0, 0, width, height);
  context.drawImage(probe, 0, 0, width, height);
  probe.close();
  if (canvas.convertToBlob) return canvas.convertToBlob({ type: 'image/jpeg', quality });
  return new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', quality));
}
