"""`binbot convert`: a trained run becomes a verified TF.js graph model with a manifest.

Steps: export a SavedModel with the serving signature -> ``tensorflowjs_converter`` to a
float32 graph model -> build the quantized candidates -> run each in TF.js (Node, wasm) on
the test split and compare with Keras -> keep the chosen one, write ``manifest.json`` last.
The output folder appears only when everything passed: a failed conversion leaves no
manifest behind (and no half-written folder).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from binbot.errors import BinbotError
from binbot.files import holds_working_folder, refuse_if_being_written, staged_folder
from conversion.config import QUANTIZATIONS
from conversion.manifest import (
    FORMAT,
    MANIFEST_FILE,
    MANIFEST_VERSION,
    OPENSET_FILE,
    WARM_START_DIR,
    bundle_files,
    version_pattern,
    write_manifest,
)
from conversion.verify import SIGNIFICANCE, KerasReference, Verification, keras_reference, verify
from training.dataset import Dataset
from training.run_dir import (
    CONFIG_FILE,
    LABELS_FILE,
    MODEL_FILE,
    Run,
    check_run_folder,
    dataset_of_run,
    load_run,
)

Log = Callable[[str], None]


@dataclass
class Candidate:
    quantization: str
    folder: Path
    details: dict[str, Any]
    bytes: int
    verification: Verification | None = None

    @classmethod
    def of(cls, quantization: str, folder: Path, details: dict[str, Any]) -> Candidate:
        size = sum(entry["bytes"] for entry in bundle_files(folder))
        return cls(quantization, folder, details, size)

    def summary(self) -> dict[str, Any]:
        v = self.verification
        return {
            "quantization": self.quantization,
            "bytes": self.bytes,
            "tfjs_test_accuracy": v.tfjs_accuracy if v else None,
            "top1_agreement": v.top1_agreement if v else None,
            "max_probability_difference": v.max_probability_difference if v else None,
            "lost_images": v.lost_images if v else None,
            "gained_images": v.gained_images if v else None,
            "loss_p_value": v.loss_p_value if v else None,
            "acceptable": self.acceptable(),
        }

    def acceptable(self) -> bool:
        """Verified in TF.js, and losing no accuracy beyond noise (exact McNemar test)."""
        return bool(self.verification) and not self.shortcomings()

    def shortcomings(self) -> list[str]:
        """Why this candidate is not kept, in words (none when it may be): the log says it
        beside the figures, so that a smaller candidate passed over is not a mystery."""
        v = self.verification
        if v is None:
            return ["not verified"]
        lost = (
            [f"loses accuracy against Keras (lost {v.lost_images}, gained {v.gained_images} "
             f"test images, p = {v.loss_p_value:.3f} < {SIGNIFICANCE})"]
            if v.loses_accuracy() else []
        )  # fmt: skip
        return v.failures() + lost


RULE = (
    "smallest bundle that TF.js verifies and whose accuracy loss against the Keras model is not "
    f"significant (exact one-sided McNemar test on the paired test predictions, p >= {SIGNIFICANCE})"
)
# Smallest first: the default stops at the first one that is acceptable.
BY_SIZE = ("uint8", "float16", "none")


def converter_executable() -> str:
    """``tensorflowjs_converter`` next to this Python, or on PATH (PATH wins, so it can be wrapped)."""
    found = shutil.which("tensorflowjs_converter")
    if found:
        return found
    import sys

    beside = Path(sys.executable).parent / "tensorflowjs_converter"
    if beside.exists():
        return str(beside)
    raise BinbotError("tensorflowjs_converter not found: install the project (make install)")


def convert_saved_model(saved_model: Path, out: Path) -> None:
    """SavedModel -> float32 TF.js graph model. The exit code is not trusted: verify after."""
    done = subprocess.run(
        [
            converter_executable(),
            "--input_format=tf_saved_model",
            "--output_format=tfjs_graph_model",
            "--signature_name=serving_default",
            str(saved_model),
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0 or not (out / "model.json").exists():
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BinbotError(f"tensorflowjs_converter failed: {tail}")


def build_candidates(float32_dir: Path, work: Path, wanted: list[str]) -> list[Candidate]:
    from conversion.quantize import float16_model_dir, quantize_model_dir

    candidates = []
    for quantization in wanted:
        if quantization == "none":
            candidates.append(Candidate.of("none", float32_dir, {"scheme": "float32"}))
            continue
        folder = work / quantization
        build = float16_model_dir if quantization == "float16" else quantize_model_dir
        candidates.append(Candidate.of(quantization, folder, build(float32_dir, folder)))
    return candidates


def choose(candidates: list[Candidate]) -> Candidate:
    """The smallest acceptable candidate; float32 when none is (and when float32 itself fails
    verification, the conversion is broken and ``convert_run`` says so)."""
    acceptable = [c for c in candidates if c.acceptable()]
    if not acceptable:
        return next(c for c in candidates if c.quantization == "none")
    return min(acceptable, key=lambda c: c.bytes)


def reference_records(dataset: Dataset, limit: int | None):
    """The test split (or a stratified slice of it) as the images both runtimes are scored on."""
    test = dataset.split("test")
    if not test:
        raise BinbotError("the dataset has no test images to verify the conversion on")
    if not limit or limit >= len(test):
        return test
    per_class: dict[int, list] = {}
    for record in sorted(test, key=lambda r: r.relpath):
        per_class.setdefault(record.label, []).append(record)
    picked = []
    while len(picked) < limit:
        for records in per_class.values():
            if records and len(picked) < limit:
                picked.append(records.pop(0))
    return picked


def convert_run(
    run_dir: str | Path,
    out: str | Path,
    *,
    quantization: str | None = None,
    dataset: str | Path | Dataset | None = None,
    version: str | None = None,
    reference_images: int | None = None,
    overwrite: bool = False,
    log: Log = print,
    reference: KerasReference | None = None,
) -> dict[str, Any]:
    """Convert, verify, choose and write the bundle; return its manifest. ``reference``: the
    Keras model's answers on the test photos, when the caller has them."""
    out = Path(out)
    check_convert_request(run_dir, out, quantization, version, overwrite)
    run = load_run(run_dir)
    dataset = dataset_of_run(run, dataset)
    records = reference_records(dataset, reference_images)

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="binbot-convert-") as tmp:
        wanted = [quantization] if quantization else list(BY_SIZE)
        candidates = measure_candidates(
            run, records, Path(tmp), wanted, log, stop_at=Candidate.acceptable, known=reference
        )
        chosen = choose(candidates) if quantization is None else candidates[0]
        problems = chosen.verification.failures()
        if problems:
            raise BinbotError(
                f"conversion failed verification ({chosen.quantization}): " + "; ".join(problems)
            )
        if quantization is None:
            v = chosen.verification
            log(
                f"Chose {chosen.quantization}: the {RULE} (lost {v.lost_images}, gained "
                f"{v.gained_images} test images against Keras, p = {v.loss_p_value:.3f})"
            )
        manifest = build_manifest(run, dataset, chosen, candidates, quantization, version)
        _publish(chosen.folder, out, manifest, overwrite, warm_start_from=run.path)
    size = manifest["bundle_bytes"] / 1e6
    log(
        f"Wrote {out} ({size:.2f} MB, {manifest['quantization']['mode']}) in "
        f"{time.monotonic() - started:.0f} s"
    )
    return manifest


