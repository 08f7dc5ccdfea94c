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


def write_weights(folder: Path, model: dict[str, Any], weights: list[Weight]) -> list[str]:
    """Write ``weights`` as one group of shards plus ``model.json`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    blob = b"".join(np.ascontiguousarray(values).tobytes() for _, values in weights)
    count = max(1, -(-len(blob) // SHARD_BYTES))
    paths = [f"group1-shard{i + 1}of{count}.bin" for i in range(count)]
    for i, path in enumerate(paths):
        (folder / path).write_bytes(blob[i * SHARD_BYTES : (i + 1) * SHARD_BYTES])
    model = {**model, "weightsManifest": [{"paths": paths, "weights": [s for s, _ in weights]}]}
    (folder / "model.json").write_text(json.dumps(model, separators=(",", ":")))
    return ["model.json", *paths]
