"""What happens to an uploaded photo: nothing of its metadata is kept, extreme shapes are
refused before decoding, transparency and 16-bit photos come out as ordinary photos."""

from __future__ import annotations

import io
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
from conftest import console_session, submit
from PIL import Image, PngImagePlugin

SECRET = "GPS 52.3670N 4.8900E home of Jane Doe"


def icc_profile_with(text: str) -> bytes:
    """A syntactically valid ICC profile whose description tag carries ``text``."""
    description = b"desc" + b"\0" * 4 + struct.pack(">I", len(text) + 1) + text.encode() + b"\0"
    description += b"\0" * (-len(description) % 4)
    tags = struct.pack(">I", 1) + struct.pack(">4sII", b"desc", 128 + 4 + 12, len(description))
    body = tags + description
    header = struct.pack(">I", 128 + len(body)) + b"\0" * 124
    return header + body


def jpeg_with_every_kind_of_metadata() -> bytes:
    image = Image.new("RGB", (320, 240), (40, 120, 200))
    exif = image.getexif()
    exif[0x010E] = SECRET  # ImageDescription
    exif[0x8825] = {1: "N", 2: (52.0, 22.0, 1.0)}  # GPS
    xmp = f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description>{SECRET}</rdf:Description></x:xmpmeta>'
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif.tobytes(), comment=SECRET, xmp=xmp.encode(),
               icc_profile=icc_profile_with(SECRET))  # fmt: skip
    data = buffer.getvalue()
    assert data.count(SECRET.encode()) >= 4, "every kind of metadata must carry the secret"
    return data


def png_with_text() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", SECRET)
    info.add_itxt("Description", SECRET)
    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), (10, 200, 30)).save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


@pytest.mark.parametrize("make", [jpeg_with_every_kind_of_metadata, png_with_text])
def test_a_stored_photo_carries_no_metadata_at_all(live, make):
    response = submit(live, make(), key=make.__name__)
    assert response.status_code == 201, response.text
    (path,) = live.stored_files()
    stored = path.read_bytes()
    assert SECRET.encode() not in stored and b"Jane" not in stored
    with Image.open(path) as image:
        assert not image.getexif() and "icc_profile" not in image.info
        assert "comment" not in image.info and "xmp" not in image.info


def png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, "PNG")
    return buffer.getvalue()


def test_transparent_pixels_become_white_and_16_bit_photos_keep_their_tones(live):
    rgba = np.zeros((100, 100, 4), np.uint8)
    rgba[:, :50] = (200, 0, 0, 255)  # opaque red left half, fully transparent right half
    assert submit(live, png_bytes(rgba, "RGBA"), key="alpha").status_code == 201
    deep = np.full((100, 100), 32768, np.uint16)  # mid grey in 16 bits
    assert submit(live, png_bytes(deep), key="deep").status_code == 201
    stored = {}
    for path in live.stored_files():
        with Image.open(path) as image:
            stored[image.getpixel((5, 5))[0] > 150] = np.asarray(image.convert("RGB"))
    red, grey = stored[True], stored[False]
    assert tuple(red[50, 10]) == pytest.approx((200, 0, 0), abs=12)
    assert tuple(red[50, 90]) == pytest.approx((255, 255, 255), abs=3)  # was transparent
    assert tuple(grey[50, 50]) == pytest.approx((128, 128, 128), abs=3)  # not clipped to 255


def test_a_phone_photo_with_a_second_picture_is_stored_as_its_first(live):
    """MPO: the JPEG many phone cameras write, with a preview or depth map after the photo.
    It was refused as an unsupported format; it is the photo the user took."""
    buffer = io.BytesIO()
    photo, preview = Image.new("RGB", (320, 240), (200, 30, 30)), Image.new("RGB", (160, 120))
    photo.save(buffer, "MPO", save_all=True, append_images=[preview])
    response = submit(live, buffer.getvalue(), key="mpo")
    assert response.status_code == 201, response.text
    (path,) = live.stored_files()
    with Image.open(path) as stored:
        assert stored.format == "JPEG" and stored.size == (320, 240)
        assert stored.getpixel((160, 120)) == pytest.approx((200, 30, 30), abs=8)


