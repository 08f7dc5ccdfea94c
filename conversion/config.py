"""The settings of a conversion, declared once (see ``training.settings``): they make
``binbot convert``'s options and, for those marked ``retraining``, part of a retraining job's."""

from __future__ import annotations

from dataclasses import dataclass

from training.settings import Setting, declared, setting

QUANTIZATIONS = ("none", "float16", "uint8")


@dataclass
class ConvertConfig:
    quantization: str | None = setting(
        None, "weights format; when not given, the smallest that keeps the accuracy, by measurement",
        choices=QUANTIZATIONS, flag="--quantize",
    )  # fmt: skip
    reference_images: int | None = setting(
        None, "verify on this many test images", minimum=1, maximum=100_000,
        retraining=True, none_word="all",
    )  # fmt: skip


def convert_settings() -> list[Setting]:
    return declared(ConvertConfig)
