"""Prove a converted TF.js model answers like the Keras model it came from.

The converted model runs in Node.js with TF.js and the wasm backend (what the browser uses)
on images from the dataset's test split, decoded and resized by the web client's own
``webclient/src/preprocess.js``. The Keras model sees the same files through the training
pipeline. A converter that exits 0 but writes a model TF.js cannot load, a corrupted weight
shard, a quantization that costs accuracy or a preprocessing mismatch between Python and
JavaScript all show up here as failed thresholds.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from binbot.errors import BinbotError
from binbot.pixels import to_rgb
from training.dataset import ImageRecord
from training.metrics import per_class_recall

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RUNNER = PROJECT_ROOT / "conversion" / "js" / "run_tfjs.mjs"
PREPROCESS_MODULE = PROJECT_ROOT / "webclient" / "src" / "preprocess.js"

# A conversion fails unless the converted model agrees with Keras at least this well.
# Measured on the e-waste model (300 test images): float32 agrees 100% (max |dp| 0.000),
# float16 and per-channel uint8 99.3-99.7% (max |dp| 0.03 and 0.11), the flips being images
# whose two best Keras classes are within a few percent. A broken shard or a resize that
# differs from training gives far lower agreement.
MIN_TOP1_AGREEMENT = 0.98
MAX_PROBABILITY_DIFFERENCE = 0.25
# Relative: the two compute the same score from the same numbers, in float32 and float64.
MAX_OPENSET_DIFFERENCE = 1e-3
# The default quantization is kept unless it loses accuracy beyond noise: an exact McNemar
# test on the paired test predictions (images only Keras gets right vs. images only TF.js gets
# right), one-sided, at this level. 3 lost images and none gained (p = 0.125) is noise; 5 lost
# and none gained (p = 0.031) is a real loss, on any test-set size.
SIGNIFICANCE = 0.05


@dataclass
class Verification:
    """How the converted model compares with Keras on the reference images."""

    images: int
    top1_agreement: float
    max_probability_difference: float
    mean_probability_difference: float
    embedding_cosine_min: float | None
    keras_accuracy: float
    tfjs_accuracy: float
    tfjs_per_class_recall: dict[str, float]
    tfjs_median_latency_ms: float
    tfjs_load_ms: float
    backend: str
    lost_images: int = 0  # Keras right, TF.js wrong
    gained_images: int = 0  # TF.js right, Keras wrong
    # The open-set score computed in JavaScript against Python's, on TF.js's own embeddings.
    openset_max_difference: float | None = None

    @property
    def loss_p_value(self) -> float:
        """One-sided exact McNemar p-value for "TF.js is less accurate than Keras"."""
        return mcnemar_p(self.lost_images, self.gained_images)

    def loses_accuracy(self) -> bool:
        return self.loss_p_value < SIGNIFICANCE

    def failures(self) -> list[str]:
        problems = []
        if self.top1_agreement < MIN_TOP1_AGREEMENT:
            problems.append(
                f"top-1 agreement with Keras {self.top1_agreement:.2%} < {MIN_TOP1_AGREEMENT:.0%}"
            )
        if (self.openset_max_difference or 0) > MAX_OPENSET_DIFFERENCE:
            problems.append(
                f"open-set score in JavaScript differs from Python's by "
                f"{self.openset_max_difference:.2e} > {MAX_OPENSET_DIFFERENCE}"
            )
        if self.max_probability_difference > MAX_PROBABILITY_DIFFERENCE:
            problems.append(
                f"max probability difference {self.max_probability_difference:.3f} > "
                f"{MAX_PROBABILITY_DIFFERENCE}"
            )
        return problems

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {
            "loss_p_value": self.loss_p_value,
            "thresholds": {
                "min_top1_agreement": MIN_TOP1_AGREEMENT,
                "max_probability_difference": MAX_PROBABILITY_DIFFERENCE,
            },
        }


def mcnemar_p(lost: int, gained: int) -> float:
    """P(at least ``lost`` of the ``lost + gained`` discordant images go against TF.js) when
    both are equally accurate: a binomial tail at one half."""
    n = lost + gained
    return sum(math.comb(n, k) for k in range(lost, n + 1)) / 2**n if n else 1.0


@dataclass
class KerasReference:
    """The Keras model's answers on the reference images (computed once, compared many times)."""

    records: list[ImageRecord]
    probabilities: np.ndarray
    embeddings: np.ndarray

    def covering(self, records: Sequence[ImageRecord]) -> KerasReference | None:
        """These answers for ``records`` (all or some of this reference's, in any order), or
        None when one of them was not run: a caller that has the answers (a retraining's
        evaluation) spares the conversion running the model on the same photos again."""
        row_of = {record: row for row, record in enumerate(self.records)}
        if any(record not in row_of for record in records):
            return None
        rows = [row_of[record] for record in records]
        return KerasReference(list(records), self.probabilities[rows], self.embeddings[rows])


def keras_reference(
    model, records: Sequence[ImageRecord], log: Callable[[str], None] | None = None
) -> KerasReference:
    from training.evaluate import predict_records
    from training.model import serving_model

    outputs = predict_records(serving_model(model), records, log)
    return KerasReference(list(records), outputs["probabilities"], outputs["embedding"])


def node_executable() -> str:
    node = shutil.which("node")
    if node is None:
        raise BinbotError("Node.js is needed to run a TF.js model (install node >= 20)")
    if not (PROJECT_ROOT / "node_modules" / "@tensorflow" / "tfjs-backend-wasm").exists():
        raise BinbotError("TF.js packages are missing: run `npm ci` in the project root")
    return node


