"""Write files and folders so that readers see the old version or the new one, never a half.

Datasets extracted from zips, training runs, evaluation reports, converted bundles, stored
model versions and uploaded photos are all written this way: into a temporary name beside the
target, then renamed over it (a rename within one file system is atomic). A disk that fills
up part-way, or a stop with Ctrl-C, then leaves what was there before, not a truncated file
that looks whole (a cut ``model.keras`` beside its ``labels.json`` reads as a run).
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from binbot.errors import BinbotError

# Why a write fails for want of room: the disk is full, or the user's quota is used up.
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(error: BaseException) -> bool:
    """A write that failed for want of room: for the person running it to fix, not a bug."""
    return isinstance(error, OSError) and error.errno in DISK_FULL


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
def replacing(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix: writers pick the format by it) that
    replaces ``path`` when the block succeeds; removed, and ``path`` left as it was, when the
    block raises."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        temporary.chmod(0o644)  # mkstemp makes it private; reports and models are read by others
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def holds_working_folder(folder: Path) -> bool:
    """``folder`` is the folder this process works in, or holds it (``--out .``, ``--out ..``):
    replacing it whole would pull the folder from under the user's shell."""
    return Path.cwd().is_relative_to(os.path.realpath(folder))


@contextmanager
def staged_folder(target: Path, mode: int = 0o755, *, exclusive: bool = False) -> Iterator[Path]:
    """A new empty folder beside ``target`` that replaces it when the block succeeds.

    When the block raises, the staging folder is removed and ``target`` is left as it was.
    The earlier ``target`` is moved aside (a rename) before the new one is renamed in, and
    deleted only then: deleting it first left neither, had the deletion failed part-way or the
    process been killed before the rename.

    The staging folder stays locked while it is written, so that others can tell (see
    ``being_written``). ``exclusive``: refuse, with a BinbotError, a ``target`` that another
    process is writing (a second `binbot train --out run` started while the first ran replaced
    the first one's run at its end, with no --overwrite asked for).
    """
    # Where the folder really is: "runs/x/.." has no name of its own, and a link to a folder
    # stays a link, to the new folder (replacing the link itself left its folder as it was).
    target = Path(os.path.realpath(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    staging.chmod(mode)  # mkdtemp makes it private; bundles and datasets are read by others
    lock = os.open(staging, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(lock, fcntl.LOCK_EX)  # released when closed, or when this process dies
    retired = None
    try:
        if exclusive:
            refuse_if_being_written(target, besides=staging)
        yield staging
        if target.exists():
            retired = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-old-"))
            target.rename(retired / target.name)
        try:
            staging.rename(target)
        except OSError:
            if retired is not None:
                (retired / target.name).rename(target)  # put the earlier one back
                retired.rmdir()
            raise
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)
    finally:
        os.close(lock)
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def being_written(target: Path, besides: Path | None = None) -> bool:
    """Whether another process is writing ``target`` now: a staging folder beside it (other
    than ``besides``) that its writer holds locked. One left by a killed process is not."""
    target = Path(os.path.realpath(target))
    # Exactly what staged_folder's mkdtemp names it: ".run-" and 8 characters. A looser
    # ".run-*" also matched "run-2"'s staging folder, so writing one refused the other.
    staging_name = re.compile(rf"\.{re.escape(target.name)}-[a-z0-9_]{{8}}")
    for staging in target.parent.iterdir() if target.parent.is_dir() else ():
        if staging == besides or not staging_name.fullmatch(staging.name):
            continue
        try:
            held = os.open(staging, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue  # gone meanwhile, or not a folder
        try:
            fcntl.flock(held, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(held)
    return False


def refuse_if_being_written(target: Path, besides: Path | None = None) -> None:
    """A BinbotError when another process is writing ``target`` (see ``being_written``)."""
    if being_written(target, besides):
        raise BinbotError(
            f"{target} is being written by another binbot right now; wait for it to finish, "
            "or choose another --out"
        )
