// The web app's preprocessing (webclient/src/preprocess.js) on raw pixel files, for
// test_preprocess.py to compare with training/preprocess.py.
//
//   node tests/preprocess_twin.mjs JOB.json      JOB: [{"rgb", "width", "height", "orientation"}]
//
// Writes each image's model input next to its pixels as "<rgb>.f32" (float32, 224x224x3).

import { readFile, writeFile } from 'node:fs/promises';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';

import { modelInputFromPixels } from '../webclient/src/preprocess.js';

const images = JSON.parse(await readFile(process.argv[2], 'utf8'));
await tf.setBackend('cpu');
for (const image of images) {
  const data = await readFile(image.rgb);
  const input = modelInputFromPixels(tf, { data, width: image.width, height: image.height, channels: 3 },
    image.orientation);
  await writeFile(`${image.rgb}.f32`, Buffer.from((await input.data()).buffer));
  input.dispose();
}
