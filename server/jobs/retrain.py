"""One retraining: base dataset + accepted corrections -> candidate model version.

The candidate is trained on the base dataset's train split plus every accepted submission,
validated on the base val split and tested on the base test split. The published model is
scored in TF.js on that same test split, so the two accuracies are comparable; the candidate
is converted (verified, quantized), registered (not published) and its figures are stored
in the job's result for the admin to judge.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from flask import current_app
from sqlalchemy import select

from binbot.errors import BinbotError, counted
from server.extensions import db
from server.jobs.base_dataset import base_dataset_problem
from server.jobs.copies import find_correction_copies
from server.jobs.workspace import job_folder
from server.public.names import name_key
from server.registry.bundles import (
    bundle_dir,
    published_version,
    register_bundle,
    store_report,
    warm_start_dir,
)
from server.registry.photos import photo_path
from server.tables import Submission
from training.metrics import per_class_recall
from training.settings import setting


@dataclass
class RetrainOptions:
    """How a retraining starts; declared like training's own settings (``training.settings``)."""

    from_scratch: bool = setting(
        False, "train from ImageNet even when the live model's weights could be started from",
        retraining=True,
    )  # fmt: skip


# Starting from the live model, a short schedule is enough (measured by the loop benchmark),
# at the fine-tuning rate it was measured with, pinned here so that a change of the default
# recipe (tuned for layers fresh from ImageNet) does not silently change it. Settings an admin
# gives for the job override these. Phase 1 (the head alone, on the frozen backbone) is there
# for output rows that start from scratch, whose first large gradients would knock the
# pretrained layers about in phase 2; when the live model knows every kind of the training set
# its head starts trained, phase 2 trains it with the backbone's top, and phase 1 only costs
# the pooling of every view (``KNOWN_KINDS_SCHEDULE``).
WARM_SCHEDULE = {"head_epochs": 10, "fine_tune_epochs": 4, "fine_tune_learning_rate": 1e-4}
KNOWN_KINDS_SCHEDULE = {**WARM_SCHEDULE, "head_epochs": 0}


class Reporter(Protocol):
    def log(self, line: str) -> None: ...
    def event(self, event: dict[str, Any]) -> None: ...


# A kind the base dataset does not have is learned from its accepted photos alone: these
# shares of them (by content hash, so the split is stable) are held out to validate and test it.
NEW_KIND_SPLIT = (("test", 0.2), ("val", 0.1))


def new_kind_split(sha256: str) -> str:
    """train, val or test for a photo of a new kind, from its hash: the same every time."""
    position = int(sha256[:8], 16) / 0xFFFFFFFF
    for split, share in NEW_KIND_SPLIT:
        if position < share:
            return split
        position -= share
    return "train"


def _left_out_line(held_out: dict[int, str]) -> str:
    """The job log's line for corrections left out as copies of held-out base photos."""
    one = len(held_out) == 1
    shown = ", ".join(f"{number} ({photo})" for number, photo in list(held_out.items())[:5])
    more = f" and {len(held_out) - 5} more" if len(held_out) > 5 else ""
    what = "a copy of a validation or test photo" if one else "copies of validation or test photos"
    return (
        f"Left out {counted(len(held_out), 'accepted correction', 'accepted corrections')}, "
        f"{what} of the base dataset: submission{'' if one else 's'} {shown}{more}. Trained on, "
        "a copy is recognised at test time and flatters the figures the publish gate compares"
    )


def build_training_folder(
    base, submissions: list[Submission], out: Path, log: Callable[[str], None] = print
) -> dict[str, int]:
    """Split layout under ``out`` with links to the base images and the accepted photos.

    Corrections of the base dataset's kinds join its train split; the photos of a kind it
    does not have (a new kind) are split across train, val and test, so the new kind is also
    measured on photos it was not trained on, copies of one photo in the same split. A
    correction that copies a base validation or test photo is left out (``server.jobs.copies``).
    """
    counts: dict[str, int] = {}
    usable = [s for s in submissions if s.label]  # without: a proposal not mapped to a kind yet
    copies = find_correction_copies(base, usable)
    if copies.held_out:
        log(_left_out_line(copies.held_out))
    # A kind spelt otherwise than the dataset's folder (the kind "Mouse", the folder "mouse")
    # is that folder's class, not a new one.
    base_class = {name_key(name): name for name in base.classes}
    for record in base.records:
        label = base.classes[record.label]
        target = out / record.split / label / f"base-{record.sha256[:16]}{record.path.suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(record.path.resolve())
    for submission in usable:
        if submission.id in copies.held_out:
            continue
        label = base_class.get(name_key(submission.label), submission.label)
        split = "train" if label in base.classes else new_kind_split(copies.group[submission.id])
        target = out / split / label / f"submission-{submission.id}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(photo_path(submission.image_path).resolve())
        counts[label] = counts.get(label, 0) + 1
    return counts


def score_published(dataset, report: Reporter) -> dict[str, Any] | None:
    """The published bundle's figures on ``dataset``'s test photos of the kinds it knows,
    measured in TF.js: comparable with the candidate's on those kinds."""
    from conversion.verify import run_tfjs

    current = published_version()
    if current is None:
        return None
    labels = current.manifest["labels"]
    shared = [c for c in dataset.classes if c in labels]
    if not shared:
        return {"version": current.version, "comparable": False}
    test = [r for r in dataset.split("test") if dataset.classes[r.label] in labels]
    measured = figures_measured_on(current.manifest, dataset, test)
    if measured is not None:
        report.log(f"The published model {current.version} was measured in TF.js on these same "
                   f"{len(test)} test images when it was converted: its figures are reused")  # fmt: skip
        return {"version": current.version, "comparable": True, "kinds": shared, **measured}
    folder = bundle_dir(current.version)
    signature = json.loads((folder / "model.json").read_text())["signature"]
    report.event({"event": "step", "step": "scoring the published model"})
    report.log(
        f"Scoring the published model {current.version} on the same {len(test)} test images ..."
    )
    predicted = np.asarray(run_tfjs(folder, test, signature)["probabilities"]).argmax(axis=1)
    truth = np.array([labels.index(dataset.classes[r.label]) for r in test])
    return {
        "version": current.version,
        "comparable": True,
        "kinds": shared,
        "test_accuracy": float((predicted == truth).mean()),
        "per_class_recall": {
            k: v for k, v in per_class_recall(truth, predicted, labels).items() if k in shared
        },
    }


