"""`binbot worker`: runs retraining jobs outside the web workers, one at a time.

While a job runs, a background thread writes a heartbeat every few seconds, so a job whose
worker died (killed, machine lost) is recognised by any other worker and marked failed.
What the job says goes two ways: lines for people (the job's log) and events as data
(phases, epochs, steps), which the API and the console read.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from flask import Flask
from sqlalchemy.exc import DBAPIError

from binbot.errors import BinbotError, TrainingCancelled
from binbot.files import is_disk_full
from binbot.quiet_tensorflow import import_tensorflow_quietly
from server.errors import ServiceError
from server.extensions import database_error_reason, forget_failed_transaction
from server.jobs.queue import (
    cancel_requested,
    claim_next,
    finish,
    heartbeat,
    reap_dead,
    record_event,
)
from server.jobs.workspace import remove_abandoned_folders

HEARTBEAT_SECONDS = 5.0
Log = Callable[[str], None]


def worker_name(pid: int | None = None) -> str:
    """How a worker process signs the jobs it claims: host and process id."""
    return f"{socket.gethostname()}:{pid or os.getpid()}"


class JobReporter:
    """Where a running job's lines and events go; stops the job between steps once cancelled."""

    def __init__(self, job_id: int, log: Log, cancelled: threading.Event) -> None:
        self.job_id, self.echo, self.cancelled = job_id, log, cancelled

    def log(self, line: str) -> None:
        self.echo(f"[job {self.job_id}] {line}")
        self._stored(heartbeat, self.job_id, log_line=line)
        self._stop_if_cancelled()

    def event(self, event: dict[str, Any]) -> None:
        self._stored(record_event, self.job_id, event)
        self._stop_if_cancelled()

    def _stored(self, write: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        """Write to the job's record; a database blip loses this line or event from the
        console (the worker's own output keeps it), not the training: it stopped the job."""
        try:
            write(*args, **kwargs)
        except DBAPIError as exc:
            forget_failed_transaction()
            reason = database_error_reason(exc)
            self.echo(f"[job {self.job_id}] not stored in the job's record ({reason})")

    def _stop_if_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise TrainingCancelled("the job was cancelled")  # between steps after training


def _beat_until(stop: threading.Event, cancelled: threading.Event, app: Flask, job_id: int):
    with app.app_context():
        while not stop.wait(HEARTBEAT_SECONDS):
            try:
                heartbeat(job_id)
                if cancel_requested(job_id):
                    cancelled.set()  # training checks this after every batch
            except DBAPIError:
                # A database blip ended this thread for good, so a job that carried on was
                # later taken for dead; the next beat tries again.
                forget_failed_transaction()


def run_job(app: Flask, job_id: int, settings: dict, log: Log) -> None:
    from server.jobs.retrain import run_retraining

    # Before the heartbeat thread starts: the quiet import silences this process's stderr
    # for a moment, which must not swallow another thread's log line.
    import_tensorflow_quietly()
    stop, cancelled = threading.Event(), threading.Event()
    thread = threading.Thread(
        target=_beat_until, args=(stop, cancelled, app, job_id), name=f"heartbeat-{job_id}",
        daemon=True,
    )  # fmt: skip
    thread.start()
    reporter = JobReporter(job_id, log, cancelled)
    try:
        result = run_retraining(settings, job_id, reporter, should_stop=cancelled.is_set)
        finish(job_id, result=result)
        log(f"[job {job_id}] succeeded: candidate {result['candidate_version']}")
    except TrainingCancelled:
        finish(job_id, error="cancelled by an admin", cancelled=True)
        log(f"[job {job_id}] cancelled")
    except (BinbotError, ServiceError) as exc:
        finish(job_id, error=str(exc))
        log(f"[job {job_id}] failed: {exc}")
    except KeyboardInterrupt:
        finish(job_id, error="the worker was stopped during the job")
        raise
    except Exception as exc:
        if is_disk_full(exc):  # files are staged and moved in whole: none is left half-written
            finish(job_id, error=f"the server's disk is full ({exc.strerror}): free some space")
            log(f"[job {job_id}] failed: the disk is full ({exc})")
        else:  # a bug: keep the job record honest, keep the traceback
            finish(job_id, error=f"{type(exc).__name__}: {exc}")
            traceback.print_exc()
    finally:
        stop.set()
        thread.join(timeout=HEARTBEAT_SECONDS * 2)


class Outage:
    """The database gone while the worker waits for jobs (restarted, a network cut): one line
    when it goes, one when it is back, and waits that double from 1 s to a minute. The worker
    used to die with the driver's traceback, and `binbot serve` counted each restart as a
    crash."""

    def __init__(self, log: Log) -> None:
        self.log, self.wait = log, 0.0

    def began(self, error: DBAPIError) -> float:
        """Seconds to wait before trying again."""
        if not self.wait:
            reason = database_error_reason(error)
            self.log(f"the database cannot be reached ({reason}); trying again")
        self.wait = min(max(self.wait * 2, 1.0), 60.0)
        return self.wait

    def ended(self) -> None:
        if self.wait:
            self.log("the database is back; waiting for retraining jobs")
        self.wait = 0.0


def run_worker(
    app: Flask, *, once: bool = False, poll_seconds: float = 2.0, log: Log = print
) -> int | None:
    """Claim and run jobs until stopped (or one, with ``once``); returns the last job id."""
    name = worker_name()
    last = None
    outage = Outage(log)
    # Folders left by killed workers: looked for as this worker starts (`binbot serve` marks a
    # killed worker's job failed before starting the next) and after a job is reaped.
    sweep = True
    with app.app_context():
        log(f"Worker {name} waiting for retraining jobs")
        while True:
            try:
                for job_id in reap_dead(app.config["BINBOT_JOB_TIMEOUT"]):
                    log(f"job {job_id}: its worker stopped responding; marked failed")
                    sweep = True
                if sweep:
                    for job_id in remove_abandoned_folders():
                        log(f"job {job_id}: removed the scratch folder its worker left behind")
                    sweep = False
                job = claim_next(name)
            except DBAPIError as exc:
                if once:
                    raise
                forget_failed_transaction()
                time.sleep(outage.began(exc))
                continue
            outage.ended()
            if job is None:
                if once:
                    return last
                time.sleep(poll_seconds)
                continue
            log(f"[job {job.id}] claimed")
            run_job(app, job.id, json.loads(job.settings_json or "{}"), log)
            last = job.id
            if once:
                return last
