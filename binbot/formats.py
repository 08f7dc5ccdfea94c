"""Recognise photo formats that Pillow cannot open, so that a refusal names what the file is.

An iPhone saves its photos as HEIC by default. Pillow (and TensorFlow) cannot decode it, and
"not an image" would tell its owner that the file is broken when it only needs exporting as
JPEG. HEIC and HEIF files are ISO base media files: a ``ftyp`` box at byte 4 whose brand says
what they hold.
"""

from __future__ import annotations

HEIF_BRANDS = {
    b"heic": "HEIC",
    b"heix": "HEIC",
    b"heim": "HEIC",
    b"heis": "HEIC",
    b"hevc": "HEIC",
    b"hevx": "HEIC",
    b"mif1": "HEIF",
    b"msf1": "HEIF",
}


def unreadable_photo_format(data: bytes) -> str | None:
    """ "HEIC" or "HEIF" when ``data`` starts like one (major brand, else a compatible brand
    among the first few), otherwise None."""
    if len(data) < 16 or data[4:8] != b"ftyp":
        return None
    box_size = int.from_bytes(data[:4], "big")
    brands = [data[8:12]] + [data[i : i + 4] for i in range(16, min(box_size, 64, len(data)), 4)]
    return next((HEIF_BRANDS[b] for b in brands if b in HEIF_BRANDS), None)


def not_an_image_reason(data: bytes) -> str:
    """Why a file that Pillow could not identify is refused, for a person to act on."""
    name = unreadable_photo_format(data)
    if name:
        return f"a {name} photo, which BinBot cannot read: export or share it as JPEG"
    return "not an image"
