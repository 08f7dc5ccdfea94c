"""The `binbot` command: help for every subcommand, and one-line errors for bad input."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from conftest import STARTER, WEIGHTS_FILE, binbot, grey_card, solid_jpeg

from binbot.columns import columns


@pytest.mark.parametrize(
    "args",
    [[], ["dataset"], ["dataset", "inspect"], ["train"], ["evaluate"], ["predict"], ["convert"]],
)
def test_every_subcommand_has_help(args):
    result = binbot(*args, "--help")
    assert result.returncode == 0
    assert "usage: binbot" in result.stdout


def assert_one_line_error(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("binbot: error:")]
    assert len(lines) == 1 and expected in lines[0], result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["serve", "--port", "99999"], "argument --port: must be from 1 to 65535, not 99999"),
        (["serve", "--port", "-5"], "argument --port: must be from 1 to 65535, not -5"),
        (["serve", "--port", "0"], "argument --port: must be from 1 to 65535, not 0"),
        (["serve", "--https-port", "70000"], "argument --https-port: must be from 1 to 65535"),
        (["serve", "--workers", "0"], "argument --workers: must be from 1 to 64, not 0"),
        (["serve", "--threads", "0"], "argument --threads: must be from 1 to 64, not 0"),
        (["serve", "--retrain-workers", "-1"], "argument --retrain-workers: must be from 0"),
        (["serve", "--port", "eighty"], "argument --port: not a whole number: 'eighty'"),
        (["dataset", "inspect", "x.zip", "--seed", "-1"], "argument --seed: must be from 0"),
        (["dataset", "inspect", "x.zip", "--near-threshold", "-3"], "must be from 0 to 64"),
        (["dataset", "inspect", "x.zip", "--min-correlation", "7"], "must be from -1.0 to 1.0"),
        (["dataset", "inspect", "x.zip", "--min-correlation", "nan"], "not nan"),
        (["token", "revoke", "9" * 30], "argument id: must be from 1 to"),
    ],
)
def test_numbers_out_of_range_are_refused_before_anything_starts(args, expected):
    """Each of these reached the code that used it: a port past 65535 was a socket's traceback,
    -5 was called an unknown --host, --workers 0 listened with no process to answer, --threads 0
    failed in gunicorn, a seed of -1 was numpy's traceback and a token number past 64 bits
    SQLite's; a negative threshold or a correlation of 7 silently found no duplicates."""
    assert_one_line_error(binbot(*args), expected)


def test_missing_dataset_path(tmp_path):
    assert_one_line_error(
        binbot("dataset", "inspect", str(tmp_path / "nope.zip")), "dataset not found"
    )


def test_zip_without_class_folders(tmp_path):
    archive = tmp_path / "flat.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("readme.txt", "no images here")
    result = binbot("dataset", "inspect", str(archive), "--out", str(tmp_path / "r"))
    assert_one_line_error(result, "no class folders")


def test_empty_class_is_refused_by_train(tmp_path):
    for i in range(5):
        solid_jpeg(tmp_path / "data" / "Full" / f"{i}.jpg", (200, 0, 0), noise_seed=i)
    (tmp_path / "data" / "Empty").mkdir()
    result = binbot("train", str(tmp_path / "data"), "--out", str(tmp_path / "run"))
    assert_one_line_error(result, "class 'Empty' has no usable images")


def test_a_schedule_without_epochs_is_refused_before_any_work(tmp_path):
    """Both phases at 0 epochs used to read the dataset and compute its features, then fail."""
    for i in range(5):
        for name, colour in (("Red", (200, 0, 0)), ("Blue", (0, 0, 200))):
            solid_jpeg(tmp_path / "data" / name / f"{i}.jpg", colour, noise_seed=i)
    run = tmp_path / "run"
    result = binbot("train", str(tmp_path / "data"), "--out", str(run), "--head-epochs", "0",
                    "--fine-tune-epochs", "0")  # fmt: skip
    assert_one_line_error(result, "head epochs and fine-tune epochs are both 0: no epoch would run")
    assert "Reading dataset" not in result.stdout and not run.exists()


