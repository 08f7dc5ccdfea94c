"""Whether retraining has its base dataset: the console warns before an admin starts a job
that could only fail, and the job itself fails with the same words."""

from __future__ import annotations

from pathlib import Path

from flask import current_app


def base_dataset_problem() -> str | None:
    """Why a retraining cannot start (no base dataset configured, or none where it is said to
    be); None when it can."""
    base_path = current_app.config.get("BINBOT_BASE_DATASET")
    if not base_path:
        return "BINBOT_BASE_DATASET is not set: retraining needs the base dataset"
    if not Path(base_path).exists():
        return f"the base dataset {base_path} (BINBOT_BASE_DATASET) is not there"
    return None
