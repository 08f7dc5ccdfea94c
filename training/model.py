"""BinBot's classifier: a pretrained backbone under a small head, taking raw RGB 0..255.

Following keras.io's transfer-learning guide: the pixel scaling is a layer of the model (so
the web client feeds raw pixels and cannot get the scaling wrong), and the backbone is
called with ``training=False`` so its BatchNorm layers stay in inference mode, also when
the top of the backbone is unfrozen for fine-tuning.
"""

from __future__ import annotations

import keras

from training import IMAGE_SIZE

BACKBONES = ("mobilenet_v2", "efficientnet_v2_b0")
EMBEDDING_LAYER = "embedding"


def build_backbone(name: str, weights: str | None) -> tuple[keras.Model, keras.layers.Layer]:
    """The ImageNet backbone (no top) and the layer that maps raw 0..255 pixels to its range."""
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
    """Backbone (frozen) -> global average pooling -> Dense(relu) -> Dropout -> softmax."""
    base, scaling = build_backbone(backbone, weights)
    base.trainable = False
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3), name="image")
    x = scaling(inputs)
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D(name=EMBEDDING_LAYER)(x)
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