def test_runs_and_reports_are_never_written_into_their_dataset_or_among_other_files(
    tmp_path,
):
    for i in range(5):
        for name, colour in (("Red", (200, 0, 0)), ("Blue", (0, 0, 200))):
            solid_jpeg(tmp_path / "data" / name / f"{i}.jpg", colour, noise_seed=i)
    inside = tmp_path / "data" / "run"
    result = binbot("train", str(tmp_path / "data"), "--out", str(inside))
    assert_one_line_error(result, "is inside the dataset folder")
    assert not inside.exists()  # it used to be made, and the dataset then had an empty class
    (tmp_path / "documents").mkdir()
    (tmp_path / "documents" / "letter.txt").write_text("mine")
    for extra in ([], ["--overwrite"]):
        result = binbot("train", str(tmp_path / "data"), "--out", str(tmp_path / "documents"),
                        *extra)  # fmt: skip
        assert_one_line_error(result, "holds other files and is not a BinBot run")
    assert [p.name for p in (tmp_path / "documents").iterdir()] == ["letter.txt"]
    # Inspecting the folder one is in, with the default --out reports/dataset.
    result = binbot("dataset", "inspect", ".", cwd=tmp_path / "data")
    assert_one_line_error(result, "is inside the dataset folder")
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["Blue", "Red"]


