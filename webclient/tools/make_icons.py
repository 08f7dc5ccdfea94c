"""Draw the PNG app icons (same design as icons/icon.svg); run once when the design changes.

python webclient/tools/make_icons.py
"""

from pathlib import Path

from PIL import Image, ImageDraw

GREEN, WHITE = (27, 94, 32), (255, 255, 255)
ICONS = Path(__file__).resolve().parent.parent / "icons"


def draw(size: int, *, maskable: bool) -> Image.Image:
    scale = 4  # draw large, then downsample for smooth edges
    big = 512 * scale
    image = Image.new(
        "RGB" if maskable else "RGBA", (big, big), GREEN if maskable else (0, 0, 0, 0)
    )
    pen = ImageDraw.Draw(image)
    if not maskable:
        pen.rounded_rectangle((0, 0, big - 1, big - 1), radius=96 * scale, fill=GREEN)
    # Maskable icons keep their drawing inside the central 80% safe zone.
    shrink = 0.75 if maskable else 1.0

    def at(x: float, y: float) -> tuple[float, float]:
        return ((256 + (x - 256) * shrink) * scale, (256 + (y - 256) * shrink) * scale)

    def box(x0, y0, x1, y1):
        return (*at(x0, y0), *at(x1, y1))

    pen.rounded_rectangle(box(136, 128, 376, 160), radius=10 * scale * shrink, fill=WHITE)
    pen.rounded_rectangle(box(216, 96, 296, 136), radius=10 * scale * shrink, fill=WHITE)
    pen.polygon([at(160, 184), at(352, 184), at(330, 416), at(182, 416)], fill=WHITE)
    for x in (222, 256, 290):
        pen.line([at(x, 230), at(x, 380)], fill=GREEN, width=int(18 * scale * shrink))
    return image.resize((size, size), Image.Resampling.LANCZOS)


if __name__ == "__main__":
    draw(192, maskable=False).save(ICONS / "icon-192.png", optimize=True)
    draw(512, maskable=False).save(ICONS / "icon-512.png", optimize=True)
    draw(512, maskable=True).save(ICONS / "icon-maskable-512.png", optimize=True)
