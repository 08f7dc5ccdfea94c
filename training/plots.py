"""Every picture the reports show: curves, confusion matrix, image grids, class balance."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image, ImageOps


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
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_confusion_matrix(matrix: np.ndarray, labels: Sequence[str], path: Path) -> None:
    """Heatmap with counts; rows are the true class, columns the predicted one."""
    size = max(6.0, 0.7 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix (test split)")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(
            j,
            i,
            str(value),
            ha="center",
            va="center",
            color="white" if value > threshold else "black",
            fontsize=9,
        )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_image_grid(
    items: Sequence[tuple[Path, str]], path: Path, *, columns: int = 6, title: str = ""
) -> None:
    """Thumbnails (EXIF-oriented) with a caption each; an empty grid says so."""
    rows = max(1, -(-len(items) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 2.2, rows * 2.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (image_path, caption) in zip(axes.flat, items, strict=False):
        with Image.open(image_path) as image:
            ax.imshow(ImageOps.exif_transpose(image).convert("RGB"))
        ax.set_title(caption, fontsize=8)
    if not items:
        axes[0, 0].text(0.5, 0.5, "none", ha="center", va="center", fontsize=14)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_class_balance(counts: dict[str, dict[str, int]], path: Path) -> None:
    """Stacked bars of images per class, one colour per split."""
    classes = list(next(iter(counts.values())).keys())
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(classes) + 2), 4))
    bottom = np.zeros(len(classes))
    for split, per_class in counts.items():
        values = np.array([per_class[c] for c in classes])
        ax.bar(classes, values, bottom=bottom, label=split)
        bottom += values
    ax.set_ylabel("images")
    ax.set_title("Images per class")
    ax.legend()
    plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
