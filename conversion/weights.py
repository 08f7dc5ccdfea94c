"""Read and write the weight shards of a TF.js graph model (``model.json`` + ``*.bin``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

SHARD_BYTES = 4 * 1024 * 1024  # what the converter uses; browsers cache shards one by one
_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
_QUANTIZED = {"uint8": np.uint8, "uint16": np.uint16, "float16": np.float16}

Weight = tuple[dict[str, Any], np.ndarray]


def read_weights(folder: Path, model: dict[str, Any]) -> list[Weight]:
    """Every weight spec with its stored values (quantized ones as stored, not dequantized)."""
    out: list[Weight] = []
    for group in model["weightsManifest"]:
        data = b"".join((folder / p).read_bytes() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            quantization = spec.get("quantization")
            dtype = _QUANTIZED[quantization["dtype"]] if quantization else _DTYPES[spec["dtype"]]
            count = int(np.prod(spec["shape"])) if spec["shape"] else 1
            size = count * np.dtype(dtype).itemsize
            if spec["dtype"] == "string" or offset + size > len(data):
                raise ValueError(f"cannot read weight {spec['name']} ({spec['dtype']})")
            values = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
            out.append((spec, values.reshape(spec["shape"])))
            offset += size
    return out


def compact_node_names(model: dict[str, Any], weights: list[Weight]) -> list[Weight]:
    """Rename graph nodes to short ids, keeping the signature's input and output nodes.

    TensorFlow names nodes after the Keras call path (``StatefulPartitionedCall/serving_1/
    mobilenetv2_1.00_224_1/block_16_project_1/...``), about a third of model.json, and the
    suffixes grow with every model built in the same process. Graphs with a function
    library are left alone.
    """
    topology = model["modelTopology"]
    if topology.get("library", {}).get("function"):
        return weights
    signature = model.get("signature", {})
    keep = {
        tensor["name"].split(":")[0]
        for side in ("inputs", "outputs")
        for tensor in signature.get(side, {}).values()
    }
    nodes = topology["node"]
    mapping = {
        n["name"]: n["name"] if n["name"] in keep else f"n{i:x}" for i, n in enumerate(nodes)
    }
    if len(set(mapping.values())) != len(mapping):
        return weights  # a kept name collides with a short id: keep the long names

    def rename(reference: str) -> str:
        control = reference.startswith("^")
        name, _, index = reference.lstrip("^").partition(":")
        renamed = mapping.get(name, name) + (f":{index}" if index else "")
        return ("^" if control else "") + renamed

    for node in nodes:
        node["name"] = mapping[node["name"]]
        if "input" in node:
            node["input"] = [rename(r) for r in node["input"]]
    return [({**spec, "name": mapping.get(spec["name"], spec["name"])}, v) for spec, v in weights]


def write_weights(folder: Path, model: dict[str, Any], weights: list[Weight]) -> list[str]:
    """Write ``weights`` as one group of shards plus ``model.json`` (short node names)."""
    folder.mkdir(parents=True, exist_ok=True)
    weights = compact_node_names(model, weights)
    blob = b"".join(np.ascontiguousarray(values).tobytes() for _, values in weights)
    count = max(1, -(-len(blob) // SHARD_BYTES))
    paths = [f"group1-shard{i + 1}of{count}.bin" for i in range(count)]
    for i, path in enumerate(paths):
        (folder / path).write_bytes(blob[i * SHARD_BYTES : (i + 1) * SHARD_BYTES])
    model = {**model, "weightsManifest": [{"paths": paths, "weights": [s for s, _ in weights]}]}
    (folder / "model.json").write_text(json.dumps(model, separators=(",", ":")))
    return ["model.json", *paths]
