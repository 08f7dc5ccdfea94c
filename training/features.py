"""The frozen part of the backbone, run once per photo view and kept.

Training fine-tunes only the top of the backbone; everything below the cut never changes,
so its output for a given view of a given photo is computed once and kept, in memory for
this run and on disk (``$BINBOT_CACHE_DIR/features``) for every later run on the same
photos: a retraining then only computes the photos it has not seen before.

The disk cache is keyed by everything that changes the numbers: backbone, its weights file,
the cut, the image size and the views' version. One file per photo holds all its views.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from binbot.errors import BinbotError
from binbot.files import write_new_file
from training import IMAGE_SIZE
from training.callbacks import Progress
from training.dataset import ImageRecord
from training.preprocess import DECODE_VERSION

Log = Callable[[str], None]
# Share of the free memory the features may take: the rest is for TensorFlow and the model.
MEMORY_SHARE = 0.6
# Left free on the cache's disk: the features never fill it.
DISK_RESERVE_BYTES = 1 << 30


def available_memory() -> int | None:
    """Bytes this process can still take: the machine's MemAvailable, or less where a cgroup
    (a container, a systemd slice) caps the memory, since /proc/meminfo shows the host's."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError):
        pass
    try:
        cap = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = Path("/sys/fs/cgroup/memory.current").read_text().strip()
        if cap != "max":
            found.append(int(cap) - int(used))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def _gigabytes(size: float) -> str:
    return f"{size / 1e9:.1f} GB"


@dataclass(frozen=True)
class FeatureSpace:
    """What a cached feature depends on, besides the photo and the view number."""

    backbone: str
    weights: str  # "imagenet" or the sha256 of a weights file
    cut: str
    views_version: int
    image_size: int = IMAGE_SIZE
    decode_version: int = DECODE_VERSION

    @property
    def key(self) -> str:
        text = "|".join(str(v) for v in self.__dict__.values())
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def weights_id(weights: str | None) -> str | None:
    """How the backbone's weights are named in the cache; None: random, never cached."""
    if weights is None:
        return None
    if weights == "imagenet":
        return "imagenet"
    return hashlib.sha256(Path(weights).read_bytes()).hexdigest()


def default_cache_root() -> Path:
    base = os.environ.get("BINBOT_CACHE_DIR") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "binbot"
    )
    return Path(base) / "features"


class FeatureStore:
    """Features of photo views under one ``FeatureSpace``, computed by ``bottom`` on demand."""

    def __init__(self, space: FeatureSpace | None, root: Path | None = None) -> None:
        self.space = space
        self.folder = (root or default_cache_root()) / space.key if space else None

    def _path(self, record: ImageRecord) -> Path:
        return self.folder / record.sha256[:2] / f"{record.sha256}.npy"

    def _load(self, record: ImageRecord, views: int) -> np.ndarray | None:
        if self.folder is None:
            return None
        try:
            stored = np.load(self._path(record))
        except (OSError, ValueError):
            return None
        return stored[:views] if len(stored) >= views else None

    @staticmethod
    def _check_memory(size: int, photos: int, views: int) -> None:
        """Refuse, before any work, features that would not fit in memory: the process would
        be killed part-way (by the kernel, without a word) after minutes of computing. They
        are held twice for a moment (the views, then one array of them)."""
        free = available_memory()
        if free is None or 2 * size <= MEMORY_SHARE * free:
            return
        raise BinbotError(
            f"the frozen backbone's output for {photos} photos x {views} views needs about "
            f"{_gigabytes(2 * size)} of memory and {_gigabytes(free)} is free: use fewer "
            f"--views, or fewer --fine-tune-layers (a lower cut keeps larger activations)"
        )

    def _keep_room_on_disk(self, size: int, log: Log) -> None:
        """Features that would not leave the cache's disk room are kept in memory only."""
        if self.folder is None:
            return
        existing = next(p for p in (self.folder, *self.folder.parents) if p.exists())
        free = shutil.disk_usage(existing).free
        if size > free - DISK_RESERVE_BYTES:
            log(
                f"  warning: not keeping these features on disk ({_gigabytes(size)} needed, "
                f"{_gigabytes(free)} free in {existing}): the next run computes them again"
            )
            self.folder = None

    def _save(self, record: ImageRecord, features: np.ndarray, log: Log) -> None:
        """Keep one photo's features on disk; a disk that cannot take them (full, read-only)
        ends the caching, not the training: the features are in memory anyway."""
        if self.folder is None:
            return
        buffer = io.BytesIO()
        np.save(buffer, features)
        path = self._path(record)
        try:
            path.unlink(missing_ok=True)  # a shorter set of views is replaced by this longer one
            write_new_file(path, buffer.getvalue())
        except OSError as exc:
            log(
                f"  warning: not keeping features on disk from now on ({exc.strerror} in "
                f"{self.folder}): the next run computes them again"
            )
            self.folder = None

    def features(
        self,
        records: Sequence[ImageRecord],
        views: int,
        bottom,
        log: Log = print,
        on_event: Callable[[dict], None] | None = None,
    ) -> np.ndarray:
        """[len(records), views, *cut_shape] float16: cached ones read, the rest computed.

        Long work reports its progress: a line every 20 s, and ``on_event`` step events.
        """
        from training.forward import IMAGE_BATCH, compiled
        from training.views import views_dataset

        per_view = int(np.prod(bottom.output.shape[1:])) * np.dtype(np.float16).itemsize
        self._check_memory(len(records) * views * per_view, len(records), views)
        found = [self._load(r, views) for r in records]
        missing = [i for i, f in enumerate(found) if f is None]
        if missing:
            self._keep_room_on_disk(len(missing) * views * per_view, log)
            log(
                f"  computing the frozen backbone on {len(missing)} photos x {views} views "
                f"({len(records) - len(missing)} cached)"
            )
            todo = [records[i] for i in missing]
            done, progress = 0, Progress(len(todo), "photos", log)
            call = compiled(bottom)
            for batch in views_dataset(todo, views, max(1, IMAGE_BATCH // views)):
                out = np.asarray(call(batch), dtype=np.float16)
                out = out.reshape(-1, views, *out.shape[1:])
                for features in out:
                    found[missing[done]] = features
                    self._save(todo[done], features, log)
                    done += 1
                left = progress.advance(len(out))
                if left is not None and on_event:
                    on_event({"event": "step", "step": "computing the frozen features",
                              "done": done, "total": len(todo), "eta_seconds": left})  # fmt: skip
        return np.stack(found)
