"""Validate and split an image dataset given as a zip or a folder of class folders.

The zip is extracted by training/dataset_zip.py and its class folders found by
training/dataset_layout.py (split folders, or flat class folders that are split here,
stratified and seeded).

Every file is opened with Pillow once, so that files that do not decode are reported and
skipped here instead of crashing the TensorFlow input pipeline later. The same pass records
the EXIF orientation (``tf.io.decode_jpeg`` ignores it) and the content hash (duplicates,
fingerprint). Class labels are the class folder names in sorted order: index ``i`` of the
model's output is ``classes[i]``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from binbot.errors import BinbotError, counted
from binbot.formats import not_an_image_reason
from binbot.names import name_key
from training.dataset_layout import (
    SPLITS,
    class_folders,
    files_in,
    find_split_root,
    relative,
    split_class_dirs,
    unwrap,
)
from training.dataset_zip import MAX_IMAGE_BYTES, extract_zip, skipped_members, too_large

# What training/preprocess.py decodes. MPO is a JPEG with more pictures after the first (many
# phone cameras write one): the JPEG decoder reads its first picture, as browsers show it.
DECODABLE_FORMATS = {"JPEG", "MPO", "PNG", "BMP", "GIF", "WEBP"}
EXIF_ORIENTATION_TAG = 0x0112
# Fewer images than this in a class of the val or test split gets a warning.
SMALL_EVALUATION_CLASS = 10


@dataclass(frozen=True)
class ImageRecord:
    """One usable image: where it is, which split and class it belongs to, what it holds."""

    path: Path
    relpath: str
    split: str
    label: int
    sha256: str
    width: int
    height: int
    orientation: int = 1


@dataclass(frozen=True)
class BadFile:
    """A file inside the dataset that was skipped, and why."""

    relpath: str
    reason: str


@dataclass
class Dataset:
    """A validated dataset: classes in label order, usable images per split, skipped files."""

    source: str
    root: Path
    layout: str
    classes: list[str]
    records: list[ImageRecord]
    bad_files: list[BadFile] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Near-copy signatures (``training.duplicates``) by relpath, computed when the split was
    # made here: the dataset report and the evaluation reuse them instead of decoding every
    # photo again.
    signatures: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> list[ImageRecord]:
        return [r for r in self.records if r.split == name]

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per split and class, every class listed even when it has none."""
        table = {s: dict.fromkeys(self.classes, 0) for s in SPLITS}
        for r in self.records:
            table[r.split][self.classes[r.label]] += 1
        return table

    @property
    def fingerprint(self) -> str:
        """A hash of what the model learns from: split, class and content of every image."""
        return self._fingerprint(self.records)

    def split_fingerprint(self, name: str) -> str:
        """A hash of one split: models scored on equal test fingerprints are comparable."""
        return self._fingerprint(self.split(name))

    def _fingerprint(self, records: list[ImageRecord]) -> str:
        rows = sorted((r.split, self.classes[r.label], r.sha256) for r in records)
        digest = hashlib.sha256(json.dumps([self.classes, rows]).encode()).hexdigest()
        return f"sha256:{digest}"