def test_a_run_being_written_is_not_replaced_by_a_second_one(tmp_path, small_ewaste, trained_run):
    """A second `binbot train --out run`, started while the first one trained, replaced the
    first one's run when it ended, with no --overwrite asked for. It is refused at once, as is
    a conversion into that folder, and the first run ends whole."""
    # A fine-tuning epoch keeps it going for some 15 s after its staging folder appears.
    first = subprocess.Popen(
        [sys.executable, "-m", "binbot", "train", str(small_ewaste), "--out", "run",
         "--head-epochs", "2", "--fine-tune-epochs", "1", "--fine-tune-layers", "10"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not list(tmp_path.glob(".run-*")):  # its staging folder: the training is on
            assert first.poll() is None and time.monotonic() < deadline, first.stdout.read()
            time.sleep(0.1)
        second = binbot("train", str(small_ewaste), "--out", "run", cwd=tmp_path)
        assert_one_line_error(second, "run is being written by another binbot right now")
        second = binbot("convert", str(trained_run), "--out", "run", cwd=tmp_path)
        assert_one_line_error(second, "run is being written by another binbot right now")
        output, _ = first.communicate(timeout=300)
    finally:
        first.kill()
    assert first.returncode == 0, output[-2000:]
    assert "head      epoch  2/2" in output
    assert (tmp_path / "run" / "model.keras").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no staging folder left
    assert binbot("train", str(small_ewaste), "--out", "run", cwd=tmp_path).returncode == 2


def test_the_folder_one_is_in_is_never_replaced_by_a_run_or_a_bundle(tmp_path, trained_run):
    """A run and a bundle replace their folder whole once written: `--out .` failed at the
    end ("Device or resource busy", after the whole training) and left a stray folder."""
    here = tmp_path / "here"
    (here / "inner").mkdir(parents=True)
    for folder, out in ((here, "."), (here / "inner", "..")):
        result = binbot("train", str(trained_run / "nowhere"), "--out", out, cwd=folder)
        assert_one_line_error(result, "is the folder you are in, or holds it")
        result = binbot("convert", str(trained_run), "--out", out, cwd=folder)
        assert_one_line_error(result, "is the folder you are in, or holds it")
    assert [p.name for p in here.iterdir()] == ["inner"]
    assert list((here / "inner").iterdir()) == []


def test_a_mistake_is_refused_before_tensorflow_is_loaded(tmp_path):
    """A mistyped folder is said at once: TensorFlow's import alone takes 5-10 s here, and a
    refused convert used to take 12 s. A `tensorflow` that cannot be imported stands in for
    the real one: each command must refuse its arguments without reaching it."""
    fake = tmp_path / "fake"
    for name in ("tensorflow", "keras"):
        (fake / name).mkdir(parents=True)
        (fake / name / "__init__.py").write_text(f"raise ImportError('{name} was loaded')\n")
    env = {**os.environ, "PYTHONPATH": str(fake)}
    run = tmp_path / "runs" / "first"
    run.mkdir(parents=True)
    (run / "labels.json").write_text('["a", "b"]')
    (run / "model.keras").write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip
    (tmp_path / "photo.jpg").write_bytes(b"")
    (tmp_path / "photos").mkdir()
    refused = {
        ("train", str(tmp_path / "no-dataset"), "--out", str(tmp_path / "r")): "dataset not found",
        ("train", str(tmp_path / "photos"), "--out", str(run.parent)): "holds other files",
        ("train", str(tmp_path / "photos"), "--out", str(tmp_path / "r"),
         "--weights", str(tmp_path / "nowhere.h5")): "--weights",
        # A warm start that names no model, rather than minutes of training from ImageNet.
        ("train", str(tmp_path / "photos"), "--out", str(tmp_path / "r"),
         "--warm-start", str(tmp_path / "nowhere")): "--warm-start",
        ("train", str(tmp_path / "photos"), "--out", str(tmp_path / "r"),
         "--warm-start", str(STARTER)): "is a bundle without its Keras model",
        ("train", str(tmp_path / "photos"), "--out", str(tmp_path / "r"),
         "--warm-start", str(tmp_path / "photos")): "holds no model",
        ("convert", str(tmp_path / "nowhere"), "--out", str(tmp_path / "b")): "run folder not found",
        ("convert", str(run), "--out", str(run.parent)): "is the run folder",
        ("convert", str(run), "--out", str(tmp_path / "b"), "--version", "a b"): "not a version name",
        ("convert", str(run), "--out", str(tmp_path / "b"), "--dataset", "gone"): "dataset not found",
        ("evaluate", str(tmp_path)): "not a BinBot run folder",
        ("evaluate", str(run), "gone"): "dataset not found",
        ("predict", str(tmp_path / "nowhere"), str(tmp_path / "photo.jpg")): "run folder not found",
        ("predict", str(run), str(tmp_path / "phot.jpg")): "image not found: ",
    }  # fmt: skip
    for args, expected in refused.items():
        assert_one_line_error(binbot(*args, env=env), expected)
    # The stand-in is what a request that gets past the checks meets.
    result = binbot("evaluate", str(run), env=env)
    assert "was loaded" in result.stderr


def test_convert_overwrites_a_bundle_and_nothing_else(tmp_path):
    """The bundle replaces its folder whole: `--out runs --overwrite` deleted every run."""
    run = tmp_path / "runs" / "first"
    run.mkdir(parents=True)
    for name in ("labels.json", "config.json", "dataset.json", "model.keras"):
        (run / name).write_text("{}")
    (tmp_path / "runs" / "notes.txt").write_text("mine")
    for out in (tmp_path / "runs", run, tmp_path):
        result = binbot("convert", str(run), "--out", str(out), "--overwrite")
        assert_one_line_error(result, "is the run folder")
    (tmp_path / "documents").mkdir()
    (tmp_path / "documents" / "letter.txt").write_text("mine")
    result = binbot("convert", str(run), "--out", str(tmp_path / "documents"), "--overwrite")
    assert_one_line_error(result, "is not a bundle (it has no manifest.json)")
    assert (tmp_path / "documents" / "letter.txt").read_text() == "mine"
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["first", "notes.txt"]
    assert len(list(run.iterdir())) == 4
    # A version that cannot name a folder: refused before the conversion's work, not after.
    for version in ("../../evil", "v1\n"):
        result = binbot("convert", str(run), "--out", str(tmp_path / "b"), "--version", version)
        assert_one_line_error(result, f"--version {version!r} is not a version name")


def test_backbone_weights_that_cannot_be_had_are_one_line(tmp_path, small_ewaste):
    """Keras' traceback ended a training on a machine without the ImageNet weights cached (no
    model hub here; a proxy that refuses stands in for that, so the test cannot hang on a
    network), and for a --weights file that is not the backbone's."""
    env = {
        **os.environ,
        "KERAS_HOME": str(tmp_path / "keras"),
        "https_proxy": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "BINBOT_CACHE_DIR": str(tmp_path / "cache"),
    }
    quick = ("--head-epochs", "1", "--fine-tune-epochs", "0", "--skip-evaluation")
    result = binbot("train", str(small_ewaste), "--out", str(tmp_path / "a"), *quick, env=env)
    assert_one_line_error(result, "the ImageNet weights of mobilenet_v2 are not in")
    assert str(tmp_path / "keras" / "models") in result.stderr
    not_weights = tmp_path / "other.h5"
    not_weights.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))  # an HDF5 signature, nothing more
    result = binbot("train", str(small_ewaste), "--out", str(tmp_path / "b"), *quick,
                    "--weights", str(not_weights), env=env)  # fmt: skip
    assert_one_line_error(result, f"--weights {not_weights} cannot be loaded into mobilenet_v2")
    cached = tmp_path / "keras" / "models" / WEIGHTS_FILE  # a download cut short, say
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(
        (Path(os.environ["KERAS_HOME"]) / "models" / WEIGHTS_FILE).read_bytes()[:9999]
    )
    result = binbot("train", str(small_ewaste), "--out", str(tmp_path / "c"), *quick, env=env)
    assert_one_line_error(result, "the ImageNet weights of mobilenet_v2 in ")
    assert "cannot be read" in result.stderr


