"""Every picture the reports show: curves, confusion matrix, image grids, class balance."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import font_manager
from matplotlib.ft2font import FT2Font
from PIL import Image, ImageOps

from binbot.files import replacing


@cache
def _drawable_code_points() -> frozenset[int]:
    """The characters the plots' font has glyphs for (matplotlib's DejaVu Sans by default:
    Latin, Greek, Cyrillic and more, but no Chinese, Japanese, Korean or Indic scripts)."""
    path = font_manager.findfont(font_manager.FontProperties(family=plt.rcParams["font.family"]))
    return frozenset(FT2Font(path).get_charmap())


def _drawable_character(character: str) -> bool:
    """Whether the character comes out as itself, not as an empty box."""
    return character.isspace() or ord(character) in _drawable_code_points()


def drawable(text: str) -> bool:
    """Whether every character of ``text`` comes out as itself."""
    return all(map(_drawable_character, text))


def class_caption(name: str, index: int) -> str:
    """How a picture names a class: its name, or "class N" when the font cannot draw it.

    N counts from 1 in the labels' order, as the reports' per-class tables number them, so
    a dataset whose classes are named in, say, Japanese gets readable pictures, not boxes.
    """
    return name if drawable(name) else f"class {index + 1}"


def text_caption(text: str) -> str:
    """A file name or other free text with the characters the font cannot draw as '?'."""
    return "".join(c if _drawable_character(c) else "?" for c in text)


def save_figure(fig: Any, path: Path, dpi: int) -> None:
    """Write the picture whole or not at all (a full disk leaves the old one), then free it."""
    try:
        with replacing(path) as temporary:
            fig.savefig(temporary, dpi=dpi)
    finally:
        plt.close(fig)


def plot_training_curves(history: Sequence[dict[str, Any]], path: Path) -> None:
    """Accuracy and loss, train vs validation, with the start of fine-tuning marked."""
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric, title in ((axes[0], "accuracy", "Accuracy"), (axes[1], "loss", "Loss")):
        ax.plot(epochs, [h[metric] for h in history], marker="o", label="train")
        ax.plot(epochs, [h[f"val_{metric}"] for h in history], marker="o", label="validation")
        boundary = next((h["epoch"] for h in history if h["phase"] == "fine-tune"), None)
        if boundary is not None:
            ax.axvline(boundary - 0.5, color="grey", linestyle="--", label="fine-tuning starts")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


# Datasets with hundreds of classes: a picture the size of a wall took minutes to draw (300
# classes: 146 s, 23,000 pixels a side, 90,000 numbers) and could exhaust the memory. An axis
# names at most this many classes (every k-th beyond), cells carry their counts up to the
# second limit (metrics.json has them all), and a picture is at most this many inches a side.
NAMED_CLASSES = 60
COUNTED_CLASSES = 30
MAX_INCHES = 28.0


def class_ticks(labels: Sequence[str]) -> tuple[list[int], list[str], float]:
    """Positions, captions and font size for an axis of classes: all of them, or every k-th."""
    step = -(-len(labels) // NAMED_CLASSES)
    positions = list(range(0, len(labels), step))
    size = 10.0 if len(labels) <= COUNTED_CLASSES else 7.0
    return positions, [class_caption(labels[i], i) for i in positions], size


def plot_confusion_matrix(matrix: np.ndarray, labels: Sequence[str], path: Path) -> None:
    """Heatmap with counts; rows are the true class, columns the predicted one."""
    size = min(MAX_INCHES, max(6.0, 0.7 * len(labels) + 2))
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    image = ax.imshow(matrix, cmap="Blues", interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046)
    positions, captions, font = class_ticks(labels)
    ax.set_xticks(positions, captions, rotation=45, ha="right", fontsize=font)
    ax.set_yticks(positions, captions, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    counted = len(labels) <= COUNTED_CLASSES
    ax.set_title("Confusion matrix (test split)" + ("" if counted else "; counts in metrics.json"))
    if counted:
        threshold = matrix.max() / 2 if matrix.size else 0
        for (i, j), value in np.ndenumerate(matrix):
            colour = "white" if value > threshold else "black"
            ax.text(j, i, str(value), ha="center", va="center", color=colour, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def plot_image_grid(
    items: Sequence[tuple[Path, str]], path: Path, *, columns: int = 6, title: str = ""
) -> None:
    """Thumbnails (EXIF-oriented) with a caption each; an empty grid says so."""
    save_figure(image_grid(items, columns=columns, title=title), path, dpi=90)


def image_grid(items: Sequence[tuple[Path, str]], *, columns: int = 6, title: str = "") -> Any:
    """The figure of ``plot_image_grid``. Constrained layout keeps each caption above its own
    picture: tight_layout placed them before the pictures were fitted to their shapes, and a
    second row's captions ran over the first row's pictures (the title, over a tall grid,
    landed in the middle of the first row)."""
    rows = max(1, -(-len(items) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 2.2, rows * 2.6), squeeze=False,
                             layout="constrained")  # fmt: skip
    for ax in axes.flat:
        ax.axis("off")
    for ax, (image_path, caption) in zip(axes.flat, items, strict=False):
        with Image.open(image_path) as image:
            ax.imshow(ImageOps.exif_transpose(image).convert("RGB"))
        ax.set_title(text_caption(caption), fontsize=8)
    if not items:
        axes[0, 0].text(0.5, 0.5, "none", ha="center", va="center", fontsize=14)
    if title:
        fig.suptitle(title)
    return fig


def plot_class_balance(counts: dict[str, dict[str, int]], path: Path) -> None:
    """Stacked bars of images per class, one colour per split."""
    classes = list(next(iter(counts.values())).keys())
    fig, ax = plt.subplots(figsize=(min(MAX_INCHES, max(6, 0.8 * len(classes) + 2)), 4))
    bottom = np.zeros(len(classes))
    positions = np.arange(len(classes))
    for split, per_class in counts.items():
        values = np.array([per_class[c] for c in classes])
        ax.bar(positions, values, bottom=bottom, label=split)
        bottom += values
    ax.set_ylabel("images")
    ax.set_title("Images per class")
    ax.legend()
    named, captions, font = class_ticks(classes)
    ax.set_xticks(named, captions, fontsize=font)
    plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
