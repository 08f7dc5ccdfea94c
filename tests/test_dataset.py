"""Dataset discovery, validation and splitting, on files made here and on the real zip."""

from __future__ import annotations

import os
import struct
import zipfile
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import IPHONE_PHOTO, solid_jpeg
from PIL import Image

from binbot.errors import BinbotError
from training.dataset import load_dataset
from training.dataset_zip import MAX_IMAGE_BYTES

COLOURS = {"Red thing": (220, 30, 30), "Green thing": (30, 200, 40), "Blue thing": (30, 40, 220)}


def make_flat(root: Path, per_class: int = 10) -> Path:
    for c, (name, colour) in enumerate(COLOURS.items()):
        for i in range(per_class):
            solid_jpeg(root / name / f"img {i}.jpg", colour, noise_seed=100 * c + i)
    return root


def test_real_zip_split_layout_under_wrapper_folder(ewaste_zip, tmp_path):
    dataset = load_dataset(ewaste_zip, cache_dir=tmp_path)
    assert dataset.layout.startswith("split folders under modified-dataset")
    assert "Washing Machine" in dataset.classes
    assert dataset.classes == sorted(dataset.classes)
    counts = dataset.counts()
    assert {s: sum(v.values()) for s, v in counts.items()} == {
        "train": 2400,
        "val": 300,
        "test": 300,
    }
    assert set(counts["test"].values()) == {30}
    # The folder a record came from decides its label, including a class name with a space.
    for r in dataset.records:
        assert Path(r.relpath).parts[-2] == dataset.classes[r.label]
        assert Path(r.relpath).parts[-3] == r.split


def test_validation_folder_alias_and_zip_of_folder(tmp_path):
    root = tmp_path / "wrapped" / "data"
    for split in ("train", "validation", "test"):
        for c, (name, colour) in enumerate(COLOURS.items()):
            for i in range(3):
                solid_jpeg(root / split / name / f"{i}.jpg", colour, noise_seed=c * 10 + i)
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted((tmp_path / "wrapped").rglob("*.jpg")):
            z.write(f, f.relative_to(tmp_path / "wrapped").as_posix())
    dataset = load_dataset(archive, cache_dir=tmp_path / "cache")
    assert [len(dataset.split(s)) for s in ("train", "val", "test")] == [9, 9, 9]


@pytest.mark.parametrize(
    ("given", "carved"),
    [(("train", "val"), ("test",)), (("train", "test"), ("val",))],
)
def test_a_missing_validation_or_test_split_is_carved_from_train(tmp_path, given, carved):
    """Datasets often come as train/ and val/ only: the missing split is taken from train,
    stratified and seeded, with a warning, so that training can evaluate and conversion can
    verify; the splits that were given are kept as they are."""
    for split in given:
        for c, (name, colour) in enumerate(COLOURS.items()):
            for i in range(20 if split == "train" else 4):
                solid_jpeg(
                    tmp_path / "d" / split / name / f"{i}.jpg", colour, noise_seed=c * 99 + i
                )
    dataset = load_dataset(tmp_path / "d")
    per_split = Counter((r.split, r.label) for r in dataset.records)
    for label in range(3):
        assert per_split["train", label] == 20 - 2 * len(carved)
        for split in ("val", "test"):
            assert per_split[split, label] == (2 if split in carved else 4)
    for r in dataset.records:
        folder = Path(r.relpath).parts[-3]
        assert folder == r.split or (folder == "train" and r.split in carved), r
    names = {"val": "validation", "test": "test"}
    for split in carved:
        assert f"{names[split]} carved from train" in dataset.layout
        assert any(
            w.startswith(f"no {names[split]} split: 6 train images") for w in dataset.warnings
        )
    assert {r.relpath: r.split for r in load_dataset(tmp_path / "d").records} == {
        r.relpath: r.split for r in dataset.records
    }


