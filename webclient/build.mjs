// Build the web client into webclient/dist: bundles (esbuild), static files, TF.js's wasm
// binaries from node_modules (served by us, never a CDN), and a service worker that knows
// the exact list and hash of the files it must keep for offline use.
//
//   node webclient/build.mjs        (npm run build)

import { createHash } from 'node:crypto';
import { cp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { constants, gzip } from 'node:zlib';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import Ajv from 'ajv';
import standaloneCode from 'ajv/dist/standalone/index.js';
import { build } from 'esbuild';

import { leanTfjs } from './tfjs-lean.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, 'dist');
const require = createRequire(import.meta.url);
const wasmDir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
const WASM_FILES = ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm', 'tfjs-backend-wasm-threaded-simd.wasm'];
const STATIC = ['index.html', 'styles.css', 'app.webmanifest', 'icons'];
// The bundle manifest's JSON Schema, shared with conversion and the server.
const MANIFEST_SCHEMA = path.join(here, '..', 'conversion', 'manifest.schema.json');

/**
 * `import validateManifest from 'virtual:manifest-validator'`: the schema compiled by Ajv into
 * plain JavaScript at build time (no eval in the browser, no schema copy to drift).
 */
const manifestValidator = {
  name: 'manifest-validator',
  setup(builder) {
    builder.onResolve({ filter: /^virtual:manifest-validator$/ }, () => ({ path: 'manifest-validator', namespace: 'binbot' }));
    builder.onLoad({ filter: /.*/, namespace: 'binbot' }, async () => {
      const schema = JSON.parse(await readFile(MANIFEST_SCHEMA, 'utf8'));
      const ajv = new Ajv({ code: { source: true, esm: true }, allErrors: true });
      return { contents: standaloneCode(ajv, ajv.compile(schema)), resolveDir: here, loader: 'js', watchFiles: [MANIFEST_SCHEMA] };
    });
  },
};

/**
 * The threaded wasm runtime's Emscripten glue starts a pool of 8 pthread workers up front,
 * each evaluating the glue and instantiating the module: on a 2-core phone most of the
 * runtime's start-up, for threads it never uses. The pool is sized at what the inference
 * worker asks for (globalThis.BINBOT_PTHREAD_POOL_SIZE, set before the backend starts); the glue
 * still adds a worker if a thread ever finds the pool empty.
 */
const POOL_SIZE_IN_GLUE = 'var pthreadPoolSize=8;';
const pthreadPoolSize = {
  name: 'pthread-pool-size',
  setup(builder) {
    builder.onLoad({ filter: /tfjs-backend-wasm-threaded-simd\.js$/ }, async ({ path: file }) => {
      const glue = await readFile(file, 'utf8');
      if (!glue.includes(POOL_SIZE_IN_GLUE)) throw new Error(`${file}: no '${POOL_SIZE_IN_GLUE}' (a new TF.js?)`);
      const sized = glue.replace(POOL_SIZE_IN_GLUE, 'var pthreadPoolSize=globalThis.BINBOT_PTHREAD_POOL_SIZE||8;');
      return { contents: sized, loader: 'js' };
    });
  },
};

const common = {
  bundle: true,
  minify: true,
  sourcemap: true,
  target: ['es2020', 'chrome90', 'safari15', 'firefox90'],
  logLevel: 'warning',
  // The wasm backend's Emscripten glue mentions Node modules it never loads in a browser.
  external: ['fs', 'path', 'worker_threads', 'perf_hooks', 'os', 'crypto'],
  define: { 'process.env.NODE_ENV': '"production"' },
  plugins: [manifestValidator, pthreadPoolSize, leanTfjs()],
};

async function listFiles(dir, prefix = '') {
  const out = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const relative = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...(await listFiles(path.join(dir, entry.name), relative)));
    else out.push(relative);
  }
  return out;
}

const COMPRESSIBLE = /\.(js|css|html|json|wasm|webmanifest|svg)$/;

/**
 * A gzip copy (level 9) beside every text, script and wasm file: the server sends it to
 * browsers that accept gzip, so the first visit moves a fraction of the bytes, without
 * compressing on every request.
 */
async function precompress(dir) {
  const squeeze = promisify(gzip);
  let count = 0;
  for (const file of await listFiles(dir)) {
    if (!COMPRESSIBLE.test(file) || file.endsWith('.map')) continue;
    const data = await readFile(path.join(dir, file));
    await writeFile(path.join(dir, `${file}.gz`), await squeeze(data, { level: constants.Z_BEST_COMPRESSION }));
    count += 1;
  }
  return count;
}

async function main() {
  await rm(dist, { recursive: true, force: true });
  await mkdir(path.join(dist, 'tfjs'), { recursive: true });
  await build({ ...common, entryPoints: { app: path.join(here, 'src/main.js') }, format: 'esm', splitting: true, outdir: dist, chunkNames: 'chunks/[name]-[hash]' });
  await build({ ...common, entryPoints: { 'inference-worker': path.join(here, 'src/inference-worker.js') }, format: 'iife', outdir: dist });
  for (const name of STATIC) await cp(path.join(here, name), path.join(dist, name), { recursive: true });
  for (const name of WASM_FILES) await cp(path.join(wasmDir, name), path.join(dist, 'tfjs', name));

  const shell = (await listFiles(dist)).filter((f) => !f.endsWith('.map')).sort();
  const hash = createHash('sha256');
  for (const file of shell) hash.update(file).update(await readFile(path.join(dist, file)));
  const buildId = hash.digest('hex').slice(0, 16);
  // './' is the page itself (navigations are answered with it).
  const shellFiles = ['./', ...shell.filter((f) => f !== 'index.html')];
  await build({
    ...common,
    entryPoints: { sw: path.join(here, 'src/sw.js') },
    format: 'iife',
    outdir: dist,
    define: { ...common.define, BUILD_ID: JSON.stringify(buildId), SHELL_FILES: JSON.stringify(shellFiles) },
  });
  await writeFile(path.join(dist, 'build.json'), JSON.stringify({ build_id: buildId, files: shellFiles }, null, 2));
  const compressed = await precompress(dist);
  console.log(`webclient: built ${shellFiles.length} files into ${path.relative(process.cwd(), dist)} (build ${buildId}; ${compressed} precompressed)`);
}

main().catch((error) => {
  console.error(`webclient build failed: ${error.message}`);
  process.exit(1);
});
