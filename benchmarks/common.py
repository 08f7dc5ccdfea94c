"""What every benchmark starts with: the Keras cache seeded from the shared weights, output
that shows up line by line in a log while a long measurement runs, and Keras's own latency as
the reference."""

from __future__ import annotations

import argparse
import os
import sys
import time

from training.keras_cache import seed_keras_cache


def bench_parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser described by the script's docstring, with the Keras cache options."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--weights-dir", default=os.environ.get("BINBOT_WEIGHTS_DIR"))
    parser.add_argument("--keras-home", default=os.environ.get("KERAS_HOME", ".cache/keras"))
    return parser


def start_benchmark(args: argparse.Namespace) -> None:
    """Seed the Keras cache (product code keeps ``weights="imagenet"``) and unbuffer stdout."""
    sys.stdout.reconfigure(line_buffering=True)
    seed_keras_cache(args.weights_dir, args.keras_home)


class KerasReference:
    """The Keras model as a compiled tf.function, batch 1: the reference latency. Timed a block
    of photos at a time, so that a benchmark can alternate it with what it compares."""

    def __init__(self, model, records) -> None:
        import tensorflow as tf

        from training.pipeline import make_dataset

        self.model = model
        self.predict = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        self.images = [x for x, _ in make_dataset(records, batch_size=1)]
        for x in self.images[:5]:
            self.predict(x).numpy()

    def times_ms(self, start: int, stop: int) -> list[float]:
        times = []
        for x in self.images[start:stop]:
            began = time.perf_counter()
            self.predict(x).numpy()
            times.append((time.perf_counter() - began) * 1000)
        return times
