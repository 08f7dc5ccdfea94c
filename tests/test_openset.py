"""The open-set score travels to every phone with the model: it must be small, and the browser
must compute the same score as Python, for every method."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from training.config import TrainConfig
from training.openset import METHODS, OpenSet, fit

OPENSET_JS = Path(__file__).resolve().parent.parent / "webclient" / "src" / "openset.js"
SCORE_IN_NODE = f"""
import {{ readFileSync }} from 'node:fs';
import {{ openSetScore, parseOpenSet }} from '{OPENSET_JS.as_uri()}';
const [scorerFile, photosFile] = process.argv.slice(1);
const scorer = parseOpenSet(readFileSync(scorerFile, 'utf8'));
const {{ embeddings, probabilities }} = JSON.parse(readFileSync(photosFile, 'utf8'));
console.log(JSON.stringify(embeddings.map((e, i) => openSetScore(scorer, e, probabilities[i]))));
"""


def embeddings_like_mobilenet(rng, n: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative pooled features (ReLU6 before the pooling), one cluster per class."""
    centres = rng.gamma(0.5, 0.6, size=(classes, 1280))
    labels = rng.integers(0, classes, size=n)
    noise = rng.gamma(0.5, 0.3, size=(n, 1280))
    return (centres[labels] + noise).astype(np.float32), labels


@pytest.mark.parametrize("method", METHODS)
def test_the_browser_score_equals_python_and_the_file_stays_small(method, tmp_path):
    rng = np.random.default_rng(7)
    train, labels = embeddings_like_mobilenet(rng, 400, 10)
    photos, _ = embeddings_like_mobilenet(rng, 30, 10)
    probabilities = rng.dirichlet(np.ones(10), size=30)
    scorer = fit(method, train, labels)
    scorer.calibrate(train[:100], rng.dirichlet(np.ones(10), size=100))

    shipped = tmp_path / "openset.json"
    shipped.write_text(json.dumps(scorer.to_json()))
    (tmp_path / "photos.json").write_text(
        json.dumps({"embeddings": photos.tolist(), "probabilities": probabilities.tolist()})
    )
    done = subprocess.run(
        ["node", "--input-type=module", "-e", SCORE_IN_NODE, str(shipped), str(tmp_path / "photos.json")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    in_browser = np.array(json.loads(done.stdout))
    read_back = OpenSet.from_json(json.loads(shipped.read_text()))
    in_python = read_back.scores(photos, probabilities)
    np.testing.assert_allclose(in_browser, in_python, rtol=1e-4, atol=1e-5)
    assert read_back.threshold == scorer.threshold
    # float16 arrays: 2 bytes a value plus base64's third, and a little JSON around them.
    values = sum(a.size for a in scorer.arrays.values())
    assert shipped.stat().st_size <= values * 2 * 4 / 3 + 1024


def test_the_default_score_doubts_a_photo_the_head_hesitates_on_even_near_a_kind():
    """The default score (like prototype_confidence): the same embedding scores lower when the
    head cannot choose between two kinds, which is how many photos of kinds never taught look."""
    rng = np.random.default_rng(3)
    train, labels = embeddings_like_mobilenet(rng, 400, 10)
    photo = np.repeat(train[:1], 2, axis=0)
    sure, torn = np.full(10, 0.002), np.full(10, 0.002)
    sure[labels[0]] = 0.982
    torn[labels[0]], torn[(labels[0] + 1) % 10] = 0.491, 0.491
    probabilities = np.stack([sure, torn])

    similarity_only = fit("prototype", train, labels).scores(photo, probabilities)
    default = fit(TrainConfig().openset_method, train, labels).scores(photo, probabilities)

    assert similarity_only[0] == similarity_only[1]
    assert default[1] < default[0]


def test_a_photo_between_two_looks_of_a_kind_is_not_taken_for_that_kind():
    """A kind photographed two ways (say, keyboards from above and on a desk) has a mean
    direction between its looks. A single prototype accepts a photo that sits there, although
    no training photo looks like it; the default score's prototype per look does not, and it
    still accepts photos of either look."""
    rng = np.random.default_rng(11)
    looks = rng.gamma(0.5, 0.6, size=(2, 1280))  # kind 0: two looks
    others = rng.gamma(0.5, 0.6, size=(4, 1280))  # kinds 1..4: one look each

    def photos(centre: np.ndarray, n: int) -> np.ndarray:
        return (centre + rng.gamma(0.5, 0.3, size=(n, 1280))).astype(np.float32)

    def known(n: int) -> tuple[np.ndarray, np.ndarray]:
        parts = [photos(looks[0], n), photos(looks[1], n)] + [photos(c, 2 * n) for c in others]
        labels = np.repeat(np.arange(5), 2 * n)
        return np.concatenate(parts), labels

    train, train_labels = known(60)
    val, val_labels = known(30)
    between = photos((looks[0] + looks[1]) / 2, 20)
    fresh, _ = known(30)

    def sure(labels: np.ndarray) -> np.ndarray:
        p = np.full((len(labels), 5), 0.01)
        p[np.arange(len(labels)), labels] = 0.96
        return p

    verdicts = {}
    for method in ("prototype_confidence", TrainConfig().openset_method):
        scorer = fit(method, train, train_labels)
        scorer.calibrate(val, sure(val_labels))
        kind_zero = np.zeros(len(between), dtype=int)
        verdicts[method] = (
            (scorer.scores(between, sure(kind_zero)) >= scorer.threshold).mean(),
            (scorer.scores(fresh, sure(val_labels)) >= scorer.threshold).mean(),
        )
    assert TrainConfig().openset_method == "multi_prototype_confidence"
    single_between, single_fresh = verdicts["prototype_confidence"]
    multi_between, multi_fresh = verdicts["multi_prototype_confidence"]
    assert single_between > 0.9  # the single prototype takes them for kind 0
    assert multi_between < 0.1
    assert single_fresh > 0.85 and multi_fresh > 0.85
