"""One retraining: base dataset + accepted corrections -> candidate model version.

The candidate is trained on the base dataset's train split plus every accepted submission,
validated on the base val split and tested on the base test split. The published model is
scored in TF.js on that same test split, so the two accuracies are comparable; the candidate
is converted (verified, quantized), registered (not published) and its figures are stored
in the job's result for the admin to judge.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from flask import current_app
from sqlalchemy import select

from server.database import db
from server.model_store import bundle_dir, published_version, register_bundle, store_report
from server.models import Submission
from training.errors import BinbotError

Log = Callable[[str], None]


def build_training_folder(base, submissions: list[Submission], data_dir: Path, out: Path) -> dict:
    """Split layout under ``out`` with links to the base images and the accepted photos."""
    counts: dict[str, int] = {}
    for record in base.records:
        target = (
            out
            / record.split
            / base.classes[record.label]
            / f"base-{record.sha256[:16]}{record.path.suffix}"
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(record.path.resolve())
    for submission in submissions:
        if submission.label not in base.classes:
            continue  # a label the base dataset does not have cannot be learned here
        target = out / "train" / submission.label / f"submission-{submission.id}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to((data_dir / submission.image_path).resolve())
        counts[submission.label] = counts.get(submission.label, 0) + 1
    return counts


def score_published(dataset, log: Log) -> dict[str, Any] | None:
    """The published bundle's accuracy on ``dataset``'s test split, measured in TF.js."""
    from conversion.verify import run_tfjs

    current = published_version()
    if current is None:
        return None
    manifest = current.manifest
    if manifest["labels"] != dataset.classes:
        return {"version": current.version, "comparable": False}
    test = dataset.split("test")
    folder = bundle_dir(current.version)
    signature = json.loads((folder / "model.json").read_text())["signature"]
    log(f"Scoring the published model {current.version} on the same {len(test)} test images ...")
    result = run_tfjs(folder, test, signature)
    predicted = np.asarray(result["probabilities"]).argmax(axis=1)
    truth = np.array([r.label for r in test])
    recall = {
        name: float((predicted[truth == i] == i).mean()) if (truth == i).any() else 0.0
        for i, name in enumerate(dataset.classes)
    }
    return {
        "version": current.version,
        "comparable": True,
        "test_accuracy": float((predicted == truth).mean()),
        "per_class_recall": recall,
    }


def run_retraining(
    settings: dict[str, int], job_id: int, log: Log, should_stop: Callable[[], bool] | None = None
) -> dict[str, Any]:
    from conversion.convert import convert_run
    from training.dataset import load_dataset
    from training.train import TrainConfig, train

    config = current_app.config
    base_path = config.get("BINBOT_BASE_DATASET")
    if not base_path:
        raise BinbotError("BINBOT_BASE_DATASET is not set: retraining needs the base dataset")
    data_dir = Path(config["BINBOT_DATA_DIR"])
    base = load_dataset(base_path)
    accepted = db.session.scalars(select(Submission).where(Submission.status == "accepted")).all()
    work = Path(tempfile.mkdtemp(prefix=f"binbot-job-{job_id}-"))
    try:
        added = build_training_folder(base, accepted, data_dir, work / "dataset")
        log(f"Training on the base dataset plus {sum(added.values())} accepted corrections {added}")
        dataset = load_dataset(work / "dataset")
        train_settings = {
            k: settings[k]
            for k in ("head_epochs", "fine_tune_epochs", "batch_size", "limit_per_class")
            if k in settings
        }
        run_dir = work / "run"
        train(
            work / "dataset", run_dir, TrainConfig(**train_settings),
            log=log, dataset=dataset, should_stop=should_stop,
        )  # fmt: skip
        from training.evaluate import evaluate_run

        keras_metrics = evaluate_run(run_dir, dataset, log=log)
        published = score_published(dataset, log)
        version = f"job{job_id}-{dataset.fingerprint[7:15]}"
        bundle = work / "bundle"
        convert_run(
            run_dir, bundle, dataset=dataset, version=version,
            reference_images=settings.get("reference_images"), log=log,
        )  # fmt: skip
        row = register_bundle(bundle)
        store_report(row.version, run_dir / "evaluation")
        candidate = row.manifest["metrics"]
        return {
            "candidate_version": row.version,
            "candidate": {
                "test_accuracy": candidate["test_accuracy"],
                "keras_test_accuracy": keras_metrics["test_accuracy"],
                "per_class_recall": candidate["per_class_recall"],
            },
            "published": published,
            "corrections_used": added,
            "train_images": len(dataset.split("train")),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
