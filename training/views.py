"""Training views of each photo: the exact model input, and seeded random crops of it.

View 0 of every photo is what the model sees at inference (the resize recipe in
``training.preprocess``). Views 1..n-1 are augmentations a phone photo could plausibly show:
a random resized crop (a part of the photo, 40-100% of its area, a little wider or taller),
a horizontal flip half the time, and small changes of brightness and contrast.

Every view is a pure function of the photo's content hash and the view's number (stateless
random ops), so a view computed today is the same view tomorrow: the frozen backbone's work
on it can be cached on disk and reused by every later training (``training.features``).
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from training import IMAGE_SIZE
from training.dataset import ImageRecord
from training.preprocess import apply_exif_orientation, decode_image, fit_to_model_input

# Bump when the augmentation changes: cached features of older views must not be reused.
VIEWS_VERSION = 2
CROP_AREA = (0.40, 1.0)
CROP_ASPECT = (3 / 4, 4 / 3)
BRIGHTNESS, CONTRAST = 0.10, 0.10


def _seed(sha256: tf.Tensor) -> tf.Tensor:
    """A stateless seed from the photo's content hash: the same photo, the same views."""
    return tf.stack(
        [tf.strings.to_hash_bucket_fast(sha256, 2**31 - 1), tf.constant(VIEWS_VERSION, tf.int64)]
    )


def _box_downsampled(image: tf.Tensor, size: int) -> tf.Tensor:
    """Average k x k blocks (k = shorter side // size), as the recipe does: no aliasing when
    a crop of a large phone photo is resized."""
    image = tf.cast(image, tf.float32)
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    k = tf.maximum(tf.minimum(height, width) // size, 1)
    h, w = (height // k) * k, (width // k) * k
    image = tf.reshape(image[:h, :w, :], [h // k, k, w // k, k, 3])
    return tf.reduce_mean(image, axis=[1, 3])


def random_views(
    image: tf.Tensor, count: int, seed: tf.Tensor, size: int = IMAGE_SIZE
) -> tf.Tensor:
    """``count`` random resized crops of ``image`` (uint8 HxWx3, upright), flipped and jittered:
    [count, size, size, 3] float32 0..255."""
    image = _box_downsampled(image, size)
    height = tf.cast(tf.shape(image)[0], tf.float32)
    width = tf.cast(tf.shape(image)[1], tf.float32)
    draws = tf.random.stateless_uniform([count, 6], seed=seed)
    area = (CROP_AREA[0] + draws[:, 0] * (CROP_AREA[1] - CROP_AREA[0])) * height * width
    log_low, log_high = tf.math.log(CROP_ASPECT[0]), tf.math.log(CROP_ASPECT[1])
    aspect = tf.exp(log_low + draws[:, 1] * (log_high - log_low))
    crop_w = tf.minimum(tf.sqrt(area * aspect), width)
    crop_h = tf.minimum(tf.sqrt(area / aspect), height)
    top = draws[:, 2] * (height - crop_h)
    left = draws[:, 3] * (width - crop_w)
    boxes = tf.stack(
        [top / height, left / width, (top + crop_h) / height, (left + crop_w) / width], axis=1
    )
    views = tf.image.crop_and_resize(image[None], boxes, tf.zeros([count], tf.int32), [size, size])
    flip = draws[:, 4, None, None, None] < 0.5
    views = tf.where(flip, tf.reverse(views, axis=[2]), views)
    contrast = 1.0 + CONTRAST * (2.0 * draws[:, 5] - 1.0)
    brightness = (
        255.0 * BRIGHTNESS * (2.0 * tf.random.stateless_uniform([count], seed=seed + 1) - 1.0)
    )
    mean = tf.reduce_mean(views, axis=[1, 2, 3], keepdims=True)
    views = (views - mean) * contrast[:, None, None, None] + mean + brightness[:, None, None, None]
    return tf.clip_by_value(views, 0.0, 255.0)


def views_dataset(
    records: Sequence[ImageRecord], views: int, batch_size: int = 32
) -> tf.data.Dataset:
    """Batches of ``views`` images per record, in record order: [batch * views, 224, 224, 3].

    View 0 is the exact model input; views 1.. are the seeded random crops.
    """
    paths = [str(r.path) for r in records]
    orientations = [r.orientation for r in records]
    hashes = [r.sha256 for r in records]

    def all_views(path, orientation, sha256):
        upright = apply_exif_orientation(decode_image(tf.io.read_file(path)), orientation)
        exact = fit_to_model_input(upright)[None]
        if views == 1:
            return exact
        return tf.concat([exact, random_views(upright, views - 1, _seed(sha256))], axis=0)

    ds = tf.data.Dataset.from_tensor_slices((paths, orientations, hashes))
    ds = ds.map(all_views, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).map(lambda x: tf.reshape(x, [-1, IMAGE_SIZE, IMAGE_SIZE, 3]))
