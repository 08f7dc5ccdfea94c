"""A model's forward pass, compiled once and run in small batches.

Measured on this 2-core CPU with MobileNetV2: Keras's ``predict`` and eager calls cost 1.7-1.9x
a compiled ``tf.function`` call, and large batches are slower per image than small ones
(the backbone below block 13: 11 ms per image in batches of 4, 19 ms in batches of 64; the
pooled top: 1.45 ms per image compiled, 2.5 ms through ``predict``). Feature caching, pooling,
evaluation and conversion's reference all go through here.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable

import numpy as np

# Images per call for a full-resolution backbone pass; the fastest on the CPUs measured.
IMAGE_BATCH = 4


# One traced function per model: tracing MobileNetV2 takes about a second, and a run asks for
# the same model's forward pass more than once (train and validation features, evaluation).
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def compiled(model) -> Callable:
    """``model(x, training=False)`` as one traced graph (retraced only for a new batch shape),
    made once per model. Its variables are read at each call, so later training shows."""
    import tensorflow as tf

    if model not in _COMPILED:
        # A weak reference: a function holding its model would keep it, and its entry, alive
        # for the life of the process (a retraining worker runs job after job).
        ref = weakref.ref(model)
        _COMPILED[model] = tf.function(lambda x: ref()(x, training=False), reduce_retracing=True)
    return _COMPILED[model]


def run_batches(
    call: Callable, batches: Iterable, progress: Callable[[int], None] | None = None
) -> list:
    """``call`` on every batch; numpy results (dicts of them for dict outputs), in order.
    ``progress`` is told each batch's size once it is done."""
    out = []
    for batch in batches:
        result = call(batch)
        if isinstance(result, dict):
            out.append({name: np.asarray(value) for name, value in result.items()})
        else:
            out.append(np.asarray(result))
        if progress:
            progress(len(batch))
    return out


def concatenate(results: list) -> np.ndarray | dict[str, np.ndarray]:
    """Join ``run_batches``'s per-batch results along the batch axis."""
    if results and isinstance(results[0], dict):
        return {name: np.concatenate([r[name] for r in results]) for name in results[0]}
    return np.concatenate(results)


def predict_array(model, x: np.ndarray, batch_size: int = 64, dtype=np.float32) -> np.ndarray:
    """``model`` on the rows of ``x`` (cast to ``dtype`` batch by batch), compiled."""
    return call_on_rows(compiled(model), x, batch_size, dtype)


def call_on_rows(
    call: Callable, x: np.ndarray, batch_size: int = 64, dtype=np.float32
) -> np.ndarray:
    """A compiled ``call`` on the rows of ``x``: for a model run several times, compile it once
    (each ``compiled`` traces its graph again, a second or so for the top of a backbone)."""
    batches = (
        x[start : start + batch_size].astype(dtype) for start in range(0, len(x), batch_size)
    )
    return concatenate(run_batches(call, batches))