@pytest.mark.parametrize(
    "folders",
    [("Train", "Valid", "Test"), ("training", "validation", "testing"), ("train", "valid")],
)
def test_split_folders_as_exporters_name_them(tmp_path, folders):
    """Roboflow writes train/valid/test, other sets training/testing: read as splits. Before,
    train/ and valid/ alone were taken for two classes named 'train' and 'valid'."""
    for folder, split in zip(folders, ("train", "val", "test"), strict=False):
        for c, (name, colour) in enumerate(COLOURS.items()):
            for i in range(10 if split == "train" else 3):
                solid_jpeg(
                    tmp_path / "d" / folder / name / f"{i}.jpg", colour, noise_seed=c * 9 + i
                )
    solid_jpeg(tmp_path / "d" / "extra" / "Red thing" / "0.jpg", (220, 30, 30))
    dataset = load_dataset(tmp_path / "d")
    assert dataset.classes == sorted(COLOURS)
    counts = {split: len(dataset.split(split)) for split in ("train", "val", "test")}
    assert counts == ({"train": 30, "val": 9, "test": 9} if len(folders) == 3
                      else {"train": 27, "val": 9, "test": 3})  # fmt: skip
    assert "folder 'extra' beside the split folders is not a split" in " ".join(dataset.warnings)


def test_flat_folders_split_stratified_and_seeded(tmp_path):
    root = make_flat(tmp_path / "flat", per_class=20)
    first = load_dataset(root, seed=7)
    again = load_dataset(root, seed=7)
    other = load_dataset(root, seed=8)
    assert "split here" in first.layout
    per_split = Counter((r.split, r.label) for r in first.records)
    for label in range(3):
        assert (per_split["train", label], per_split["val", label], per_split["test", label]) == (
            16,
            2,
            2,
        )
    assignment = {r.relpath: r.split for r in first.records}
    assert assignment == {r.relpath: r.split for r in again.records}
    assert assignment != {r.relpath: r.split for r in other.records}


def _ewaste_photos(ewaste_zip, kind: str, count: int) -> list[bytes]:
    with zipfile.ZipFile(ewaste_zip) as archive:
        names = sorted(n for n in archive.namelist() if f"/train/{kind}/" in n)[:count]
        return [archive.read(n) for n in names]