def load_dataset(
    path: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    seed: int = 42,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    progress: Callable[[int, int], None] | None = None,
) -> Dataset:
    """Open ``path`` (zip or folder), validate every image and return the split dataset."""
    source = check_dataset_path(path)
    root = extract_zip(source, cache_dir) if source.is_file() else source
    if not root.is_dir():
        raise BinbotError(f"dataset must be a zip file or a folder: {source}")

    split_root = find_split_root(root)
    class_root = None
    if split_root is not None:
        layout = f"split folders under {relative(split_root, root) or '.'}"
        class_dirs, not_splits = split_class_dirs(split_root)
    else:
        class_root = unwrap(root)
        layout = f"flat class folders under {relative(class_root, root) or '.'}, split here"
        class_dirs, not_splits = {None: class_folders(class_root)}, []

    classes = sorted({name for dirs in class_dirs.values() for name in dirs})
    if not classes:
        raise BinbotError(_no_classes_message(source, root, class_root))

    files = [
        (split, name, f)
        for split, dirs in class_dirs.items()
        for name, folders in dirs.items()
        for folder in folders
        for f in files_in(folder)
    ]
    records: list[ImageRecord] = []
    bad: list[BadFile] = []
    label_of = {name: i for i, name in enumerate(classes)}
    not_extracted = skipped_members(root)
    for done, (split, name, f) in enumerate(files, 1):
        relpath = relative(f, root)
        checked = not_extracted.get(relpath) or check_image(f)
        if isinstance(checked, str):
            bad.append(BadFile(relpath, checked))
        else:
            sha, width, height, orientation = checked
            records.append(
                ImageRecord(
                    f, relpath, split or "", label_of[name], sha, width, height, orientation
                )
            )
        if progress:
            progress(done, len(files))

    dataset = Dataset(str(source), root, layout, classes, records, bad)
    dataset.warnings += [
        f"folder '{relative(folder, root)}' beside the split folders is not a split "
        f"(train, val, test): its files are not used"
        for folder in not_splits
    ]
    if split_root is None:
        twins = _twin_groups(records, dataset.signatures)
        dataset.records = _stratified_split(
            records, classes, seed, val_fraction, test_fraction, twins
        )
        dataset.layout += (
            f" (seed {seed}, val {val_fraction:.0%}, test {test_fraction:.0%}"
            f"{_kept_together(twins)})"
        )
    else:
        _carve_missing_splits(dataset, seed, val_fraction, test_fraction)
    _check_classes(dataset)
    return dataset


