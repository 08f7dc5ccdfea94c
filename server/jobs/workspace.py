"""Each retraining job's scratch folder, and the removal of those their worker left behind.

A job links the base dataset and the accepted photos into its folder and writes its run and
bundles there (tens of MB: the model, the float32 and quantized candidates). The job removes
it when it ends, but a worker killed outright (the OOM killer, ``kill -9``) cannot. These
folders used to be temporary ones in /tmp, where every such job left one for good (and its
conversion's temporary files beside it); they now live under the data folder, named by job,
with the job's temporary files inside, and a worker removes, as it starts and after it marks
a silent worker's job failed, the folders of jobs that are no longer running.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flask import current_app
from sqlalchemy import select

from server.extensions import db
from server.jobs.queue import RUNNING
from server.tables import TrainingJob

_JOB_FOLDER = re.compile(r"job-(\d+)")


def work_root() -> Path:
    return Path(current_app.config["BINBOT_DATA_DIR"]) / "work"


@contextmanager
def job_folder(job_id: int) -> Iterator[Path]:
    """A new, empty scratch folder for ``job_id``, removed when the block ends. The job's
    temporary files (conversion's SavedModel and candidate bundles, TF.js's scratch) go into
    it too, so that a killed job leaves them nowhere else."""
    folder = work_root() / f"job-{job_id}"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "tmp").mkdir(parents=True)
    saved = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir = os.environ["TMPDIR"] = str(folder / "tmp")  # TMPDIR: Node's too
    try:
        yield folder
    finally:
        tempfile.tempdir = saved[0]
        if saved[1] is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = saved[1]
        shutil.rmtree(folder, ignore_errors=True)


def remove_abandoned_folders() -> list[int]:
    """Remove the scratch folders of jobs that are not running; returns their job ids."""
    root = work_root()
    if not root.is_dir():
        return []
    found = {
        int(match.group(1)): entry
        for entry in root.iterdir()
        if (match := _JOB_FOLDER.fullmatch(entry.name))
    }
    if not found:
        return []
    running = set(
        db.session.scalars(
            select(TrainingJob.id).where(TrainingJob.id.in_(found), TrainingJob.status.in_(RUNNING))
        )
    )
    db.session.rollback()  # a read: end its transaction
    abandoned = sorted(set(found) - running)
    for job_id in abandoned:
        shutil.rmtree(found[job_id], ignore_errors=True)
    return abandoned
