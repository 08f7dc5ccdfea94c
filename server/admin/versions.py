"""Model versions as admins see them: each with its data and figures, and two side by side.

Shared by the admin API and the console; publishing and rolling back are the registry's
(``server.registry.bundles``), which holds the rules.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from server.errors import NotFound
from server.extensions import db
from server.registry.bundles import read_metrics, version_summary
from server.tables import ModelVersion, TrainingJob


def corrections_by_version() -> dict[str, dict[str, int]]:
    """For each version a retraining made: the accepted corrections it learned from."""
    out: dict[str, dict[str, int]] = {}
    for row in db.session.scalars(select(TrainingJob).where(TrainingJob.status == "succeeded")):
        result = row.as_dict().get("result") or {}
        if result.get("candidate_version"):
            out[result["candidate_version"]] = result.get("corrections_used") or {}
    return out


def version_rows(newest_first: bool = True) -> list[dict[str, Any]]:
    """Each version with date, size, accuracy, recall, training images and corrections used."""
    corrections = corrections_by_version()
    order = ModelVersion.id.desc() if newest_first else ModelVersion.id
    out = []
    for row in db.session.scalars(select(ModelVersion).order_by(order)):
        counts = read_metrics(row.version).get("data_counts") or {}
        summary = version_summary(row)
        out.append(
            {
                **summary,
                "per_class_recall": summary["per_class_recall"] or {},
                "train_images": sum(counts.get("train", {}).values()) if counts else None,
                "corrections": sum(corrections.get(row.version, {}).values()),
            }
        )
    return out


def changed_predictions(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Test images (same content) whose predicted class differs between two evaluations."""
    if not a.get("predictions") or not b.get("predictions"):
        return None
    by_hash = {p["sha256"]: p for p in b["predictions"]}
    changed = []
    for p in a["predictions"]:
        other = by_hash.get(p["sha256"])
        if other and other["predicted"] != p["predicted"]:
            changed.append(
                {"sha256": p["sha256"], "path": p["path"], "true": p["true"],
                 "a": p["predicted"], "a_confidence": p["confidence"],
                 "b": other["predicted"], "b_confidence": other["confidence"]}
            )  # fmt: skip
    return changed


def compare(a: str | None, b: str | None) -> dict[str, Any]:
    """Two versions side by side: figures, per-class recall, and the test images that changed."""
    versions = {v["version"]: v for v in version_rows()}
    if a not in versions or b not in versions:
        raise NotFound("choose two known versions to compare")
    same_test_set = versions[a]["test_set_fingerprint"] == versions[b]["test_set_fingerprint"]
    changed = changed_predictions(read_metrics(a), read_metrics(b)) if same_test_set else None
    return {
        "a": versions[a],
        "b": versions[b],
        "labels": list(versions[a]["per_class_recall"] or versions[b]["per_class_recall"]),
        "same_test_set": same_test_set,
        "changed": changed,
        "fixed": sum(1 for c in changed or [] if c["b"] == c["true"]),
        "broken": sum(1 for c in changed or [] if c["a"] == c["true"]),
    }
