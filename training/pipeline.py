"""tf.data input pipelines: decode once, cache, shuffle, batch, augment (training only), prefetch."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import keras
import tensorflow as tf

from training.dataset import ImageRecord
from training.preprocess import load_for_model

AUTOTUNE = tf.data.AUTOTUNE


def make_augmenter(seed: int) -> keras.Sequential:
    """Small, label-preserving changes a phone photo could plausibly show."""
    return keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomRotation(0.05, fill_mode="reflect", seed=seed + 1),
            keras.layers.RandomZoom((-0.1, 0.1), fill_mode="reflect", seed=seed + 2),
            keras.layers.RandomBrightness(0.1, value_range=(0, 255), seed=seed + 3),
            keras.layers.RandomContrast(0.1, value_range=(0, 255), seed=seed + 4),
        ],
        name="augmentation",
    )


def make_dataset(
    records: Sequence[ImageRecord],
    *,
    batch_size: int = 32,
    training: bool = False,
    augment: bool = True,
    seed: int = 42,
) -> tf.data.Dataset:
    """Batches of (float32 images 0..255, int labels) in the order of ``records`` unless training.

    Decoded, resized images are cached in memory after the first pass, so later epochs cost
    only the model. Augmentation runs after the cache so each epoch sees new variations.
    """
    paths = [str(r.path) for r in records]
    orientations = [r.orientation for r in records]
    labels = [r.label for r in records]
    ds = tf.data.Dataset.from_tensor_slices((paths, orientations, labels))
    ds = ds.map(lambda p, o, y: (load_for_model(p, o), y), num_parallel_calls=AUTOTUNE)
    ds = ds.cache()
    if training:
        ds = ds.shuffle(len(records), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if training and augment:
        augmenter = make_augmenter(seed)
        ds = ds.map(
            lambda x, y: (tf.clip_by_value(augmenter(x, training=True), 0.0, 255.0), y),
            num_parallel_calls=AUTOTUNE,
        )
    return ds.prefetch(AUTOTUNE)


def class_weights(
    records: Sequence[ImageRecord], num_classes: int, max_ratio: float = 1.5
) -> dict[int, float] | None:
    """Inverse-frequency weights when the largest class exceeds the smallest by ``max_ratio``."""
    counts = Counter(r.label for r in records)
    present = [counts.get(i, 0) for i in range(num_classes)]
    smallest = min(c for c in present if c > 0)
    if max(present) / smallest <= max_ratio:
        return None
    total = sum(present)
    return {i: total / (num_classes * c) if c else 0.0 for i, c in enumerate(present)}
