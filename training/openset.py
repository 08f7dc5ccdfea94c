"""Is this photo one of the model's kinds at all? A score from the model's pooled features.

A classifier always names one of its kinds, however far a photo is from all of them. The
score here says how much a photo looks like the training photos: high for the kinds the model
knows, low for anything else. Methods (all from the 1280-value embedding the bundle exports):

- ``max_softmax``: the top class probability (Hendrycks & Gimpel 2017), the baseline;
- ``prototype``: the highest cosine similarity to a class's mean direction;
- ``prototype_confidence``: that similarity plus ``CONFIDENCE_WEIGHT`` x the log of the top
  class probability. The two fail differently: a photo of an untaught kind can sit close to a
  prototype while the head hesitates between two kinds, or the other way round;
- ``multi_prototype_confidence``: the same, with up to ``SUBPROTOTYPES`` mean directions per
  kind (spherical k-means on its training photos, at least ``PHOTOS_PER_SUBPROTOTYPE`` photos
  each). A kind photographed in several ways (a keyboard from above, a keyboard on a desk) has
  a mean direction between its looks, where photos of an untaught kind can sit; its
  sub-prototypes follow the looks instead;
- ``knn``: the cosine similarity to the k-th nearest of a sample of training photos
  (Sun et al. 2022), on normalised embeddings;
- ``mahalanobis``: minus the smallest Mahalanobis distance to a class mean, with one shared
  covariance, in the embedding's top principal components (Lee et al. 2018).

The threshold is calibrated on validation photos of the known kinds: the score that accepts
``ACCEPT`` of them. Everything the browser needs is in ``OpenSet.to_json`` (the method, its
arrays, the threshold); ``webclient/src/openset.js`` computes the same score.

The arrays travel to every phone with the model, so they are stored as float16 (base64 in the
JSON): the k-NN reference set of 400 photos x 1280 values is 1.4 MB that way, against 10.6 MB as
decimal text. They are rounded to float16 as soon as they are fitted, so the threshold is
calibrated on exactly the numbers the browser decodes.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import numpy as np

METHODS = (
    "max_softmax", "prototype", "prototype_confidence", "multi_prototype_confidence", "knn",
    "mahalanobis",
)  # fmt: skip
PROTOTYPE_METHODS = ("prototype", "prototype_confidence", "multi_prototype_confidence")
# Chosen on the open-set benchmark's 5 held-out pairs (README): every weight from 0.03 to 0.3
# beat both parts alone on the mean near-kind false-accept rate; 0.1 is in the flat middle.
CONFIDENCE_WEIGHT = 0.1
ACCEPT = 0.95
# Below this top probability a known-looking photo is "not sure" (the web app's NOT_SURE_BELOW).
SURE_ABOVE = 0.6
KNN_K = 5
KNN_SAMPLE_PER_CLASS = 40
MAHALANOBIS_DIMS = 64
# Chosen on the open-set benchmark's stored outputs: any number from 4 to 16 per kind lowered
# the mean near-kind false-accept rate from 18.9% to 13.5-14.6%; 6 keeps the file small.
SUBPROTOTYPES = 6
PHOTOS_PER_SUBPROTOTYPE = 20
KMEANS_ROUNDS = 50
KMEANS_STARTS = 8


def normalise(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-12)


@dataclass
class OpenSet:
    method: str
    threshold: float = 0.0
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    k: int = KNN_K
    weight: float = CONFIDENCE_WEIGHT

    def __post_init__(self) -> None:
        self.arrays = {name: as_shipped(a) for name, a in self.arrays.items()}

    def scores(self, embeddings: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
        """Higher: more like the known kinds."""
        if self.method == "max_softmax":
            return probabilities.max(axis=1)
        if self.method in PROTOTYPE_METHODS:
            similarity = (normalise(embeddings) @ self.arrays["prototypes"].T).max(axis=1)
            if self.method == "prototype":
                return similarity
            confidence = np.log(np.maximum(probabilities.max(axis=1), 1e-12))
            return similarity + self.weight * confidence
        if self.method == "knn":
            similarity = normalise(embeddings) @ self.arrays["reference"].T
            return -np.sort(-similarity, axis=1)[:, self.k - 1]
        centred = (embeddings - self.arrays["mean"]) @ self.arrays["components"].T
        deltas = centred[:, None, :] - self.arrays["class_means"][None]
        distances = np.einsum("nkd,de,nke->nk", deltas, self.arrays["precision"], deltas)
        return -distances.min(axis=1)

    def calibrate(self, embeddings: np.ndarray, probabilities: np.ndarray) -> None:
        """The threshold that accepts ``ACCEPT`` of these (known-kind, validation) photos."""
        self.threshold = float(np.quantile(self.scores(embeddings, probabilities), 1 - ACCEPT))

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "threshold": self.threshold,
            "k": self.k,
            "weight": self.weight,
            "arrays": {name: encode_array(a) for name, a in self.arrays.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OpenSet:
        arrays = {name: decode_array(a) for name, a in data["arrays"].items()}
        return cls(
            data["method"], data["threshold"], arrays, data.get("k", KNN_K),
            data.get("weight", CONFIDENCE_WEIGHT),
        )  # fmt: skip


def verdict(
    scorer: OpenSet | None, embedding: np.ndarray, probabilities: np.ndarray,
    sure_above: float = SURE_ABOVE,
) -> str:  # fmt: skip
    """known | unsure | unknown for one photo: the web app's rule (openset.js ``verdict``)."""
    if scorer is not None:
        score = scorer.scores(embedding[None], probabilities[None])[0]
        if score < scorer.threshold:
            return "unknown"
    return "known" if probabilities.max() >= sure_above else "unsure"


