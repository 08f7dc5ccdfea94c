/**
 * The page's handle on inference: talks to the inference worker, or runs TF.js on the page
 * where workers cannot decode images (no OffscreenCanvas), yielding between steps.
 */

import { runtimeOptions, runtimeQuery } from './runtime-options.js';

function canUseWorker() {
  return typeof Worker === 'function' && typeof OffscreenCanvas === 'function';
}

class WorkerClassifier {
  constructor(url, name) {
    this.worker = new Worker(url, { name });
    this.pending = new Map();
    this.nextId = 1;
    this.worker.onmessage = ({ data }) => {
      const waiter = this.pending.get(data.id);
      this.pending.delete(data.id);
      if (data.ok) waiter?.resolve(data.result);
      else waiter?.reject(new Error(data.error));
    };
    this.worker.onerror = (event) => {
      for (const waiter of this.pending.values()) waiter.reject(new Error(event.message || 'inference worker failed'));
      this.pending.clear();
    };
  }

  call(type, payload = {}, transfer = []) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, type, ...payload }, transfer);
    });
  }

  init() { return this.call('init'); } // the worker started its runtime from its name's options
  load(model) { return this.call('load', model, [model.prepared.weightData]); }
  classify(blob) { return this.call('classify', { blob }); }
  downscale(blob, maxSide) { return this.call('downscale', { blob, maxSide }); }
}

class PageClassifier {
  async module() {
    this.inference ??= await import('./inference.js');
    return this.inference;
  }

  async init({ wasmBase, backend, threads, capped }) { return (await this.module()).initBackend(wasmBase, backend, threads, capped); }
  async load(model) { return (await this.module()).loadModel(model); }
  async classify(blob) { return (await this.module()).classify(blob); }
  async downscale(blob, maxSide) { return (await this.module()).downscaleForUpload(blob, maxSide); }
}

/**
 * A classifier ready to load models: {backend, simd, threads, where} describes it. `search`:
 * the page's query string, which may choose the backend and threads (runtime-options.js); the
 * worker gets it in its name.
 */
export async function createClassifier({ workerUrl, wasmBase, search = '' }) {
  const classifier = canUseWorker()
    ? new WorkerClassifier(workerUrl, `binbot-inference${runtimeQuery(search)}`)
    : new PageClassifier();
  const info = await classifier.init({ wasmBase, ...runtimeOptions(search, navigator.hardwareConcurrency || 1) });
  return { classifier, info: { ...info, where: classifier instanceof WorkerClassifier ? 'worker' : 'page' } };
}