def test_run_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "run").mkdir()
    result = binbot("predict", str(tmp_path / "run"), str(tmp_path / "x.jpg"))
    # predict takes a bundle too, and says so.
    assert_one_line_error(result, "not a BinBot run folder or model bundle")
    (tmp_path / "run" / "model.keras").write_bytes(b"not a zip")
    (tmp_path / "run" / "labels.json").write_text('["a", "b"]')
    result = binbot("evaluate", str(tmp_path / "run"))
    assert_one_line_error(result, "is not a Keras model file")
    assert result.stderr.count("\n") == 1, "TensorFlow start-up noise leaked: " + result.stderr


def test_predict_runs_the_starter_in_tfjs_like_the_app(ewaste_zip, tmp_path, copy_tree):
    """The starter in git is the TF.js bundle only (its keras/ folder is not committed), so
    predict runs it in Node as phones run it: the photos get the app's verdicts, and a file
    that is not a photo gets its own error line without stopping the others."""
    starter = copy_tree(STARTER, tmp_path / "starter")
    with zipfile.ZipFile(ewaste_zip) as archive:
        microwave = tmp_path / "microwave.jpg"
        microwave.write_bytes(archive.read("modified-dataset/test/Microwave/Microwave_152.jpg"))
    grey = grey_card(tmp_path)
    (tmp_path / "notes.txt").write_text("not a photo")
    photos = [microwave, tmp_path / "notes.txt", grey]
    result = binbot("predict", str(starter), *map(str, photos))
    assert result.returncode == 2, result.stderr  # one file was not a photo
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith(f"{microwave}: known: Microwave ")
    assert lines[1].startswith(f"{grey}: not recognised: ")
    assert result.stderr.strip() == f"binbot: error: {tmp_path / 'notes.txt'}: not an image"


def test_predict_refuses_a_damaged_bundle_in_one_line(tmp_path, copy_tree):
    starter = copy_tree(STARTER, tmp_path / "starter")
    (starter / "group1-shard1of1.bin").unlink()
    solid_jpeg(tmp_path / "x.jpg", (128, 128, 128))
    result = binbot("predict", str(starter), str(tmp_path / "x.jpg"))
    assert_one_line_error(result, "is not a usable model bundle: group1-shard1of1.bin: missing")