def check_convert_request(
    run_dir: str | Path, out: Path, quantization: str | None, version: str | None, overwrite: bool
) -> None:
    """Everything about a conversion request that its files and settings alone can refuse:
    checked before the conversion's minutes of work (not by the manifest's schema after), and
    on the command line before TensorFlow's import (seconds)."""
    if quantization is not None and quantization not in QUANTIZATIONS:
        raise BinbotError(f"--quantize must be one of {', '.join(QUANTIZATIONS)}")
    if version is not None and not version_pattern().fullmatch(version):
        raise BinbotError(
            f"--version {version[:40]!r} is not a version name: 1-100 letters, digits, '.', "
            "'_' or '-', starting with a letter or digit"
        )
    check_bundle_target(out, Path(run_dir), overwrite)
    check_run_folder(run_dir)


def measure_candidates(
    run: Run,
    records: list,
    work: Path,
    wanted: list[str],
    log: Log = print,
    stop_at: Callable[[Candidate], bool] | None = None,
    known: KerasReference | None = None,
) -> list[Candidate]:
    """Export, convert, build the ``wanted`` candidates in ``work`` and verify each in TF.js,
    in order; with ``stop_at``, stop after the first candidate it accepts. ``known``: the
    Keras model's answers already computed, used where they cover ``records``."""
    from conversion.export import export_saved_model

    reference = known.covering(records) if known is not None else None
    if reference is None:
        log(f"Keras reference on {len(records)} test images ...")
        reference = keras_reference(run.model, records, log)
    else:
        log(f"Keras reference on {len(records)} test images: the answers already computed")
    log("Exporting SavedModel (input 'image', outputs 'probabilities' and 'embedding') ...")
    export_saved_model(run.model, work / "saved_model")
    log("Converting to a TF.js graph model ...")
    convert_saved_model(work / "saved_model", work / "float32")
    signature = json.loads((work / "float32" / "model.json").read_text()).get("signature")
    if not signature or "image" not in signature.get("inputs", {}):
        raise BinbotError("the converted model has no 'image' input in its signature")
    openset = run.path / OPENSET_FILE if (run.path / OPENSET_FILE).is_file() else None
    candidates = build_candidates(work / "float32", work, wanted)
    for candidate in candidates if openset else []:
        shutil.copyfile(openset, candidate.folder / OPENSET_FILE)
        candidate.bytes += openset.stat().st_size
    for measured, candidate in enumerate(candidates, 1):
        log(f"Verifying {candidate.quantization} in TF.js (Node, wasm) ...")
        try:
            candidate.verification = verify(
                candidate.folder, reference, run.labels, signature, openset=openset
            )
        except BinbotError as exc:
            raise BinbotError(
                f"conversion failed verification ({candidate.quantization}): {exc}"
            ) from None
        v = candidate.verification
        log(
            f"  {candidate.quantization:8s} {candidate.bytes / 1e6:6.2f} MB  "
            f"test top-1 {v.tfjs_accuracy:.2%} (Keras {v.keras_accuracy:.2%})  "
            f"agreement {v.top1_agreement:.2%}  max |dp| {v.max_probability_difference:.3f}  "
            f"lost {v.lost_images} / gained {v.gained_images} images (p = {v.loss_p_value:.3f})"
        )
        if stop_at and (problems := candidate.shortcomings()):  # choosing: say why not this
            log(f"    not kept: {'; '.join(problems)}")
        if stop_at and stop_at(candidate):
            return candidates[:measured]
    return candidates


