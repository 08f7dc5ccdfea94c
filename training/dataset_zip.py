"""Extract a dataset zip once into the cache, safely, with its members named as meant.

Why a module of its own: a zip from the internet is hostile input. Entries may point outside
the dataset (``../``), expand far past their size (a zip bomb), be password-protected or
damaged, or carry names in an encoding ``zipfile`` misreads. Extraction refuses the first,
skips the others with a reason that the dataset report lists under the member's class, and
never leaves a half-extracted folder to be reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import zipfile
import zlib
from pathlib import Path

from binbot.errors import BinbotError
from binbot.files import staged_folder

UTF8_NAME_FLAG = 0x800  # general purpose bit 11: the name is UTF-8
UNICODE_PATH_FIELD = 0x7075  # Info-ZIP's Unicode Path extra field
# Bump when extraction gives other files or names for some zip (2: member names as meant,
# see member_name): an extraction cached by an older version must not be reused.
EXTRACTION_VERSION = 2
# A file larger than this is skipped unread: a phone's 200 MP JPEG is about 30 MB, and a zip
# member that expands past it (a zip bomb) would otherwise fill the disk and the memory.
MAX_IMAGE_BYTES = 100 * 1024 * 1024
# Written into an extracted zip: the members too large to extract, and why.
SKIPPED_MEMBERS = ".skipped-members.json"


def extract_zip(source: Path, cache_dir: str | os.PathLike[str] | None) -> Path:
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


def too_large(size: int) -> str:
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
        return too_large(member.file_size)
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


def skipped_members(root: Path) -> dict[str, str]:
    """relpath -> reason for the members an extracted zip left out (none for a folder)."""
    record = root / SKIPPED_MEMBERS
    return json.loads(record.read_text()) if record.is_file() else {}


def _default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "binbot"
