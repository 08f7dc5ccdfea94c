"""A disk that fills up part-way: one clear line or a 507, and nothing half-written kept;
folders replaced whole, never lost on the way.

Training, evaluation and conversion write beside their target and move the result in whole;
a full disk used to end `binbot train` with a traceback and leave a cut model.keras beside
its labels.json (a folder that reads as a run), or, under --overwrite, destroy the earlier
run's model before failing to write the new one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import requests
from conftest import binbot, fill_disk, serve_live, small_disk, submit


def digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# The head alone (on the features trained_run cached): the disk fills when the model is saved.
SHORT = ("--head-epochs", "2", "--fine-tune-epochs", "0")


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_leaves_the_earlier_run_whole(
    tmp_path, small_ewaste, trained_run, copy_tree
):
    with small_disk(tmp_path / "disk", "14m") as disk:
        run = copy_tree(trained_run, disk / "run")  # about 10 MB: too little room for another
        before = digests(run)

        result = binbot("train", str(small_ewaste), "--out", str(disk / "new"), *SHORT)
        assert result.returncode == 2, result.stderr[-2000:]
        assert "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith("binbot: error: No space left")
        assert "the disk is full; nothing half-written was kept" in result.stderr
        assert sorted(p.name for p in disk.iterdir()) == ["run"]  # no cut model, no staging

        result = binbot("train", str(small_ewaste), "--out", str(run), "--overwrite", *SHORT)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
        assert digests(run) == before  # the earlier run, its model and evaluation, untouched

        filler = fill_disk(disk, leave=64 * 1024)
        result = binbot("evaluate", str(run))
        assert result.returncode == 2 and "the disk is full" in result.stderr, result.stderr
        assert digests(run) == before
        result = binbot("dataset", "inspect", str(small_ewaste), "--out", str(disk / "report"))
        assert result.returncode == 2 and "the disk is full" in result.stderr, result.stderr
        assert all(not p.name.startswith(".") for p in disk.rglob("*"))  # no temporary left

        filler.unlink()
        result = binbot("evaluate", str(run))
        assert result.returncode == 0, result.stderr[-2000:]


def test_a_file_is_replaced_whole_or_not_at_all(tmp_path):
    from binbot.files import replacing

    target = tmp_path / "model.json"
    target.write_text("old")
    with pytest.raises(OSError), replacing(target) as temporary:
        temporary.write_text("half")
        raise OSError(28, "No space left on device")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["model.json"]
    with replacing(target) as temporary:
        assert temporary.suffix == ".json"  # writers choose the format by the name
        temporary.write_text("new")
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["model.json"]


def test_features_that_cannot_be_kept_on_disk_stay_in_memory(tmp_path, small_ewaste):
    """Writing the feature cache failing (here its folder is a file) used to stop training."""
    from training.dataset import load_dataset
    from training.features import FeatureSpace, FeatureStore
    from training.model import build_model, split_model

    photos = load_dataset(small_ewaste).split("train")[:2]
    bottom = split_model(build_model(3, weights=None), 10).bottom
    (tmp_path / "cache").write_text("a file where the cache's folder would be")
    store = FeatureStore(FeatureSpace("mobilenet_v2", "none", "test", 1), tmp_path / "cache")
    lines: list[str] = []
    features = store.features(photos, 1, bottom, log=lines.append)
    assert features.shape[:2] == (2, 1) and np.isfinite(features).all()
    assert any("warning: not keeping features on disk from now on" in line for line in lines)


@pytest.fixture
def live_on_small_disk(tmp_path, database_url):
    """The service with its data folder (the starter model in it) on an 8 MB disk, and no
    free-space margin asked for."""
    with small_disk(tmp_path / "data", "8m"):
        yield from serve_live(tmp_path, database_url, BINBOT_MIN_FREE_BYTES=0)


def test_an_upload_to_a_full_disk_is_a_507_to_retry_and_stores_nothing(live_on_small_disk, photo):
    live = live_on_small_disk
    filler = fill_disk(live.data, leave=0)
    before = digests(live.data)
    answer = submit(live, photo, key="full-disk")
    assert answer.status_code == 507, answer.text
    assert answer.json()["error"] == "the server's disk is full; try again later"
    assert int(answer.headers["Retry-After"]) > 0
    assert live.submissions() == 0 and live.stored_files() == []
    assert digests(live.data) == before  # no cut photo, no temporary file

    filler.unlink()  # the retry, once there is room, is stored
    assert submit(live, photo, key="full-disk").status_code == 201
    assert live.submissions() == 1 and len(live.stored_files()) == 1
    assert requests.get(f"{live.url}/api/ping", timeout=10).status_code == 200


@pytest.mark.slow
def test_a_retraining_that_fills_the_disk_fails_saying_so_and_leaves_nothing(
    live_on_small_disk, small_ewaste, imagenet_weights
):
    """The job's model (10 MB) does not fit beside the starter on the 8 MB data disk."""
    from server.admin.tokens import create_admin_token
    from server.jobs.worker import run_worker

    live = live_on_small_disk
    live.app.config["BINBOT_BASE_DATASET"] = str(small_ewaste)
    before = digests(live.data)
    with live.app.app_context():
        auth = {"Authorization": f"Bearer {create_admin_token()}"}
    settings = {"head_epochs": 1, "fine_tune_epochs": 0, "batch_size": 16}
    job = requests.post(f"{live.url}/api/admin/jobs", json={"settings": settings},
                        headers=auth, timeout=30).json()["job"]  # fmt: skip
    lines: list[str] = []
    assert run_worker(live.app, once=True, log=lines.append) == job["id"]
    job = requests.get(f"{live.url}/api/admin/jobs/{job['id']}", headers=auth, timeout=30)
    job = job.json()["job"]
    assert job["status"] == "failed"
    assert job["error"] == "the server's disk is full (No space left on device): free some space"
    assert not any("Traceback" in line for line in lines)
    assert digests(live.data) == before  # no scratch folder, no half-registered model
    models = requests.get(f"{live.url}/api/admin/models", headers=auth, timeout=30).json()
    assert len(models["models"]) == 1


