"""Every setting of a training run, declared once with its type, default, bounds and help.

``binbot train``'s options, the retraining job API's validation and the admin console's
form are all built from this class (see ``training.settings``); ``config.json`` records it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from training.openset import METHODS
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
    views: int = setting(
        4, "views of each training photo: the exact input plus random crops (1: no augmentation)",
        minimum=1, maximum=32,
    )  # fmt: skip
    head_epochs: int = setting(
        30, "epochs of phase 1 (the head on the frozen backbone's features)", minimum=0,
        maximum=500, retraining=True,
    )  # fmt: skip
    head_learning_rate: float = setting(1e-3, "phase 1 peak learning rate", minimum=0,
                                        maximum=1, flag="--head-lr")  # fmt: skip
    fine_tune_epochs: int = setting(
        8, "epochs of phase 2 (the top of the backbone and the head); 0 skips it", minimum=0,
        maximum=200, retraining=True,
    )  # fmt: skip
    fine_tune_learning_rate: float = setting(
        1e-4, "phase 2 peak learning rate", minimum=0, maximum=1, flag="--fine-tune-lr"
    )  # fmt: skip
    fine_tune_warmup_epochs: int = setting(
        0, "phase 2 epochs whose learning rate climbs from 0 to its peak (part of the phase's "
        "epochs): a new head's first large gradients then do not knock the pretrained "
        "layers about", minimum=0, maximum=200, flag="--fine-tune-warmup",
    )  # fmt: skip
    fine_tune_layers: int = setting(
        38, "top backbone layers fine-tuned in phase 2 (the cut moves down to where no "
        "residual connection crosses)", minimum=1, maximum=1000,
    )  # fmt: skip
    label_smoothing: float = setting(0.1, "label smoothing", minimum=0, maximum=0.5)
    weight_decay: float = setting(1e-4, "AdamW weight decay", minimum=0, maximum=1)
    average_last: int = setting(
        3, "average the weights of the last N fine-tuning epochs (1: keep the last)", minimum=1,
        maximum=100,
    )  # fmt: skip
    dense_units: int = setting(0, "units of a hidden head layer (0: a linear head)", minimum=0,
                               maximum=8192)  # fmt: skip
    dropout: float = setting(0.2, "dropout before the output layer", minimum=0, maximum=0.95)
    cache_features: bool = setting(
        True, "keep the frozen backbone's features on disk ($BINBOT_CACHE_DIR) for later runs"
    )
    openset_method: str = setting(
        "multi_prototype_confidence",
        "how the model tells its kinds from anything else (an open-set score)", choices=METHODS,
    )  # fmt: skip
    warm_start: str | None = setting(
        None, "a run folder (or a bundle with its keras/ folder) to start from instead of ImageNet "
        "alone; its classes are matched by name, new ones start from scratch",
    )  # fmt: skip
    seed: int = setting(42, "random seed (splits, shuffling, augmentation)", minimum=0,
                        maximum=2**31 - 1)  # fmt: skip
    limit_per_class: int | None = setting(
        None, "use only the first N train/val images of each class (quick runs)", minimum=1,
        maximum=100_000, retraining=True, none_word="all",
    )  # fmt: skip
    extra: dict[str, Any] = field(default_factory=dict)


def train_settings() -> list[Setting]:
    return declared(TrainConfig)


def untrainable_schedule(head_epochs: int, fine_tune_epochs: int) -> str | None:
    """Why a schedule would train nothing, or None. Said before any work: a run with both
    phases at 0 epochs used to read the dataset and compute every photo's features first."""
    if head_epochs == 0 and fine_tune_epochs == 0:
        return (
            "head epochs and fine-tune epochs are both 0: no epoch would run (set either above 0)"
        )
    return None