def huge_png(width: int, height: int) -> bytes:
    """A valid PNG header for a vast image, with a tiny compressed body (a decode bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * (width + 1), 9)  # the first row only: enough to start decoding
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("width", "height", "status", "message"),
    [
        (1, 40_000_000, 422, "too narrow"),
        (40_000, 3, 422, "too narrow"),
        (5_000, 4_000, 413, "too large"),  # 20 Mpx: over the limit for a fully decoded PNG
    ],
)
def test_extreme_shapes_are_refused_before_decoding(live, width, height, status, message):
    response = submit(live, huge_png(width, height), key=f"bomb-{width}", name="x.png")
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    assert live.submissions() == 0 and live.stored_files() == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_form_of_the_wrong_shape_is_told_apart_from_a_body_too_large(live, photo):
    """Werkzeug answers 413 to a small body with thousands of fields too: the error says which
    limit was hit, not "too large" for 30 kB."""
    many_fields = submit(live, photo, **{f"f{i}": "x" for i in range(2_000)})
    long_field = submit(live, photo, predicted_label="x" * 600_000)
    for response in (many_fields, long_field):
        assert response.status_code == 413
        assert "the form has too many fields" in response.json()["error"]
    too_big = submit(live, b"\xff\xd8" + bytes(4 * 1024 * 1024))  # over the 3 MB test limit
    assert too_big.status_code == 413 and "request too large" in too_big.json()["error"]
    assert live.submissions() == 0


def test_a_field_sent_twice_is_refused_not_guessed(live, photo):
    """Two labels (or two photos) in one submission: which did the person mean? Not stored."""
    two_labels = submit(live, photo, label=["Battery", "Mouse"])
    assert two_labels.status_code == 400
    assert two_labels.json()["error"] == "field 'label' sent 2 times; a submission has one"
    two_photos = requests.post(
        f"{live.url}/api/submissions", data={"label": "Battery"}, timeout=30,
        files=[("image", ("a.jpg", photo, "image/jpeg")), ("image", ("b.jpg", photo, "image/jpeg"))],
    )  # fmt: skip
    assert two_photos.status_code == 400 and "'image' sent 2 times" in two_photos.json()["error"]
    assert live.submissions() == 0 and live.stored_files() == []
    assert submit(live, photo).status_code == 201  # the same photo, sent properly


def test_a_used_idempotency_key_with_another_request_is_refused_not_lost(live, photo):
    other = jpeg_with_every_kind_of_metadata()
    assert submit(live, photo, key="k-1").status_code == 201
    another_photo = submit(live, other, key="k-1")
    assert another_photo.status_code == 422
    assert "already used with another photo" in another_photo.json()["error"]
    another_label = submit(live, photo, key="k-1", label="Printer")
    assert another_label.status_code == 422 and "label 'Battery'" in another_label.json()["error"]
    assert submit(live, photo, key="k-1").json()["replayed"] is True  # the true retry
    assert submit(live, other, key="k-2").status_code == 201  # the other photo, its own key
    assert live.submissions() == 2


def test_the_same_photo_sent_as_something_else_is_kept_for_reviewers(live, photo):
    """Someone picks the wrong kind, then sends the same photo again with the right one (or two
    people disagree). The photo is stored once, with its first answer; the later answers were
    dropped, so the correction was lost and reviewers never saw the disagreement. Now each
    other answer is kept beside it, counted, and shown in the API and the console; the sender
    still learns nothing of the first submission."""
    from server.admin.tokens import create_admin_token

    first = submit(live, photo, key="a", label="Battery")
    assert first.status_code == 201
    again = [
        submit(live, photo, key="b", label="Mouse"),
        submit(live, photo, key="c", label="mouse"),  # the same kind, spelt otherwise
        submit(live, photo, key="d", label="", proposed_name="computer  MOUSE"),
        submit(live, photo, key="e", label="Battery"),  # the stored answer: nothing to add
    ]
    assert [r.status_code for r in again] == [200, 200, 200, 200]
    assert all(r.json() == {"duplicate": True, "received": True} for r in again)
    assert live.submissions() == 1
    with live.app.app_context():
        auth = {"Authorization": f"Bearer {create_admin_token()}"}
    [row] = requests.get(f"{live.url}/api/admin/submissions", headers=auth,
                         timeout=30).json()["submissions"]  # fmt: skip
    assert row["label"] == "Battery"
    assert row["other_answers"] == [
        {"label": "Mouse", "proposed_name": None, "count": 2},
        {"label": None, "proposed_name": "computer MOUSE", "count": 1},
    ]
    # Eight people at once, the same other answer: each is counted, none is refused.
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: submit(live, photo, key=f"k{i}", label="Keyboard"),
                                range(8)))  # fmt: skip
    assert [r.status_code for r in answers] == [200] * 8
    [row] = requests.get(f"{live.url}/api/admin/submissions", headers=auth,
                         timeout=30).json()["submissions"]  # fmt: skip
    assert row["other_answers"][2] == {"label": "Keyboard", "proposed_name": None, "count": 8}
    jar, _ = console_session(live)
    page = requests.get(f"{live.url}/admin/submissions", cookies=jar, timeout=30).text
    assert (
        'Also sent as</dt><dd class="other-answers">Mouse (2 times), Something else: '
        "computer MOUSE, Keyboard (8 times)</dd>" in page
    )


@pytest.mark.parametrize(
    "version", ["x" * 10_000, "starter-1\x00", "starter\n1", "starter-1\n", "../../etc", "ünïcode"]
)
def test_model_version_must_be_a_version_name(live, photo, version):
    response = submit(live, photo, key="v", model_version=version)
    assert response.status_code == 422 and "model_version" in response.json()["error"]
    assert len(response.text) < 500  # the answer does not echo 10 KB back
    assert live.submissions() == 0


def test_something_else_is_stored_as_a_proposal_and_grouped_by_name(live, photo, ewaste_zip):
    import zipfile

    import requests

    from server.admin.tokens import create_admin_token

    with zipfile.ZipFile(ewaste_zip) as archive:
        others = [archive.read(f"modified-dataset/test/Mouse/Mouse_{n}.jpg") for n in (106, 128)]
    sent = [
        submit(live, photo, key="p1", label="", proposed_name="  Phone   charger "),
        submit(live, others[0], key="p2", label="", proposed_name="PHONE CHARGER"),
        submit(live, others[1], key="p3", label="", proposed_name="cable"),
    ]
    assert [r.status_code for r in sent] == [201, 201, 201], [r.text for r in sent]
    assert sent[0].json()["submission"]["proposed_name"] == "Phone charger"
    assert sent[0].json()["submission"]["label"] is None
    with live.app.app_context():
        auth = {"Authorization": f"Bearer {create_admin_token()}"}
    groups = requests.get(f"{live.url}/api/admin/proposals", headers=auth, timeout=30).json()
    assert [(p["key"], p["count"]) for p in groups["proposals"]] == [
        ("phone charger", 2), ("cable", 1),
    ]  # fmt: skip
    mapped = requests.post(f"{live.url}/api/admin/proposals/settle", headers=auth, timeout=30,
                           json={"key": "phone charger", "action": "map", "label": "Mobile"})  # fmt: skip
    assert mapped.json() == {"updated": 2}
    rows = requests.get(f"{live.url}/api/admin/submissions", headers=auth, timeout=30).json()
    assert sorted((r["label"] or "", r["status"]) for r in rows["submissions"]) == [
        ("", "pending"), ("Mobile", "accepted"), ("Mobile", "accepted"),
    ]  # fmt: skip


def test_something_else_named_like_a_kind_is_a_correction_to_that_kind(live, photo):
    """A kind's own name typed under "Something else" (any case or spacing; or queued offline
    before the admin made that kind) needs no admin to map it."""
    response = submit(live, photo, key="k1", label="", proposed_name="  washing   MACHINE ")
    assert response.status_code == 201, response.text
    stored = response.json()["submission"]
    assert (stored["label"], stored["proposed_name"]) == ("Washing Machine", None)


def test_a_kind_and_a_name_of_ones_own_together_are_refused(live, photo):
    """Which did the person mean? Storing either would silently lose the other."""
    response = submit(live, photo, key="both", label="Battery", proposed_name="power bank")
    assert response.status_code == 422 and "not both" in response.json()["error"]
    assert "field" not in response.json()
    assert live.submissions() == 0 and live.stored_files() == []


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty"),
        ("x" * 61, "longer than 60"),
        ("cable\x00", "control or invisible"),
        ("1234 !!!", "no letters"),
        ("B\u0430ttery", "mixes alphabets"),  # a Cyrillic а posing as a Latin a
        ("B\u03b1ttery", "mixes alphabets"),  # a Greek α
        ("ケーブルкабель", "mixes alphabets"),  # Katakana and Cyrillic are not written together
    ],
)
def test_odd_proposed_names_are_refused_and_nothing_is_stored(live, photo, name, why):
    """The refusal names the field at fault, so the app can open the name again to be put
    right; the other refusals name none (test_a_kind_and_a_name_of_ones_own_together...)."""
    response = submit(live, photo, key="odd", label="", proposed_name=name)
    assert response.status_code == 422 and why in response.json()["error"]
    assert response.json()["field"] == "proposed_name"
    assert live.submissions() == 0 and live.stored_files() == []


@pytest.mark.parametrize(
    "name",
    [
        "モバイルバッテリー",  # Katakana with the long-vowel mark (a mobile battery)
        "携帯電話の充電器",  # Han and Hiragana (a phone charger)
        "USBケーブル",  # Latin and Katakana
        "전자레인지",  # Hangul (a microwave)
        "ʻukulele",  # an okina: a modifier letter that Hawaiian writes with Latin
    ],
)
def test_names_in_scripts_written_together_are_proposals(live, photo, name):
    """Japanese writes Han, Hiragana and Katakana together, often with Latin: such a name is a
    name, not mischief (all but Hangul were refused as mixing alphabets)."""
    response = submit(live, photo, key="script", label="", proposed_name=name)
    assert response.status_code == 201, response.text
    assert response.json()["submission"]["proposed_name"] == name


def test_a_flood_of_proposals_is_limited(live, photo, ewaste_zip):
    live.app.config["BINBOT_LIMITS"] = {**live.app.config["BINBOT_LIMITS"],
                                        "proposals per day": (2, 86400)}  # fmt: skip
    answers = [submit(live, photo, key=f"f{i}", label="", proposed_name=f"thing {i}").status_code
               for i in range(3)]  # fmt: skip
    assert answers[2] == 429
