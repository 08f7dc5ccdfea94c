"""Turn an uploaded file into a safe, normalised JPEG, or say exactly why not.

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

from PIL import Image, ImageOps, UnidentifiedImageError

ALLOWED_FORMATS = {"JPEG", "PNG", "WEBP"}


class RejectedUpload(Exception):
    """The upload is not acceptable; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class CleanImage:
    data: bytes
    sha256: str
    width: int
    height: int


def sanitize_image(raw: bytes, *, max_pixels: int, max_side: int, quality: int) -> CleanImage:
    if not raw:
        raise RejectedUpload("the image file is empty")
    with warnings.catch_warnings():
        # Pillow warns between its limit and twice it, and raises above: refuse both.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(raw)) as image:
                if image.format not in ALLOWED_FORMATS:
                    raise RejectedUpload(
                        f"unsupported image format {image.format}; send JPEG, PNG or WebP", 415
                    )
                if image.width * image.height > max_pixels:
                    raise RejectedUpload(
                        f"image too large: {image.width}x{image.height} pixels "
                        f"(limit {max_pixels})",
                        413,
                    )
                image.load()
                upright = ImageOps.exif_transpose(image).convert("RGB")
        except RejectedUpload:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise RejectedUpload("image too large (decompression bomb)", 413) from None
        except UnidentifiedImageError:
            raise RejectedUpload("the file is not an image", 415) from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise RejectedUpload(f"the image does not decode: {exc}") from None
    upright.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    upright.save(out, "JPEG", quality=quality, optimize=True)  # no exif=...: metadata dropped
    data = out.getvalue()
    return CleanImage(data, hashlib.sha256(data).hexdigest(), upright.width, upright.height)
