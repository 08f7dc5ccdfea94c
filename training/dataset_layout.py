"""Where a dataset's class folders are: split folders or flat class folders, and their files.

Two layouts are understood, possibly under wrapper folders (``modified-dataset/``):

* split folders: ``train/<Class>/*``, ``val/``, ``test/`` (also named ``training/``,
  ``valid/`` or ``validation/``, ``testing/``, as exporters such as Roboflow write them);
* flat class folders: ``<Class>/*``, which training/dataset.py splits, stratified and seeded.

Hidden files and folders and the litter of archivers and file browsers (``__MACOSX``,
``.DS_Store``, ``Thumbs.db``) are never classes or images.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

SPLITS = ("train", "val", "test")
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}
IGNORED_NAMES = {"__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini"}


def visible_dirs(folder: Path) -> list[Path]:
    """The folders directly under `folder` that can be splits or classes, sorted."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_dir() and not p.name.startswith(".") and p.name not in IGNORED_NAMES
    )


def files_in(folder: Path) -> Iterable[Path]:
    """Every visible file below a class folder (nested folders included), in stable order."""
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and d not in IGNORED_NAMES
        )
        for name in sorted(filenames):
            if not name.startswith(".") and name not in IGNORED_NAMES:
                yield Path(dirpath) / name


def find_split_root(root: Path, depth: int = 3) -> Path | None:
    """The folder holding a train split and a val or test split (any of ``SPLIT_ALIASES``),
    searched a few levels deep."""
    level = [root]
    for _ in range(depth + 1):
        following: list[Path] = []
        for folder in level:
            splits = {SPLIT_ALIASES.get(d.name.lower()) for d in visible_dirs(folder)}
            if "train" in splits and splits & {"val", "test"}:
                return folder
            following.extend(visible_dirs(folder))
        level = following
    return None


def split_class_dirs(
    split_root: Path,
) -> tuple[dict[str | None, dict[str, list[Path]]], list[Path]]:
    """Class folders per split, merged where two folders name one split (``val/`` and
    ``validation/``), and the folders that name no split (reported, not silently dropped)."""
    out: dict[str | None, dict[str, list[Path]]] = {}
    not_splits = []
    for folder in visible_dirs(split_root):
        split = SPLIT_ALIASES.get(folder.name.lower())
        if split is None:
            not_splits.append(folder)
            continue
        for name, folders in class_folders(folder).items():
            out.setdefault(split, {}).setdefault(name, []).extend(folders)
    return out, not_splits


def unwrap(root: Path) -> Path:
    """Step through wrapper folders that hold exactly one folder and no files."""
    folder = root
    while True:
        dirs = visible_dirs(folder)
        has_files = any(
            True for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
        )
        if len(dirs) == 1 and not has_files:
            folder = dirs[0]
        else:
            return folder


def class_folders(folder: Path) -> dict[str, list[Path]]:
    """Each class folder directly under `folder`, by name (a list: a split may have two)."""
    return {d.name: [d] for d in visible_dirs(folder)}


def relative(path: Path, root: Path) -> str:
    """`path` below `root` with forward slashes, as reports name files ('' for the root)."""
    return path.relative_to(root).as_posix() if path != root else ""
