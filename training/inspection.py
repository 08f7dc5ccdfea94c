"""`binbot dataset inspect`: what is in a dataset before anyone trains on it.

Structure, class balance, image sizes, files that do not decode, sample images per class
and duplicates (within and across splits), printed and written as JSON and PNG.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from binbot.columns import columns, padded
from binbot.errors import counted
from training.dataset import (
    BadFile,
    Dataset,
    bad_file_lines,
    check_outside_dataset,
    load_dataset,
    progress_logger,
)
from training.dataset_layout import SPLITS
from training.duplicates import (
    DEFAULT_MIN_CORRELATION,
    DEFAULT_NEAR_THRESHOLD,
    DuplicatePair,
    find_duplicates,
    records_with_copy_in,
)
from training.plots import class_caption, plot_class_balance, plot_image_grid
from training.run_dir import write_json

Log = Callable[[str], None]
IMBALANCE_WARNING_RATIO = 1.5
SAMPLES_PER_CLASS = 6
# A row of samples per class: 300 classes made a picture 67,500 pixels tall in 50 s.
SAMPLE_CLASSES_SHOWN = 40
DUPLICATE_PAIRS_SHOWN = 12


def imbalance_ratio(per_class: dict[str, int]) -> float | None:
    """Largest class over smallest non-empty class (1.0 = perfectly balanced)."""
    present = [n for n in per_class.values() if n > 0]
    return max(present) / min(present) if present else None


def size_statistics(dataset: Dataset) -> dict[str, Any]:
    widths = np.array([r.width for r in dataset.records])
    heights = np.array([r.height for r in dataset.records])
    sizes = Counter(f"{r.width}x{r.height}" for r in dataset.records)
    return {
        "width": _describe(widths),
        "height": _describe(heights),
        "distinct_sizes": len(sizes),
        "most_common_sizes": dict(sizes.most_common(5)),
        "exif_rotated": sum(r.orientation != 1 for r in dataset.records),
    }


def _describe(values: np.ndarray) -> dict[str, float]:
    if not len(values):
        return {}
    return {
        "min": int(values.min()),
        "median": float(np.median(values)),
        "mean": round(float(values.mean()), 1),
        "max": int(values.max()),
    }


def _pair_json(pair: DuplicatePair) -> dict[str, Any]:
    return {
        "a": pair.a.relpath,
        "b": pair.b.relpath,
        "splits": pair.splits,
        "kind": pair.kind,
        "hash_distance": pair.distance,
    }


def inspect_dataset(
    path: str | Path,
    out: str | Path,
    *,
    near_threshold: int = DEFAULT_NEAR_THRESHOLD,
    min_correlation: float = DEFAULT_MIN_CORRELATION,
    seed: int = 42,
    log: Log = print,
) -> dict[str, Any]:
    """Inspect ``path``, print the findings and write ``report.json`` and PNGs into ``out``."""
    out = Path(out)
    check_outside_dataset(out, path)
    out.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset(path, seed=seed, progress=progress_logger(log))
    counts = dataset.counts()
    totals = {c: sum(counts[s][c] for s in SPLITS) for c in dataset.classes}
    ratio_train = imbalance_ratio(counts["train"])
    ratio_all = imbalance_ratio(totals)

    pairs = find_duplicates(
        dataset.records, near_threshold=near_threshold, min_correlation=min_correlation,
        known=dataset.signatures,
    )  # fmt: skip
    by_splits = Counter(p.splits for p in pairs)
    cross = [p for p in pairs if p.cross_split]

    warnings = list(dataset.warnings)
    if ratio_train and ratio_train > IMBALANCE_WARNING_RATIO:
        warnings.append(
            f"classes are imbalanced in train: largest/smallest = {ratio_train:.2f} "
            "(training uses class weights)"
        )
    conflicts = [p for p in pairs if p.conflicting]
    if conflicts:
        warnings.append(
            f"{counted(len(conflicts), 'duplicate pair')} filed under two different classes: "
            "one label of each is wrong; fix or remove them before training"
        )
    leaking = records_with_copy_in(pairs, "test", "train")
    if leaking:
        warnings.append(
            f"{counted(len(leaking), 'test image')} with a copy in train: test accuracy is inflated"
        )

    report: dict[str, Any] = {
        "source": str(path),
        "layout": dataset.layout,
        "fingerprint": dataset.fingerprint,
        "classes": dataset.classes,
        "splits": {s: len(dataset.split(s)) for s in SPLITS},
        "counts": counts,
        "imbalance_ratio": {"train": ratio_train, "all": ratio_all},
        "image_sizes": size_statistics(dataset),
        "undecodable_files": [asdict(b) for b in dataset.bad_files],
        "duplicates": {
            "method": f"identical bytes, or pHash distance <= {near_threshold} bits and "
            f"colour-thumbnail correlation >= {min_correlation}",
            "pairs": len(pairs),
            "identical_pairs": sum(p.kind == "identical" for p in pairs),
            "near_pairs": sum(p.kind == "near" for p in pairs),
            "pairs_by_splits": dict(sorted(by_splits.items())),
            "cross_split_pairs": [_pair_json(p) for p in cross],
            "conflicting_label_pairs": [_pair_json(p) for p in conflicts],
            "within_split_pairs": [_pair_json(p) for p in pairs if not p.cross_split],
        },
        "warnings": warnings,
        "files": {},
    }

    pictures = draw_pictures(dataset, counts, cross, out)
    report["files"] = {k: v.name for k, v in pictures.items()} | {"report": "report.json"}
    write_json(out / "report.json", report)
    print_report(report, log)
    log(f"Wrote {out / 'report.json'} and {', '.join(v.name for v in pictures.values())}")
    return report


def draw_pictures(
    dataset: Dataset, counts: dict[str, dict[str, int]], cross: list[DuplicatePair], out: Path
) -> dict[str, Path]:
    """Class balance, sample images per class, and the cross-split duplicate pairs."""
    pictures = {
        "class_balance": out / "class_balance.png",
        "samples": out / "samples.png",
        "cross_split_duplicates": out / "cross_split_duplicates.png",
    }
    plot_class_balance(counts, pictures["class_balance"])
    samples = []
    for label, name in enumerate(dataset.classes[:SAMPLE_CLASSES_SHOWN]):
        members = [r for r in dataset.records if r.label == label][:SAMPLES_PER_CLASS]
        samples += [(r.path, f"{class_caption(name, label)}\n{r.split}") for r in members]
    title = "Sample images per class"
    if len(dataset.classes) > SAMPLE_CLASSES_SHOWN:
        title += f" (the first {SAMPLE_CLASSES_SHOWN} of {len(dataset.classes)} classes)"
    plot_image_grid(samples, pictures["samples"], columns=SAMPLES_PER_CLASS, title=title)
    shown = []
    for p in cross[:DUPLICATE_PAIRS_SHOWN]:
        shown += [
            (p.a.path, f"{p.a.split}/{Path(p.a.relpath).name}"),
            (p.b.path, f"{p.b.split}/{Path(p.b.relpath).name} ({p.kind})"),
        ]
    plot_image_grid(
        shown,
        pictures["cross_split_duplicates"],
        columns=6,
        title="Cross-split duplicates (pairs side by side)",
    )
    return pictures


def print_report(report: dict[str, Any], log: Log) -> None:
    log(f"Dataset {report['source']}")
    log(f"  layout: {report['layout']}")
    log(f"  fingerprint: {report['fingerprint']}")
    splits = report["splits"]
    log("  splits: " + ", ".join(f"{s} {n}" for s, n in splits.items()))
    width = max(columns(c) for c in [*report["classes"], "class"])
    log(f"  {'#':>3s} {padded('class', width)} " + " ".join(f"{s:>6s}" for s in SPLITS))
    for number, c in enumerate(report["classes"], start=1):
        counts = " ".join(f"{report['counts'][s][c]:6d}" for s in SPLITS)
        log(f"  {number:3d} {padded(c, width)} {counts}")
    ratio = report["imbalance_ratio"]["train"]
    balance = f"{ratio:.2f}" if ratio else "none (no train images)"
    log(f"  imbalance ratio (train, largest/smallest): {balance}")
    log(f"  image sizes: {_sizes_line(report['image_sizes'])}")
    bad = report["undecodable_files"]
    log(f"  undecodable files (skipped): {len(bad)}")
    for line in bad_file_lines([BadFile(**b) for b in bad], "report.json"):
        log(f"    {line}")
    dup = report["duplicates"]
    log(
        f"  duplicates: {dup['pairs']} pairs ({dup['identical_pairs']} byte-identical, "
        f"{dup['near_pairs']} near-identical){_by_splits(dup['pairs_by_splits'])}"
    )
    log(f"  cross-split duplicate pairs: {len(dup['cross_split_pairs'])}")
    for p in dup["cross_split_pairs"]:
        log(f"    {'[' + p['splits'] + ']':12s} {p['kind']:9s} {p['a']}  ==  {p['b']}")
    conflicts = dup.get("conflicting_label_pairs", [])
    log(f"  duplicate pairs under two different classes: {len(conflicts)}")
    for p in conflicts:
        log(f"    {p['kind']:9s} {p['a']}  ==  {p['b']}")
    for w in report["warnings"]:
        log(f"  WARNING: {w}")


def _sizes_line(sizes: dict[str, Any]) -> str:
    """Image sizes in words ("150x150 px, all of them"), not the report's JSON dictionaries."""
    width, height = sizes["width"], sizes["height"]
    if not width:
        return "no images"
    rotated = f"; {sizes['exif_rotated']} EXIF-rotated" if sizes["exif_rotated"] else ""
    if sizes["distinct_sizes"] == 1:
        return f"{width['min']}x{height['min']} px, all of them{rotated}"
    common = ", ".join(f"{size} ({n})" for size, n in list(sizes["most_common_sizes"].items())[:3])
    return (
        f"width {_span(width)}, height {_span(height)} px; {sizes['distinct_sizes']} distinct sizes, "
        f"the most common {common}{rotated}"
    )


def _span(values: dict[str, float]) -> str:
    return f"{values['min']}-{values['max']} (median {values['median']:g})"


def _by_splits(pairs_by_splits: dict[str, int]) -> str:
    """Where duplicate pairs lie, in words: "within train 87, train-test 9"."""

    def order(splits: str) -> tuple[int, ...]:  # within a split first, then across, train first
        named = splits.split("-")
        return (len(named), *(SPLITS.index(s) if s in SPLITS else len(SPLITS) for s in named))

    where = [(f"within {s}" if "-" not in s else s, n) for s, n in
             sorted(pairs_by_splits.items(), key=lambda item: order(item[0]))]  # fmt: skip
    return "; " + ", ".join(f"{s} {n}" for s, n in where) if where else ""
