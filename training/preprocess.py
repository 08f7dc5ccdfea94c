"""How any photo becomes the model's 224x224x3 float input. The web client must match this exactly.

The resize contract (also written into the conversion manifest as ``input.resize``):

1. Decode to RGB uint8 (JPEG: accurate integer IDCT, bit-identical to Pillow and to browsers'
   libjpeg-turbo) and apply the EXIF orientation (phones store photos rotated and
   set a tag; ``tf.io.decode_jpeg`` ignores it, so it is applied here). Transparency is
   flattened onto white (``binbot.pixels.to_rgb``), as the web app and the server do.
2. Centre-crop the largest square. Integer offsets: ``top = (h - s) // 2``, ``left = (w - s) // 2``.
3. Box-downsample when the square is at least twice the target: ``k = s // 224``; when ``k >= 2``
   the crop is shrunk to ``(s // k) * k`` (still centred, same offset rule) and every ``k x k``
   block is averaged. This is what keeps a 4000-pixel phone photo from aliasing, and it is
   exactly reproducible in TF.js (``avgPool`` with ``k``), unlike a browser canvas resize.
4. Bilinear resize to 224x224 with half-pixel centres and no antialiasing
   (``tf.image.resize(..., "bilinear")`` in TF2, ``tf.image.resizeBilinear(x, [224, 224], false,
   true)`` in TF.js).
5. Values stay float32 in 0..255, not rounded: the pixel scaling lives inside the model.
"""

from __future__ import annotations

import io

import numpy as np
import tensorflow as tf
from PIL import Image

from binbot.pixels import to_rgb
from training import IMAGE_SIZE

# The recipe above, as the manifest's ``input.resize``. ``recipe`` and ``version`` name it;
# the web app refuses a model whose recipe it does not know. Any change to the steps above is
# a new version, and the web app's preprocess.js must learn it first.
RESIZE_RECIPE = {
    "recipe": "center-square-box-bilinear",
    "version": 1,
    "size": [IMAGE_SIZE, IMAGE_SIZE],
    "exif_orientation": "applied",
    "crop": "center-square: side s = min(h, w), top = (h - s) // 2, left = (w - s) // 2",
    "box_downsample": "k = s // size; if k >= 2 crop to (s // k) * k (centred), average k x k",
    "interpolation": "bilinear",
    "half_pixel_centers": True,
    "antialias": False,
    "value_range": [0, 255],
}


def apply_exif_orientation(image: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """Turn an HxWxC image the way EXIF orientation 1..8 says (same result as PIL's exif_transpose)."""
    orientation = tf.clip_by_value(tf.cast(orientation, tf.int32), 1, 8)
    branches = [
        lambda: image,  # 1: as stored
        lambda: tf.image.flip_left_right(image),  # 2: mirrored
        lambda: tf.image.rot90(image, k=2),  # 3: upside down
        lambda: tf.image.flip_up_down(image),  # 4: mirrored vertically
        lambda: tf.image.transpose(image),  # 5: mirrored, rotated
        lambda: tf.image.rot90(image, k=3),  # 6: rotated, turn 90 degrees clockwise
        lambda: tf.image.rot90(tf.image.transpose(image), k=2),  # 7: transverse
        lambda: tf.image.rot90(image, k=1),  # 8: turn 90 degrees counter-clockwise
    ]
    return tf.switch_case(orientation - 1, branches)


def fit_to_model_input(image: tf.Tensor, size: int = IMAGE_SIZE) -> tf.Tensor:
    """Centre-crop, box-downsample and bilinear-resize an HxWx3 image to float32 size x size x 3."""
    image = tf.cast(image, tf.float32)
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    side = tf.minimum(height, width)
    k = tf.maximum(side // size, 1)
    crop = (side // k) * k
    top, left = (height - crop) // 2, (width - crop) // 2
    image = image[top : top + crop, left : left + crop, :]
    blocks = crop // k
    image = tf.reshape(image, [blocks, k, blocks, k, 3])
    image = tf.reduce_mean(image, axis=[1, 3])
    image = tf.image.resize(image, [size, size], method="bilinear", antialias=False)
    return tf.ensure_shape(image, [size, size, 3])


# Bump when decoding gives other pixels for some file (2: transparency on white): the feature
# cache must not reuse what the old decoding gave.
DECODE_VERSION = 2


def decode_image(data: tf.Tensor) -> tf.Tensor:
    """Decode JPEG/PNG/BMP/GIF/WebP bytes to RGB uint8 HxWx3 (``binbot.pixels.to_rgb``).

    JPEGs use libjpeg-turbo's accurate integer IDCT, as Pillow and browsers do; TensorFlow's
    default (fast IDCT) gives pixels that differ by a few levels from what a phone's browser
    decodes, enough to flip borderline predictions. Every other format goes through Pillow
    (TensorFlow has no WebP decoder, and its PNG and GIF decoders drop transparency, keeping
    whatever colour the file stores under it): transparency is flattened onto white, as the web
    app and the server do.
    """
    image = tf.cond(
        tf.io.is_jpeg(data),
        lambda: tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE"),
        lambda: tf.numpy_function(_decode_with_pillow, [data], tf.uint8, stateful=False),
    )
    return tf.ensure_shape(image, [None, None, 3])


def _decode_with_pillow(data: np.ndarray | bytes) -> np.ndarray:
    """The first frame as RGB uint8 (``to_rgb``).

    tf.numpy_function passes the file's bytes as a 0-d object array when called eagerly, but as
    plain ``bytes`` inside a tf.data map (a graph): training and evaluation run there, so both
    must work. The object array's item keeps trailing zeros (a 'S' array would drop them).
    """
    raw = data if isinstance(data, bytes) else data.item()
    with Image.open(io.BytesIO(raw)) as image:
        return np.asarray(to_rgb(image), dtype=np.uint8)


def load_for_model(path: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """File path -> the exact float32 224x224x3 tensor the model is trained and evaluated on."""
    image = decode_image(tf.io.read_file(path))
    return fit_to_model_input(apply_exif_orientation(image, orientation))