def build_manifest(
    run: Run,
    dataset: Dataset,
    chosen: Candidate,
    candidates: list[Candidate],
    requested: str | None,
    version: str | None,
) -> dict[str, Any]:
    from training import IMAGE_SIZE
    from training.preprocess import RESIZE_RECIPE

    created = datetime.now(UTC).replace(microsecond=0)
    files = bundle_files(chosen.folder)
    model_hash = files[0]["sha256"][:8]
    signature = json.loads((chosen.folder / "model.json").read_text())["signature"]
    v = chosen.verification
    config = run.read(CONFIG_FILE) or {}
    return {
        "manifest_version": MANIFEST_VERSION,
        "version": version or f"{created:%Y%m%d.%H%M%S}-{model_hash}",
        "created_at": created.isoformat().replace("+00:00", "Z"),
        "format": FORMAT,
        "model": "model.json",
        "labels": run.labels,
        "input": {
            "name": "image",
            "node": signature["inputs"]["image"]["name"],
            "shape": [None, IMAGE_SIZE, IMAGE_SIZE, 3],
            "dtype": "float32",
            "range": [0, 255],
            "resize": RESIZE_RECIPE,
        },
        "outputs": {
            name: {"name": name, "node": signature["outputs"][name]["name"]}
            for name in ("probabilities", "embedding")
        },
        "quantization": {
            "mode": chosen.quantization,
            **chosen.details,
            "chosen_by": "user" if requested else "measurement",
            "rule": RULE,
            "candidates": [c.summary() for c in candidates],
        },
        "files": files,
        "bundle_bytes": sum(f["bytes"] for f in files),
        "metrics": {
            "test_accuracy": v.tfjs_accuracy,
            "keras_test_accuracy": v.keras_accuracy,
            "test_images": v.images,
            "per_class_recall": v.tfjs_per_class_recall,
            "test_set_fingerprint": dataset.split_fingerprint("test"),
            "measured_with": f"converted model in TF.js ({v.backend}, Node)",
        },
        "verification": v.as_dict(),
        **open_set_section(chosen.folder),
        "training": {
            "run_id": run.path.resolve().name,
            "dataset_fingerprint": dataset.fingerprint,
            "backbone": config.get("backbone"),
        },
    }


