"""The real pipeline end to end: real MobileNetV2 weights, real images, short training."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import binbot, grey_card
from PIL import Image

from training.model import backbone_of
from training.run_dir import load_run
from training.train import TrainConfig, train

pytestmark = pytest.mark.slow


def test_train_writes_a_complete_run_folder(trained_run, small_ewaste):
    for name in (
        "model.keras",
        "labels.json",
        "config.json",
        "dataset.json",
        "history.json",
        "training_curves.png",
        "evaluation/metrics.json",
        "evaluation/confusion_matrix.png",
        "evaluation/misclassified.png",
        "evaluation/report.md",
    ):
        assert (trained_run / name).is_file(), name
    labels = json.loads((trained_run / "labels.json").read_text())
    assert labels == sorted(p.name for p in (small_ewaste / "train").iterdir())
    config = json.loads((trained_run / "config.json").read_text())
    assert config["backbone"] == "mobilenet_v2" and config["weights"] == "imagenet"
    assert config["batch_size"] == 16 and config["resize"]["half_pixel_centers"] is True
    dataset = json.loads((trained_run / "dataset.json").read_text())
    assert dataset["fingerprint"].startswith("sha256:")
    history = json.loads((trained_run / "history.json").read_text())
    assert [h["phase"] for h in history] == ["head"] * 20 + ["fine-tune"]
    metrics = json.loads((trained_run / "evaluation/metrics.json").read_text())
    assert metrics["test_images"] == 30
    assert sum(map(sum, metrics["confusion_matrix"])) == 30
    # ImageNet features separate these classes after a short training on 80 images.
    assert metrics["test_accuracy"] >= 0.5
    report = (trained_run / "evaluation/report.md").read_text()
    assert "![confusion matrix](confusion_matrix.png)" in report


def test_model_takes_raw_pixels_and_backbone_stays_in_inference_mode(trained_run):
    run = load_run(trained_run)
    model = run.model
    assert model.input_shape == (None, 224, 224, 3)
    assert model.get_layer("scale_pixels").get_config()["scale"] == pytest.approx(1 / 127.5)
    batch = np.random.default_rng(0).uniform(0, 255, (2, 224, 224, 3)).astype("float32")
    # BatchNorm in inference mode and dropout off: training=True changes nothing but dropout,
    # so with the head's dropout active outputs differ, but the backbone's features do not.
    embedding = __import__("keras").Model(model.input, model.get_layer("embedding").output)
    np.testing.assert_allclose(
        embedding(batch, training=True), embedding(batch, training=False), atol=1e-5
    )


def test_a_warm_start_keeps_what_the_earlier_model_learned_and_adds_new_kinds(
    trained_run, tmp_path
):
    """Fast retraining starts from the published model: the kinds it knows answer as before,
    a new kind gets a fresh output row, a kind no longer in the label set is dropped."""
    from training.config import TrainConfig
    from training.model import build_model
    from training.warm_start import warm_start

    earlier = load_run(trained_run)
    labels = [*earlier.labels[1:], "Laptop"]  # the first kind dropped, one new
    config = TrainConfig()

    def fresh_model():
        return build_model(
            len(labels), weights=None, dense_units=config.dense_units, dropout=config.dropout
        )

    model, lines = fresh_model(), []
    new_row = np.array(model.get_layer("probabilities").get_weights()[0])[:, -1]
    assert warm_start(model, labels, trained_run, lines.append)
    assert lines == [
        f"Starting from the model in {trained_run}: {len(labels) - 1} classes carried over, "
        "new: Laptop"
    ]
    photos = np.random.default_rng(1).uniform(0, 255, (4, 224, 224, 3)).astype("float32")
    logits = {}
    for name, net, names in (("new", model, labels), ("old", earlier.model, earlier.labels)):
        head = net.get_layer("probabilities")
        pooled = __import__("keras").Model(net.input, net.get_layer("embedding").output)(photos)
        kernel, bias = head.get_weights()
        logits[name] = {label: np.asarray(pooled) @ kernel[:, i] + bias[i]
                        for i, label in enumerate(names)}  # fmt: skip
    for label in labels[:-1]:  # the kinds both know: the same answer to the same photo
        np.testing.assert_allclose(logits["new"][label], logits["old"][label], rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(model.get_layer("probabilities").get_weights()[0][:, -1], new_row)

    # A corrupt earlier model is no traceback: the training is told, and starts from ImageNet.
    broken = tmp_path / "broken"
    shutil.copytree(trained_run, broken)
    (broken / "model.keras").write_bytes(b"not a zip")
    lines.clear()
    assert not warm_start(fresh_model(), labels, broken, lines.append)
    assert lines == [
        f"WARNING: cannot start from {broken} ({broken / 'model.keras'} is not a Keras model "
        "file (corrupt or not a .keras zip)): training from ImageNet"
    ]


def test_a_warm_start_that_cannot_be_used_still_trains_the_new_head_first(
    trained_run, small_ewaste, tmp_path
):
    """A schedule without the head-only phase (a retraining from a live model that knows every
    kind) assumes the head it starts from; when that model cannot be read, the head starts from
    scratch and is trained on its own first, not fine-tuned from random with the backbone."""
    broken = tmp_path / "broken"
    shutil.copytree(trained_run, broken)
    (broken / "model.keras").write_bytes(b"not a zip")
    result = binbot(
        "train", str(small_ewaste), "--out", str(tmp_path / "run"), "--warm-start", str(broken),
        "--head-epochs", "0", "--fine-tune-epochs", "1", "--fine-tune-layers", "10",
        "--batch-size", "16", "--limit-per-class", "3",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "training from ImageNet\n  so the new head is trained first: 30 head epochs" in (
        result.stdout
    )
    assert "head      epoch 30/30" in result.stdout and "fine-tune epoch  1/1" in result.stdout


def test_evaluate_and_predict_commands(trained_run, small_ewaste):
    result = binbot("evaluate", str(trained_run), str(small_ewaste))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Test accuracy" in result.stdout
    image = next((small_ewaste / "test" / "Washing Machine").iterdir())
    result = binbot("predict", str(trained_run), str(image))
    assert result.returncode == 0, result.stderr[-2000:]
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith(str(image))
    probabilities = [float(part.rstrip("%")) for part in line.split() if part.endswith("%")]
    assert len(probabilities) == 3 and probabilities == sorted(probabilities, reverse=True)


def test_predict_reports_bad_images_and_still_answers_for_good_ones(
    trained_run, small_ewaste, tmp_path
):
    good = next((small_ewaste / "test" / "Mouse").iterdir())
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(good.read_bytes()[:300])
    pipe = tmp_path / "pipe.jpg"
    os.mkfifo(pipe)  # reading it would wait for a writer for ever
    result = binbot(
        "predict", str(trained_run), str(text), str(good), str(truncated), str(pipe)
    )  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 3 and "not an image" in errors[0] and "does not decode" in errors[1]
    assert errors[2].endswith("pipe.jpg: not a regular file (a named pipe, socket or device)")
    assert result.stdout.strip().startswith(str(good))


def test_predict_classifies_a_folder_of_photos(trained_run, small_ewaste, tmp_path):
    """A folder stands for the photos in it (a phone's export, a dataset's class folder);
    it used to be 'image not found'. --top takes only a sensible count."""
    folder = small_ewaste / "test" / "Mouse"
    photos = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    result = binbot("predict", str(trained_run), str(folder), "--top", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()[-len(photos) :]
    assert [line.split(": ")[0] for line in lines] == [str(p) for p in photos]
    assert all(line.count("%") == 2 for line in lines), lines
    for top in ("0", "-2"):
        refused = binbot("predict", str(trained_run), str(folder), "--top", top)
        assert refused.returncode == 2 and "must be from 1 to 1000" in refused.stderr


def test_predict_prints_each_answer_as_soon_as_it_is_known(trained_run, small_ewaste, tmp_path):
    """A phone's export of hundreds of photos printed nothing until the last was done; each
    answer now comes as it is known, also through a pipe (`binbot predict ... | tee`)."""
    import subprocess
    import sys
    import time

    photos = sorted((small_ewaste / "test").glob("*/*"))
    folder = tmp_path / "export"
    folder.mkdir()
    # Enough work after the first answer to tell streaming from not, and less output than a
    # pipe's buffer (8 kB), which a program that does not flush would hand over only at exit.
    for i, photo in enumerate((photos * 2)[:40]):
        (folder / f"{i:02d}{photo.suffix}").write_bytes(photo.read_bytes())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # as in a shell
    process = subprocess.Popen(
        [sys.executable, "-m", "binbot", "predict", str(trained_run), str(folder)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    arrivals = []  # when each line reached the reader
    try:
        for line in process.stdout:
            arrivals.append((time.monotonic(), line))
        assert process.wait(timeout=300) == 0, process.stderr.read()[-2000:]
    finally:
        process.kill()
    lines = [line for _, line in arrivals]
    assert len(lines) == 40 and len("".join(lines)) < 8192
    assert lines[0].startswith(str(folder / "00")) and "%" in lines[0]
    # 39 photos of work between the first answer and the last (about 35 ms each here); held
    # back, all 40 lines come in one write at the end.
    spread = arrivals[-1][0] - arrivals[0][0]
    assert spread > 0.2, f"all answers came at once ({spread:.3f} s apart)"


def test_predict_says_not_recognised_where_the_app_would(trained_run, small_ewaste, tmp_path):
    """The command line gives the app's verdict (the run's open-set score): a photo like the
    ones it was taught is not rejected, a grey card is "not recognised" whatever it ranks."""
    taught = next((small_ewaste / "train" / "Keyboard").iterdir())
    grey = grey_card(tmp_path)
    result = binbot("predict", str(trained_run), str(taught), str(grey))
    assert result.returncode == 0, result.stderr[-2000:]
    verdicts = [line.split(": ")[1] for line in result.stdout.strip().splitlines()[-2:]]
    assert verdicts[0] in ("known", "not sure") and verdicts[1] == "not recognised", verdicts


def pattern_jpeg(path: Path, pattern: str, seed: int, size=(160, 120)) -> Path:
    """Stripes or a checkerboard in random colours: texture is what ImageNet features see.
    Saved in the format the file name says (JPEG unless it names another)."""
    rng = np.random.default_rng(seed)
    height, width = size[1], size[0]
    period = int(rng.integers(10, 18))
    ys, xs = np.indices((height, width)) + rng.integers(0, period, 2)[:, None, None]
    if pattern == "horizontal":
        mask = (ys // period) % 2
    elif pattern == "vertical":
        mask = (xs // period) % 2
    else:
        mask = ((ys // period) + (xs // period)) % 2
    light, dark = rng.integers(150, 256, 3), rng.integers(0, 100, 3)
    pixels = np.where(mask[..., None] == 1, light, dark) + rng.normal(0, 8, (height, width, 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    if path.suffix == ".jpg":
        image.save(path, "JPEG", quality=92)
    else:
        image.save(path)
    return path


def test_labels_follow_class_folders_through_training_and_prediction(tmp_path, imagenet_weights):
    """Three texture classes, created in an order that differs from their sorted order:
    a model that learned them must name each one right through train, save, load, predict.
    The photos come in every format a dataset gathered from phones and downloads holds."""
    patterns = {"Zebra stripes": "vertical", "Apple board": "checker", "Mango lines": "horizontal"}
    formats = ("jpg", "png", "webp", "gif", "bmp")
    seed = 0
    for name, pattern in patterns.items():
        for split, n in (("train", 16), ("val", 4), ("test", 4)):
            for i in range(n):
                seed += 1
                suffix = formats[i % len(formats)]
                pattern_jpeg(tmp_path / "data" / split / name / f"{i}.{suffix}", pattern, seed)
    config = TrainConfig(head_epochs=40, fine_tune_epochs=0, batch_size=16)
    train(tmp_path / "data", tmp_path / "run", config, log=lambda _: None)
    run = load_run(tmp_path / "run")
    assert run.labels == ["Apple board", "Mango lines", "Zebra stripes"]
    dataset = json.loads((tmp_path / "run" / "dataset.json").read_text())
    assert dataset["skipped_files"] == [] and dataset["used_for_training"]["train"] == 48
    from training.evaluate import evaluate_run

    evaluate_run(tmp_path / "run", tmp_path / "data", log=lambda _: None)
    metrics = json.loads((tmp_path / "run" / "evaluation" / "metrics.json").read_text())
    assert metrics["test_images"] == 12 and metrics["test_accuracy"] == 1.0, metrics["per_class"]
    from training.predict import predict_files

    # New images, larger and not square: the crop and resize apply too.
    probes = {
        name: pattern_jpeg(tmp_path / f"probe {name}.jpg", pattern, 1000 + i, size=(320, 200))
        for i, (name, pattern) in enumerate(patterns.items())
    }
    results = list(predict_files(run, list(probes.values())))
    assert [r.top[0][0] for r in results] == list(probes)
    # Most of the probability on the right name, for every probe (label smoothing keeps the
    # training targets at 0.93, so confidences stay below that).
    assert min(r.top[0][1] for r in results) > 0.5, [r.top for r in results]


def test_efficientnet_backbone_builds_and_trains_without_weights(tmp_path, small_ewaste):
    config = TrainConfig(
        backbone="efficientnet_v2_b0",
        weights=None,
        head_epochs=1,
        fine_tune_epochs=0,
        batch_size=16,
        limit_per_class=2,
    )
    result = train(small_ewaste, tmp_path / "effnet", config, log=lambda _: None)
    assert len(result.history) == 1
    run = load_run(tmp_path / "effnet")
    assert "efficientnet" in backbone_of(run.model).name


def test_a_fine_tuning_that_diverges_gives_back_the_head_only_model(tmp_path, small_ewaste):
    """A learning rate far too high for fine-tuning used to end the run with a model that
    answered one class for everything (10% on e-waste's validation photos). The run now keeps
    the weights from before fine-tuning and says so."""
    out = tmp_path / "run"
    result = binbot(
        "train", str(small_ewaste), "--out", str(out), "--head-epochs", "20",
        "--fine-tune-epochs", "2", "--fine-tune-layers", "10", "--fine-tune-lr", "0.5",
        "--batch-size", "16",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "WARNING: fine-tuning left the model worse on validation" in result.stdout
    history = json.loads((out / "history.json").read_text())
    assert history[-1]["phase"] == "fine-tune" and history[-1]["val_accuracy"] < 0.5
    # The summary describes the model written, not the last epoch's (it said val_acc 0.1).
    kept = re.search(r"the model kept: val_loss [\d.]+, val_acc ([\d.]+)", result.stdout)
    last_head = [h for h in history if h["phase"] == "head"][-1]
    assert float(kept[1]) == pytest.approx(last_head["val_accuracy"], abs=1e-4), kept[0]
    metrics = json.loads((out / "evaluation/metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.5, metrics["test_accuracy"]
