"""The model shipped in the repository: intact, and it classifies real photos in TF.js."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import STARTER

from conversion.manifest import check_bundle, read_manifest
from conversion.verify import run_tfjs
from training.dataset import load_dataset


def test_starter_bundle_matches_its_manifest():
    assert check_bundle(STARTER) == []
    manifest = read_manifest(STARTER)
    assert manifest["bundle_bytes"] <= 4_000_000
    assert manifest["metrics"]["test_images"] == 300
    for picture in ("confusion_matrix.png", "misclassified.png", "report.md", "metrics.json"):
        assert (STARTER / "evaluation" / picture).is_file()


@pytest.mark.slow
def test_starter_model_classifies_test_photos_in_tfjs(ewaste_zip, tmp_path):
    manifest = read_manifest(STARTER)
    dataset = load_dataset(ewaste_zip, cache_dir=tmp_path)
    assert manifest["labels"] == dataset.classes
    picked = [r for label in range(10) for r in dataset.split("test") if r.label == label][::10]
    signature = json.loads((STARTER / "model.json").read_text())["signature"]
    result = run_tfjs(STARTER, picked, signature)
    predicted = np.asarray(result["probabilities"]).argmax(axis=1)
    accuracy = float((predicted == [r.label for r in picked]).mean())
    assert accuracy >= 0.85, f"starter model got {accuracy:.0%} of {len(picked)} test photos"
