"""Uploaded photos: turned into a safe, normalised JPEG, or refused with the reason; stored.

An upload is trusted for nothing: not its file name, not its extension, not its content type.
It is decoded with Pillow: an allow-list of formats, and limits on pixels and on the aspect
ratio checked from the header before any pixel is decoded, so no upload costs much CPU (JPEGs
decode at the scale that is kept). It is turned upright by its EXIF orientation, flattened
onto white, and re-encoded from its pixels alone: no EXIF (no GPS position), XMP, ICC
profile, JPEG comment or PNG text survives. The hash of the re-encoded bytes
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
from binbot.formats import not_an_image_reason
from binbot.pixels import to_rgb
from server.errors import BadRequest, PayloadTooLarge, Unprocessable, UnsupportedMediaType

# MPO is a JPEG with more pictures after the first (many phone cameras write one); Pillow names
# it apart, and only its first picture, a plain JPEG, is read.
JPEG_FORMATS = {"JPEG", "MPO"}
ALLOWED_FORMATS = JPEG_FORMATS | {"PNG", "WEBP"}
# JPEGs decode at a reduced scale (draft mode: 1/2 .. 1/8 in the decoder itself), so their
# cost follows the stored size; PNG and WebP decode whole, so they get a lower pixel limit.
FULL_DECODE_FORMATS = {"PNG", "WEBP"}


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


@dataclass(frozen=True)
class DecodeLimits:
    """What an upload may be, checked from its header before any pixel is decoded."""

    max_pixels: int  # JPEG (decoded at a reduced scale)
    max_full_decode_pixels: int  # PNG, WebP
    max_aspect: float  # longer side / shorter side
    # A few pixels a side carry nothing to learn from (the model looks at 224 x 224), yet a
    # 1 x 1 photo passes every other check and would be reviewed and trained on.
    min_side: int

    def check(self, image: Image.Image) -> None:
        width, height = image.size
        if max(width, height) > self.max_aspect * max(min(width, height), 1):
            raise Unprocessable(
                f"image too narrow: {width}x{height} (sides may differ by {self.max_aspect:g}x)"
            )
        if min(width, height) < self.min_side:
            raise Unprocessable(
                f"image too small: {width}x{height} (at least {self.min_side} pixels a side)"
            )
        full = image.format in FULL_DECODE_FORMATS
        limit = self.max_full_decode_pixels if full else self.max_pixels
        if width * height > limit:
            raise PayloadTooLarge(
                f"image too large: {width}x{height} pixels (limit {limit} for {image.format})"
            )


def sanitize_image(raw: bytes, *, limits: DecodeLimits, max_side: int, quality: int) -> CleanImage:
    """Decode, bound the cost, turn upright, flatten, and re-encode with no metadata at all."""
    if not raw:
        raise BadRequest("the image file is empty")
    with warnings.catch_warnings():
        # Pillow warns between its limit and twice it, and raises above: refuse both.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(raw))  # in memory: no file to close
            if image.format not in ALLOWED_FORMATS:
                raise UnsupportedMediaType(
                    f"unsupported image format {image.format}; send JPEG, PNG or WebP"
                )
            limits.check(image)
            if image.format in JPEG_FORMATS:
                image.draft("RGB", (max_side, max_side))  # decode at the scale kept
            image.load()
            ImageOps.exif_transpose(image, in_place=True)  # no copy of an upright photo
            upright = to_rgb(image)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise PayloadTooLarge("image too large (decompression bomb)") from None
        except UnidentifiedImageError:
            raise UnsupportedMediaType(f"the file is {not_an_image_reason(raw)}") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise BadRequest(f"the image does not decode: {exc}") from None
    # Bilinear: Pillow widens its kernel when it shrinks, so it does not alias, at half the CPU
    # of Lanczos on the largest uploads; the model sees these photos at 224 px anyway.
    upright.thumbnail((max_side, max_side), Image.Resampling.BILINEAR, reducing_gap=2.0)
    # Only the pixels go on: a new image has no EXIF, XMP, ICC profile, comment or text.
    bare = Image.frombytes("RGB", upright.size, upright.tobytes())
    out = io.BytesIO()
    bare.save(out, "JPEG", quality=quality, optimize=True)
    data = out.getvalue()
    return CleanImage(data, hashlib.sha256(data).hexdigest(), bare.width, bare.height)


def photo_path(relative: str) -> Path:
    return Path(current_app.config["BINBOT_DATA_DIR"]) / relative


def store_photo(image: CleanImage) -> Path | None:
    """Write the photo under its content name; the path when this call created the file."""
    path = photo_path(image.relative_path)
    return path if write_new_file(path, image.data) else None
