// Run a converted TF.js graph model in Node with the web app's own TF.js runtime.
//
//   node conversion/js/run_tfjs.mjs JOB.json RESULT.json      (formats: tfjs_job.mjs)
//
// The app ships TF.js with only the kernels and ops its models use (webclient/tfjs-lean.mjs),
// so this bundles tfjs_job.mjs with the same esbuild plugin before it runs: a model needing
// anything the app leaves out fails here, at conversion, naming the kernel or op, instead of
// on a phone.

import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';

import { leanTfjs } from '../../webclient/tfjs-lean.mjs';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));

async function main() {
  const [jobFile, resultFile] = process.argv.slice(2);
  if (!jobFile || !resultFile) {
    console.error('usage: node run_tfjs.mjs JOB.json RESULT.json');
    process.exit(2);
  }
  const scratch = await mkdtemp(path.join(tmpdir(), 'binbot-tfjs-'));
  try {
    const runner = path.join(scratch, 'tfjs_job.cjs');
    await build({
      entryPoints: [path.join(here, 'tfjs_job.mjs')],
      bundle: true,
      platform: 'node',
      // The packages' ES modules, as the browser build takes them: their Node bundles ("main")
      // would bring TF.js's converter whole, past the plugin's op filter.
      mainFields: ['module', 'main'],
      format: 'cjs',
      outfile: runner,
      logLevel: 'error',
      plugins: [leanTfjs()],
    });
    const { runJob } = require(runner);
    await runJob(jobFile, resultFile, {
      preprocessPath: path.join(here, '../../webclient/src/preprocess.js'),
      wasmDir: path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm')),
    });
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(`run_tfjs: ${error.message}`);
  process.exit(1);
});