def _copies(photo: bytes) -> list[Image.Image]:
    """What a phone's burst or a re-shared photo looks like: the same picture re-encoded,
    resized, a little brighter, cropped by a few pixels."""
    import io

    from PIL import ImageEnhance

    original = Image.open(io.BytesIO(photo)).convert("RGB")
    w, h = original.size
    return [
        original,
        original.resize((w * 4 // 5, h * 4 // 5)),
        ImageEnhance.Brightness(original).enhance(1.06),
        original.crop((2, 2, w - 2, h - 2)),
    ]


@pytest.mark.parametrize("layout", ["flat", "train and val given"])
def test_copies_of_one_picture_stay_in_one_split_when_the_split_is_made_here(
    ewaste_zip, tmp_path, layout
):
    """A user's own folders hold bursts and re-shared copies. Spread over train and test, a
    copy in test is recognised, not classified: the test figure (and the validation that
    picks the best epoch) flatters the model. Copies stay together; the split sizes hold."""
    root = tmp_path / "d"
    holder = {"flat": root, "train and val given": root / "train"}[layout]
    for kind in ("Mouse", "Keyboard"):
        for i, photo in enumerate(_ewaste_photos(ewaste_zip, kind, 40)):
            (holder / kind).mkdir(parents=True, exist_ok=True)
            (holder / kind / f"{i:02}.jpg").write_bytes(photo)
    burst, pair = _ewaste_photos(ewaste_zip, "Battery", 2)
    (holder / "Mouse").mkdir(exist_ok=True)
    for i, copy in enumerate(_copies(burst)):
        copy.save(holder / "Mouse" / f"burst {i}.jpg", quality=80 + i)
    for i, copy in enumerate(_copies(pair)[:2]):
        copy.save(holder / "Keyboard" / f"pair {i}.jpg", quality=85)
    if layout != "flat":
        for kind in ("Mouse", "Keyboard"):
            for i, photo in enumerate(_ewaste_photos(ewaste_zip, kind, 45)[40:]):
                (root / "val" / kind).mkdir(parents=True, exist_ok=True)
                (root / "val" / kind / f"{i}.jpg").write_bytes(photo)

    pair_outside_train = 0
    for seed in range(8):
        dataset = load_dataset(root, seed=seed)
        split_of = {Path(r.relpath).name: r.split for r in dataset.records}
        assert len({split_of[f"burst {i}.jpg"] for i in range(4)}) == 1, (seed, split_of)
        assert split_of["pair 0.jpg"] == split_of["pair 1.jpg"], seed
        pair_outside_train += split_of["pair 0.jpg"] != "train"
        per_split = Counter((r.split, dataset.classes[r.label]) for r in dataset.records)
        made_here = ("val", "test") if layout == "flat" else ("test",)
        for split in made_here:  # 10% of 44 and of 42: 4 each
            assert (per_split[split, "Mouse"], per_split[split, "Keyboard"]) == (4, 4), seed
        assert "6 photos in 2 groups of copies, each kept in one split" in dataset.layout
    assert pair_outside_train  # a group that fits goes to val or test like any photo


def test_a_run_is_scored_on_the_split_it_was_trained_with(tmp_path):
    """Flat folders are split here, by seed: a run trained with --seed 7 and then evaluated
    or converted from its folder was scored on the default seed's split, whose test photos it
    had mostly trained on."""
    import json

    from training.run_dir import CONFIG_FILE, Run, dataset_of_run

    root = make_flat(tmp_path / "flat", per_class=20)
    run = Run(tmp_path / "run", model=None, labels=sorted(COLOURS))
    run.path.mkdir()
    (run.path / CONFIG_FILE).write_text(json.dumps({"seed": 7}))
    trained_on = load_dataset(root, seed=7)
    scored_on = dataset_of_run(run, root)
    assert scored_on.split_fingerprint("test") == trained_on.split_fingerprint("test")
    assert scored_on.fingerprint == trained_on.fingerprint


def test_bad_files_are_reported_and_skipped(tmp_path):
    root = make_flat(tmp_path / "flat")
    (root / "Red thing" / "notes.jpg").write_text("not a picture")
    good = (root / "Blue thing" / "img 0.jpg").read_bytes()
    (root / "Blue thing" / "cut.jpg").write_bytes(good[: len(good) // 2])
    (root / "Green thing" / "empty.png").write_bytes(b"")
    # An iPhone's default photo format: an image, only not one BinBot reads.
    (root / "Green thing" / "IMG_0042.HEIC").write_bytes(IPHONE_PHOTO.read_bytes())
    # Reading a named pipe waited for ever, and a link to /dev/zero never ended.
    os.mkfifo(root / "Red thing" / "pipe.jpg")
    (root / "Blue thing" / "zero.jpg").symlink_to("/dev/zero")
    dataset = load_dataset(root)
    reasons = {Path(b.relpath).name: b.reason for b in dataset.bad_files}
    assert set(reasons) == {
        "notes.jpg", "cut.jpg", "empty.png", "IMG_0042.HEIC", "pipe.jpg", "zero.jpg"
    }  # fmt: skip
    not_a_file = "not a regular file (a named pipe, socket or device)"
    assert reasons["pipe.jpg"] == reasons["zero.jpg"] == not_a_file
    assert reasons["notes.jpg"] == "not an image"
    assert reasons["IMG_0042.HEIC"] == (
        "a HEIC photo, which BinBot cannot read: export or share it as JPEG"
    )
    assert "does not decode" in reasons["cut.jpg"]
    assert len(dataset.records) == 30


def test_folders_that_are_one_kind_to_the_app_are_warned_about(tmp_path):
    root = make_flat(tmp_path / "flat")
    for name, seed in (("red thing ", 500), ("ＲＥＤ thing", 600)):  # a space; full-width letters
        for i in range(10):
            solid_jpeg(root / name / f"{i}.jpg", (90, 40, 40), noise_seed=seed + i)
    dataset = load_dataset(root)
    assert len(dataset.classes) == 5  # still trained as folders, as the user laid them out
    [warning] = [w for w in dataset.warnings if "differ only" in w]
    assert all(repr(n) in warning for n in ("Red thing", "red thing ", "ＲＥＤ thing"))
    assert "one kind to the app and the server" in warning
    assert not [w for w in load_dataset(make_flat(tmp_path / "plain")).warnings if "differ" in w]


def test_thin_evaluation_splits_are_warned_about_in_one_line_each(tmp_path):
    """Red has 3 validation photos, Green 1 and Blue none: one line names the missing class,
    one the thin ones with their counts (a line a class buried other warnings)."""
    root = tmp_path / "set"
    for c, (name, colour) in enumerate(COLOURS.items()):
        for split, count in (("train", 4), ("val", (3, 1, 0)[c]), ("test", 10)):
            for i in range(count):
                solid_jpeg(root / split / name / f"{i}.jpg", colour, noise_seed=100 * c + i)
    warnings = load_dataset(root).warnings
    assert "no images in the val split for 1 class: 'Blue thing'" in warnings
    assert (
        "fewer than 10 images in the val split for 2 classes (their figures there are rough): "
        "'Green thing' (1), 'Red thing' (3)"
    ) in warnings
    assert not [w for w in warnings if "test split" in w]


def _zip_folder(folder: Path, path: Path) -> zipfile.ZipFile:
    archive = zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED)
    for file in sorted(folder.rglob("*.jpg")):
        archive.write(file, file.relative_to(folder.parent).as_posix())
    return archive


def _forge_declared_size(path: Path, member: str, size: int) -> None:
    """Rewrite the uncompressed size that a zip's central directory gives ``member``."""
    data = bytearray(path.read_bytes())
    header = data.index(b"PK\x01\x02")
    name = member.encode()
    while data[header + 46 : header + 46 + len(name)] != name:  # central directory entries
        header = data.index(b"PK\x01\x02", header + 4)
    data[header + 24 : header + 28] = size.to_bytes(4, "little")
    path.write_bytes(bytes(data))


def _lock(path: Path, member: str) -> None:
    """Mark ``member`` as stored with a password (general purpose flag bit 0), as an archiver's
    "encrypt" option does, in its local header and its central directory entry."""
    data, name = bytearray(path.read_bytes()), member.encode()
    for signature, flags, name_at in ((b"PK\x03\x04", 6, 30), (b"PK\x01\x02", 8, 46)):
        header = data.index(signature)
        while data[header + name_at : header + name_at + len(name)] != name:
            header = data.index(signature, header + 4)
        data[header + flags] |= 0x1
    path.write_bytes(bytes(data))


def test_a_password_protected_zip_is_named_as_one(tmp_path):
    """zipfile's own message named a whole ZipInfo object for every file, under the error
    for the first class left empty."""
    root = make_flat(tmp_path / "photos")
    path = tmp_path / "photos.zip"
    _zip_folder(root, path).close()
    members = zipfile.ZipFile(path).namelist()
    _lock(path, members[0])
    dataset = load_dataset(path, cache_dir=tmp_path / "cache")
    assert [(b.relpath, b.reason) for b in dataset.bad_files] == [
        (members[0], "password-protected in the zip")
    ]
    locked = tmp_path / "locked.zip"
    locked.write_bytes(path.read_bytes())
    for member in members[1:]:
        _lock(locked, member)
    with pytest.raises(BinbotError) as refused:
        load_dataset(locked, cache_dir=tmp_path / "cache")
    assert str(refused.value) == (
        f"{locked} is password-protected, which BinBot cannot read: extract it and give the "
        "folder, or zip it again without a password"
    )


def test_a_zip_bomb_is_skipped_without_filling_the_disk_or_the_memory(tmp_path):
    """A member that expands past the size limit, or past the size it declares, is listed as
    skipped under its class; the other photos are used, and a second read (from the extracted
    cache) reports the same."""
    root = make_flat(tmp_path / "photos")
    path = tmp_path / "photos.zip"
    with _zip_folder(root, path) as archive:
        with archive.open("photos/Red thing/bomb.jpg", "w", force_zip64=True) as bomb:
            for _ in range(MAX_IMAGE_BYTES // (1 << 20) + 1):
                bomb.write(bytes(1 << 20))
        archive.writestr("photos/Blue thing/liar.jpg", bytes(5 << 20))
    assert path.stat().st_size < 1 << 20
    _forge_declared_size(path, "photos/Blue thing/liar.jpg", 1000)
    for _ in range(2):  # extracted, then read back from the cache
        dataset = load_dataset(path, cache_dir=tmp_path / "cache")
        reasons = {b.relpath: b.reason for b in dataset.bad_files}
        assert set(reasons) == {"photos/Red thing/bomb.jpg", "photos/Blue thing/liar.jpg"}
        assert reasons["photos/Red thing/bomb.jpg"].startswith("too large (101 MB")
        assert "cannot be extracted" in reasons["photos/Blue thing/liar.jpg"]
        assert len(dataset.records) == 30
    extracted = sum(f.stat().st_size for f in (tmp_path / "cache").rglob("*") if f.is_file())
    assert extracted < 1 << 20


def test_class_folders_named_in_any_language_keep_their_names_from_any_archiver(tmp_path):
    """Zip flags UTF-8 names, but archivers do not all say what they wrote: Info-ZIP's ``zip``
    on Linux writes UTF-8 unflagged, Windows writes its code page, and some archivers add the
    UTF-8 name in an extra field. Each class keeps its real name (a Linux zip of
    ``Kühlschrank/`` gave the class ``K├╝hlschrank``)."""
    stored = {  # placeholder of the same length -> the bytes an archiver stores
        "Kuuhlschrank": "Kühlschrank".encode(),  # Info-ZIP on Linux: UTF-8, no flag
        "Glxhbirne": "Glühbirne".encode("cp437"),  # Windows (code page 437), no flag
    }
    path = tmp_path / "photos.zip"
    photo = tmp_path / "photo.jpg"
    with zipfile.ZipFile(path, "w") as archive:
        for c, folder in enumerate([*stored, "charger"]):
            for i in range(10):
                solid_jpeg(photo, (40 * c, 90, 200 - 40 * c), noise_seed=10 * c + i)
                info = zipfile.ZipInfo(f"photos/{folder}/img {i}.jpg")
                if folder == "charger":  # an ASCII name, and the real one in the extra field
                    name = f"photos/充電器/img {i}.jpg".encode()
                    crc = zlib.crc32(info.filename.encode())
                    info.extra = struct.pack("<HHBI", 0x7075, 5 + len(name), 1, crc) + name
                archive.writestr(info, photo.read_bytes())
    data = path.read_bytes()
    for placeholder, raw in stored.items():
        data = data.replace(f"photos/{placeholder}/".encode(), b"photos/" + raw + b"/")
    path.write_bytes(data)

    dataset = load_dataset(path, cache_dir=tmp_path / "cache")
    assert sorted(dataset.classes) == sorted(["Kühlschrank", "Glühbirne", "充電器"])
    assert len(dataset.records) == 30


def test_a_huge_file_in_a_folder_is_skipped_unread(tmp_path):
    root = make_flat(tmp_path / "flat")
    with (root / "Green thing" / "huge.jpg").open("wb") as huge:
        huge.truncate(MAX_IMAGE_BYTES + 1)  # sparse: no disk used
    dataset = load_dataset(root)
    assert [(b.relpath, b.reason[:10]) for b in dataset.bad_files] == [
        ("Green thing/huge.jpg", "too large ")
    ]
    assert len(dataset.records) == 30


def test_fingerprint_changes_with_content(tmp_path):
    root = make_flat(tmp_path / "flat")
    before = load_dataset(root).fingerprint
    solid_jpeg(root / "Red thing" / "img 0.jpg", (200, 0, 0), noise_seed=999)
    assert load_dataset(root).fingerprint != before


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "missing", "dataset not found"),
        (lambda p: _zip_with(p, {"readme.txt": b"hello"}), "no class folders"),
        (lambda p: _write(p / "notzip.zip", b"garbage"), "not a zip file"),
        (lambda p: _empty_class(p), r"class 'Empty' has no usable images.*Empty/readme.txt"),
        (lambda p: _one_class(p), r"only one class folder found .* \('Photos'\)"),
        (lambda p: _loose_photos(p), "its files lie directly in it"),
        (lambda p: _zip_with(p, {"../evil/x.jpg": b"x", "a/b.jpg": b"y"}), "outside the dataset"),
    ],
)
def test_bad_datasets_raise_clear_errors(tmp_path, make, message):
    with pytest.raises(BinbotError, match=message):
        load_dataset(make(tmp_path), cache_dir=tmp_path / "cache")


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _zip_with(folder: Path, members: dict[str, bytes]) -> Path:
    path = folder / "set.zip"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _one_class(folder: Path) -> Path:
    for i in range(3):
        solid_jpeg(folder / "mine" / "Photos" / f"{i}.jpg", (0, 0, 200), noise_seed=i)
    return folder / "mine"


def _loose_photos(folder: Path) -> Path:
    for i in range(3):
        solid_jpeg(folder / "mine" / f"{i}.jpg", (0, 0, 200), noise_seed=i)
    return folder / "mine"


def _empty_class(folder: Path) -> Path:
    root = make_flat(folder / "flat")
    (root / "Empty").mkdir()
    (root / "Empty" / "readme.txt").write_text("nothing here")
    return root


def test_phone_photos_with_several_pictures_are_used_as_their_first_picture(tmp_path):
    """Many phone cameras write MPO files: a JPEG with a second picture (a preview, a depth
    map) after the first. Pillow calls them MPO; they are JPEGs, and the photo is the first."""
    import tensorflow as tf

    from training.preprocess import load_for_model

    root = make_flat(tmp_path / "flat")
    photo = root / "Red thing" / "phone.jpg"
    first = Image.new("RGB", (64, 48), COLOURS["Red thing"])
    first.save(photo, "MPO", save_all=True, append_images=[Image.new("RGB", (32, 24), (0, 0, 255))])
    with Image.open(photo) as opened:
        assert opened.format == "MPO"

    dataset = load_dataset(root)
    assert not dataset.bad_files
    (record,) = [r for r in dataset.records if r.path.name == "phone.jpg"]
    pixels = load_for_model(tf.constant(str(record.path)), tf.constant(1)).numpy()
    assert np.abs(pixels.reshape(-1, 3).mean(axis=0) - COLOURS["Red thing"]).max() < 4


def test_webp_photos_are_used_and_decoded_as_pillow_and_browsers_decode_them(tmp_path):
    """Photos saved from the web are often WebP. TensorFlow has no WebP decoder; they were
    skipped as unsupported. Now they train like any photo, decoded by libwebp as in browsers."""
    import tensorflow as tf

    from training.preprocess import fit_to_model_input, load_for_model

    root = make_flat(tmp_path / "flat")
    rng = np.random.default_rng(5)
    pixels = np.clip(rng.normal(128, 60, (300, 400, 3)), 0, 255).astype(np.uint8)
    photo = root / "Green thing" / "from the web.webp"
    Image.fromarray(pixels).save(photo, "WEBP", quality=80)

    dataset = load_dataset(root)
    assert not dataset.bad_files
    (record,) = [r for r in dataset.records if r.path.name == photo.name]
    assert (record.width, record.height) == (400, 300)
    loaded = load_for_model(tf.constant(str(record.path)), tf.constant(1)).numpy()
    with Image.open(photo) as opened:
        expected = fit_to_model_input(tf.constant(np.asarray(opened.convert("RGB")))).numpy()
    np.testing.assert_array_equal(loaded, expected)
