"""The public API over real HTTP: a real server on loopback, a fresh database per test."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
import requests
from conftest import IPHONE_PHOTO, STARTER_VERSION, submit
from PIL import Image


def test_fresh_server_publishes_the_starter_model(live):
    response = requests.get(f"{live.url}/api/models/current", timeout=30)
    assert response.status_code == 200
    body = response.json()
    assert body["version"] == STARTER_VERSION
    assert body["manifest"]["format"] == "tfjs-graph-model"
    assert body["model_url"] == f"/api/models/{STARTER_VERSION}/model.json"
    assert body["files"][0]["path"] == "model.json"
    assert response.headers["Cache-Control"] == "no-cache"
    again = requests.get(
        f"{live.url}/api/models/current",
        headers={"If-None-Match": response.headers["ETag"]},
        timeout=30,
    )
    assert again.status_code == 304


def test_model_files_are_immutable_and_match_the_manifest(live):
    current = requests.get(f"{live.url}/api/models/current", timeout=30).json()
    for entry in current["files"]:
        response = requests.get(live.url + entry["url"], timeout=30)
        assert response.status_code == 200
        assert hashlib.sha256(response.content).hexdigest() == entry["sha256"]
        cache = response.headers["Cache-Control"]
        assert "immutable" in cache and "max-age=31536000" in cache and "public" in cache
        assert "no-cache" not in cache  # which would make every use a round trip
        assert response.headers["ETag"] == f'"{entry["sha256"]}"'
        revalidated = requests.get(
            live.url + entry["url"], headers={"If-None-Match": response.headers["ETag"]}, timeout=30
        )
        assert revalidated.status_code == 304


def test_a_model_file_gone_from_the_data_disk_is_said_so_at_start_and_per_request(live):
    """It was Flask's anonymous 500, and `binbot serve` started without a word."""
    from server.provision import provision

    weights = live.data / "models" / STARTER_VERSION / "group1-shard1of1.bin"
    weights.unlink()
    answer = requests.get(f"{live.url}/api/models/{STARTER_VERSION}/{weights.name}", timeout=30)
    assert answer.status_code == 500
    assert answer.json()["error"] == (
        f"model {STARTER_VERSION}'s file group1-shard1of1.bin is missing on the server"
    )
    said: list[str] = []
    provision(live.app, log=said.append)  # what `binbot serve` runs before it serves
    assert said[-1] == (
        f"WARNING: the published model {STARTER_VERSION} is damaged in {weights.parent} "
        "(group1-shard1of1.bin: missing): phones cannot download it; restore its files, or "
        "publish or roll back to another version in the console"
    )


@pytest.mark.parametrize(
    "path",
    [f"/api/models/{STARTER_VERSION}/manifest.json/../../../binbot.sqlite3", "/api/models/nope/model.json",
     f"/api/models/{STARTER_VERSION}/..%2F..%2Fbinbot.sqlite3", "/api/nothing-here"],
)  # fmt: skip
def test_unknown_paths_get_json_404(live, path):
    response = requests.get(live.url + path, timeout=30)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["status"] == 404


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "OPTIONS"])
def test_a_post_endpoint_names_the_method_it_takes(live, method):
    """GET /api/submissions, typed into a browser or curl, read "no API endpoint", and OPTIONS
    or a PUT's 405 listed GET: the web app's catch-all route lent its GET to the API. The
    endpoint says it takes POST, and nothing else but OPTIONS."""
    for path in ("/api/submissions", "/api/admin/models/rollback", "/admin/logout"):
        response = requests.request(method, live.url + path, timeout=30)
        if method == "OPTIONS" and path.startswith("/api/admin/"):
            assert response.status_code == 401, path  # the admin API says nothing unsigned
            continue
        assert response.status_code == (200 if method == "OPTIONS" else 405), (path, method)
        assert set(response.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}, path
        if method in ("GET", "PUT") and path.startswith("/api/"):  # the console's is a page
            assert response.json() == {
                "error": f"{method} is not allowed here; this address takes POST",
                "status": 405,
            }


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "GET"])
def test_a_mistyped_api_address_is_not_found_whatever_the_method(live, method):
    """A POST to a misspelt endpoint read "method not allowed" (the catch-all took GET for it),
    which sends a developer looking at the method instead of the address."""
    response = requests.request(method, live.url + "/api/submission", timeout=30)
    assert response.status_code == 404
    assert response.json()["error"] == "no API endpoint /api/submission"
    assert "Allow" not in response.headers


