"""Batch normalisation and zero padding folded into convolutions, for the exported graph.

At inference a BatchNormalization layer is a per-channel affine map, so it can be folded into
the convolution that feeds it: kernel * scale and a bias. TensorFlow does this for Keras at
run time (grappler), but the TF.js graph converter does not for Keras 3 models: every
depthwise convolution of MobileNetV2 stays followed by a Mul, an AddV2 and a Relu6, three
more passes over the block's largest activations, which the wasm backend runs one element at
a time. Folded first, each convolution becomes a single fused op (convolution, bias, Relu6)
that XNNPACK runs in one pass, on every thread. With the paddings below, the starter's graph
falls from 135 ops to 70, and the app's inference in Chromium from 18.6 to 16.3 ms a photo
(the README's browser benchmark).

MobileNetV2 also pads the input of each stride-2 depthwise convolution with a separate
ZeroPadding2D, a copy of the block's largest activation in TF.js. Where that padding is exactly
what the convolution's own "same" padding would add (it is, for every even input size), the
padding layer goes and the convolution pads itself.

The folded model is used only for the export: the run keeps its own model, and conversion's
verification compares the converted graph with that unfolded model, so a wrong fold fails the
conversion.
"""

from __future__ import annotations

import keras
import numpy as np

CONVOLUTIONS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)


class FoldedAway(keras.layers.Layer):
    """Where a folded BatchNormalization was: passes its input on (and accepts BN's call
    arguments, which the cloned graph still passes)."""

    def call(self, inputs, training=None, mask=None):
        return inputs


def foldable_pairs(model: keras.Model) -> dict[str, keras.layers.BatchNormalization]:
    """Convolution name -> the BatchNormalization that alone consumes its output.

    Only what folds exactly: a channels-last convolution without an activation, called once,
    whose one consumer is a channels-last BatchNormalization called once.
    """
    pairs: dict[str, keras.layers.BatchNormalization] = {}
    for layer in _all_layers(model):
        if not isinstance(layer, keras.layers.BatchNormalization) or len(layer._inbound_nodes) != 1:
            continue
        source = layer.input._keras_history[0]  # the operation that made BN's input
        if (
            isinstance(source, CONVOLUTIONS)
            and source.get_config().get("data_format") == "channels_last"
            and source.activation is keras.activations.linear
            and len(source._inbound_nodes) == 1
            and len(source._outbound_nodes) == 1
            and layer.axis in (-1, len(layer.input.shape) - 1)
        ):
            pairs[source.name] = layer
    return pairs


def same_padding_convolutions(model: keras.Model) -> dict[str, str]:
    """ZeroPadding2D name -> the "valid" convolution that alone consumes it, where the
    convolution's "same" padding of the unpadded input adds exactly the same zeros."""
    found: dict[str, str] = {}
    for layer in _all_layers(model):
        if (
            not isinstance(layer, keras.layers.ZeroPadding2D)
            or layer.data_format != "channels_last"
            or len(layer._inbound_nodes) != 1
            or len(layer._outbound_nodes) != 1
        ):
            continue
        consumer = layer._outbound_nodes[0].operation
        if (
            isinstance(consumer, CONVOLUTIONS)
            and consumer.padding == "valid"
            and consumer.get_config().get("data_format") == "channels_last"
            and tuple(consumer.dilation_rate) == (1, 1)
            and len(consumer._inbound_nodes) == 1
            and _same_padding(layer.input.shape[1:3], consumer.kernel_size, consumer.strides)
            == tuple(tuple(side) for side in layer.padding)
        ):
            found[layer.name] = consumer.name
    return found


def _same_padding(size, kernel, strides) -> tuple[tuple[int, int], ...] | None:
    """TensorFlow's "same" padding (before, after) per spatial axis; None if a size is unknown."""
    padding = []
    for n, k, s in zip(size, kernel, strides, strict=True):
        if n is None:
            return None
        total = max((-(-n // s) - 1) * s + k - n, 0)
        padding.append((total // 2, total - total // 2))
    return tuple(padding)


def folded_for_export(model: keras.Model) -> tuple[keras.Model, int]:
    """A copy of ``model`` (nested models included) with every foldable BatchNormalization
    and ZeroPadding2D folded into its convolution, and how many layers were folded away.
    Inference only."""
    pairs = foldable_pairs(model)
    folded_norms = {norm.name for norm in pairs.values()}
    paddings = same_padding_convolutions(model)
    padding_themselves = set(paddings.values())

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        if layer.name in folded_norms or layer.name in paddings:
            return FoldedAway(name=layer.name)
        config = layer.get_config()
        if layer.name in padding_themselves:
            config["padding"] = "same"
        if layer.name in pairs:
            return _folded_convolution(layer, pairs[layer.name], config)
        return layer.__class__.from_config(config)

    folded = keras.models.clone_model(model, clone_function=clone, recursive=True)
    _copy_weights(model, folded, skip=set(pairs) | folded_norms)
    return folded, len(pairs) + len(paddings)


def _folded_convolution(
    convolution: keras.layers.Layer, norm: keras.layers.BatchNormalization, config: dict
) -> keras.layers.Layer:
    scale = np.asarray(norm.moving_variance) + norm.epsilon
    scale = (np.asarray(norm.gamma) if norm.scale else 1.0) / np.sqrt(scale)
    shift = np.asarray(norm.beta) if norm.center else 0.0
    weights = convolution.get_weights()
    kernel, bias = weights[0], (weights[1] if convolution.use_bias else 0.0)
    if isinstance(convolution, keras.layers.DepthwiseConv2D):  # [h, w, in, multiplier]
        h, w, channels, multiplier = kernel.shape
        kernel = (kernel.reshape(h, w, channels * multiplier) * scale).reshape(kernel.shape)
    else:  # [h, w, in, out]
        kernel = kernel * scale
    replacement = convolution.__class__.from_config({**config, "use_bias": True})
    replacement.build(convolution.input.shape)
    replacement.set_weights([kernel, (bias - np.asarray(norm.moving_mean)) * scale + shift])
    return replacement


def _copy_weights(source: keras.Model, target: keras.Model, skip: set[str]) -> None:
    for old, new in zip(source.layers, target.layers, strict=True):
        if isinstance(old, keras.Model):
            _copy_weights(old, new, skip)
        elif old.name not in skip:
            new.set_weights(old.get_weights())


def _all_layers(model: keras.Model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
        else:
            yield layer
