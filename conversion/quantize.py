"""Per-channel uint8 weights for a TF.js graph model, which the converter itself cannot make.

The converter's ``--quantize_uint8`` gives each tensor one (min, scale) pair. MobileNetV2's
convolution kernels, once BatchNorm is folded into them, differ in range by orders of
magnitude between output channels, so one scale per tensor wipes out the small channels
(measured here: 94.3% -> 84.7% top-1). TF.js's weight format has no per-channel
quantization, so it is expressed in the graph instead:

    kernel = q / 255 * range[c] + low[c]

``q`` is stored as uint8 (the loader turns it into ``q / 255``), ``range`` and ``low`` are
small float32 vectors per output channel (per input channel for depthwise kernels), and a
``Mul`` + ``AddV2`` pair in front of the consuming op rebuilds the kernel. Because this is
done on the converted model.json, TensorFlow's graph optimiser cannot fold it back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from conversion.weights import read_weights, write_weights

# Ops whose second input is a kernel, and how its channel axes are laid out.
KERNEL_CONSUMERS = {
    "Conv2D": "last",
    "_FusedConv2D": "last",
    "MatMul": "last",
    "_FusedMatMul": "last",
    "DepthwiseConv2dNative": "depthwise",
    "FusedDepthwiseConv2dNative": "depthwise",
}
MIN_ELEMENTS = 16384  # smaller kernels: float16 (measured: max |dp| 0.33 -> 0.11, +0.5% size)


def _float_const(name: str, shape: tuple[int, ...]) -> dict[str, Any]:
    return {
        "name": name,
        "op": "Const",
        "attr": {
            "value": {
                "tensor": {
                    "dtype": "DT_FLOAT",
                    "tensorShape": {"dim": [{"size": str(d)} for d in shape]},
                }
            },
            "dtype": {"type": "DT_FLOAT"},
        },
    }


def _kernel_layouts(nodes: list[dict[str, Any]]) -> dict[str, str]:
    """Weight name -> "last" or "depthwise", for every Const used as a kernel."""
    layouts: dict[str, str] = {}
    for node in nodes:
        layout = KERNEL_CONSUMERS.get(node.get("op", ""))
        inputs = node.get("input", [])
        if layout and len(inputs) > 1:
            if node["op"] in ("MatMul", "_FusedMatMul") and node.get("attr", {}).get(
                "transpose_b", {}
            ).get("b"):
                continue
            layouts[inputs[1].split(":")[0]] = layout
    return layouts


def quantize_per_channel(values: np.ndarray, layout: str) -> tuple[np.ndarray, ...]:
    """uint8 codes, per-channel range and low for one kernel (asymmetric, 8 bits)."""
    keep = (values.ndim - 2, values.ndim - 1) if layout == "depthwise" else (values.ndim - 1,)
    reduce = tuple(a for a in range(values.ndim) if a not in keep)
    low = values.min(axis=reduce, keepdims=True)
    span = values.max(axis=reduce, keepdims=True) - low
    span = np.where(span > 0, span, 1.0).astype(np.float32)
    codes = np.clip(np.round((values - low) / span * 255), 0, 255).astype(np.uint8)
    return codes, span, low.astype(np.float32)


FLOAT16 = {"dtype": "float16"}


def _as_float16(spec: dict[str, Any], values: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    if values.dtype != np.float32 or spec.get("quantization"):
        return spec, values
    return {**spec, "quantization": FLOAT16}, values.astype(np.float16)


def quantize_model_dir(
    src: Path, dst: Path, *, float16_layouts: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Write a per-channel-uint8 copy of the float32 graph model in ``src`` to ``dst``.

    Kernels whose layout is in ``float16_layouts`` ("depthwise", "last") are stored as
    float16 instead. Biases and the per-channel vectors stay float32: an error in them
    shifts a whole channel one way and accumulates (measured: float16 there costs 1.5 points
    of agreement with Keras).
    """
    model = json.loads((src / "model.json").read_text())
    weights = read_weights(src, model)
    nodes = model["modelTopology"]["node"]
    layouts = _kernel_layouts(nodes)
    renamed: dict[str, str] = {}
    new_nodes: list[dict[str, Any]] = []
    out_weights: list[tuple[dict[str, Any], np.ndarray]] = []
    quantized = 0
    for spec, values in weights:
        name = spec["name"]
        layout = layouts.get(name)
        small = values.size < MIN_ELEMENTS
        if layout is not None and (small or layout in float16_layouts):
            # Below MIN_ELEMENTS the per-channel vectors would cost nearly as much as the
            # kernel saves, and these kernels (first conv, depthwise 3x3, the output layer)
            # are the most sensitive: float16 keeps them nearly exact.
            out_weights.append(_as_float16(spec, values))
            continue
        if layout is None or values.dtype != np.float32 or values.size < MIN_ELEMENTS:
            out_weights.append((spec, values))  # biases and small tensors stay exact
            continue
        codes, span, low = quantize_per_channel(values, layout)
        out_weights.append(
            (
                {**spec, "quantization": {"dtype": "uint8", "min": 0.0, "scale": 1 / 255}},
                codes,
            )
        )
        for suffix, array in (("per_channel_range", span), ("per_channel_low", low)):
            const_name = f"{name}/{suffix}"
            new_nodes.append(_float_const(const_name, array.shape))
            # float32 on purpose: an error here shifts a whole channel the same way.
            out_weights.append(
                ({"name": const_name, "shape": list(array.shape), "dtype": "float32"}, array)
            )
        scaled, rebuilt = f"{name}/scaled", f"{name}/per_channel"
        float_attr = {"T": {"type": "DT_FLOAT"}}
        new_nodes.append(
            {
                "name": scaled,
                "op": "Mul",
                "input": [name, f"{name}/per_channel_range"],
                "attr": float_attr,
            }
        )
        new_nodes.append(
            {
                "name": rebuilt,
                "op": "AddV2",
                "input": [scaled, f"{name}/per_channel_low"],
                "attr": float_attr,
            }
        )
        renamed[name] = rebuilt
        quantized += 1

    for node in nodes:
        if node.get("op") in KERNEL_CONSUMERS and len(node.get("input", [])) > 1:
            kernel = node["input"][1].split(":")[0]
            if kernel in renamed:
                node["input"][1] = renamed[kernel]
    nodes.extend(new_nodes)
    write_weights(dst, model, out_weights)
    return {"quantized_kernels": quantized, "scheme": "uint8 per-channel (asymmetric)"}


def float16_model_dir(src: Path, dst: Path) -> dict[str, Any]:
    """Write a copy of the float32 graph model with every float32 weight stored as float16.

    The same result as the converter's ``--quantize_float16='*'`` without a second
    conversion.
    """
    model = json.loads((src / "model.json").read_text())
    weights = [_as_float16(spec, values) for spec, values in read_weights(src, model)]
    write_weights(dst, model, weights)
    return {"scheme": "float16 (all float32 weights)"}