def check_dataset_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path, or a BinbotError when nothing is there (checked by the command line
    before TensorFlow's import, and by ``load_dataset``)."""
    source = Path(path)
    if not source.exists():
        raise BinbotError(f"dataset not found: {source}")
    return source


def check_outside_dataset(out: Path, source: str | Path) -> None:
    """Refuse an output folder inside a dataset folder: what is written there becomes a class
    of the dataset (a report's PNGs included), and the folder, made before the dataset is
    read, failed that very read as an empty class (``cd photos; binbot dataset inspect .``
    with its default --out reports/dataset)."""
    folder = Path(source)
    if folder.is_dir() and Path(out).resolve().is_relative_to(folder.resolve()):
        raise BinbotError(
            f"--out {out} is inside the dataset folder {folder}: what is written there would "
            "be read as part of the dataset; choose a folder outside it"
        )


def _no_classes_message(source: Path, root: Path, holder: Path | None) -> str:
    """Why no class folder was found, in the words of what the user has: one folder of photos
    (a single class) or photos with no folders at all. ``holder``: where the class folders
    were looked for in a flat layout (None: split folders, which hold no class folder)."""
    expected = "expected <class>/<images> or train|val|test/<class>/<images>"
    if holder is None:
        return f"no class folders found in the split folders of {source}: {expected}"
    if any(True for _ in files_in(holder)):
        if holder != root:
            return (
                f"only one class folder found in {source} ('{holder.name}'): a classifier "
                f"needs at least 2 classes, one folder of images each ({expected})"
            )
        return (
            f"no class folders found in {source}: its files lie directly in it; put each "
            f"class's images in a folder named after the class ({expected})"
        )
    return f"no class folders found in {source}: {expected}"


def _carve_missing_splits(
    dataset: Dataset, seed: int, val_fraction: float, test_fraction: float
) -> None:
    """A split layout without a validation or a test split (``train/`` and ``val/`` only, or
    ``train/`` and ``test/``): take the missing one from train, per class, seeded, as a flat
    layout is split (``train/`` alone is read as a wrapper of flat class folders). Without a
    test split, training would end in "no test images" after all its work, and the conversion
    would have nothing to verify the model on."""
    fractions = {
        "val": val_fraction if not dataset.split("val") else 0.0,
        "test": test_fraction if not dataset.split("test") else 0.0,
    }
    missing = [split for split, fraction in fractions.items() if fraction]
    if not missing:
        return
    train = dataset.split("train")
    twins = _twin_groups(train, dataset.signatures)
    carved = {
        r.relpath: r.split
        for r in _stratified_split(
            train, dataset.classes, seed, fractions["val"], fractions["test"], twins
        )
    }
    dataset.records = [
        replace(r, split=carved[r.relpath]) if r.split == "train" and r.relpath in carved else r
        for r in dataset.records
    ]
    names = {"val": "validation", "test": "test"}
    dataset.layout += ", " + " and ".join(
        f"{names[split]} carved from train ({fractions[split]:.0%} per class, seed {seed}"
        f"{_kept_together(twins)})"
        for split in missing
    )
    for split in missing:
        dataset.warnings.append(
            f"no {names[split]} split: {len(dataset.split(split))} train images set aside for it"
        )


def progress_logger(log: Callable[[str], None], every: int = 1000) -> Callable[[int, int], None]:
    """A ``progress`` callback for ``load_dataset`` that logs every ``every`` files."""

    def report(done: int, total: int) -> None:
        if total >= every and (done % every == 0 or done == total):
            log(f"  checked {done}/{total} files")

    return report


def bad_file_lines(bad_files: list[BadFile], listed_in: str, shown: int = 20) -> list[str]:
    """'relpath: reason' for the first ``shown`` skipped files and a count of the rest: a zip
    of 20,000 odd files must not bury the rest of the output."""
    lines = [f"{b.relpath}: {b.reason}" for b in bad_files[:shown]]
    if len(bad_files) > shown:
        lines.append(f"... and {len(bad_files) - shown} more, all listed in {listed_in}")
    return lines


def _check_classes(dataset: Dataset) -> None:
    """Refuse empty classes; warn about a class missing from an evaluation split, and about
    folders that are one kind to the app and the server (``Mouse``, ``mouse``, ``mouse ``):
    trained as two classes, they split that kind's photos and show it twice in the picker."""
    counts = dataset.counts()
    same: dict[str, list[str]] = {}
    for name in dataset.classes:
        same.setdefault(name_key(name), []).append(name)
    for names in same.values():
        if len(names) > 1:
            dataset.warnings.append(
                "class folders " + ", ".join(repr(n) for n in names) + " differ only in case, "
                "spaces or Unicode form: they are one kind to the app and the server; merge them"
            )
    for name in dataset.classes:
        if sum(counts[s][name] for s in SPLITS) == 0:
            raise BinbotError(
                f"class '{name}' has no usable images: add photos to its folder or remove it"
                + _skipped_in(dataset, name)
            )
        if counts["train"][name] == 0:
            raise BinbotError(
                f"class '{name}' has no usable images in the train split"
                + _skipped_in(dataset, name)
            )
    for split in ("val", "test"):
        dataset.warnings.extend(_thin_evaluation_warnings(dataset.classes, counts[split], split))
    if len(dataset.classes) < 2:
        raise BinbotError(f"need at least 2 classes, found {len(dataset.classes)}")


def _thin_evaluation_warnings(classes: list[str], counts: dict[str, int], split: str) -> list[str]:
    """One line for the classes an evaluation split lacks and one for those it has too few of,
    rather than a line a class: the grocery dataset's validation split said so 13 times,
    burying any other warning."""
    missing = [name for name in classes if counts[name] == 0]
    few = [name for name in classes if 0 < counts[name] < SMALL_EVALUATION_CLASS]
    warnings = []
    if missing:
        warnings.append(
            f"no images in the {split} split for {counted(len(missing), 'class', 'classes')}: "
            + ", ".join(repr(name) for name in missing)
        )
    if few:
        warnings.append(
            f"fewer than {SMALL_EVALUATION_CLASS} images in the {split} split for "
            f"{counted(len(few), 'class', 'classes')} (their figures there are rough): "
            + ", ".join(f"{name!r} ({counts[name]})" for name in few)
        )
    return warnings


def _skipped_in(dataset: Dataset, name: str) -> str:
    """A class's unusable files, so that an empty class's error says what was there."""
    skipped = [b for b in dataset.bad_files if name in Path(b.relpath).parent.parts]
    if not skipped:
        return ""
    shown = "; ".join(f"{b.relpath}: {b.reason}" for b in skipped[:3])
    more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
    return f" ({len(skipped)} file(s) skipped: {shown}{more})"


def _twin_groups(records: list[ImageRecord], signatures: dict[str, Any]) -> dict[str, str]:
    """Each image's group (the relpath of one of its members): copies of one picture in one
    class, byte-identical or near-identical as the dataset report finds them, chained (a copy
    of a copy is in the group too). A split made here keeps a group together: a burst of
    near-identical phone shots spread over train and test is recognised in test, not
    classified, and the test figure and the validation that picks the best epoch flatter the
    model. Each record's signature is added to ``signatures``."""
    from training.duplicates import copy_groups, find_duplicates, signature  # import this module

    for r in records:
        signatures[r.relpath] = signature(r.path)
    same_class = [
        (pair.a.relpath, pair.b.relpath)
        for pair in find_duplicates(records, known=signatures)
        if pair.a.label == pair.b.label  # under two classes: one label is wrong; reported
    ]
    return copy_groups((r.relpath for r in records), same_class)


def _kept_together(twins: dict[str, str]) -> str:
    """What the layout line adds when copies were kept together: "; 11 photos in 3 groups
    of copies, each kept in one split"; nothing when there were none."""
    sizes: dict[str, int] = {}
    for group in twins.values():
        sizes[group] = sizes.get(group, 0) + 1
    groups = [size for size in sizes.values() if size > 1]
    if not groups:
        return ""
    each = "each kept in one split" if len(groups) > 1 else "kept in one split"
    return (
        f"; {counted(sum(groups), 'photo', 'photos')} in "
        f"{counted(len(groups), 'group', 'groups')} of copies, {each}"
    )


def _stratified_split(
    records: list[ImageRecord],
    classes: list[str],
    seed: int,
    val_fraction: float,
    test_fraction: float,
    twins: dict[str, str] | None = None,
) -> list[ImageRecord]:
    """Split each class on its own so every split keeps the class balance; same seed, same
    split. Copies of one picture (``twins``: relpath -> group) go to one split together: a
    group is taken for test or val only while it fits what that split still needs, so a
    large burst goes to train and single photos fill the evaluation splits to their sizes."""
    rng = np.random.default_rng(seed)
    twins = twins or {}
    out: list[ImageRecord] = []
    for label in range(len(classes)):
        members = sorted((r for r in records if r.label == label), key=lambda r: r.relpath)
        groups: dict[str, list[ImageRecord]] = {}
        for r in members:
            groups.setdefault(twins.get(r.relpath, r.relpath), []).append(r)
        n = len(members)
        n_test = round(n * test_fraction) if n >= 3 else 0
        n_val = round(n * val_fraction) if n >= 3 else 0
        if n >= 3:
            n_test = max(1, n_test) if test_fraction else 0
            n_val = max(1, n_val) if val_fraction else 0
        wanted = {"test": n_test, "val": n_val}
        taken = dict.fromkeys(wanted, 0)
        in_order = list(groups.values())
        for index in rng.permutation(len(in_order)):
            group = in_order[index]
            split = next(
                (s for s in wanted if taken[s] + len(group) <= wanted[s]),
                "train",
            )
            if split in taken:
                taken[split] += len(group)
            out.extend(replace(r, split=split) for r in group)
    return out


def check_image(path: Path) -> tuple[str, int, int, int] | str:
    """Decode the whole file; return (sha256, width, height, orientation) or why it is unusable."""
    try:
        status = path.stat()
        if not stat.S_ISREG(status.st_mode):
            # Reading a named pipe waited for a writer for ever, and /dev/zero never ended.
            return "not a regular file (a named pipe, socket or device)"
        if status.st_size > MAX_IMAGE_BYTES:
            return too_large(status.st_size)
        data = path.read_bytes()
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    if not data:
        return "empty file"
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt = image.format
            if fmt not in DECODABLE_FORMATS:
                return f"unsupported image format {fmt}"
            orientation = int(image.getexif().get(EXIF_ORIENTATION_TAG, 1) or 1)
            image.load()
            width, height = image.size
    except UnidentifiedImageError:
        return not_an_image_reason(data)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return f"does not decode: {exc}"
    if orientation not in range(1, 9):
        orientation = 1
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return hashlib.sha256(data).hexdigest(), width, height, orientation
