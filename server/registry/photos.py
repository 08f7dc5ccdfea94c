"""Uploaded photos: turned into a safe, normalised JPEG, or refused with the reason; stored.

An upload is trusted for nothing: not its file name, not its extension, not its content type.
It is decoded with Pillow (an allow-list of formats, a pixel limit against decompression
bombs, a full decode to catch truncation), turned upright by its EXIF orientation, and
re-encoded without any metadata (no GPS position survives). The hash of the re-encoded bytes
identifies the photo, so the same photo sent twice is stored once.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from flask import current_app
from PIL import Image, ImageOps, UnidentifiedImageError

from binbot.files import write_new_file
from server.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

ALLOWED_FORMATS = {"JPEG", "PNG", "WEBP"}


@dataclass(frozen=True)
class CleanImage:
    data: bytes
    sha256: str
    width: int
    height: int

    @property
    def relative_path(self) -> str:
        """Where the photo lives under the data folder: named by its content."""
        return f"submissions/{self.sha256[:2]}/{self.sha256}.jpg"


def sanitize_image(raw: bytes, *, max_pixels: int, max_side: int, quality: int) -> CleanImage:
    if not raw:
        raise BadRequest("the image file is empty")
    with warnings.catch_warnings():
        # Pillow warns between its limit and twice it, and raises above: refuse both.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(raw)) as image:
                if image.format not in ALLOWED_FORMATS:
                    raise UnsupportedMediaType(
                        f"unsupported image format {image.format}; send JPEG, PNG or WebP"
                    )
                if image.width * image.height > max_pixels:
                    raise PayloadTooLarge(
                        f"image too large: {image.width}x{image.height} pixels (limit {max_pixels})"
                    )
                image.load()
                upright = ImageOps.exif_transpose(image).convert("RGB")
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise PayloadTooLarge("image too large (decompression bomb)") from None
        except UnidentifiedImageError:
            raise UnsupportedMediaType("the file is not an image") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise BadRequest(f"the image does not decode: {exc}") from None
    upright.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    upright.save(out, "JPEG", quality=quality, optimize=True)  # no exif=...: metadata dropped
    data = out.getvalue()
    return CleanImage(data, hashlib.sha256(data).hexdigest(), upright.width, upright.height)


def photo_path(relative: str) -> Path:
    return Path(current_app.config["BINBOT_DATA_DIR"]) / relative


def store_photo(image: CleanImage) -> Path | None:
    """Write the photo under its content name; the path when this call created the file."""
    path = photo_path(image.relative_path)
    return path if write_new_file(path, image.data) else None
