"""Names people give things ("Something else: phone charger"): cleaned, checked, comparable.

A proposed name is kept as the person wrote it (tidied) and compared by its key: Unicode
NFKC-normalised, case-folded, inner spaces collapsed. Names that could only be mischief are
refused: control characters, no letter at all, over 60 characters, and letters from more than
one alphabet (a Cyrillic "а" posing as a Latin "a" would otherwise make "Bаttery" look like a
new kind next to "Battery").
"""

from __future__ import annotations

import unicodedata

from server.errors import Unprocessable

MAX_NAME = 60


def _script(character: str) -> str | None:
    """The alphabet a letter belongs to, from its Unicode name (LATIN, CYRILLIC, GREEK, ...)."""
    if not character.isalpha():
        return None
    return unicodedata.name(character, "UNKNOWN").split(" ")[0]


def tidy(text: str | None) -> str:
    """NFKC-normalised, inner spaces collapsed, ends trimmed."""
    return " ".join(unicodedata.normalize("NFKC", text or "").split())


def name_key(text: str | None) -> str:
    """What two names are compared by: tidied and case-folded."""
    return tidy(text).casefold()


def clean_name(text: str | None) -> tuple[str, str]:
    """(the name to show, its key for comparing); Unprocessable saying what is wrong."""
    name = tidy(text)
    if not name:
        raise Unprocessable("say what it is: the name is empty")
    if len(name) > MAX_NAME:
        raise Unprocessable(f"the name is longer than {MAX_NAME} characters")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise Unprocessable("the name has control or invisible characters")
    scripts = {s for s in map(_script, name) if s}
    if not scripts:
        raise Unprocessable("the name has no letters")
    if len(scripts) > 1:
        raise Unprocessable(f"the name mixes alphabets ({', '.join(sorted(scripts)).lower()})")
    return name, name_key(name)
