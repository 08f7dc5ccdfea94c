"""The bundle manifest is one typed contract: conversion refuses to write a manifest that
breaks its schema, and the server refuses to register one. (The web app's side is checked in
Chromium, in test_webclient.py.)"""

from __future__ import annotations

import json
import shutil

import pytest
import requests
from conftest import STARTER, STARTER_VERSION

from binbot.errors import BinbotError
from conversion.manifest import read_manifest, schema_problems, write_manifest


def broken_copies() -> dict[str, tuple[callable, str]]:
    """Ways a manifest goes wrong, each with the schema's complaint."""

    def drop_bytes(m):
        m["files"][0]["size"] = m["files"][0].pop("bytes")  # the mix-up that showed "NaN%"

    def prose_resize(m):
        m["input"]["resize"] = {"method": "centre crop then bilinear", "size": [224, 224],
                                "value_range": [0, 255]}  # fmt: skip

    def escape(m):
        m["files"][1]["path"] = "../../etc/passwd"

    def old_version(m):
        del m["manifest_version"]

    return {
        "file without bytes": (drop_bytes, "files.0: 'bytes' is a required property"),
        "resize as prose": (prose_resize, "input.resize: 'recipe' is a required property"),
        "path leaving the bundle": (escape, "files.1.path: '../../etc/passwd' does not match"),
        "version 1 manifest": (old_version, "'manifest_version' is a required property"),
    }


def test_the_starter_manifest_meets_the_schema():
    assert schema_problems(read_manifest(STARTER)) == []


@pytest.mark.parametrize("case", list(broken_copies()))
def test_conversion_refuses_to_write_a_manifest_that_breaks_the_schema(case, tmp_path):
    breaks, complaint = broken_copies()[case]
    manifest = read_manifest(STARTER)
    breaks(manifest)
    assert any(complaint in p for p in schema_problems(manifest)), schema_problems(manifest)
    with pytest.raises(BinbotError, match="breaks its schema"):
        write_manifest(tmp_path, manifest)
    assert not (tmp_path / "manifest.json").exists()


@pytest.mark.parametrize("case", list(broken_copies()))
def test_the_server_refuses_to_register_a_bundle_whose_manifest_breaks_the_schema(
    case, live, tmp_path
):
    from server.errors import Unprocessable
    from server.registry.bundles import register_bundle

    breaks, complaint = broken_copies()[case]
    folder = tmp_path / "bundle"
    shutil.copytree(STARTER, folder)
    manifest = read_manifest(folder)
    manifest["version"] = "broken-1"
    breaks(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with live.app.app_context(), pytest.raises(Unprocessable) as refused:
        register_bundle(folder)
    assert "does not match its manifest" in str(refused.value) and complaint in str(refused.value)
    assert not (live.data / "models" / "broken-1").exists()
    versions = requests.get(f"{live.url}/api/models/current", timeout=30).json()["version"]
    assert versions == STARTER_VERSION
