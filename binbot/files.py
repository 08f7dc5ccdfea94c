"""Write files and folders so that readers see the old version or the new one, never a half.

Datasets extracted from zips, converted bundles, stored model versions and uploaded photos
are all written this way: into a temporary name beside the target, then renamed over it
(a rename within one file system is atomic).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def write_new_file(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` unless it exists; True when this call created it."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return True


@contextmanager
def staged_folder(target: Path, mode: int = 0o755) -> Iterator[Path]:
    """A new empty folder beside ``target`` that replaces it when the block succeeds.

    When the block raises, the staging folder is removed and ``target`` is left as it was.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    staging.chmod(mode)  # mkdtemp makes it private; bundles and datasets are read by others
    try:
        yield staging
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
