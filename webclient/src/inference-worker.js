/**
 * The inference worker: TF.js runs here, off the page's main thread, so scrolling and
 * buttons stay responsive while a photo is decoded and classified.
 *
 * Messages in: {id, type: 'init' | 'load' | 'classify' | 'downscale', ...}; every message gets
 * one answer {id, ok, result | error}.
 */

import { classify, downscaleForUpload, initBackend, loadModel } from './inference.js';

const handlers = {
  init: ({ wasmBase, backend, threads, capped }) => initBackend(wasmBase, backend, threads, capped),
  load: (message) => loadModel(message),
  classify: ({ blob }) => classify(blob),
  downscale: ({ blob, maxSide }) => downscaleForUpload(blob, maxSide),
};

self.onmessage = async ({ data }) => {
  const { id, type } = data;
  try {
    const result = await handlers[type](data);
    self.postMessage({ id, ok: true, result });
  } catch (error) {
    self.postMessage({ id, ok: false, error: error?.message ?? String(error) });
  }
};
