"""One rule for turning any decoded photo into 8-bit RGB, shared by training and the server.

Why one rule: a photo with transparency (a product cut-out saved from a shop's site, a
sticker, a screenshot) has no colour where it is transparent, and each decoder makes one up:
TensorFlow and ``Image.convert("RGB")`` keep whatever the file stores there, a browser canvas
gives black. The web app, the photos the server keeps for retraining and the Python pipeline
must see the same picture, so all of them put it on white, as the photo looks on a page.
"""

from __future__ import annotations

from PIL import Image

WHITE = (255, 255, 255)


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB: transparency flattened onto white, 16-bit scaled down, CMYK converted."""
    if image.mode.startswith("I"):
        # 16-bit (or 32-bit) grey: scale the full range to 0..255 rather than clip at 255.
        high = 65535 if image.mode.startswith("I;16") else max(image.getextrema()[1], 1)
        image = image.convert("I").point(lambda v: v * (255 / high)).convert("L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa"):
        background = Image.new("RGB", image.size, WHITE)
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        return background
    return image if image.mode == "RGB" else image.convert("RGB")