def test_labels_come_with_disposal_guidance(live):
    body = requests.get(f"{live.url}/api/labels", timeout=30).json()
    names = [label["name"] for label in body["labels"]]
    assert len(names) == 10 and "Washing Machine" in names
    battery = next(label for label in body["labels"] if label["name"] == "Battery")
    assert battery["guidance"]["hazards"] and battery["guidance"]["steps"]


def test_retried_upload_is_stored_exactly_once(live, photo):
    first = submit(live, photo, key="k-123", predicted_label="Television", confidence="0.41",
                   model_version=STARTER_VERSION)  # fmt: skip
    assert first.status_code == 201, first.text
    stored = first.json()["submission"]
    assert stored["label"] == "Battery" and stored["predicted_label"] == "Television"
    assert stored["confidence"] == pytest.approx(0.41) and stored["status"] == "pending"
    retry = submit(live, photo, key="k-123")
    assert retry.status_code == 200 and retry.json()["replayed"] is True
    assert retry.json()["submission"]["id"] == stored["id"]
    same_photo_other_key = submit(live, photo, key="k-456", label="Printer")
    assert same_photo_other_key.status_code == 200
    # Received, and nothing of the first sender's submission is revealed.
    assert same_photo_other_key.json() == {"duplicate": True, "received": True}
    assert live.submissions() == 1
    assert len(live.stored_files()) == 1


def test_stored_photo_is_upright_and_has_no_metadata(live):
    stored_landscape = Image.new("RGB", (300, 200), (200, 30, 30))
    exif = stored_landscape.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    exif[0x8825] = {1: "N", 2: (52.0, 22.0, 7.0)}  # GPS latitude
    buffer = io.BytesIO()
    stored_landscape.save(buffer, "JPEG", exif=exif.tobytes())
    with Image.open(io.BytesIO(buffer.getvalue())) as sent:
        assert sent.getexif().get_ifd(0x8825), "the test photo must carry a GPS position"
    response = submit(live, buffer.getvalue(), key="gps")
    assert response.status_code == 201, response.text
    (path,) = live.stored_files()
    with Image.open(path) as image:
        assert image.size == (200, 300)
        assert not image.getexif()
        assert "exif" not in image.info


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height)).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "make, form, status, message",
    [
        (lambda p: b"x" * (4 * 1024 * 1024), {}, 413, "too large"),
        (lambda p: b"%PDF-1.4 not a photo", {}, 415, "not an image"),
        (lambda p: IPHONE_PHOTO.read_bytes(), {}, 415, "a HEIC photo, which BinBot cannot read"),
        (lambda p: p[: len(p) // 2], {}, 400, "does not decode"),
        (lambda p: _png(4000, 4000), {}, 413, "too large"),  # 16 Mpx in a few KB
        (lambda p: _png(12000, 12000), {}, 413, "too large"),  # past Pillow's own bomb limit
        (lambda p: _png(1, 1), {}, 422, "too small: 1x1 (at least 32 pixels a side)"),
        (lambda p: p, {"label": "Toaster"}, 422, "unknown label"),
        (lambda p: p, {"predicted_label": "Toaster"}, 422, "unknown predicted_label"),
        (lambda p: p, {"confidence": "1.7"}, 400, "between 0 and 1"),
        (lambda p: b"", {}, 400, "empty"),
        # Kilobytes sent as a field are named in the error, not echoed back whole.
        (lambda p: p, {"label": "Toaster" * 20_000}, 422, "unknown label 'ToasterToaster"),
        (lambda p: p, {"predicted_label": "x" * 100_000}, 422, "unknown predicted_label"),
        (lambda p: p, {"confidence": "nine" * 25_000}, 400, "confidence must be a number"),
    ],
)
def test_bad_uploads_are_rejected_and_nothing_is_stored(live, photo, make, form, status, message):
    response = submit(live, make(photo), key="bad", **form)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    assert len(response.content) < 1000
    assert live.submissions() == 0
    assert live.stored_files() == []
    # The key was not used up by the failure: a good retry with it is stored.
    assert submit(live, photo, key="bad").status_code == 201


def test_file_names_cannot_place_files(live, photo, tmp_path):
    response = submit(live, photo, key="trick", name="../../../../tmp/evil.jpg")
    assert response.status_code == 201
    (path,) = live.stored_files()
    assert path.parent.parent == live.data / "submissions"
    assert path.name == response.json()["submission"]["sha256"] + ".jpg"
    assert not Path("/tmp/evil.jpg").exists()


def test_missing_image_field(live):
    response = requests.post(f"{live.url}/api/submissions", data={"label": "Battery"}, timeout=30)
    assert response.status_code == 400 and "missing file" in response.json()["error"]
