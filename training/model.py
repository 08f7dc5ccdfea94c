"""BinBot's classifier: a pretrained backbone under a small head, taking raw RGB 0..255.

Following keras.io's transfer-learning guide: the pixel scaling is a layer of the model (so
the web client feeds raw pixels and cannot get the scaling wrong), and the backbone is
called with ``training=False`` so its BatchNorm layers stay in inference mode, also when
the top of the backbone is unfrozen for fine-tuning.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import keras

from binbot.errors import BinbotError
from training import IMAGE_SIZE

BACKBONES = ("mobilenet_v2", "efficientnet_v2_b0")
EMBEDDING_LAYER = "embedding"


def build_backbone(name: str, weights: str | None) -> tuple[keras.Model, keras.layers.Layer]:
    """The ImageNet backbone (no top) and the layer that maps raw 0..255 pixels to its range.
    Weights that cannot be had are one clear error: a machine that reaches no model hub, or a
    file that is not this backbone's, ended the training in Keras' traceback."""
    home = os.environ.get("KERAS_HOME") or "~/.keras"
    try:
        return _backbone(name, weights)
    except (ValueError, OSError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        if weights == "imagenet" and isinstance(exc, OSError):  # a damaged cached file
            raise BinbotError(
                f"the ImageNet weights of {name} in {home}/models cannot be read ({reason}): "
                "replace the file (`make keras-cache` links the shared one)"
            ) from None
        if weights in (None, "imagenet"):
            raise
        raise BinbotError(f"--weights {weights} cannot be loaded into {name}: {reason}") from None
    except Exception as exc:  # Keras' download failure is a bare Exception
        if weights != "imagenet" or "URL fetch failure" not in str(exc):
            raise
        raise BinbotError(
            f"the ImageNet weights of {name} are not in {home}/models and cannot be downloaded "
            "here: put the file Keras names there (`make keras-cache` links the shared one) "
            "or pass --weights FILE"
        ) from None


def _backbone(name: str, weights: str | None) -> tuple[keras.Model, keras.layers.Layer]:
    shape = (IMAGE_SIZE, IMAGE_SIZE, 3)
    if name == "mobilenet_v2":
        base = keras.applications.MobileNetV2(include_top=False, weights=weights, input_shape=shape)
        # MobileNetV2 expects -1..1.
        scaling = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="scale_pixels")
    elif name == "efficientnet_v2_b0":
        # Keras' EfficientNetV2 rescales 0..255 itself (include_preprocessing=True).
        base = keras.applications.EfficientNetV2B0(
            include_top=False, weights=weights, input_shape=shape
        )
        scaling = keras.layers.Identity(name="scale_pixels")
    else:
        raise ValueError(f"unknown backbone {name!r}; choose from {', '.join(BACKBONES)}")
    return base, scaling


def build_model(
    num_classes: int,
    *,
    backbone: str = "mobilenet_v2",
    weights: str | None = "imagenet",
    dense_units: int = 1024,
    dropout: float = 0.5,
) -> keras.Model:
    """Backbone (frozen) -> global average pooling -> [Dense(relu)] -> Dropout -> softmax.

    ``dense_units=0`` makes the head one linear layer on the pooled features.
    """
    base, scaling = build_backbone(backbone, weights)
    base.trainable = False
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3), name="image")
    x = scaling(inputs)
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D(name=EMBEDDING_LAYER)(x)
    if dense_units:
        x = keras.layers.Dense(dense_units, activation="relu", name="head_dense")(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=f"binbot_{backbone}")


def backbone_of(model: keras.Model) -> keras.Model:
    """The pretrained backbone: the one nested model inside the classifier."""
    return next(layer for layer in model.layers if isinstance(layer, keras.Model))


def unfreeze_top(model: keras.Model, layers: int | None = None) -> int:
    """Make the top ``layers`` layers of the backbone (all when None) trainable.

    BatchNorm layers stay frozen: their statistics were learned on ImageNet's scale and a
    few thousand images would only make them noisy (they also run in inference mode).

    Returns how many weight-carrying layers became trainable.
    """
    base = backbone_of(model)
    base.trainable = True
    cut = 0 if layers is None else max(0, len(base.layers) - layers)
    unfrozen = 0
    for index, layer in enumerate(base.layers):
        trainable = index >= cut and not isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = trainable
        unfrozen += int(trainable and bool(layer.weights))
    return unfrozen


@dataclass
class ModelParts:
    """A classifier cut in two at ``cut`` (a backbone layer): the frozen part below, whose
    output can be computed once per photo, and the part above, which training changes.

    All three models share the classifier's layers: training ``top`` trains ``model``.
    """

    cut: str
    bottom: keras.Model  # raw pixels -> the cut's input (pixel scaling included)
    embed: keras.Model  # the cut's input -> pooled features (the top of the backbone)
    head: keras.Model  # pooled features -> class probabilities
    top: keras.Model  # the cut's input -> class probabilities
    top_layers: list[keras.layers.Layer]  # the backbone layers above the cut


def serving_model(model: keras.Model) -> keras.Model:
    """The classifier with the embedding exposed as a second, named output: what the bundle
    exports, and what the open-set score reads."""
    embedding = model.get_layer(EMBEDDING_LAYER).output
    return keras.Model(
        model.input, {"probabilities": model.output, "embedding": embedding}, name="serving"
    )


def split_model(model: keras.Model, fine_tune_layers: int) -> ModelParts:
    """Cut the backbone so that at least its top ``fine_tune_layers`` layers are above the cut.

    A cut must be a single tensor that everything above depends on: where a residual
    connection crosses, the cut moves down to the next layer where none does.
    """
    base = backbone_of(model)
    index = _cut_index(base, max(1, len(base.layers) - max(fine_tune_layers, 1)))
    layer = base.layers[index]
    top_backbone = keras.Model(layer.input, base.output, name="backbone_top")
    bottom_backbone = keras.Model(base.input, layer.input, name="backbone_bottom")
    pixels = keras.Input(model.input_shape[1:], name="image")
    bottom = keras.Model(
        pixels, bottom_backbone(model.get_layer("scale_pixels")(pixels), training=False)
    )
    head = keras.Model(model.get_layer(EMBEDDING_LAYER).output, model.output, name="head")
    cut_input = keras.Input(tuple(layer.input.shape[1:]), name="cut")
    pooled = model.get_layer(EMBEDDING_LAYER)(top_backbone(cut_input, training=False))
    embed = keras.Model(cut_input, pooled, name="embed")
    top = keras.Model(cut_input, head(pooled), name="top")
    return ModelParts(layer.name, bottom, embed, head, top, base.layers[index:])


def _cut_index(base: keras.Model, start: int, look: int = 8) -> int:
    """The layer at or below ``start`` whose input can be the cut, preferring the smallest
    tensor among the next few candidates (a block's output, not its 6x wider expansion)."""
    valid = []
    for index in range(start, 0, -1):
        if isinstance(base.layers[index].input, list):  # an Add: two tensors, no single cut
            continue
        try:
            keras.Model(base.layers[index].input, base.output)
        except ValueError:  # a residual connection crosses here
            continue
        valid.append(index)
        if index <= valid[0] - look:
            break
    if not valid:
        return 1
    return min(valid, key=lambda i: (math.prod(base.layers[i].input.shape[1:]), -i))


def set_top_trainable(parts: ModelParts, trainable: bool) -> int:
    """Let training change the backbone above the cut (BatchNorm excepted: it keeps its
    ImageNet statistics and runs in inference mode). Returns how many layers with weights."""
    count = 0
    backbone_of_top = parts.top.get_layer("backbone_top")
    backbone_of_top.trainable = trainable
    for layer in parts.top_layers:
        layer.trainable = trainable and not isinstance(layer, keras.layers.BatchNormalization)
        count += int(layer.trainable and bool(layer.weights))
    return count
