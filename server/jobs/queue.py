"""The retraining job queue in the database: enqueue, claim atomically, heartbeat, reap,
cancel, and the progress a job reports as events.

Claiming is one conditional UPDATE (``... WHERE id = :next AND status = 'queued'``): when
two workers race for the same job, the database lets exactly one update succeed and the
other sees zero rows and tries the next job. A running job's worker writes a heartbeat;
a job whose heartbeat is older than the timeout belonged to a worker that died, and is
marked failed so an admin can see it and start again.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from conversion.config import convert_settings
from server.errors import BadRequest, Conflict, NotFound, Unprocessable
from server.extensions import db
from server.tables import JobEvent, TrainingJob, WorkerCrash, utcnow
from training.config import train_settings, untrainable_schedule
from training.settings import Setting, declared, validate

FINISHED = ("succeeded", "failed", "cancelled")
RUNNING = ("running", "cancelling")  # a worker has it (and may be writing its scratch folder)


def job_settings() -> list[Setting]:
    """What an admin may set for a retraining: declared by training and conversion."""
    from server.jobs.retrain import RetrainOptions

    declared_here = [*train_settings(), *convert_settings(), *declared(RetrainOptions)]
    return [s for s in declared_here if s.spec.retraining]


def validate_settings(raw: Any) -> dict[str, Any]:
    try:
        settings = validate(raw, job_settings())
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    # Both schedules (warm start, from scratch) have epochs in each phase unless set to 0.
    if why := untrainable_schedule(
        settings.get("head_epochs", 1), settings.get("fine_tune_epochs", 1)
    ):
        raise BadRequest(why)
    return settings


def enqueue(settings: dict[str, Any], key: str | None = None) -> tuple[TrainingJob, bool]:
    """Queue a retraining; returns (the job, whether it is new). ``key``: the request's key;
    a request made again with it (a double click, a retry whose answer was lost) gets the job
    it made the first time, queued, running or done, and queues nothing."""
    if key is not None and (earlier := _job_for_key(key, settings)) is not None:
        return earlier, False
    job = TrainingJob(status="queued", settings_json=json.dumps(settings), request_key=key)
    db.session.add(job)
    try:
        db.session.commit()
    except IntegrityError:  # the same request, at the same moment: the other one queued it
        db.session.rollback()
        if key is None or (earlier := _job_for_key(key, settings)) is None:
            raise
        return earlier, False
    return job, True


def _job_for_key(key: str, settings: dict[str, Any]) -> TrainingJob | None:
    job = db.session.scalars(select(TrainingJob).where(TrainingJob.request_key == key)).first()
    if job is not None and json.loads(job.settings_json) != settings:
        raise Unprocessable(
            f"this Idempotency-Key was used for job {job.id}, with other settings; "
            "a new request needs a new key"
        )
    return job


def find_job(job_id: int) -> TrainingJob:
    job = db.session.get(TrainingJob, job_id)
    if job is None:
        raise NotFound(f"no training job {job_id}")
    return job


def recent_jobs(limit: int = 100) -> list[TrainingJob]:
    return list(
        db.session.scalars(select(TrainingJob).order_by(TrainingJob.id.desc()).limit(limit))
    )


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


def heartbeat(job_id: int, log_line: str | None = None) -> None:
    """The worker is alive; ``log_line`` (for people) is appended to the log and shown as
    the job's last step."""
    job = db.session.get(TrainingJob, job_id)
    if job is None:
        return
    job.heartbeat_at = utcnow()
    if log_line is not None:
        job.progress = log_line.strip()
        job.log = (job.log or "") + log_line + "\n"
    db.session.commit()


def record_event(job_id: int, event: dict[str, Any]) -> None:
    """Keep what training reported (``{"event": "epoch", ...}``) as data, and beat."""
    kind = str(event.get("event", "step"))
    data = {k: v for k, v in event.items() if k != "event"}
    db.session.add(JobEvent(job_id=job_id, kind=kind, data_json=json.dumps(data)))
    db.session.execute(
        update(TrainingJob).where(TrainingJob.id == job_id).values(heartbeat_at=utcnow())
    )
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
        select(TrainingJob).where(TrainingJob.status.in_(RUNNING), TrainingJob.heartbeat_at < limit)
    ).all()
    for job in dead:
        job.status = "failed"
        job.error = (
            f"worker {job.worker} stopped responding (no heartbeat for {timeout_seconds:.0f} s)"
        )
        job.finished_at = utcnow()
    db.session.commit()
    return [job.id for job in dead]


