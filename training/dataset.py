"""Find, validate and split an image dataset given as a zip or a folder of class folders.

Two layouts are understood, possibly under one wrapper folder (``modified-dataset/``):

* split folders: ``train/<Class>/*``, ``val/``, ``test/`` (also named ``training/``,
  ``valid/`` or ``validation/``, ``testing/``, as exporters such as Roboflow write them);
* flat class folders: ``<Class>/*``, which are split here, stratified and seeded.

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
import shutil
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from binbot.errors import BinbotError
from binbot.files import staged_folder
from binbot.formats import not_an_image_reason
from binbot.names import name_key

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
# What training/preprocess.py decodes. MPO is a JPEG with more pictures after the first (many
# phone cameras write one): the JPEG decoder reads its first picture, as browsers show it.
DECODABLE_FORMATS = {"JPEG", "MPO", "PNG", "BMP", "GIF", "WEBP"}
IGNORED_NAMES = {"__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini"}
UTF8_NAME_FLAG = 0x800  # general purpose bit 11: the name is UTF-8
UNICODE_PATH_FIELD = 0x7075  # Info-ZIP's Unicode Path extra field
# Bump when extraction gives other files or names for some zip (2: member names as meant,
# see member_name): an extraction cached by an older version must not be reused.
EXTRACTION_VERSION = 2
EXIF_ORIENTATION_TAG = 0x0112
# Fewer images than this in a class of the val or test split gets a warning.
SMALL_EVALUATION_CLASS = 10
# A file larger than this is skipped unread: a phone's 200 MP JPEG is about 30 MB, and a zip
# member that expands past it (a zip bomb) would otherwise fill the disk and the memory.
MAX_IMAGE_BYTES = 100 * 1024 * 1024
# Written into an extracted zip: the members too large to extract, and why.
SKIPPED_MEMBERS = ".skipped-members.json"


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
    source = Path(path)
    if not source.exists():
        raise BinbotError(f"dataset not found: {source}")
    root = _extract_zip(source, cache_dir) if source.is_file() else source
    if not root.is_dir():
        raise BinbotError(f"dataset must be a zip file or a folder: {source}")

    split_root = _find_split_root(root)
    class_root = None
    if split_root is not None:
        layout = f"split folders under {_rel(split_root, root) or '.'}"
        class_dirs, not_splits = _split_class_dirs(split_root)
    else:
        class_root = _unwrap(root)
        layout = (
            f"flat class folders under {_rel(class_root, root) or '.'}, split here "
            f"(seed {seed}, val {val_fraction:.0%}, test {test_fraction:.0%})"
        )
        class_dirs, not_splits = {None: _class_dirs(class_root)}, []

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
    not_extracted = _skipped_members(root)
    for done, (split, name, f) in enumerate(files, 1):
        relpath = _rel(f, root)
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
        f"folder '{_rel(folder, root)}' beside the split folders is not a split "
        f"(train, val, test): its files are not used"
        for folder in not_splits
    ]
    if split_root is None:
        dataset.records = _stratified_split(records, classes, seed, val_fraction, test_fraction)
    else:
        _carve_missing_splits(dataset, seed, val_fraction, test_fraction)
    _check_classes(dataset)
    return dataset


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
    carved = {
        r.relpath: r.split
        for r in _stratified_split(
            train, dataset.classes, seed, fractions["val"], fractions["test"]
        )
    }
    dataset.records = [
        replace(r, split=carved[r.relpath]) if r.split == "train" and r.relpath in carved else r
        for r in dataset.records
    ]
    names = {"val": "validation", "test": "test"}
    dataset.layout += ", " + " and ".join(
        f"{names[split]} carved from train ({fractions[split]:.0%} per class, seed {seed})"
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
            if counts[split][name] == 0:
                dataset.warnings.append(f"class '{name}' has no images in the {split} split")
            elif counts[split][name] < SMALL_EVALUATION_CLASS:
                count = counts[split][name]
                dataset.warnings.append(
                    f"class '{name}' has only {count} image{'s' if count > 1 else ''} in the "
                    f"{split} split: its figures there are rough"
                )
    if len(dataset.classes) < 2:
        raise BinbotError(f"need at least 2 classes, found {len(dataset.classes)}")


def _skipped_in(dataset: Dataset, name: str) -> str:
    """A class's unusable files, so that an empty class's error says what was there."""
    skipped = [b for b in dataset.bad_files if name in Path(b.relpath).parent.parts]
    if not skipped:
        return ""
    shown = "; ".join(f"{b.relpath}: {b.reason}" for b in skipped[:3])
    more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
    return f" ({len(skipped)} file(s) skipped: {shown}{more})"


def _stratified_split(
    records: list[ImageRecord],
    classes: list[str],
    seed: int,
    val_fraction: float,
    test_fraction: float,
) -> list[ImageRecord]:
    """Split each class on its own so every split keeps the class balance; same seed, same split."""
    rng = np.random.default_rng(seed)
    out: list[ImageRecord] = []
    for label in range(len(classes)):
        members = sorted((r for r in records if r.label == label), key=lambda r: r.relpath)
        order = rng.permutation(len(members))
        n = len(members)
        n_test = round(n * test_fraction) if n >= 3 else 0
        n_val = round(n * val_fraction) if n >= 3 else 0
        if n >= 3:
            n_test = max(1, n_test) if test_fraction else 0
            n_val = max(1, n_val) if val_fraction else 0
        for rank, index in enumerate(order):
            split = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
            out.append(replace(members[index], split=split))
    return out


def check_image(path: Path) -> tuple[str, int, int, int] | str:
    """Decode the whole file; return (sha256, width, height, orientation) or why it is unusable."""
    try:
        status = path.stat()
        if not stat.S_ISREG(status.st_mode):
            # Reading a named pipe waited for a writer for ever, and /dev/zero never ended.
            return "not a regular file (a named pipe, socket or device)"
        if status.st_size > MAX_IMAGE_BYTES:
            return _too_large(status.st_size)
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


def _extract_zip(source: Path, cache_dir: str | os.PathLike[str] | None) -> Path:
    """Extract once into the cache, keyed by content hash; reuse on later runs."""
    if not zipfile.is_zipfile(source):
        raise BinbotError(f"not a zip file or a folder: {source}")
    digest = hashlib.sha256()
    with source.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    cache = Path(cache_dir or os.environ.get("BINBOT_CACHE_DIR") or _default_cache())
    target = cache / "datasets" / f"{digest.hexdigest()[:16]}-{EXTRACTION_VERSION}"
    if (target / ".complete").exists():
        return target
    try:
        with staged_folder(target) as staging, zipfile.ZipFile(source) as archive:
            for member in archive.infolist():
                name = member_name(member)
                if name.startswith(("/", "\\")) or ".." in Path(name).parts:
                    raise BinbotError(f"refusing zip entry outside the dataset: {name}")
                if member.is_dir():
                    (staging / name).mkdir(parents=True, exist_ok=True)
            members = [m for m in archive.infolist() if not m.is_dir()]
            if members and all(_encrypted(m) for m in members):
                raise BinbotError(
                    f"{source} is password-protected, which BinBot cannot read: extract it and "
                    "give the folder, or zip it again without a password"
                )
            _check_room(members, staging, source)
            skipped = {}
            for member in members:
                relpath = Path(member_name(member)).as_posix()
                reason = _extract_bounded(archive, member, staging / relpath)
                if reason:
                    skipped[relpath] = reason
            (staging / SKIPPED_MEMBERS).write_text(json.dumps(skipped, indent=1))
            (staging / ".complete").touch()
    except zipfile.BadZipFile as exc:
        raise BinbotError(f"corrupt zip file {source}: {exc}") from None
    # What an older version extracted from this zip is never read again.
    shutil.rmtree(cache / "datasets" / digest.hexdigest()[:16], ignore_errors=True)
    return target


def member_name(member: zipfile.ZipInfo) -> str:
    """A zip member's name as its archiver meant it (class folders are named in any language).

    Zip marks UTF-8 names with a flag; without it, ``zipfile`` reads the bytes as code page 437
    (what DOS wrote). But Info-ZIP's ``zip`` on Linux and macOS writes UTF-8 without the flag
    (``Kühlschrank/`` came out as ``K├╝hlschrank/``), and some Windows archivers add the UTF-8
    name in an extra field (Info-ZIP's Unicode Path, 0x7075). So: that field when it matches
    the name, else the bytes as UTF-8 when they are, else code page 437.
    """
    if member.flag_bits & UTF8_NAME_FLAG:
        return member.filename
    raw = member.filename.encode("cp437")  # the bytes as stored: cp437 maps all 256 of them
    unicode_path = _unicode_path_field(member.extra, raw)
    if unicode_path is not None:
        return unicode_path
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return member.filename


def _unicode_path_field(extra: bytes, raw_name: bytes) -> str | None:
    """The UTF-8 name of an Info-ZIP Unicode Path extra field whose CRC matches the stored
    name (a stale field, left by a tool that renamed the member, does not count)."""
    position = 0
    while position + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, position)
        body = extra[position + 4 : position + 4 + size]
        position += 4 + size
        if tag != UNICODE_PATH_FIELD or len(body) < 5 or body[0] != 1:
            continue
        if struct.unpack_from("<I", body, 1)[0] != zlib.crc32(raw_name):
            return None
        try:
            return body[5:].decode("utf-8")
        except UnicodeDecodeError:
            return None
    return None


def _too_large(size: int) -> str:
    limit = MAX_IMAGE_BYTES // (1024 * 1024)
    return f"too large ({size / (1024 * 1024):.0f} MB; the limit is {limit} MB)"


def _check_room(members: list[zipfile.ZipInfo], folder: Path, source: Path) -> None:
    """Refuse before writing anything when the extracted files would not fit on the disk."""
    needed = sum(min(m.file_size, MAX_IMAGE_BYTES) for m in members)
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise BinbotError(
            f"extracting {source} needs {needed / 1e9:.1f} GB and only {free / 1e9:.1f} GB "
            f"are free in {folder.parent}: set BINBOT_CACHE_DIR to a larger disk"
        )


def _encrypted(member: zipfile.ZipInfo) -> bool:
    """A member stored with a password (zip's general purpose flag, bit 0): zipfile's own
    message for it named the whole ZipInfo object."""
    return bool(member.flag_bits & 0x1)


def _extract_bounded(archive: zipfile.ZipFile, member: zipfile.ZipInfo, path: Path) -> str:
    """Extract one member unless it declares more than MAX_IMAGE_BYTES; '' or why it was not.

    A member cannot expand past the size it declares: zipfile stops reading there and the CRC
    check then fails. One that is too large or damaged leaves an empty placeholder, so that the
    report still lists it, under its class, with the reason.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if member.file_size > MAX_IMAGE_BYTES:
        path.write_bytes(b"")
        return _too_large(member.file_size)
    if _encrypted(member):
        path.write_bytes(b"")
        return "password-protected in the zip"
    try:
        with archive.open(member) as source, path.open("wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        path.write_bytes(b"")
        return f"cannot be extracted from the zip: {exc}"
    return ""


def _skipped_members(root: Path) -> dict[str, str]:
    """relpath -> reason for the members an extracted zip left out (none for a folder)."""
    record = root / SKIPPED_MEMBERS
    return json.loads(record.read_text()) if record.is_file() else {}


def _default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "binbot"


def _visible_dirs(folder: Path) -> list[Path]:
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


def _find_split_root(root: Path, depth: int = 3) -> Path | None:
    """The folder holding a train split and a val or test split (any of ``SPLIT_ALIASES``),
    searched a few levels deep."""
    level = [root]
    for _ in range(depth + 1):
        following: list[Path] = []
        for folder in level:
            splits = {SPLIT_ALIASES.get(d.name.lower()) for d in _visible_dirs(folder)}
            if "train" in splits and splits & {"val", "test"}:
                return folder
            following.extend(_visible_dirs(folder))
        level = following
    return None


def _split_class_dirs(
    split_root: Path,
) -> tuple[dict[str | None, dict[str, list[Path]]], list[Path]]:
    """Class folders per split, merged where two folders name one split (``val/`` and
    ``validation/``), and the folders that name no split (reported, not silently dropped)."""
    out: dict[str | None, dict[str, list[Path]]] = {}
    not_splits = []
    for folder in _visible_dirs(split_root):
        split = SPLIT_ALIASES.get(folder.name.lower())
        if split is None:
            not_splits.append(folder)
            continue
        for name, folders in _class_dirs(folder).items():
            out.setdefault(split, {}).setdefault(name, []).extend(folders)
    return out, not_splits


def _unwrap(root: Path) -> Path:
    """Step through wrapper folders that hold exactly one folder and no files."""
    folder = root
    while True:
        dirs = _visible_dirs(folder)
        has_files = any(
            True for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
        )
        if len(dirs) == 1 and not has_files:
            folder = dirs[0]
        else:
            return folder


def _class_dirs(folder: Path) -> dict[str, list[Path]]:
    return {d.name: [d] for d in _visible_dirs(folder)}


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() if path != root else ""