def test_inspect_reports_bad_files_and_writes_report(tmp_path):
    for c, colour in enumerate(((200, 0, 0), (0, 0, 200))):
        for i in range(6):
            solid_jpeg(tmp_path / "data" / f"Class {c}" / f"{i}.jpg", colour, noise_seed=10 * c + i)
    (tmp_path / "data" / "Class 0" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    result = binbot("dataset", "inspect", str(tmp_path / "data"), "--out", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr
    assert "undecodable files (skipped): 1" in result.stdout
    assert "Class 0/broken.jpg" in result.stdout
    for name in ("report.json", "samples.png", "class_balance.png", "cross_split_duplicates.png"):
        assert (Path(tmp_path / "r") / name).is_file()


def test_inspect_sums_up_sizes_and_duplicates_in_words(tmp_path):
    """The summary printed Python dictionaries: "width {'min': 64, 'median': 64.0, ...}",
    "by splits: {'train': 87}"."""
    for c, colour in enumerate(((200, 0, 0), (0, 0, 200))):
        for i in range(6):
            solid_jpeg(tmp_path / "data" / f"Class {c}" / f"{i}.jpg", colour, noise_seed=10 * c + i)
    solid_jpeg(tmp_path / "data" / "Class 1" / "large.jpg", (0, 200, 0), size=(100, 80))
    copy = tmp_path / "data" / "Class 0" / "0 copy.jpg"
    copy.write_bytes((tmp_path / "data" / "Class 0" / "0.jpg").read_bytes())
    result = binbot("dataset", "inspect", str(tmp_path / "data"), "--out", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr
    assert "{" not in result.stdout and "\n\n" not in result.stdout
    assert ("image sizes: width 64-100 (median 64), height 48-80 (median 48) px; "
            "2 distinct sizes, the most common 64x48 (13), 100x80 (1)") in result.stdout  # fmt: skip
    duplicates = re.search(r"duplicates: \d+ pairs \(1 byte-identical, \d+ near-identical\); "
                           r"(within|train|val)[^\n]*", result.stdout)  # fmt: skip
    assert duplicates, result.stdout


def test_inspect_lines_up_its_table_for_class_names_in_any_script(tmp_path):
    """A Japanese class name takes two terminal columns a character: padded by characters, the
    counts after it stood out of line. Short names ("a") left the header's "class" too wide."""
    names = ("a", "日本語", "Café")
    for c, name in enumerate(names):
        for i in range(4):
            solid_jpeg(
                tmp_path / "data" / name / f"{i}.jpg", (60 * c, 90, 200), noise_seed=10 * c + i
            )
    result = binbot("dataset", "inspect", str(tmp_path / "data"), "--out", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.strip().startswith("# class"))
    table = lines[header : header + 1 + len(names)]
    ends = {columns(line) for line in table}
    assert len(ends) == 1, "\n".join(table)  # every row ends in the same terminal column


def test_inspect_lists_the_first_bad_files_and_counts_the_rest(tmp_path):
    for c, colour in enumerate(((200, 0, 0), (0, 0, 200))):
        for i in range(6):
            solid_jpeg(tmp_path / "data" / f"Class {c}" / f"{i}.jpg", colour, noise_seed=10 * c + i)
    for i in range(45):
        (tmp_path / "data" / "Class 1" / f"notes {i:02d}.txt").write_text("not a photo")
    result = binbot("dataset", "inspect", str(tmp_path / "data"), "--out", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr
    assert "undecodable files (skipped): 45" in result.stdout
    assert "Class 1/notes 19.txt: not an image" in result.stdout
    assert "Class 1/notes 20.txt" not in result.stdout
    assert "... and 25 more, all listed in report.json" in result.stdout


def test_an_output_folder_that_cannot_be_made_is_one_line_not_a_traceback(tmp_path):
    for c, colour in enumerate(((200, 0, 0), (0, 0, 200))):
        for i in range(4):
            solid_jpeg(tmp_path / "data" / f"Class {c}" / f"{i}.jpg", colour, noise_seed=10 * c + i)
    (tmp_path / "a file").write_text("not a folder")
    out = tmp_path / "a file" / "report"
    result = binbot("dataset", "inspect", str(tmp_path / "data"), "--out", str(out))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == f"binbot: error: {out}: Not a directory"


def test_tensorflow_and_tensorflowjs_import_together():
    """The pinned set exists for this: a newer ydf breaks `import tensorflowjs` via protobuf."""
    result = subprocess.run(
        [sys.executable, "-c", "import tensorflow, tensorflowjs; print(tensorflowjs.__version__)"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "4.22.0"