def figures_measured_on(manifest: dict[str, Any], dataset, test: list) -> dict[str, Any] | None:
    """The bundle's own TF.js figures, when conversion measured them on exactly ``test``.

    Conversion scores every bundle in TF.js (Node, wasm) and records the test split's
    fingerprint (its classes and every photo's hash and label); TF.js gives the same answers
    on the same photos, so when the fingerprints match and every test photo was scored, running
    it again would only repeat those figures.
    """
    metrics = manifest.get("metrics", {})
    same_split = metrics.get("test_set_fingerprint") == dataset.split_fingerprint("test")
    if (
        not same_split
        or metrics.get("test_images") != len(test)
        or len(test) != len(dataset.split("test"))
    ):
        return None
    return {
        "test_accuracy": metrics["test_accuracy"],
        "per_class_recall": metrics["per_class_recall"],
        "measured": "at conversion, same test photos",
    }


def split_settings(settings: dict[str, Any]) -> tuple[dict, dict, RetrainOptions]:
    """A job's settings as (training, conversion) keyword arguments and retraining options."""
    from conversion.config import ConvertConfig

    converting = {f.name for f in fields(ConvertConfig)}
    options = {f.name for f in fields(RetrainOptions)}
    return (
        {k: v for k, v in settings.items() if k not in converting | options},
        {k: v for k, v in settings.items() if k in converting},
        RetrainOptions(**{k: v for k, v in settings.items() if k in options}),
    )


def starting_point(
    options: RetrainOptions, training: dict[str, Any], classes: list[str], report: Reporter
) -> dict:
    """The training settings with a warm start from the live model, when it has weights; its
    schedule skips the head-only phase when the live model knows every kind in ``classes``
    and fine-tuning runs."""
    current = published_version()
    folder = warm_start_dir(current.version) if current and not options.from_scratch else None
    if folder is None:
        why = "asked for" if options.from_scratch else "the live model has no Keras weights kept"
        report.log(f"Training from ImageNet ({why})")
        return training
    new = [c for c in classes if c not in current.manifest["labels"]]
    fine_tunes = training.get("fine_tune_epochs", WARM_SCHEDULE["fine_tune_epochs"]) > 0
    if new or not fine_tunes or "head_epochs" in training:
        report.log(f"Starting from the live model {current.version}")
        return {**WARM_SCHEDULE, **training, "warm_start": str(folder)}
    report.log(
        f"Starting from the live model {current.version}, which knows every kind here: its head "
        "is fine-tuned with the top of the backbone, without a head-only phase first"
    )
    return {**KNOWN_KINDS_SCHEDULE, **training, "warm_start": str(folder)}


def run_retraining(
    settings: dict[str, Any],
    job_id: int,
    report: Reporter,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    from conversion.convert import convert_run
    from conversion.verify import keras_reference
    from training.dataset import load_dataset
    from training.evaluate import evaluate_run
    from training.run_dir import load_run
    from training.train import TrainConfig, train

    if problem := base_dataset_problem():
        raise BinbotError(problem)
    base = load_dataset(current_app.config["BINBOT_BASE_DATASET"])
    accepted = db.session.scalars(select(Submission).where(Submission.status == "accepted")).all()
    training_settings, conversion_settings, options = split_settings(settings)
    with job_folder(job_id) as work:
        added = build_training_folder(base, accepted, work / "dataset", log=report.log)
        report.log(
            f"Training on the base dataset plus {sum(added.values())} accepted corrections {added}"
        )
        dataset = load_dataset(work / "dataset")
        training_settings = starting_point(options, training_settings, dataset.classes, report)
        run_dir = work / "run"
        train(
            work / "dataset", run_dir, TrainConfig(**training_settings), log=report.log,
            dataset=dataset, should_stop=should_stop, on_event=report.event,
        )  # fmt: skip
        report.event({"event": "step", "step": "evaluating"})
        # The candidate's answers on the test photos, computed once: the evaluation's
        # probabilities and the conversion's Keras reference (with the embeddings).
        run = load_run(run_dir)
        test = dataset.split("test")
        report.log(f"Running the candidate in Keras on the {len(test)} test images ...")
        reference = keras_reference(run.model, test, report.log)
        keras_metrics = evaluate_run(
            run, dataset, log=report.log, probabilities=reference.probabilities
        )
        published = score_published(dataset, report)
        report.event({"event": "step", "step": "converting"})
        convert_run(
            run_dir, work / "bundle", dataset=dataset, log=report.log,
            version=f"job{job_id}-{dataset.fingerprint[7:15]}", reference=reference,
            **conversion_settings,
        )  # fmt: skip
        row = register_bundle(work / "bundle")
        store_report(row.version, run_dir / "evaluation")
        # The job's last line, shown as its last step: the scratch folder named by the lines
        # before it is removed once the job ends.
        report.log(f"Registered the candidate {row.version}: compare it with the live model "
                   "and publish it on the Models page")  # fmt: skip
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
