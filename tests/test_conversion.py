"""Conversion end to end: Keras run -> TF.js graph model, verified in Node (wasm) against Keras."""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import binbot, grey_card
from PIL import Image

from binbot.errors import BinbotError
from conversion.convert import Candidate, choose
from conversion.manifest import check_bundle, read_manifest, schema_problems
from conversion.quantize import quantize_per_channel
from conversion.verify import Verification, mcnemar_p

pytestmark = pytest.mark.slow


def test_manifest_describes_a_loadable_bundle(small_bundle, trained_run):
    manifest = read_manifest(small_bundle)
    assert schema_problems(manifest) == []  # conversion checked it too, before writing it
    assert manifest["manifest_version"] == 2
    assert manifest["input"]["resize"]["recipe"] == "center-square-box-bilinear"
    assert manifest["input"]["resize"]["version"] == 1
    assert manifest["format"] == "tfjs-graph-model"
    assert manifest["labels"] == json.loads((trained_run / "labels.json").read_text())
    assert manifest["input"]["name"] == "image" and manifest["input"]["range"] == [0, 255]
    assert manifest["input"]["shape"] == [None, 224, 224, 3]
    assert manifest["input"]["resize"]["half_pixel_centers"] is True
    assert set(manifest["outputs"]) == {"probabilities", "embedding"}
    assert manifest["quantization"]["mode"] == "none"
    assert manifest["quantization"]["chosen_by"] == "user"
    metrics = manifest["metrics"]
    assert metrics["test_images"] == 30
    assert set(metrics["per_class_recall"]) == set(manifest["labels"])
    assert metrics["test_accuracy"] == pytest.approx(metrics["keras_test_accuracy"])
    assert manifest["verification"]["top1_agreement"] == 1.0
    assert manifest["verification"]["max_probability_difference"] < 1e-3
    assert manifest["training"]["dataset_fingerprint"].startswith("sha256:")
    assert manifest["created_at"].endswith("Z") and manifest["version"]


def test_predict_on_a_bundle_answers_like_its_run(
    small_bundle, trained_run, small_ewaste, tmp_path
):
    """`binbot predict` takes what conversion wrote, with the run's verdicts (its open-set score
    travels in the bundle): a taught photo and a grey card alike."""
    grey = grey_card(tmp_path)
    photos = [str(next((small_ewaste / "train" / "Keyboard").iterdir())), str(grey)]
    from_bundle = binbot("predict", str(small_bundle), *photos)
    from_run = binbot("predict", str(trained_run), *photos)
    assert from_bundle.returncode == 0, from_bundle.stderr[-2000:]
    assert from_bundle.stdout.strip().splitlines()[-2:] == from_run.stdout.strip().splitlines()[-2:]
    assert from_bundle.stdout.strip().splitlines()[-1].split(": ")[1] == "not recognised"


def test_predict_on_a_bundle_without_its_keras_model_answers_in_tfjs_like_keras(
    small_bundle, trained_run, small_ewaste, tmp_path, copy_tree
):
    """Without keras/, predict runs the bundle's graph in Node: the same kinds, in the same
    order, and the same verdicts as the Keras model it was converted from (float32 here)."""
    tfjs_only = copy_tree(small_bundle, tmp_path / "bundle")
    shutil.rmtree(tfjs_only / "keras")
    photos = [
        str(p)
        for c in ("Keyboard", "Printer", "Mouse")
        for p in sorted((small_ewaste / "test" / c).iterdir())
    ]
    photos.append(str(grey_card(tmp_path)))
    in_tfjs = binbot("predict", "bundle", *photos, cwd=tmp_path)  # a path relative to the user's
    in_keras = binbot("predict", str(trained_run), *photos)
    assert in_tfjs.returncode == 0, in_tfjs.stderr[-2000:]

    def kinds_and_verdicts(stdout: str) -> list[list[str]]:
        # "<path>: <verdict>: <kind> <p>%  <kind> <p>%  ..." without the percentages
        return [
            [
                line.split(": ")[1],
                *[kind.rsplit(" ", 1)[0] for kind in line.split(": ", 2)[2].split("  ")],
            ]
            for line in stdout.strip().splitlines()
        ]

    assert len(in_tfjs.stdout.strip().splitlines()) == len(photos)
    assert kinds_and_verdicts(in_tfjs.stdout) == kinds_and_verdicts(in_keras.stdout)


