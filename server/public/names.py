"""Names people give things ("Something else: phone charger"): cleaned, checked, comparable.

A proposed name is kept as the person wrote it (tidied) and compared by its key: Unicode
NFKC-normalised, case-folded, inner spaces collapsed. Names that could only be mischief are
refused: control characters, no letter at all, over 60 characters, and letters from scripts
that are not written together (a Cyrillic "а" posing as a Latin "a" would otherwise make
"Bаttery" look like a new kind next to "Battery"). Scripts that are written together are
allowed, as Unicode's "highly restrictive" profile has it (UTS #39): Japanese mixes Han,
Hiragana and Katakana ("携帯電話の充電器", "USBケーブル"), Korean Han and Hangul, Chinese Han
and Bopomofo, each with Latin.
"""

from __future__ import annotations

import unicodedata

from binbot.names import name_key, tidy
from server.errors import Unprocessable

__all__ = ["MAX_NAME", "by_key", "clean_name", "name_key", "tidy"]

MAX_NAME = 60


def by_key(names: list[str]) -> dict[str, str]:
    """Each name under its key: how a name someone sent ("mouse") finds the kind (Mouse)."""
    return {name_key(name): name for name in names}


# Letters whose Unicode name does not start with their script's name, and letters shared by
# scripts (the long-vowel mark "ー", modifier letters such as the okina "ʻ"): None is no script.
_SCRIPT_OF_NAME = {
    "CJK": "HAN", "IDEOGRAPHIC": "HAN", "KATAKANA-HIRAGANA": None, "MODIFIER": None,
}  # fmt: skip
# Sets of scripts written together (UTS #39, highly restrictive); any single script is fine.
_WRITTEN_TOGETHER = (
    {"LATIN", "HAN", "HIRAGANA", "KATAKANA"},
    {"LATIN", "HAN", "BOPOMOFO"},
    {"LATIN", "HAN", "HANGUL"},
)


def _script(character: str) -> str | None:
    """The script a letter belongs to, from its Unicode name (LATIN, CYRILLIC, HAN, ...)."""
    if not character.isalpha():
        return None
    first = unicodedata.name(character, "UNKNOWN").split(" ")[0]
    return _SCRIPT_OF_NAME.get(first, first)


def clean_name(text: str | None, field: str | None = None) -> tuple[str, str]:
    """(the name to show, its key for comparing); Unprocessable saying what is wrong, naming
    ``field`` (the request's field the name came in) for the client."""

    def refused(reason: str) -> Unprocessable:
        return Unprocessable(reason, field=field)

    name = tidy(text)
    if not name:
        raise refused("say what it is: the name is empty")
    if len(name) > MAX_NAME:
        raise refused(f"the name is longer than {MAX_NAME} characters")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise refused("the name has control or invisible characters")
    scripts = {s for s in map(_script, name) if s}
    if not scripts:
        raise refused("the name has no letters")
    if len(scripts) > 1 and not any(scripts <= together for together in _WRITTEN_TOGETHER):
        raise refused(f"the name mixes alphabets ({', '.join(sorted(scripts)).lower()})")
    return name, name_key(name)
