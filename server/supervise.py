"""Keeping `binbot serve`'s processes running: gunicorn (and nginx) must live, retraining
workers may die and are started again.

A retraining worker that dies (killed, out of memory, a crash in a native library) does not
take the web service with it: its running job is marked failed with the reason at once, the
crash is recorded (the console shows crash loops), and the worker is started again after a
pause that doubles with each crash in a row (1 s up to 60 s), back to 1 s once a worker has
run a minute.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Flask
from sqlalchemy.exc import DBAPIError

Log = Callable[[str], None]
FIRST_PAUSE_S, LONGEST_PAUSE_S, STABLE_AFTER_S = 1.0, 60.0, 60.0


@dataclass
class Child:
    name: str
    command: list[str]
    critical: bool  # when it ends, the service ends (gunicorn, nginx)
    env: dict[str, str] | None = None
    process: subprocess.Popen | None = None
    started: float = 0.0
    pause: float = FIRST_PAUSE_S
    restart_at: float | None = None
    crashes: list[float] = field(default_factory=list)

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, env=self.env, preexec_fn=_end_with_parent())
        self.started = time.monotonic()
        self.restart_at = None


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _end_with_parent() -> Callable[[], None] | None:
    """What a child runs before its program: ask Linux for SIGTERM when `binbot serve` dies.

    Why: SIGTERM and Ctrl-C reach `stop`, but a supervisor killed outright (``kill -9``, the
    out-of-memory killer, a harness's timeout) left gunicorn serving on its port and the
    retraining worker claiming jobs, with nobody to stop them; the next `binbot serve` then
    found its port in use. SIGTERM stops each of them cleanly. Only Linux has the call.
    """
    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def ask() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the supervisor died before the call: end now
            os.kill(os.getpid(), signal.SIGTERM)

    return ask


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


class Supervisor:
    def __init__(self, app: Flask, children: list[Child], log: Log) -> None:
        self.app, self.children, self.log = app, children, log

    def run(self, poll_s: float = 0.5) -> str:
        """Until a critical child ends (or KeyboardInterrupt): restart the others. Returns how
        the critical child ended."""
        for child in self.children:
            child.start()
        while True:
            for child in self.children:
                if child.process is not None and (code := child.process.poll()) is not None:
                    if child.critical:
                        ended = f"{child.name} {describe_exit(code)}"
                        self.log(f"{ended}; stopping the others")
                        return ended
                    self._crashed(child, code)
                if child.restart_at is not None and time.monotonic() >= child.restart_at:
                    self.log(f"starting {child.name} again")
                    child.start()
            time.sleep(poll_s)

    def _crashed(self, child: Child, code: int) -> None:
        from server.extensions import database_error_reason
        from server.jobs.queue import worker_crashed
        from server.jobs.worker import worker_name

        reason = f"the retraining worker {describe_exit(code)}"
        try:
            with self.app.app_context():
                jobs = worker_crashed(worker_name(pid=child.process.pid), reason)
        except DBAPIError as exc:
            # The database away too: the service must not stop for it. The job's heartbeat
            # stops, so the next worker to wait for jobs marks it failed (reap_dead).
            reason = database_error_reason(exc)
            self.log(f"{child.name}'s job cannot be marked failed now ({reason}); a worker will")
            jobs = []
        if time.monotonic() - child.started >= STABLE_AFTER_S:
            child.pause = FIRST_PAUSE_S
        self.log(
            f"{child.name} {describe_exit(code)}"
            + (f" during job {', '.join(map(str, jobs))} (marked failed)" if jobs else "")
            + f"; starting it again in {child.pause:.0f} s"
        )
        child.process = None
        child.restart_at = time.monotonic() + child.pause
        child.pause = min(child.pause * 2, LONGEST_PAUSE_S)

    def stop(self, deadline_s: float) -> None:
        """SIGTERM to every child (gunicorn, nginx and the workers stop cleanly on it)."""
        running = [c.process for c in self.children if c.process and c.process.poll() is None]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + deadline_s
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