def test_every_manifest_file_exists_with_its_size_and_hash(small_bundle, tmp_path):
    manifest = read_manifest(small_bundle)
    names = [f["path"] for f in manifest["files"]]
    assert names[0] == "model.json" and any(n.endswith(".bin") for n in names)
    files = sorted(p.name for p in small_bundle.iterdir() if p.is_file())
    assert files == sorted([*names, "manifest.json"])
    # Beside the bundle, not in it: the Keras model to start a retraining from (never served).
    assert sorted(p.name for p in (small_bundle / "keras").iterdir()) == [
        "labels.json",
        "model.keras",
    ]
    assert check_bundle(small_bundle) == []
    assert manifest["bundle_bytes"] == sum((small_bundle / n).stat().st_size for n in names)
    # A bundle damaged after the fact is caught by the same check.
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for path in small_bundle.iterdir():
        if path.is_file():
            (damaged / path.name).write_bytes(path.read_bytes())
    shard = damaged / names[1]
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF
    shard.write_bytes(bytes(data))
    problems = check_bundle(damaged)
    assert any("sha256 differs" in p for p in problems)


def test_corrupted_shard_makes_convert_fail_loudly(trained_run, small_ewaste, tmp_path):
    """A converter that exits 0 but writes damaged weights must not produce a bundle."""
    wrapper_dir = tmp_path / "bin"
    wrapper_dir.mkdir()
    real = Path(sys.executable).parent / "tensorflowjs_converter"
    wrapper = wrapper_dir / "tensorflowjs_converter"
    wrapper.write_text(
        f"""#!{sys.executable}
import pathlib, subprocess, sys
done = subprocess.run([{str(real)!r}, *sys.argv[1:]])
out = pathlib.Path(sys.argv[-1])
shard = sorted(out.glob("*.bin"))[0]
data = bytearray(shard.read_bytes())
for i in range(0, len(data), 7):
    data[i] = 0x7F
shard.write_bytes(bytes(data))
sys.exit(done.returncode)
"""
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    env = os.environ | {"PATH": f"{wrapper_dir}{os.pathsep}{os.environ['PATH']}"}
    out = tmp_path / "model"
    result = binbot("convert", str(trained_run), "--out", str(out), "--quantize", "none",
                    "--dataset", str(small_ewaste), env=env)  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "conversion failed verification" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (out / "manifest.json").exists()
    assert not out.exists() or not any(out.iterdir())


def test_wrong_preprocessing_in_javascript_is_caught(
    small_bundle, trained_run, small_ewaste, tmp_path
):
    """If the JavaScript side resized differently from training, verification must fail."""
    from conversion.verify import PREPROCESS_MODULE, keras_reference, verify
    from training.dataset import load_dataset
    from training.run_dir import load_run

    # Crop the top square instead of the centre one, and hand the model BGR instead of RGB
    # (both loops: photos under 448 pixels are copied, larger ones box-averaged).
    source = PREPROCESS_MODULE.read_text()
    for right, wrong in [
        ("const top = Math.floor((height - crop) / 2);", "const top = 0;"),
        ("out[o] = data[i];", "out[o] = data[i + 2];"),
        ("out[o + 2] = data[i + 2];", "out[o + 2] = data[i];"),
        ("red += data[i];", "red += data[i + 2];"),
        ("blue += data[i + 2];", "blue += data[i];"),
    ]:
        assert source.count(right) == 1, f"the mutation {right!r} no longer applies"
        source = source.replace(right, wrong)
    broken = tmp_path / "preprocess.js"
    broken.write_text(source)
    run = load_run(trained_run)
    dataset = load_dataset(small_ewaste)
    reference = keras_reference(run.model, dataset.split("test"))
    signature = json.loads((small_bundle / "model.json").read_text())["signature"]
    good = verify(small_bundle, reference, run.labels, signature)
    bad = verify(small_bundle, reference, run.labels, signature, preprocess_module=broken)
    assert good.failures() == []
    assert bad.failures(), "a BGR, off-centre input went unnoticed"
    assert bad.max_probability_difference > good.max_probability_difference


def test_per_channel_quantization_keeps_every_channel_within_half_a_step():
    rng = np.random.default_rng(0)
    # Channels whose ranges differ by 1000x: per-tensor uint8 would zero the small ones.
    kernel = rng.normal(size=(3, 3, 16, 8)).astype(np.float32) * np.logspace(-3, 0, 8)
    codes, span, low = quantize_per_channel(kernel, "last")
    assert codes.dtype == np.uint8 and span.shape == (1, 1, 1, 8)
    rebuilt = codes / 255 * span + low
    assert np.all(np.abs(rebuilt - kernel) <= span / 255 / 2 + 1e-7)
    depthwise = rng.normal(size=(3, 3, 32, 1)).astype(np.float32) * np.logspace(-3, 0, 32)[:, None]
    codes, span, low = quantize_per_channel(depthwise, "depthwise")
    assert span.shape == (1, 1, 32, 1)
    assert np.all(np.abs(codes / 255 * span + low - depthwise) <= span / 255 / 2 + 1e-7)


def _candidate(name: str, size: int, lost: int = 0, gained: int = 0) -> Candidate:
    accuracy = 0.95 + (gained - lost) / 300
    verification = Verification(
        300, 1.0, 0.0, 0.0, 1.0, 0.95, accuracy, {}, 1.0, 1.0, "wasm", lost, gained
    )
    return Candidate(name, Path("."), {}, size, verification)


def test_default_quantization_is_the_smallest_that_loses_nothing_beyond_noise():
    none = _candidate("none", 14_000_000)
    half = _candidate("float16", 7_000_000, lost=1)
    small = _candidate("uint8", 4_000_000, lost=5)  # 5 lost, none gained: p = 0.031
    assert mcnemar_p(5, 0) == pytest.approx(1 / 32)
    assert choose([small, half, none]).quantization == "float16"
    noisy = _candidate("uint8", 4_000_000, lost=3)  # 3 lost, none gained: p = 0.125, noise
    assert choose([noisy, half, none]).quantization == "uint8"
    churn = _candidate("uint8", 4_000_000, lost=9, gained=4)  # p = 0.13: flips both ways
    assert choose([churn, half, none]).quantization == "uint8"
    worse = _candidate("float16", 7_000_000, lost=12, gained=1)
    assert choose([worse, none]).quantization == "none"
    flipping = _candidate("uint8", 4_000_000)
    flipping.verification.top1_agreement = 0.90  # accurate overall, but disagrees with Keras
    assert choose([flipping, half, none]).quantization == "float16"
    # The log says why a smaller one was passed over (it listed it, then chose the next).
    assert flipping.shortcomings() == ["top-1 agreement with Keras 90.00% < 98%"]
    assert small.shortcomings() == [
        "loses accuracy against Keras (lost 5, gained 0 test images, p = 0.031 < 0.05)"
    ]
    assert noisy.shortcomings() == [] and half.shortcomings() == []


def test_the_converted_graph_runs_each_convolution_as_one_fused_op(small_bundle):
    """Batch norms and paddings folded before export: no depthwise convolution after a separate
    Pad or followed by a separate multiply, add and Relu6 (extra passes over the largest
    activations of a block)."""
    graph = json.loads((small_bundle / "model.json").read_text())["modelTopology"]["node"]
    ops = [node["op"] for node in graph]
    assert "FusedDepthwiseConv2dNative" in ops
    assert "DepthwiseConv2dNative" not in ops and "Relu6" not in ops
    assert "Pad" not in ops  # the stride-2 convolutions pad themselves
    assert ops.count("Mul") <= 1  # only the input's scaling to [-1, 1] is left


def test_a_graph_op_the_web_app_does_not_carry_fails_verification(
    small_bundle, small_ewaste, tmp_path
):
    """The app ships TF.js with only the kernels its models use (webclient/tfjs-lean.mjs), and
    verification runs that same runtime: a model with any other op (here a sigmoid head, which
    full TF.js runs) is refused at conversion, by name, instead of failing on a phone."""
    from conversion.verify import run_tfjs
    from training.dataset import load_dataset

    doctored = tmp_path / "model"
    doctored.mkdir()
    for path in small_bundle.iterdir():
        if path.is_file():
            (doctored / path.name).write_bytes(path.read_bytes())
    model = json.loads((small_bundle / "model.json").read_text())
    heads = [node for node in model["modelTopology"]["node"] if node["op"] == "Softmax"]
    assert len(heads) == 1
    heads[0]["op"] = "Sigmoid"
    (doctored / "model.json").write_text(json.dumps(model))
    photos = load_dataset(small_ewaste).split("test")[:2]

    assert len(run_tfjs(small_bundle, photos, model["signature"])["probabilities"]) == 2
    with pytest.raises(BinbotError, match="Sigmoid"):
        run_tfjs(doctored, photos, model["signature"])


def test_a_graph_converted_before_folding_still_runs_in_the_web_apps_runtime(
    trained_run, small_ewaste, tmp_path, monkeypatch
):
    """Versions converted before conversion/fold.py (separate Pad, Relu6, Mul and AddV2 ops)
    stay in registries and can be rolled back to: the app's lean TF.js must still run them,
    and answer like Keras."""
    import conversion.export as export
    from conversion.convert import convert_saved_model
    from conversion.verify import keras_reference, run_tfjs
    from training.dataset import load_dataset
    from training.run_dir import load_run

    monkeypatch.setattr(export, "folded_for_export", lambda model: (model, 0))
    run = load_run(trained_run)
    saved, graph = tmp_path / "saved", tmp_path / "unfolded"
    export.export_saved_model(run.model, saved)
    convert_saved_model(saved, graph)
    model = json.loads((graph / "model.json").read_text())
    ops = {node["op"] for node in model["modelTopology"]["node"]}
    assert {"Pad", "Relu6"} <= ops  # the unfused forms
    photos = load_dataset(small_ewaste).split("test")[:4]
    reference = keras_reference(run.model, photos)
    result = run_tfjs(graph, photos, model["signature"])
    assert np.abs(np.asarray(result["probabilities"]) - reference.probabilities).max() < 1e-3


def test_verification_reads_every_kind_of_photo_as_training_does(
    small_bundle, trained_run, tmp_path
):
    """Test photos that are not plain 8-bit RGB (a 16-bit scan, a cut-out with transparency, a
    GIF, a CMYK print file, a grey photo) reach TF.js as the same pixels Keras saw: verifying
    a model on them must not report a disagreement that comes from the reading alone."""
    from conversion.verify import keras_reference, run_tfjs
    from training.dataset import load_dataset
    from training.run_dir import load_run

    rng = np.random.default_rng(3)
    scene = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    folder = tmp_path / "photos" / "any"
    folder.mkdir(parents=True)
    grey16 = (rng.integers(0, 65536, (90, 120))).astype(np.uint16)
    Image.fromarray(grey16).save(folder / "scan-16-bit.png")
    alpha = np.where(np.indices((90, 120))[1] < 60, 255, 0).astype(np.uint8)
    Image.fromarray(np.dstack([scene, alpha])).save(folder / "cut-out.png")
    Image.fromarray(np.dstack([scene, alpha])).save(folder / "cut-out.webp", lossless=True)
    Image.fromarray(scene).convert("P").save(folder / "palette.gif")
    Image.fromarray(scene).convert("CMYK").save(folder / "print.jpg")
    Image.fromarray(scene).convert("L").save(folder / "grey.png")
    (tmp_path / "photos" / "other").mkdir()
    Image.fromarray(scene).save(tmp_path / "photos" / "other" / "plain.png")
    photos = load_dataset(tmp_path / "photos").records
    assert len(photos) == 7
    run = load_run(trained_run)
    reference = keras_reference(run.model, photos)
    signature = json.loads((small_bundle / "model.json").read_text())["signature"]
    result = run_tfjs(small_bundle, photos, signature)
    difference = np.abs(np.asarray(result["probabilities"]) - reference.probabilities).max(axis=1)
    assert difference.max() < 1e-3, dict(zip([p.relpath for p in photos], difference, strict=True))
