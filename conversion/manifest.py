"""``manifest.json``: the contract between training, the server and the web client.

It names every file of the bundle with its size and SHA-256 (the web client checks them
before it caches a model; the server publishes only bundles that check out), how to feed
the model (input name, shape, range and the versioned resize recipe) and what it returns,
and the evidence that the converted model works: accuracy measured with the converted model
itself and its agreement with the Keras model.

Its shape is written down once, as a JSON Schema (``manifest.schema.json``): conversion
checks a manifest against it before writing it, the server before registering a bundle, and
the web app before loading a model (its build compiles the same file).
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from binbot.errors import BinbotError

MANIFEST_FILE = "manifest.json"
MANIFEST_VERSION = 2
OPENSET_FILE = "openset.json"
# Beside a bundle: the Keras model it was converted from, for warm starts (not listed, never
# served).
WARM_START_DIR = "keras"
FORMAT = "tfjs-graph-model"
SCHEMA_FILE = Path(__file__).resolve().parent / "manifest.schema.json"


@lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def _validator():
    from jsonschema import Draft7Validator

    Draft7Validator.check_schema(_schema())
    return Draft7Validator(_schema())


@lru_cache(maxsize=1)
def version_pattern() -> re.Pattern[str]:
    """What a version name may be (it names the bundle's folder and URLs), as the schema says."""
    return re.compile(_schema()["properties"]["version"]["pattern"])


def schema_problems(manifest: Any) -> list[str]:
    """Where ``manifest`` breaks the schema, one line each ('input.resize: ...')."""
    problems = []
    for error in sorted(_validator().iter_errors(manifest), key=lambda e: list(e.path)):
        where = ".".join(str(p) for p in error.path) or "manifest"
        problems.append(f"{where}: {error.message}")
    return problems


def file_entry(folder: Path, name: str) -> dict[str, Any]:
    data = (folder / name).read_bytes()
    return {"path": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def bundle_files(folder: Path) -> list[dict[str, Any]]:
    """model.json first, then the weight shards in the order model.json lists them, then the
    open-set score's arrays when the bundle has them."""
    model = json.loads((folder / "model.json").read_text())
    shards = [p for group in model["weightsManifest"] for p in group["paths"]]
    extra = [OPENSET_FILE] if (folder / OPENSET_FILE).is_file() else []
    return [file_entry(folder, name) for name in ["model.json", *shards, *extra]]


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    """Write ``manifest.json``, refusing one that breaks the schema (nothing is written)."""
    problems = schema_problems(manifest)
    if problems:
        raise BinbotError("the manifest breaks its schema: " + "; ".join(problems))
    path = folder / MANIFEST_FILE
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_manifest(folder: Path) -> dict[str, Any]:
    return json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))


def check_bundle(folder: Path) -> list[str]:
    """Everything wrong with a bundle on disk: a manifest that breaks the schema, missing
    files, wrong sizes or hashes."""
    try:
        manifest = read_manifest(folder)
    except (OSError, ValueError) as exc:
        return [f"unreadable {MANIFEST_FILE}: {exc}"]
    return schema_problems(manifest) or file_problems(folder, manifest["files"])


def file_problems(folder: Path, files: list[dict[str, Any]]) -> list[str]:
    """The manifest's ``files`` entries that ``folder`` lacks or holds changed."""
    problems = []
    for entry in files:
        path = folder / entry["path"]
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
