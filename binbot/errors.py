"""The one exception type the CLI turns into a one-line message and a non-zero exit.

Anything raised as ``BinbotError`` is the user's input being wrong (a missing path, a dataset
with no classes, a folder that is not a run). Everything else is a bug and keeps its traceback.
Training, conversion and the retraining worker share it; the web service answers requests
with its own errors (``server.errors``), which carry an HTTP status.
"""


def shortened(text: str, limit: int = 40) -> str:
    """Text someone sent, cut to ``limit`` characters for an error message: a message must
    not echo kilobytes back."""
    return text[:limit] + ("..." if len(text) > limit else "")


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and its noun for a message: "1 class", "3 classes", "1 test image"."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


class BinbotError(Exception):
    """A problem with the user's input, explained in one line."""


class TrainingCancelled(BinbotError):
    """Training stopped because someone asked it to (an admin cancelled the job)."""