def run_tfjs(
    model_dir: Path,
    records: Sequence[ImageRecord],
    signature: dict[str, Any],
    warmup: int = 3,
    preprocess_module: Path = PREPROCESS_MODULE,
    openset: Path | None = None,
) -> dict[str, Any]:
    """Run the graph model in Node (wasm) on ``records``; outputs and timings as a dict.

    ``preprocess_module`` is the JavaScript that crops and resizes; by default the web
    client's own, which is the point: it is the code phones will run. Paths are made absolute
    here: Node runs in the project's folder, where a path relative to the caller's is not.
    """
    with tempfile.TemporaryDirectory(prefix="binbot-verify-") as tmp:
        job = {
            "model_dir": str(Path(model_dir).resolve()),
            "input": signature["inputs"]["image"]["name"],
            "outputs": {k: signature["outputs"][k]["name"] for k in ("probabilities", "embedding")},
            "images": [_decoded(r, Path(tmp) / f"{i}.rgb") for i, r in enumerate(records)],
            "warmup": warmup,
            "preprocess_module": str(preprocess_module.resolve()),
            "openset": str(Path(openset).resolve()) if openset else None,
        }
        job_file, result_file = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job_file.write_text(json.dumps(job))
        done = subprocess.run(
            [node_executable(), str(RUNNER), str(job_file), str(result_file)],
            capture_output=True,
            text=True,
            cwd=PROJECT_ROOT,
        )
        if done.returncode != 0 or not result_file.exists():
            message = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise BinbotError(f"TF.js could not run the converted model: {message}")
        return json.loads(result_file.read_text())


def _decoded(record: ImageRecord, target: Path) -> dict[str, Any]:
    """Decode with Pillow (bit-identical to TensorFlow's accurate JPEG decoding) to raw RGB,
    by training's own rule (``to_rgb``: transparency on white, 16-bit scaled to 8): a plain
    ``convert("RGB")`` clipped 16-bit photos to white and kept the colour under transparency,
    so verification blamed the model for a difference in reading the file.

    The EXIF orientation is left to the JavaScript side, which must apply it like the app.
    """
    with Image.open(record.path) as image:
        rgb = to_rgb(image)
        target.write_bytes(rgb.tobytes())
        return {
            "rgb": str(target),
            "width": rgb.width,
            "height": rgb.height,
            "orientation": record.orientation,
        }


def openset_difference(openset: Path | None, tfjs: dict[str, Any]) -> float | None:
    """Largest relative difference between the JavaScript and the Python open-set score."""
    if openset is None:
        return None
    from training.openset import OpenSet

    scorer = OpenSet.from_json(json.loads(openset.read_text()))
    python = scorer.scores(
        np.asarray(tfjs["embeddings"], dtype=np.float64),
        np.asarray(tfjs["probabilities"], dtype=np.float64),
    )
    javascript = np.asarray(tfjs["openset_scores"], dtype=np.float64)
    return float(np.max(np.abs(python - javascript) / (np.abs(python) + 1e-6)))


def compare(reference: KerasReference, tfjs: dict[str, Any], labels: list[str]) -> Verification:
    keras_probs = reference.probabilities
    tfjs_probs = np.asarray(tfjs["probabilities"], dtype=np.float64)
    if tfjs_probs.shape != keras_probs.shape:
        raise BinbotError(
            f"TF.js returned probabilities of shape {tfjs_probs.shape}, Keras {keras_probs.shape}"
        )
    y_true = np.array([r.label for r in reference.records])
    keras_top, tfjs_top = keras_probs.argmax(1), tfjs_probs.argmax(1)
    # NaN (a corrupted weight) must count as the worst difference, not compare as False.
    difference = np.nan_to_num(np.abs(tfjs_probs - keras_probs), nan=np.inf)
    tfjs_embeddings = np.asarray(tfjs["embeddings"], dtype=np.float64)
    cosine = (tfjs_embeddings * reference.embeddings).sum(1) / (
        np.linalg.norm(tfjs_embeddings, axis=1) * np.linalg.norm(reference.embeddings, axis=1)
        + 1e-12
    )
    return Verification(
        images=len(y_true),
        top1_agreement=float((keras_top == tfjs_top).mean()),
        max_probability_difference=float(difference.max()),
        mean_probability_difference=float(difference.mean()),
        embedding_cosine_min=float(cosine.min()) if len(cosine) else None,
        keras_accuracy=float((keras_top == y_true).mean()),
        tfjs_accuracy=float((tfjs_top == y_true).mean()),
        tfjs_per_class_recall=per_class_recall(y_true, tfjs_top, labels),
        lost_images=int(((keras_top == y_true) & (tfjs_top != y_true)).sum()),
        gained_images=int(((keras_top != y_true) & (tfjs_top == y_true)).sum()),
        tfjs_median_latency_ms=float(np.median(tfjs["latency_ms"])),
        tfjs_load_ms=float(tfjs["load_ms"]),
        backend=tfjs["backend"] + ("+simd" if tfjs.get("simd") else ""),
    )


def verify(
    model_dir: Path,
    reference: KerasReference,
    labels: list[str],
    signature: dict[str, Any],
    preprocess_module: Path = PREPROCESS_MODULE,
    openset: Path | None = None,
) -> Verification:
    tfjs = run_tfjs(
        model_dir, reference.records, signature, preprocess_module=preprocess_module,
        openset=openset,
    )  # fmt: skip
    verification = compare(reference, tfjs, labels)
    verification.openset_max_difference = openset_difference(openset, tfjs)
    return verification
