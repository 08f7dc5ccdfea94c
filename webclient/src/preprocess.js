/**
 * How any photo becomes the model's input: the JavaScript twin of training/preprocess.py.
 *
 * The contract, named in every manifest's `input.resize` as recipe "center-square-box-bilinear"
 * version 1 (see RESIZE_RECIPES): apply the EXIF orientation,
 * centre-crop the largest square, box-downsample by k = floor(side / 224) when k >= 2,
 * bilinear-resize to 224x224 with half-pixel centres and no antialiasing, keep float32
 * values 0..255. Any difference from the Python side silently ruins predictions, so
 * conversion runs this very file in Node against the Keras model's outputs.
 *
 * Orientation, crop and box means are plain JavaScript over the pixel bytes (a phone's 50 MP
 * photo as a tensor would take gigabytes and seconds); only the small block-mean image becomes a
 * tensor. Functions that use TF.js take its namespace as their first argument, so the same module
 * runs in the browser and in Node without a bundler deciding which TF.js it gets.
 */

export const MODEL_SIZE = 224;

/** The resize recipes this file implements, by name: the versions it knows. */
export const RESIZE_RECIPES = new Map([['center-square-box-bilinear', [1]]]);

/** Whether a manifest's `input.resize` names a recipe (and version) implemented here. */
export function knowsResizeRecipe({ recipe, version } = {}) {
  return (RESIZE_RECIPES.get(recipe) ?? []).includes(version);
}

/**
 * Where output pixel (y, x) of an image turned the way EXIF orientation 1..8 says comes from in
 * the stored W x H image, as [row, column] (the same turns as PIL's exif_transpose).
 */
function sourceOf(orientation, y, x, width, height) {
  switch (orientation) {
    case 2: return [y, width - 1 - x];
    case 3: return [height - 1 - y, width - 1 - x];
    case 4: return [height - 1 - y, x];
    case 5: return [x, y];
    case 6: return [height - 1 - x, y];
    case 7: return [height - 1 - x, width - 1 - y];
    case 8: return [x, width - 1 - y];
    default: return [y, x];
  }
}

/** Pixel bytes turned upright; orientation 1 (every browser-decoded photo) returns them as they are. */
export function uprightPixels({ data, width, height, channels = 4 }, orientation = 1) {
  if (!(orientation >= 2 && orientation <= 8)) return { data, width, height, channels };
  const turned = orientation >= 5;
  const [outWidth, outHeight] = turned ? [height, width] : [width, height];
  const out = new Uint8Array(outWidth * outHeight * channels);
  for (let y = 0, o = 0; y < outHeight; y += 1) {
    for (let x = 0; x < outWidth; x += 1, o += channels) {
      const [row, column] = sourceOf(orientation, y, x, width, height);
      const i = (row * width + column) * channels;
      for (let c = 0; c < channels; c += 1) out[o + c] = data[i + c];
    }
  }
  return { data: out, width: outWidth, height: outHeight, channels };
}

/** One row of pixels, its first three channels, into `out` from index `at`, as float32. */
function copyRow(out, at, data, i, count, channels) {
  for (let o = at, end = at + count * 3; o < end; o += 3, i += channels) {
    out[o] = data[i];
    out[o + 1] = data[i + 1];
    out[o + 2] = data[i + 2];
  }
}

/** One row of pixels added to the running sums of its `blocks` runs of `k` pixels. */
function addRow(sums, data, start, blocks, k, channels) {
  const run = k * channels;
  for (let s = 0, i = start; s < blocks * 3; s += 3) {
    let red = 0;
    let green = 0;
    let blue = 0;
    for (const end = i + run; i < end; i += channels) {
      red += data[i];
      green += data[i + 1];
      blue += data[i + 2];
    }
    sums[s] += red;
    sums[s + 1] += green;
    sums[s + 2] += blue;
  }
}

/**
 * Steps 2 and 3 of the contract in one pass over the pixel bytes: the centre square, and the
 * mean of every k x k block in it. `readRows(top, rows, left, crop)` hands over `rows` rows of
 * the square's columns as `{ data, channels, rowBytes, offset }` (pixel (r, c) of the strip at
 * offset + r * rowBytes + c * channels), so a 50-megapixel photo is read a strip at a time and
 * never becomes a tensor: only its (side / k)^2 block means do. A block's sum is an exact integer
 * (below 2^24 for any k < 256), so its mean is the float32 TensorFlow's reduce_mean gives.
 * The loops are small functions of their own: V8 optimises those soon, even on a first photo.
 */
export function squareBlockMeans(width, height, size, readRows, stripPixels = 1 << 21) {
  const side = Math.min(width, height);
  const k = Math.max(Math.floor(side / size), 1);
  const blocks = Math.floor(side / k);
  const crop = blocks * k;
  const top = Math.floor((height - crop) / 2);
  const left = Math.floor((width - crop) / 2);
  const means = new Float32Array(blocks * blocks * 3);
  const sums = new Float64Array(blocks * 3);
  const blockRowsPerStrip = Math.max(1, Math.floor(stripPixels / (crop * k)));
  for (let first = 0; first < blocks; first += blockRowsPerStrip) {
    const count = Math.min(blockRowsPerStrip, blocks - first);
    const { data, channels, rowBytes, offset } = readRows(top + first * k, count * k, left, crop);
    for (let b = 0; b < count; b += 1) {
      const out = (first + b) * blocks * 3;
      if (k === 1) {
        copyRow(means, out, data, offset + b * rowBytes, blocks, channels);
        continue;
      }
      sums.fill(0);
      for (let r = 0; r < k; r += 1) addRow(sums, data, offset + (b * k + r) * rowBytes, blocks, k, channels);
      for (let j = 0; j < sums.length; j += 1) means[out + j] = sums[j] / (k * k);
    }
  }
  return { means, blocks };
}

/** Step 4: block means (squareBlockMeans) bilinear-resized to the [1, size, size, 3] batch. */
export function modelInputFromBlockMeans(tf, { means, blocks }, size = MODEL_SIZE) {
  return tf.tidy(() => {
    const square = tf.tensor3d(means, [blocks, blocks, 3], 'float32');
    return tf.expandDims(tf.image.resizeBilinear(square, [size, size], false, true), 0);
  });
}

/** Decoded pixels (RGBA from a canvas, or packed RGB) + EXIF orientation -> the model's batch. */
export function modelInputFromPixels(tf, pixels, orientation = 1, size = MODEL_SIZE) {
  const { data, width, height, channels } = uprightPixels(pixels, orientation);
  const rowBytes = width * channels;
  const rowsOf = (top, rows, left) => ({ data, channels, rowBytes, offset: top * rowBytes + left * channels });
  return modelInputFromBlockMeans(tf, squareBlockMeans(width, height, size, rowsOf), size);
}
