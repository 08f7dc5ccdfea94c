"""When two names are the same kind: one definition, for dataset class folders (training) and
for kinds, labels and proposed names (the server).

Names are compared by a key: Unicode NFKC-normalised, inner spaces collapsed, ends trimmed,
case-folded. So ``mouse``, ``Mouse`` and ``mouse `` are one kind everywhere.
"""

from __future__ import annotations

import unicodedata


def tidy(text: str | None) -> str:
    """NFKC-normalised, inner spaces collapsed, ends trimmed."""
    return " ".join(unicodedata.normalize("NFKC", text or "").split())


def name_key(text: str | None) -> str:
    """What two names are compared by: tidied and case-folded."""
    return tidy(text).casefold()