def as_shipped(a: np.ndarray) -> np.ndarray:
    """The array as the browser will see it: rounded to float16, computed in float32."""
    return np.asarray(a, dtype=np.float32).astype("<f2").astype(np.float32)


def encode_array(a: np.ndarray) -> dict[str, Any]:
    data = base64.b64encode(np.ascontiguousarray(a, dtype="<f2").tobytes()).decode("ascii")
    return {"dtype": "float16", "shape": list(a.shape), "base64": data}


def decode_array(encoded: dict[str, Any] | list) -> np.ndarray:
    """An array from ``encode_array`` (or a plain nested list, as older runs wrote them)."""
    if isinstance(encoded, list):
        return np.asarray(encoded, dtype=np.float32)
    raw = np.frombuffer(base64.b64decode(encoded["base64"]), dtype="<f2")
    return raw.reshape(encoded["shape"]).astype(np.float32)


def fit(method: str, embeddings: np.ndarray, labels: np.ndarray, seed: int = 42) -> OpenSet:
    """The method's arrays from training embeddings [n, 1280] and their labels."""
    if method == "max_softmax":
        return OpenSet(method)
    classes = sorted(set(labels.tolist()))
    if method in PROTOTYPE_METHODS:
        most = SUBPROTOTYPES if method == "multi_prototype_confidence" else 1
        rng = np.random.default_rng(seed)
        prototypes = [spherical_kmeans(normalise(embeddings[labels == c]), most, rng)
                      for c in classes]  # fmt: skip
        return OpenSet(method, arrays={"prototypes": np.concatenate(prototypes)})
    if method == "knn":
        rng = np.random.default_rng(seed)
        picked = np.concatenate([
            rng.permutation(np.flatnonzero(labels == c))[:KNN_SAMPLE_PER_CLASS] for c in classes
        ])  # fmt: skip
        return OpenSet(method, arrays={"reference": normalise(embeddings[picked])})
    if method == "mahalanobis":
        return _fit_mahalanobis(embeddings, labels, classes)
    raise ValueError(f"unknown open-set method {method!r}; choose from {', '.join(METHODS)}")


def spherical_kmeans(unit: np.ndarray, most: int, rng: np.random.Generator) -> np.ndarray:
    """Mean directions of one kind's normalised embeddings: one per ``PHOTOS_PER_SUBPROTOTYPE``
    photos, at most ``most`` (1: the kind's mean direction). The best of ``KMEANS_STARTS``
    k-means++ starts (the highest total cosine similarity), so that the result hardly depends
    on the seed."""
    count = int(np.clip(len(unit) // PHOTOS_PER_SUBPROTOTYPE, 1, most))
    if count == 1:
        return normalise(unit.mean(axis=0, keepdims=True))
    runs = [_kmeans_once(unit, count, rng) for _ in range(KMEANS_STARTS)]
    return max(runs, key=lambda centres: (unit @ centres.T).max(axis=1).sum())


def _kmeans_once(unit: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    centres = [unit[rng.integers(len(unit))]]
    for _ in range(1, count):
        distance = np.maximum(1 - (unit @ np.array(centres).T).max(axis=1), 0)
        total = distance.sum()
        pick = rng.choice(len(unit), p=distance / total) if total > 0 else rng.integers(len(unit))
        centres.append(unit[pick])
    centres = np.array(centres)
    assigned = None
    for _ in range(KMEANS_ROUNDS):
        nearest = (unit @ centres.T).argmax(axis=1)
        if assigned is not None and np.array_equal(nearest, assigned):
            break
        assigned = nearest
        centres = np.stack([
            normalise(unit[nearest == j].mean(axis=0)) if (nearest == j).any() else centres[j]
            for j in range(count)
        ])  # fmt: skip
    return centres


def _fit_mahalanobis(embeddings: np.ndarray, labels: np.ndarray, classes: list[int]) -> OpenSet:
    mean = embeddings.mean(axis=0)
    _, _, vt = np.linalg.svd(embeddings - mean, full_matrices=False)
    components = vt[:MAHALANOBIS_DIMS]
    projected = (embeddings - mean) @ components.T
    class_means = np.stack([projected[labels == c].mean(axis=0) for c in classes])
    within = projected - class_means[np.searchsorted(classes, labels)]
    covariance = within.T @ within / len(within) + 1e-3 * np.eye(len(components))
    arrays = {"mean": mean, "components": components, "class_means": class_means,
              "precision": np.linalg.inv(covariance)}  # fmt: skip
    return OpenSet("mahalanobis", arrays=arrays)


def auroc(known: np.ndarray, unknown: np.ndarray) -> float:
    """Probability that a known photo scores above an unknown one (ties count half)."""
    both = np.concatenate([known, unknown])
    ranks = np.argsort(np.argsort(both, kind="mergesort"), kind="mergesort") + 1.0
    for value in np.unique(both):  # average ranks of ties
        tied = both == value
        ranks[tied] = ranks[tied].mean()
    return float((ranks[: len(known)].sum() - len(known) * (len(known) + 1) / 2)
                 / (len(known) * len(unknown)))  # fmt: skip


def false_accepts_at(known: np.ndarray, unknown: np.ndarray, accept: float = ACCEPT) -> float:
    """Share of unknown photos accepted at the threshold that accepts ``accept`` of known ones."""
    threshold = np.quantile(known, 1 - accept)
    return float((unknown >= threshold).mean())
