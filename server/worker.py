"""`binbot worker`: runs retraining jobs outside the web workers, one at a time.

While a job runs, a background thread writes a heartbeat every few seconds, so a job whose
worker died (killed, machine lost) is recognised by any other worker and marked failed.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import traceback
from collections.abc import Callable

from flask import Flask

from server.jobs import cancel_requested, claim_next, finish, heartbeat, reap_dead
from training.errors import BinbotError, TrainingCancelled

HEARTBEAT_SECONDS = 5.0


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_job(app: Flask, job_id: int, settings: dict, log: Callable[[str], None]) -> None:
    from server.retrain import run_retraining

    stop = threading.Event()
    cancelled = threading.Event()

    def beat() -> None:
        with app.app_context():
            while not stop.wait(HEARTBEAT_SECONDS):
                heartbeat(job_id)
                if cancel_requested(job_id):
                    cancelled.set()  # training checks this after every batch

    thread = threading.Thread(target=beat, name=f"heartbeat-{job_id}", daemon=True)
    thread.start()

    def job_log(line: str) -> None:
        log(f"[job {job_id}] {line}")
        heartbeat(job_id, progress=line.strip(), log_line=line)
        if cancelled.is_set():
            raise TrainingCancelled("the job was cancelled")  # between steps after training

    try:
        result = run_retraining(settings, job_id, job_log, should_stop=cancelled.is_set)
        finish(job_id, result=result)
        log(f"[job {job_id}] succeeded: candidate {result['candidate_version']}")
    except TrainingCancelled:
        finish(job_id, error="cancelled by an admin", cancelled=True)
        log(f"[job {job_id}] cancelled")
    except BinbotError as exc:
        finish(job_id, error=str(exc))
        log(f"[job {job_id}] failed: {exc}")
    except KeyboardInterrupt:
        finish(job_id, error="the worker was stopped during the job")
        raise
    except Exception as exc:  # a bug: keep the job record honest, keep the traceback
        finish(job_id, error=f"{type(exc).__name__}: {exc}")
        traceback.print_exc()
    finally:
        stop.set()
        thread.join(timeout=HEARTBEAT_SECONDS * 2)


def run_worker(
    app: Flask, *, once: bool = False, poll_seconds: float = 2.0, log: Callable[[str], None] = print
) -> int | None:
    """Claim and run jobs until stopped (or one, with ``once``); returns the last job id."""
    import json

    name = worker_name()
    last = None
    with app.app_context():
        log(f"Worker {name} waiting for retraining jobs")
        while True:
            for job_id in reap_dead(app.config["BINBOT_JOB_TIMEOUT"]):
                log(f"job {job_id}: its worker stopped responding; marked failed")
            job = claim_next(name)
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
