"""Pictures in the reports stay readable whatever script a dataset's classes are named in."""

from __future__ import annotations

import warnings

import numpy as np

from training.plots import class_caption, plot_class_balance, plot_confusion_matrix

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