def open_set_section(folder: Path) -> dict[str, Any]:
    """The manifest's description of the open-set score the bundle carries (if it does)."""
    if not (folder / OPENSET_FILE).is_file():
        return {}
    scorer = json.loads((folder / OPENSET_FILE).read_text())
    return {
        "openset": {
            "file": OPENSET_FILE,
            "method": scorer["method"],
            "threshold": scorer["threshold"],
            "accepts": "95% of the known kinds' validation photos",
        }
    }


def check_bundle_target(out: Path, run_dir: Path, overwrite: bool) -> None:
    """Refuse an --out whose replacement would lose what is not a bundle. The bundle replaces
    the folder whole, so ``--out runs --overwrite`` deleted every run in it (and ``--out .``
    would have deleted the working folder)."""
    if out.exists() and not out.is_dir():
        raise BinbotError(f"--out must be a folder: {out}")
    if run_dir.resolve().is_relative_to(out.resolve()):
        raise BinbotError(f"--out {out} is the run folder {run_dir} or holds it: choose another")
    if holds_working_folder(out):
        raise BinbotError(
            f"--out {out} is the folder you are in, or holds it: a bundle replaces its folder "
            "whole; name a folder in it instead (e.g. --out bundle)"
        )
    refuse_if_being_written(out)
    if not out.exists() or not any(out.iterdir()):
        return
    if not overwrite:
        raise BinbotError(f"{out} is not empty; choose another --out or pass --overwrite")
    if not (out / MANIFEST_FILE).is_file():
        raise BinbotError(
            f"--out {out} is not a bundle (it has no {MANIFEST_FILE}) and --overwrite would "
            "delete what is in it: choose a new or empty folder"
        )


def _publish(
    folder: Path,
    out: Path,
    manifest: dict[str, Any],
    overwrite: bool,
    warm_start_from: Path | None = None,
) -> None:
    """Copy the bundle next to ``out`` and swap it in, manifest last, so no partial bundle shows.

    With ``warm_start_from`` (a run folder), its Keras model and labels go to ``keras/``:
    a later retraining can start from them (the manifest does not list them: not served).
    """
    if out.exists() and not overwrite and any(out.iterdir()):
        raise BinbotError(f"{out} is not empty")
    with staged_folder(out, exclusive=True) as staging:
        for entry in manifest["files"]:
            shutil.copyfile(folder / entry["path"], staging / entry["path"])
        if warm_start_from is not None:  # kept beside the bundle, never served
            (staging / WARM_START_DIR).mkdir()
            for name in (MODEL_FILE, LABELS_FILE):
                shutil.copyfile(warm_start_from / name, staging / WARM_START_DIR / name)
        write_manifest(staging, manifest)
