"""What every benchmark starts with: the Keras cache seeded from the shared weights, and output
that shows up line by line in a log while a long measurement runs."""

from __future__ import annotations

import argparse
import os
import sys

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
