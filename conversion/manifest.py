"""``manifest.json``: the contract between training, the server and the web client.

It names every file of the bundle with its size and SHA-256 (the web client checks them
before it caches a model; the server publishes only bundles that check out), how to feed
the model (input name, shape, range and the resize recipe) and what it returns, and the
evidence that the converted model works: accuracy measured with the converted model itself
and its agreement with the Keras model.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

MANIFEST_FILE = "manifest.json"
FORMAT = "tfjs-graph-model"


def file_entry(folder: Path, name: str) -> dict[str, Any]:
    data = (folder / name).read_bytes()
    return {"path": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def bundle_files(folder: Path) -> list[dict[str, Any]]:
    """model.json first, then the weight shards in the order model.json lists them."""
    model = json.loads((folder / "model.json").read_text())
    shards = [p for group in model["weightsManifest"] for p in group["paths"]]
    return [file_entry(folder, name) for name in ["model.json", *shards]]


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    path = folder / MANIFEST_FILE
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_manifest(folder: Path) -> dict[str, Any]:
    return json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))


def check_bundle(folder: Path) -> list[str]:
    """Everything wrong with a bundle on disk: missing files, wrong sizes or hashes."""
    try:
        manifest = read_manifest(folder)
    except (OSError, ValueError) as exc:
        return [f"unreadable {MANIFEST_FILE}: {exc}"]
    problems = []
    if manifest.get("format") != FORMAT:
        problems.append(f"format is {manifest.get('format')!r}, expected {FORMAT!r}")
    for entry in manifest.get("files", []):
        path = folder / entry["path"]
        if Path(entry["path"]).is_absolute() or ".." in Path(entry["path"]).parts:
            problems.append(f"{entry['path']}: path leaves the bundle")
            continue
        if not path.is_file():
            problems.append(f"{entry['path']}: missing")
            continue
        actual = file_entry(folder, entry["path"])
        if actual["bytes"] != entry["bytes"]:
            problems.append(
                f"{entry['path']}: {actual['bytes']} bytes, manifest says {entry['bytes']}"
            )
        elif actual["sha256"] != entry["sha256"]:
            problems.append(f"{entry['path']}: sha256 differs from the manifest")
    return problems
