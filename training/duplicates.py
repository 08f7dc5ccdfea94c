"""Byte-identical and visually near-identical images, within a split and across splits.

Copies across splits matter most: a test image whose twin is in the training split is
"recognised", not classified, and inflates test accuracy. Near-identical copies (re-encoded,
resized, lightly recompressed, recoloured, a watermark added) are found in two steps:

1. a 64-bit perceptual hash (DCT of a 32x32 greyscale thumbnail, as in pHash) within
   ``near_threshold`` bits proposes a pair;
2. the Pearson correlation of 32x32 colour thumbnails, at least ``min_correlation``, confirms it.

Calibrated on the e-waste dataset by looking at the pairs: pHash alone matches different
products photographed on the same white background from distance 4 on; no pair of different
classes within 10 bits reaches a correlation of 0.90, while re-encoded, watermarked and
recoloured copies of one photo do.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from PIL import Image, ImageOps

from binbot.pixels import to_rgb
from training.dataset import ImageRecord

DEFAULT_NEAR_THRESHOLD = 10
DEFAULT_MIN_CORRELATION = 0.90
_HASH_SIDE = 32
_LOW_FREQ = 8
T = TypeVar("T")


@dataclass(frozen=True)
class DuplicatePair:
    """Two images that are the same picture. ``kind`` is "identical" (same bytes) or "near"."""

    a: ImageRecord
    b: ImageRecord
    kind: str
    distance: int

    @property
    def splits(self) -> str:
        """Which splits the pair spans, in train/val/test order, e.g. "train-test" or "val"."""
        order = {"train": 0, "val": 1, "test": 2}
        first, second = sorted((self.a.split, self.b.split), key=lambda s: order.get(s, 9))
        return first if first == second else f"{first}-{second}"

    @property
    def cross_split(self) -> bool:
        return self.a.split != self.b.split

    @property
    def conflicting(self) -> bool:
        """The same picture filed under two classes: at least one of its labels is wrong."""
        return self.a.label != self.b.label


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    return np.cos(np.pi * (2 * i + 1) * k / (2 * n))


_DCT = _dct_matrix(_HASH_SIDE)


def perceptual_hash(image: Image.Image) -> int:
    """64-bit pHash: low-frequency DCT coefficients above/below their median."""
    grey = (
        to_rgb(ImageOps.exif_transpose(image))
        .convert("L")
        .resize((_HASH_SIDE, _HASH_SIDE), Image.Resampling.LANCZOS)
    )
    pixels = np.asarray(grey, dtype=np.float64)
    coefficients = (_DCT @ pixels @ _DCT.T)[:_LOW_FREQ, :_LOW_FREQ].flatten()
    bits = coefficients[1:] > np.median(coefficients[1:])
    bits = np.concatenate([[coefficients[0] > 0], bits])
    return int("".join("1" if b else "0" for b in bits), 2)


def colour_thumbnail(image: Image.Image) -> np.ndarray:
    """Unit-length, zero-mean 32x32 RGB thumbnail: dot products are correlations."""
    small = to_rgb(ImageOps.exif_transpose(image)).resize(
        (_HASH_SIDE, _HASH_SIDE), Image.Resampling.BOX
    )
    values = np.asarray(small, dtype=np.float32).flatten()
    values -= values.mean()
    return values / (np.linalg.norm(values) + 1e-6)


@dataclass(frozen=True)
class ImageSignature:
    """What near-duplicate detection compares: a perceptual hash and a colour thumbnail."""

    phash: int
    thumbnail: np.ndarray


def signature(path) -> ImageSignature:
    """A 32x32 summary needs no 12-megapixel decode: a JPEG is decoded at the smallest of its
    1/2, 1/4 or 1/8 scales that is still 256 pixels or more a side (a phone photo's signature
    took 0.30 s, now 0.02 s; the same hash, thumbnails correlated at 0.9998). Not smaller:
    the grocery photos (348 px) decoded at 174 px lost 3 of their 34 pairs."""
    with Image.open(path) as image:
        image.draft("RGB", (8 * _HASH_SIDE, 8 * _HASH_SIDE))
        image.load()
        return ImageSignature(perceptual_hash(image), colour_thumbnail(image))


# Rows of the distance matrix computed at once: its memory is this many floats, whatever the
# number of images. The whole matrix (n x n, 8 bytes a cell at its peak) took 4.7 GB for
# 20,000 images and would have taken about 29 GB for 50,000: the evaluation after a training
# on such a dataset would have been killed for memory.
_DISTANCES_AT_ONCE = 1 << 25


def near_hash_pairs(hashes: Sequence[int], threshold: int) -> Iterator[tuple[int, int, int]]:
    """(i, j, distance) with i < j for every two 64-bit hashes at most ``threshold`` bits
    apart, a block of rows at a time."""
    values = np.array(hashes, dtype=np.uint64)
    # float32 so that the products run in BLAS; sums of at most 64 ones are exact
    bits = np.unpackbits(values.view(np.uint8).reshape(-1, 8), axis=1).astype(np.float32)
    ones = bits.sum(axis=1)
    block = max(1, _DISTANCES_AT_ONCE // max(1, len(bits)))
    for start in range(0, len(bits), block):
        rows = slice(start, start + block)
        # popcount(a xor b) = |a| + |b| - 2 |a and b|, against the images from ``start`` on
        distances = ones[rows, None] + ones[None, start:] - 2 * (bits[rows] @ bits[start:].T)
        for i, j in zip(*np.nonzero(distances <= threshold), strict=True):
            if i < j:
                yield start + int(i), start + int(j), int(distances[i, j])


def find_duplicates(
    records: Sequence[ImageRecord],
    *,
    near_threshold: int = DEFAULT_NEAR_THRESHOLD,
    min_correlation: float = DEFAULT_MIN_CORRELATION,
    signatures: Sequence[ImageSignature] | None = None,
    known: Mapping[str, ImageSignature] | None = None,
) -> list[DuplicatePair]:
    """Every pair of records that is byte-identical, or near-identical by hash and thumbnail.
    ``known``: signatures already computed, by relpath (``Dataset.signatures``)."""
    records = list(records)
    if signatures is None:
        known = known or {}
        signatures = [known.get(r.relpath) or signature(r.path) for r in records]
    pairs: list[DuplicatePair] = []
    for i, j, distance in near_hash_pairs([s.phash for s in signatures], near_threshold):
        a, b = records[i], records[j]
        if a.sha256 == b.sha256:
            pairs.append(DuplicatePair(a, b, "identical", distance))
            continue
        correlation = float(signatures[i].thumbnail @ signatures[j].thumbnail)
        if correlation >= min_correlation:
            pairs.append(DuplicatePair(a, b, "near", distance))
    # Identical bytes are duplicates whatever the hashes say.
    seen = {(p.a.relpath, p.b.relpath) for p in pairs}
    by_sha: dict[str, list[int]] = {}
    for index, r in enumerate(records):
        by_sha.setdefault(r.sha256, []).append(index)
    for group in by_sha.values():
        for x, i in enumerate(group):
            for j in group[x + 1 :]:
                if (records[i].relpath, records[j].relpath) not in seen:
                    pairs.append(DuplicatePair(records[i], records[j], "identical", 0))
    return pairs


def copy_groups(members: Iterable[T], linked: Iterable[tuple[T, T]]) -> dict[T, T]:
    """Each member's group, named by one of its members: members linked as copies, chained (a
    copy of a copy is in the group too). Splits made from groups keep copies together."""
    parent = {member: member for member in members}

    def group_of(member: T) -> T:
        while parent[member] != member:
            parent[member] = parent[parent[member]]
            member = parent[member]
        return member

    for a, b in linked:
        parent[group_of(a)] = group_of(b)
    return {member: group_of(member) for member in parent}


def records_with_copy_in(pairs: Sequence[DuplicatePair], split: str, other: str) -> set[str]:
    """Relative paths of ``split`` images that have a copy in ``other`` (e.g. test in train)."""
    found: set[str] = set()
    for p in pairs:
        if p.a.split == split and p.b.split == other:
            found.add(p.a.relpath)
        if p.b.split == split and p.a.split == other:
            found.add(p.b.relpath)
    return found
