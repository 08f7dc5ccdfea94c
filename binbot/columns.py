"""Text that lines up in a terminal whatever its script.

Python pads by characters, a terminal by columns: a Chinese or Japanese character (East Asian
wide or fullwidth) takes two, a combining accent none. Padded by ``len()``, every column after
a class named "日本語" stood three columns too far right.
"""

from __future__ import annotations

import unicodedata


def columns(text: str) -> int:
    """How many terminal columns ``text`` takes."""
    return sum(_columns_of(character) for character in text)


def _columns_of(character: str) -> int:
    if unicodedata.combining(character):
        return 0
    return 2 if unicodedata.east_asian_width(character) in ("W", "F") else 1


def padded(text: str, width: int) -> str:
    """``text`` and enough spaces after it to fill ``width`` columns."""
    return text + " " * max(0, width - columns(text))
