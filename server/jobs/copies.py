"""Accepted corrections that are copies of other photos, found before a retraining uses them.

The dataset is public and a correction is any photo a phone sends, so a correction can be a
copy of a base validation or test photo (re-encoded by the server, so near-identical rather
than byte-identical). Trained on, such a copy is recognised at test time, not classified: the
candidate's test figure, which the publish gate compares with the live model's, is
flattered. And a person often sends several shots of the same thing: spread over a new kind's
train and test photos, the copies in test flatter that kind's recall. The same near-copy
detector as the dataset report (``training.duplicates``) finds both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from server.registry.photos import photo_path
from server.tables import Submission
from training.dataset import Dataset, ImageRecord
from training.duplicates import ImageSignature, copy_groups, find_duplicates, signature

HELD_OUT = ("val", "test")


@dataclass
class CorrectionCopies:
    """``held_out``: submission id -> the base val or test photo it copies ("test/x.jpg"); left
    out of training. ``group``: submission id -> the smallest content hash among its copies
    (its own when it has none), so that a new kind's copies are split together."""

    held_out: dict[int, str] = field(default_factory=dict)
    group: dict[int, str] = field(default_factory=dict)


def _as_record(submission: Submission) -> ImageRecord:
    return ImageRecord(
        path=photo_path(submission.image_path),
        relpath=f"submission-{submission.id}",
        split="submission",
        label=-1,
        sha256=submission.sha256,
        width=submission.width,
        height=submission.height,
    )


def find_correction_copies(base: Dataset, submissions: Sequence[Submission]) -> CorrectionCopies:
    """Which corrections copy a held-out base photo, and which corrections copy each other."""
    by_relpath = {f"submission-{s.id}": s for s in submissions}
    candidates = [r for r in base.records if r.split in HELD_OUT]
    candidates += [_as_record(s) for s in submissions]
    records: list[ImageRecord] = []
    signatures: list[ImageSignature] = []
    for record in candidates:
        try:
            signatures.append(signature(record.path))
        except (OSError, ValueError):
            continue  # a stored photo gone from the disk: the dataset's check skips it too
        records.append(record)
    copies = CorrectionCopies()
    between: list[tuple[int, int]] = []
    for pair in find_duplicates(records, signatures=signatures):
        a, b = by_relpath.get(pair.a.relpath), by_relpath.get(pair.b.relpath)
        if a is not None and b is not None:
            between.append((a.id, b.id))
        elif a is not None or b is not None:
            submission, photo = (a, pair.b) if a is not None else (b, pair.a)
            copies.held_out[submission.id] = f"{photo.split}/{Path(photo.relpath).name}"
    group = copy_groups((s.id for s in submissions), between)
    smallest: dict[int, str] = {}
    for s in submissions:
        smallest[group[s.id]] = min(smallest.get(group[s.id], s.sha256), s.sha256)
    copies.group = {s.id: smallest[group[s.id]] for s in submissions}
    return copies
