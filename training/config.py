"""Every setting of a training run, declared once with its type, default, bounds and help.

``binbot train``'s options, the retraining job API's validation and the admin console's
form are all built from this class (see ``training.settings``); ``config.json`` records it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from training.settings import Setting, declared, setting

BACKBONES = ("mobilenet_v2", "efficientnet_v2_b0")


@dataclass
class TrainConfig:
    """Every setting of a run; written to ``config.json`` so a run can be reproduced."""

    backbone: str = setting("mobilenet_v2", "pretrained backbone", choices=BACKBONES)
    weights: str | None = setting(
        "imagenet", "'imagenet', 'none' (random init) or a weights file", none_word="none"
    )
    batch_size: int = setting(32, "images per training step", minimum=1, maximum=512,
                              retraining=True)  # fmt: skip
    head_epochs: int = setting(
        15, "max epochs of phase 1 (the head on the frozen backbone)", minimum=0, maximum=100,
        retraining=True,
    )  # fmt: skip
    head_learning_rate: float = setting(1e-3, "phase 1 learning rate", minimum=0, maximum=1,
                                        flag="--head-lr")  # fmt: skip
    fine_tune_epochs: int = setting(
        12, "max epochs of phase 2 (fine-tuning); 0 skips it", minimum=0, maximum=100,
        retraining=True,
    )  # fmt: skip
    fine_tune_learning_rate: float = setting(
        5e-5, "phase 2 peak learning rate (cosine decay to 0)", minimum=0, maximum=1,
        flag="--fine-tune-lr",
    )  # fmt: skip
    fine_tune_layers: int | None = setting(
        None, "top backbone layers unfrozen in phase 2, or 'all'", minimum=1, maximum=10_000,
        none_word="all",
    )  # fmt: skip
    patience: int = setting(4, "early-stopping patience on validation loss", minimum=1,
                            maximum=100)  # fmt: skip
    dense_units: int = setting(1024, "units of the head's hidden layer", minimum=1,
                               maximum=8192)  # fmt: skip
    dropout: float = setting(0.5, "dropout before the output layer", minimum=0, maximum=0.95)
    augment: bool = setting(True, "augment training images (flip, rotation, zoom, brightness)")
    seed: int = setting(42, "random seed (splits, shuffling, augmentation)", minimum=0,
                        maximum=2**31 - 1)  # fmt: skip
    limit_per_class: int | None = setting(
        None, "use only the first N train/val images of each class (quick runs)", minimum=1,
        maximum=100_000, retraining=True,
    )  # fmt: skip
    extra: dict[str, Any] = field(default_factory=dict)


def train_settings() -> list[Setting]:
    return declared(TrainConfig)
