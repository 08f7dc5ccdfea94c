"""The frozen backbone's cached features: refused up front when they cannot fit."""

from __future__ import annotations

import pytest

from binbot.errors import BinbotError
from training.dataset import load_dataset
from training.features import FeatureStore
from training.model import build_model, split_model


def test_features_too_large_for_the_memory_are_refused_before_any_work(small_ewaste):
    """Settings the form and the CLI accept (32 views, every layer fine-tuned, so the cut is
    the raw 224x224x3 input) on a large dataset used to be computed for minutes and then
    killed by the kernel without a word; they are refused at once, saying what to change."""
    photo = load_dataset(small_ewaste).split("train")[0]
    bottom = split_model(build_model(3, weights=None), 1000).bottom
    lines: list[str] = []
    with pytest.raises(BinbotError, match=r"100000 photos x 32 views needs about .* of memory"):
        FeatureStore(None).features([photo] * 100_000, 32, bottom, log=lines.append)
    assert lines == []  # refused before computing anything