def worker_crashed(worker: str, reason: str) -> list[int]:
    """A worker process died: fail its unfinished jobs with ``reason`` and record the crash."""
    jobs = db.session.scalars(
        select(TrainingJob).where(TrainingJob.worker == worker, TrainingJob.status.in_(RUNNING))
    ).all()
    for job in jobs:
        job.status, job.error, job.finished_at = "failed", reason, utcnow()
    db.session.add(WorkerCrash(worker=worker, reason=reason, job_id=jobs[0].id if jobs else None))
    db.session.commit()
    return [job.id for job in jobs]


def recent_crashes(within: timedelta) -> list[WorkerCrash]:
    since = utcnow() - within
    return list(
        db.session.scalars(
            select(WorkerCrash).where(WorkerCrash.at >= since).order_by(WorkerCrash.id.desc())
        )
    )


def cancel(job_id: int) -> TrainingJob:
    """Cancel a queued job at once; ask a running one to stop (its worker stops within a batch).

    Each step is a conditional UPDATE, like a claim: a cancel that read "queued" and then
    wrote "cancelled" over a worker's claim left a job shown as cancelled that trained on.
    Here either the cancel or the claim wins; a job claimed first is asked to stop instead.
    """
    find_job(job_id)
    for before, after in (("queued", "cancelled"), ("running", "cancelling")):
        changed = db.session.execute(
            update(TrainingJob)
            .where(TrainingJob.id == job_id, TrainingJob.status == before)
            .values(status=after, **({"finished_at": utcnow()} if after == "cancelled" else {}))
        )
        if changed.rowcount == 1:
            db.session.commit()
            break
    else:
        db.session.rollback()
        raise Conflict(
            f"job {job_id} is {find_job(job_id).status}; only queued or running jobs can be "
            "cancelled"
        )
    db.session.expire_all()
    return find_job(job_id)


def cancel_requested(job_id: int) -> bool:
    db.session.expire_all()  # read what the web process wrote, not this session's copy
    job = db.session.get(TrainingJob, job_id)
    return job is not None and job.status == "cancelling"


def job_progress(job_id: int) -> dict[str, Any]:
    """The last finished epoch (phase, epoch of its phase), every finished epoch's metrics,
    the time per epoch, an estimate of the training time left, and the step after training.

    Built from the events training reported. The estimate assumes every remaining epoch of
    the planned schedule runs (early stopping may end a phase sooner) at the mean time per
    epoch so far in the current phase; it is None until that phase has finished one epoch.
    """
    events = db.session.scalars(
        select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
    ).all()
    phases = [e.data for e in events if e.kind == "phase"]
    history = [e.data for e in events if e.kind == "epoch"]
    steps = [e.data for e in events if e.kind == "step"]
    last, current = (history or [None])[-1], (phases or [None])[-1]
    seconds = [h["seconds"] for h in history if current and h["phase"] == current["phase"]]
    per_epoch = sum(seconds) / len(seconds) if seconds else None
    shown = last or (current and {**current, "phase_epoch": 0})
    return {
        "phase": shown["phase"] if shown else None,
        "epoch": shown["phase_epoch"] if shown else 0,
        "epochs": shown["epochs"] if shown else None,
        "seconds_per_epoch": per_epoch,
        "eta_seconds": per_epoch * _epochs_left(phases, history) if per_epoch else None,
        "step": steps[-1]["step"] if steps else None,
        "step_eta_seconds": steps[-1].get("eta_seconds") if steps else None,
        "history": history,
    }


def _epochs_left(phases: list[dict], history: list[dict]) -> int:
    """Epochs still planned: the rest of the current phase and every phase not started."""
    if not phases:
        return 0
    done = sum(1 for h in history if h["phase"] == phases[-1]["phase"])
    return max(phases[-1]["epochs"] - done, 0) + phases[-1].get("later_epochs", 0)


def job_status(job_id: int) -> dict[str, Any]:
    """A job and its training progress: what the API and the console's live page show."""
    return {"job": find_job(job_id).as_dict(), "training": job_progress(job_id)}
