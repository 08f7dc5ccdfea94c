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
 * Every function takes the TF.js namespace as its first argument, so the same module runs
 * in the browser and in Node without a bundler deciding which TF.js it gets.
 */

export const MODEL_SIZE = 224;

/** The resize recipes this file implements, by name: the versions it knows. */
export const RESIZE_RECIPES = new Map([['center-square-box-bilinear', [1]]]);

/** Whether a manifest's `input.resize` names a recipe (and version) implemented here. */
export function knowsResizeRecipe({ recipe, version } = {}) {
  return (RESIZE_RECIPES.get(recipe) ?? []).includes(version);
}

/** Turn an HxWx3 tensor the way EXIF orientation 1..8 says (same as PIL's exif_transpose). */
export function applyExifOrientation(tf, image, orientation) {
  return tf.tidy(() => {
    switch (orientation) {
      case 2: return tf.reverse(image, 1);
      case 3: return tf.reverse(image, [0, 1]);
      case 4: return tf.reverse(image, 0);
      case 5: return tf.transpose(image, [1, 0, 2]);
      case 6: return tf.reverse(tf.transpose(image, [1, 0, 2]), 1);
      case 7: return tf.reverse(tf.transpose(image, [1, 0, 2]), [0, 1]);
      case 8: return tf.transpose(tf.reverse(image, 1), [1, 0, 2]);
      default: return tf.clone(image);
    }
  });
}

/** Centre-crop, box-downsample and bilinear-resize an HxWx3 tensor to float32 size x size x 3. */
export function fitToModelInput(tf, image, size = MODEL_SIZE) {
  return tf.tidy(() => {
    const [height, width] = image.shape;
    const side = Math.min(height, width);
    const k = Math.max(Math.floor(side / size), 1);
    const crop = Math.floor(side / k) * k;
    const top = Math.floor((height - crop) / 2);
    const left = Math.floor((width - crop) / 2);
    let x = tf.slice(tf.cast(image, 'float32'), [top, left, 0], [crop, crop, 3]);
    if (k > 1) {
      const blocks = crop / k;
      x = tf.mean(tf.reshape(x, [blocks, k, blocks, k, 3]), [1, 3]);
    }
    return tf.image.resizeBilinear(x, [size, size], false, true);
  });
}

/**
 * Pixel bytes (RGBA from a canvas' ImageData, or packed RGB) to an int32 HxWx3 tensor.
 */
export function pixelsToTensor(tf, data, width, height, channels = 4) {
  const rgb = new Int32Array(width * height * 3);
  for (let i = 0, j = 0; j < rgb.length; i += channels, j += 3) {
    rgb[j] = data[i];
    rgb[j + 1] = data[i + 1];
    rgb[j + 2] = data[i + 2];
  }
  return tf.tensor3d(rgb, [height, width, 3], 'int32');
}

/** Decoded pixels + EXIF orientation -> the [1, size, size, 3] batch the model takes. */
export function modelInputFromPixels(tf, { data, width, height, channels = 4 }, orientation = 1, size = MODEL_SIZE) {
  return tf.tidy(() => {
    const image = pixelsToTensor(tf, data, width, height, channels);
    return tf.expandDims(fitToModelInput(tf, applyExifOrientation(tf, image, orientation), size), 0);
  });
}
