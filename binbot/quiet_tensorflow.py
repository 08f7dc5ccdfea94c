"""TensorFlow imported without the screen of C++ start-up noise it prints on a CPU machine.

Used by the command line and by the retraining worker, whose log an admin reads: there,
"failed call to cuInit: CUDA error" and "Unable to register cuDNN factory" lines, at every
first job, read as faults of the server when they are only TensorFlow finding no GPU.
"""

from __future__ import annotations

import os
import sys


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ start-up chatter hidden.

    On a CPU machine TensorFlow's native libraries print CUDA-registration warnings straight
    to file descriptor 2 while importing, before any logging setting applies; users would see
    a screen of noise above a one-line error. Only that import is silenced: a Python
    exception raised by it still propagates and is printed normally.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    # Its Python-side warnings (tf.function retracing advice) are for developers, not users.
    tensorflow.get_logger().setLevel("ERROR")
