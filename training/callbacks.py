"""Training progress: one readable line per epoch, the same as data, and the history kept
with its phase."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import keras


class EpochLog(keras.callbacks.Callback):
    """Prints each finished epoch, reports it as an event, and appends it to ``history``
    (shared across phases)."""

    def __init__(
        self,
        phase: str,
        epochs: int,
        history: list[dict[str, Any]],
        log: Callable[[str], None],
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ):
        super().__init__()
        self.phase, self.epochs, self.history, self.log = phase, epochs, history, log
        self.on_event = on_event
        self.started = time.monotonic()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.started = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        row = {
            "phase": self.phase,
            "epoch": len(self.history) + 1,
            "phase_epoch": epoch + 1,
            "seconds": round(time.monotonic() - self.started, 2),
            **{k: float(v) for k, v in logs.items() if k != "learning_rate"},
        }
        self.history.append(row)
        if self.on_event:
            self.on_event({"event": "epoch", **row, "epochs": self.epochs})
        spent = [h["seconds"] for h in self.history if h["phase"] == self.phase]
        left = (self.epochs - epoch - 1) * sum(spent) / len(spent)
        self.log(
            f"  {self.phase:9s} epoch {epoch + 1:2d}/{self.epochs}  loss {row['loss']:.4f}  "
            f"acc {row['accuracy']:.4f}  val_loss {row['val_loss']:.4f}  "
            f"val_acc {row['val_accuracy']:.4f}  ({row['seconds']:.0f} s"
            + (f", {duration(left)} left in this phase)" if left >= 1 else ")")
        )


def duration(seconds: float) -> str:
    """'40 s', '3.5 min': a time left, for people."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


class Progress:
    """'N/M things, T left' every ``every`` seconds of long work (a large test split, for
    example, was minutes of silence); work that ends sooner says nothing."""

    def __init__(
        self,
        total: int,
        what: str,
        log: Callable[[str], None],
        every: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.what, self.log, self.every, self.clock = total, what, log, every, clock
        self.started, self.done, self.shown = clock(), 0, 0.0

    def advance(self, count: int) -> float | None:
        """Count ``count`` more done; the seconds left when this call said so, else None."""
        self.done += count
        elapsed = self.clock() - self.started
        if elapsed - self.shown < self.every or not 0 < self.done < self.total:
            return None
        self.shown = elapsed
        left = elapsed / self.done * (self.total - self.done)
        self.log(f"  {self.done}/{self.total} {self.what}, {duration(left)} left")
        return left


class StopWhenAsked(keras.callbacks.Callback):
    """Aborts training within one batch once ``should_stop()`` is true (a cancelled job)."""

    def __init__(self, should_stop: Callable[[], bool]) -> None:
        super().__init__()
        self.should_stop = should_stop

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.should_stop():
            from binbot.errors import TrainingCancelled

            raise TrainingCancelled("training was cancelled")