def test_a_folder_that_cannot_be_moved_in_leaves_the_earlier_one(tmp_path, monkeypatch):
    """The earlier folder is moved aside, not deleted, until the new one is in place: deleting
    it first lost both when the new one could not be moved in."""
    from binbot.files import staged_folder

    target = tmp_path / "bundle"
    target.mkdir()
    (target / "manifest.json").write_text("old")
    rename = Path.rename

    def refuse_the_new_one(self, destination):
        if (
            Path(destination) == target
            and self.name.startswith(".bundle-")
            and "-old-" not in str(self)
        ):
            raise OSError(28, "No space left on device")
        return rename(self, destination)

    monkeypatch.setattr(Path, "rename", refuse_the_new_one)
    with pytest.raises(OSError), staged_folder(target) as staging:
        (staging / "manifest.json").write_text("new")
    assert (target / "manifest.json").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]

    monkeypatch.setattr(Path, "rename", rename)
    with staged_folder(target) as staging:
        (staging / "manifest.json").write_text("new")
    assert (target / "manifest.json").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_a_folder_reached_by_a_link_is_replaced_where_it_is(tmp_path):
    from binbot.files import staged_folder

    (tmp_path / "runs" / "2026-12-06").mkdir(parents=True)
    (tmp_path / "latest").symlink_to(tmp_path / "runs" / "2026-12-06")
    with staged_folder(tmp_path / "latest") as staging:
        (staging / "model.keras").write_text("new")
    assert (tmp_path / "latest").is_symlink()
    assert (tmp_path / "runs" / "2026-12-06" / "model.keras").read_text() == "new"
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["2026-12-06"]


def test_a_staging_folder_left_by_a_killed_run_does_not_hold_up_the_next(tmp_path):
    """A folder being written is told by its staging folder's lock, not by the folder alone:
    `kill -9` leaves the staging folder, unlocked, and the next run goes ahead."""
    from binbot.files import being_written, staged_folder

    (tmp_path / ".run-x1y2z3w4").mkdir()  # what a training killed outright leaves
    assert not being_written(tmp_path / "run")
    with staged_folder(tmp_path / "run", exclusive=True) as staging:
        assert being_written(tmp_path / "run")
        (staging / "model.keras").write_text("new")
    assert not being_written(tmp_path / "run")
    assert (tmp_path / "run" / "model.keras").read_text() == "new"


def test_writing_one_folder_does_not_hold_up_a_folder_whose_name_it_starts(tmp_path):
    """ "run-2" being written does not make "run" look busy: its staging folder ".run-2-..."
    matched the ".run-*" that was looked for, so `binbot train --out run` was refused."""
    from binbot.files import being_written, staged_folder

    with staged_folder(tmp_path / "run-2", exclusive=True):
        assert being_written(tmp_path / "run-2")
        assert not being_written(tmp_path / "run")
