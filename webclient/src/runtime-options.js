/**
 * Which TF.js backend the app runs, and on how many threads: wasm with one thread per core (up
 * to the pool's 8) where the page is cross-origin isolated. `?backend=cpu`, `?threads=N` and
 * `?threads=capped` (TF.js's own cap, half the cores) override it, for comparing on a device and
 * for the benchmarks. Read by the page from its URL, and by the inference worker from its name.
 */

const MAX_THREADS = 8; // the wasm backend's pthread pool
const OPTION_NAMES = ['backend', 'threads'];

/** {backend, threads, capped} from a query string and the device's core count. */
export function runtimeOptions(search, cores = 1) {
  const params = new URLSearchParams(search);
  const capped = params.get('threads') === 'capped';
  const threads = Number(params.get('threads')) || Math.min(MAX_THREADS, cores);
  return { backend: params.get('backend') === 'cpu' ? 'cpu' : 'wasm', threads, capped };
}

/** The runtime's part of a query string ('' when it names none), for the inference worker. */
export function runtimeQuery(search) {
  const params = new URLSearchParams(search);
  const kept = new URLSearchParams();
  for (const name of OPTION_NAMES) if (params.has(name)) kept.set(name, params.get(name));
  const query = kept.toString();
  return query ? `?${query}` : '';
}
