"""Pictures in the reports stay readable whatever script a dataset's classes are named in."""

from __future__ import annotations

import warnings

import numpy as np
from PIL import Image

from training.plots import (
    class_caption,
    class_ticks,
    image_grid,
    plot_class_balance,
    plot_confusion_matrix,
)

NAMES = ["Battery", "电池", "Télévision", "किबोर्ड"]


def test_names_the_font_cannot_draw_become_class_numbers(tmp_path):
    # matplotlib warns "Glyph ... missing from font(s)" for every character it draws as a box.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot_confusion_matrix(np.eye(4, dtype=int) * 3, NAMES, tmp_path / "matrix.png")
        counts = {"train": dict.fromkeys(NAMES, 5), "val": dict.fromkeys(NAMES, 1)}
        plot_class_balance(counts, tmp_path / "balance.png")
    assert (tmp_path / "matrix.png").stat().st_size > 0
    assert (tmp_path / "balance.png").stat().st_size > 0
    captions = [class_caption(name, i) for i, name in enumerate(NAMES)]
    assert captions == ["Battery", "class 2", "Télévision", "class 4"]


def png_size(path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def test_hundreds_of_classes_make_pictures_a_screen_can_show(tmp_path):
    """300 classes drew a confusion matrix 23,000 pixels a side with 90,000 numbers, in
    minutes; 1,000 would have exhausted the memory. Axes now name every k-th class."""
    labels = [f"kind {i}" for i in range(1000)]
    matrix = np.random.default_rng(0).integers(0, 5, (1000, 1000))
    plot_confusion_matrix(matrix, labels, tmp_path / "matrix.png")
    plot_class_balance({"train": dict.fromkeys(labels, 5)}, tmp_path / "balance.png")
    assert max(png_size(tmp_path / "matrix.png")) <= 3200
    assert max(png_size(tmp_path / "balance.png")) <= 3200
    positions, captions, _ = class_ticks(labels)
    assert len(positions) <= 60 and captions[:2] == ["kind 0", "kind 17"]
    assert class_ticks(labels[:12])[1] == labels[:12]  # a usual dataset: every class named


def test_captions_and_the_title_never_cover_a_picture(tmp_path):
    """The misclassified images' second row had its two-line captions drawn over the first
    row's pictures, and a dataset's samples had their title in the middle of the first row."""
    import matplotlib.pyplot as plt

    # Square pictures, as in the e-waste dataset, then other shapes.
    shapes = [(150, 150)] * 12 + [(160, 120), (120, 160), (300, 100), (100, 300), (640, 480)]
    items = []
    for i, size in enumerate(shapes):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", size, (i * 13 % 256, 90, 160)).save(path)
        items.append((path, f"true: Washing Machine\npred: Television {50 + i}%"))
    for count, title in ((12, "Misclassified test images"), (17, "Samples")):
        fig = image_grid(items[:count], columns=6, title=title)
        renderer = fig.canvas.get_renderer()
        fig.draw(renderer)
        pictures = [ax for ax in fig.axes if ax.images]
        boxes = [ax.get_window_extent(renderer) for ax in pictures]
        texts = [fig._suptitle] + [ax.title for ax in pictures]
        for text in texts:
            extent = text.get_window_extent(renderer)
            covered = [i for i, box in enumerate(boxes) if extent.overlaps(box)]
            assert covered == [], f"{text.get_text()!r} covers pictures {covered}"
        plt.close(fig)
