/**
 * The inference worker: TF.js runs here, off the page's main thread, so scrolling and
 * buttons stay responsive while a photo is decoded and classified.
 *
 * Messages in: {id, type: 'init' | 'load' | 'classify' | 'downscale', ...}; every message gets
 * one answer {id, ok, result | error}. 'init' answers how the runtime started (see below).
 */

import { classify, downscaleForUpload, initBackend, loadModel } from './inference.js';
import { runtimeOptions } from './runtime-options.js';

/**
 * The runtime starts as soon as this script has run, not when the page's 'init' message
 * arrives: that message is forwarded by the page's main thread, which is then busy preparing
 * the model in slices that take priority (scheduler.yield), and it arrived up to 200 ms late.
 * The page's ?backend= and ?threads= come in the worker's name ('binbot-inference?threads=1'):
 * a query on the worker's URL would be lost when the service worker answers from its cache.
 */
const query = self.name.includes('?') ? self.name.slice(self.name.indexOf('?')) : '';
const options = runtimeOptions(query, navigator.hardwareConcurrency || 1);
const runtime = initBackend(new URL('tfjs/', self.location.href).href, options.backend, options.threads, options.capped);
runtime.catch(() => {}); // reported to the page when it asks ('init')

const handlers = {
  init: () => runtime,
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
