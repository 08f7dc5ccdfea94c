"""The retraining job queue in the database: enqueue, claim atomically, heartbeat, reap.

Claiming is one conditional UPDATE (``... WHERE id = :next AND status = 'queued'``): when
two workers race for the same job, the database lets exactly one update succeed and the
other sees zero rows and tries the next job. A running job's worker writes a heartbeat;
a job whose heartbeat is older than the timeout belonged to a worker that died, and is
marked failed so an admin can see it and start again.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from server.database import db
from server.models import TrainingJob, utcnow

SETTINGS = {  # name -> (type, minimum, maximum)
    "head_epochs": (int, 0, 100),
    "fine_tune_epochs": (int, 0, 100),
    "batch_size": (int, 1, 512),
    "limit_per_class": (int, 1, 100_000),
    "reference_images": (int, 1, 100_000),
}


def validate_settings(raw: Any) -> dict[str, int]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError("settings must be an object")
    unknown = sorted(set(raw) - set(SETTINGS))
    if unknown:
        raise ValueError(f"unknown settings {unknown}; known: {sorted(SETTINGS)}")
    clean = {}
    for name, value in raw.items():
        kind, low, high = SETTINGS[name]
        if not isinstance(value, kind) or isinstance(value, bool) or not low <= value <= high:
            raise ValueError(f"{name} must be a whole number from {low} to {high}")
        clean[name] = value
    return clean


def enqueue(settings: dict[str, int]) -> TrainingJob:
    job = TrainingJob(status="queued", settings_json=json.dumps(settings))
    db.session.add(job)
    db.session.commit()
    return job


def claim_next(worker: str) -> TrainingJob | None:
    """Take the oldest queued job for ``worker``; None when the queue is empty."""
    while True:
        candidate = db.session.scalar(
            select(TrainingJob.id).where(TrainingJob.status == "queued").order_by(TrainingJob.id)
        )
        if candidate is None:
            db.session.rollback()
            return None
        now = utcnow()
        claimed = db.session.execute(
            update(TrainingJob)
            .where(TrainingJob.id == candidate, TrainingJob.status == "queued")
            .values(status="running", worker=worker, started_at=now, heartbeat_at=now)
        )
        db.session.commit()
        if claimed.rowcount == 1:
            return db.session.get(TrainingJob, candidate)
        # Another worker took it between our SELECT and UPDATE: try the next one.


def heartbeat(job_id: int, progress: str | None = None, log_line: str | None = None) -> None:
    job = db.session.get(TrainingJob, job_id)
    if job is None:
        return
    job.heartbeat_at = utcnow()
    if progress is not None:
        job.progress = progress
    if log_line is not None:
        job.log = (job.log or "") + log_line + "\n"
    db.session.commit()


def finish(
    job_id: int, *, result: dict | None = None, error: str | None = None, cancelled: bool = False
) -> None:
    job = db.session.get(TrainingJob, job_id)
    job.status = "cancelled" if cancelled else "failed" if error else "succeeded"
    job.error = error
    job.result_json = json.dumps(result) if result is not None else None
    job.finished_at = utcnow()
    db.session.commit()


def reap_dead(timeout_seconds: float) -> list[int]:
    """Mark running jobs whose worker stopped sending heartbeats as failed."""
    limit = utcnow() - timedelta(seconds=timeout_seconds)
    dead = db.session.scalars(
        select(TrainingJob).where(
            TrainingJob.status.in_(("running", "cancelling")), TrainingJob.heartbeat_at < limit
        )
    ).all()
    for job in dead:
        job.status = "failed"
        job.error = (
            f"worker {job.worker} stopped responding (no heartbeat for {timeout_seconds:.0f} s)"
        )
        job.finished_at = utcnow()
    db.session.commit()
    return [job.id for job in dead]


def cancel(job_id: int) -> TrainingJob:
    """Cancel a queued job at once; ask a running one to stop (its worker stops within a batch)."""
    job = db.session.get(TrainingJob, job_id)
    if job is None:
        raise LookupError(f"no job {job_id}")
    if job.status == "running":
        job.status = "cancelling"
    elif job.status == "queued":
        job.status = "cancelled"
        job.finished_at = utcnow()
    else:
        raise ValueError(
            f"job {job_id} is {job.status}; only queued or running jobs can be cancelled"
        )
    db.session.commit()
    return job


def cancel_requested(job_id: int) -> bool:
    db.session.expire_all()  # read what the web process wrote, not this session's copy
    job = db.session.get(TrainingJob, job_id)
    return job is not None and job.status == "cancelling"


EPOCH_LINE = re.compile(
    r"(?P<phase>head|fine-tune)\s+epoch\s+(?P<epoch>\d+)/(?P<epochs>\d+)\s+loss (?P<loss>[\d.]+)"
    r"\s+acc (?P<accuracy>[\d.]+)\s+val_loss (?P<val_loss>[\d.]+)\s+val_acc (?P<val_accuracy>[\d.]+)"
)


def training_progress(log: str | None) -> dict[str, Any]:
    """Phase, epoch and metrics so far, read from a job's log (one line per finished epoch)."""
    epochs = []
    for match in EPOCH_LINE.finditer(log or ""):
        row = match.groupdict()
        epochs.append(
            {
                "phase": row["phase"],
                "epoch": int(row["epoch"]),
                "epochs": int(row["epochs"]),
                **{k: float(row[k]) for k in ("loss", "accuracy", "val_loss", "val_accuracy")},
            }
        )
    last = epochs[-1] if epochs else None
    return {
        "phase": last["phase"] if last else None,
        "epoch": last["epoch"] if last else 0,
        "epochs": last["epochs"] if last else None,
        "history": epochs,
    }
