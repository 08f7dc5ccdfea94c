"""Retraining jobs: exclusive claims under concurrency, dead workers, the API, a real retraining."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from datetime import timedelta

import pytest
import requests
from conftest import (
    STARTER_VERSION,
    binbot,
    console_session,
    database_down,
    fresh_postgres_database,
    jpeg_bytes,
    serve_live,
    solid_jpeg,
    submit,
)

from server.admin.tokens import create_admin_token
from server.extensions import db
from server.jobs.queue import (
    cancel_requested,
    claim_next,
    enqueue,
    heartbeat,
    reap_dead,
    record_event,
)
from server.jobs.retrain import figures_measured_on
from server.jobs.worker import run_worker
from server.tables import TrainingJob, utcnow
from training.dataset import load_dataset


def test_concurrent_workers_never_claim_the_same_job(live):
    with live.app.app_context():
        ids = [enqueue({})[0].id for _ in range(12)]
    claimed: list[int] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        with live.app.app_context():
            while (job := claim_next(name)) is not None:
                with lock:
                    claimed.append(job.id)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(claimed) == ids, "a job was claimed twice or not at all"
    with live.app.app_context():
        assert {j.status for j in db.session.query(TrainingJob)} == {"running"}


def test_a_running_job_is_asked_to_stop_and_its_progress_is_readable(live):
    auth = admin(live)
    with live.app.app_context():
        job_id = enqueue({})[0].id
        claim_next("w1")
        # What training reports while it runs: a phase with its plan, then finished epochs.
        record_event(job_id, {"event": "phase", "phase": "head", "epochs": 3, "later_epochs": 4})
        for epoch, (val_loss, val_accuracy) in enumerate(((0.9, 0.6), (0.7, 0.75)), start=1):
            record_event(
                job_id,
                {"event": "epoch", "phase": "head", "epoch": epoch, "phase_epoch": epoch,
                 "epochs": 3, "loss": 1.0, "accuracy": 0.5, "val_loss": val_loss,
                 "val_accuracy": val_accuracy, "seconds": 4.0 + epoch},
            )  # fmt: skip
        heartbeat(job_id, log_line="  head      epoch  2/3  (free text for people)")
    url = f"{live.url}/api/admin/jobs/{job_id}"
    status = requests.get(url, headers=auth, timeout=30).json()
    assert status["training"]["phase"] == "head"
    assert (status["training"]["epoch"], status["training"]["epochs"]) == (2, 3)
    assert status["training"]["history"][1]["val_accuracy"] == 0.75
    assert status["training"]["seconds_per_epoch"] == 5.5
    assert status["training"]["eta_seconds"] == 5.5 * (1 + 4)  # one head epoch + fine-tuning
    assert status["job"]["progress"] == "head      epoch  2/3  (free text for people)"
    answer = requests.post(f"{url}/cancel", headers=auth, timeout=30)
    assert answer.status_code == 200 and answer.json()["job"]["status"] == "cancelling"
    with live.app.app_context():
        assert cancel_requested(job_id)  # what the worker's heartbeat thread looks at
    assert requests.post(f"{url}/cancel", headers=auth, timeout=30).status_code == 409


def race_claim_and_cancel(live, worker: str) -> tuple[bool, str, str]:
    """A worker claims and an admin cancels one new job at the same moment: (whether the
    worker got it, what cancel answered, the job's status after both)."""
    from server.jobs.queue import cancel

    with live.app.app_context():
        job_id = enqueue({})[0].id
    start = threading.Barrier(2)
    seen: dict[str, object] = {}

    def claim() -> None:
        with live.app.app_context():
            start.wait()
            seen["claimed"] = claim_next(worker) is not None

    def stop() -> None:
        with live.app.app_context():
            start.wait()
            seen["cancel"] = cancel(job_id).status

    threads = [threading.Thread(target=claim), threading.Thread(target=stop)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    with live.app.app_context():
        final = db.session.get(TrainingJob, job_id).status
    return seen["claimed"], seen["cancel"], final


def test_a_cancel_racing_a_worker_never_leaves_a_cancelled_job_running(live):
    """An admin cancels a queued job just as a worker claims it: either the cancel comes first
    (the job never runs) or the worker does (the job is asked to stop). A cancel that read
    "queued" and then wrote "cancelled" over the claim left a job shown as cancelled that
    trained to the end and registered a candidate."""
    outcomes = [race_claim_and_cancel(live, f"w{i}") for i in range(30)]
    for claimed, answered, final in outcomes:
        assert final == answered == ("cancelling" if claimed else "cancelled"), outcomes


def test_a_job_whose_worker_died_is_marked_failed(live):
    with live.app.app_context():
        job_id = enqueue({})[0].id
        claim_next("ghost")
        job = db.session.get(TrainingJob, job_id)
        job.heartbeat_at = utcnow() - timedelta(minutes=10)
        db.session.commit()
        assert reap_dead(60) == [job_id]
        job = db.session.get(TrainingJob, job_id)
        assert job.status == "failed" and "ghost stopped responding" in job.error
        assert reap_dead(60) == []


def test_worker_crashes_are_listed_in_utc_and_a_crash_loop_is_called_one(live):
    """The Training page lists the retraining worker's recent crashes with their times, and
    says when the crashes come in a loop; the times say they are UTC (they were bare)."""
    from server.jobs.queue import worker_crashed

    jar, _ = console_session(live)
    with live.app.app_context():
        job_id = enqueue({})[0].id
        claim_next("worker-7")
        assert worker_crashed("worker-7", "killed by signal 9 (out of memory?)") == [job_id]
    page = requests.get(f"{live.url}/admin/training", cookies=jar, timeout=30).text
    assert re.search(r"<li>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC: killed by signal 9 "
                     rf"\(out of memory\?\) \(job {job_id} failed\)</li>", page)  # fmt: skip
    assert 'id="crash-loop"' not in page
    with live.app.app_context():
        for _ in range(2):
            worker_crashed("worker-8", "exited with status 1")
    page = requests.get(f"{live.url}/admin/training", cookies=jar, timeout=30).text
    assert "The retraining worker keeps crashing: 3 times in the last 10 minutes" in page


def admin(live):
    with live.app.app_context():
        return {"Authorization": f"Bearer {create_admin_token()}"}


def test_job_api_validates_queues_and_cancels(live):
    auth = admin(live)
    url = f"{live.url}/api/admin/jobs"
    bad = requests.post(url, json={"settings": {"head_epochs": -1}}, headers=auth, timeout=30)
    assert bad.status_code == 400
    unknown = requests.post(url, json={"settings": {"learning_rate": 1}}, headers=auth, timeout=30)
    assert unknown.status_code == 400 and "unknown settings" in unknown.json()["error"]
    flood = {"settings": {f"{i:05d}" + "k" * 100_000: 1 for i in range(20)}}
    refused = requests.post(url, json=flood, headers=auth, timeout=30)
    assert refused.status_code == 400 and "and 15 more" in refused.json()["error"]
    assert len(refused.content) < 1000  # the 2 MB of names are not echoed back
    nothing = {"settings": {"head_epochs": 0, "fine_tune_epochs": 0}}
    idle = requests.post(url, json=nothing, headers=auth, timeout=30)
    assert idle.status_code == 400 and "no epoch would run" in idle.json()["error"]
    queued = requests.post(url, json={"settings": {"head_epochs": 2}}, headers=auth, timeout=30)
    assert queued.status_code == 202
    job = queued.json()["job"]
    assert job["status"] == "queued" and job["settings"] == {"head_epochs": 2}
    status = requests.get(f"{url}/{job['id']}", headers=auth, timeout=30).json()["job"]
    assert status["status"] == "queued"
    cancelled = requests.post(f"{url}/{job['id']}/cancel", headers=auth, timeout=30)
    assert cancelled.json()["job"]["status"] == "cancelled"
    again = requests.post(f"{url}/{job['id']}/cancel", headers=auth, timeout=30)
    assert again.status_code == 409
    assert requests.get(url, timeout=30).status_code == 401


def test_a_retraining_asked_for_twice_is_queued_once(live):
    """A double click on "Start retraining", or a script retrying a request whose answer was
    lost, must not queue a second identical retraining (minutes of CPU, a second candidate):
    a request with the key of an earlier one answers with that job."""
    auth = admin(live)
    url = f"{live.url}/api/admin/jobs"
    body = {"settings": {"head_epochs": 2}}
    first = requests.post(url, json=body, headers={**auth, "Idempotency-Key": "k1"}, timeout=30)
    assert first.status_code == 202
    job_id = first.json()["job"]["id"]
    with live.app.app_context():
        claim_next("w1")  # the worker took it meanwhile: still the same request
    again = requests.post(url, json=body, headers={**auth, "Idempotency-Key": "k1"}, timeout=30)
    assert again.status_code == 200 and again.json()["job"]["id"] == job_id
    other = requests.post(url, json={"settings": {"head_epochs": 3}}, timeout=30,
                          headers={**auth, "Idempotency-Key": "k1"})  # fmt: skip
    assert other.status_code == 422 and "other settings" in other.json()["error"]
    jobs = requests.get(url, headers=auth, timeout=30).json()["jobs"]
    assert [j["id"] for j in jobs] == [job_id]

    # The console's form carries a key of its own: the same form sent twice is one job.
    jar, _ = console_session(live)
    page = requests.get(f"{live.url}/admin/training", cookies=jar, timeout=30).text
    form = dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', page))
    assert set(form) == {"csrf_token", "request_key"}
    answers = [requests.post(f"{live.url}/admin/training", data={**form, "head_epochs": "1"},
                             cookies=jar, timeout=30, allow_redirects=False)
               for _ in range(2)]  # fmt: skip
    assert len({a.headers["Location"] for a in answers}) == 1
    assert len(requests.get(url, headers=auth, timeout=30).json()["jobs"]) == 2


def test_the_console_warns_before_a_retraining_that_could_only_fail(live, small_ewaste, tmp_path):
    """`binbot serve` run without the Makefile has no base dataset: the Training page says so
    before an admin starts a job, and the job fails with the same words. The Models page
    offers no rollback while there is nothing earlier to roll back to."""
    jar, _ = console_session(live)

    def warning() -> str | None:
        page = requests.get(f"{live.url}/admin/training", cookies=jar, timeout=30).text
        found = re.search(r'id="no-base-dataset">([^<]*)<', page)
        return found.group(1) if found else None

    live.app.config["BINBOT_BASE_DATASET"] = None
    assert "BINBOT_BASE_DATASET is not set" in warning()
    auth = admin(live)
    job = requests.post(f"{live.url}/api/admin/jobs", json={}, headers=auth, timeout=30).json()
    assert run_worker(live.app, once=True, log=lambda _: None) == job["job"]["id"]
    failed = requests.get(f"{live.url}/api/admin/jobs/{job['job']['id']}", headers=auth,
                          timeout=30).json()["job"]  # fmt: skip
    assert failed["status"] == "failed" and "BINBOT_BASE_DATASET is not set" in failed["error"]
    # The list of jobs says why one failed, without opening it.
    jobs = requests.get(f"{live.url}/admin/training", cookies=jar, timeout=30).text
    assert re.search(r'class="job-error">BINBOT_BASE_DATASET is not set', jobs)

    live.app.config["BINBOT_BASE_DATASET"] = str(tmp_path / "moved.zip")
    assert "moved.zip (BINBOT_BASE_DATASET) is not there" in warning()
    live.app.config["BINBOT_BASE_DATASET"] = str(small_ewaste)
    assert warning() is None

    models = requests.get(f"{live.url}/admin/models", cookies=jar, timeout=30).text
    assert "No earlier published version to roll back to" in models
    assert "Roll back" not in models and "Compare</button>" not in models


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite: test_console
def test_accepted_corrections_are_retrained_into_a_publishable_candidate(
    live, small_ewaste, ewaste_zip, imagenet_weights
):
    """The admin flow without a browser: submit, accept, retrain, compare, publish, roll back."""
    live.app.config["BINBOT_BASE_DATASET"] = str(small_ewaste)
    auth = admin(live)
    with zipfile.ZipFile(ewaste_zip) as archive:
        names = sorted(n for n in archive.namelist() if "/train/Printer/" in n)[-2:]
        photos = [archive.read(n) for n in names]
    ids = [submit(live, p, label="Printer", key=f"c{i}").json()["submission"]["id"]
           for i, p in enumerate(photos)]  # fmt: skip
    accepted = requests.post(f"{live.url}/api/admin/submissions/review", headers=auth,
                             json={"ids": ids, "action": "accept"}, timeout=30)  # fmt: skip
    assert accepted.status_code == 200

    settings = {"head_epochs": 2, "fine_tune_epochs": 0, "batch_size": 16, "reference_images": 20}
    job = requests.post(f"{live.url}/api/admin/jobs", json={"settings": settings},
                        headers=auth, timeout=30).json()["job"]  # fmt: skip
    assert run_worker(live.app, once=True, log=lambda _: None) == job["id"]

    done = requests.get(f"{live.url}/api/admin/jobs/{job['id']}", headers=auth, timeout=30)
    job = done.json()["job"]
    assert job["status"] == "succeeded", job["error"]
    assert job["progress"] == (f"Registered the candidate {job['result']['candidate_version']}: "
                               "compare it with the live model and publish it on the Models page")  # fmt: skip
    result = job["result"]
    assert result["corrections_used"] == {"Printer": 2}
    assert result["train_images"] == 80 + 2
    assert result["published"]["version"] == STARTER_VERSION and result["published"]["comparable"]
    assert 0 <= result["published"]["test_accuracy"] <= 1
    assert set(result["candidate"]["per_class_recall"]) == set(
        result["published"]["per_class_recall"]
    )
    assert "Fine-tuning" not in job["log"] and "head      epoch  2/2" in job["log"]
    # The conversion's check reuses the evaluation's Keras answers on its 20 test photos.
    assert "Keras reference on 20 test images: the answers already computed" in job["log"]
    training = done.json()["training"]  # the same epochs, as data
    assert [(e["phase"], e["phase_epoch"], e["epochs"]) for e in training["history"]] == [
        ("head", 1, 2), ("head", 2, 2),
    ]  # fmt: skip
    assert all(e["seconds"] > 0 and 0 <= e["val_accuracy"] <= 1 for e in training["history"])

    candidate = result["candidate_version"]
    models = requests.get(f"{live.url}/api/admin/models", headers=auth, timeout=30).json()["models"]
    assert [m["version"] for m in models] == [STARTER_VERSION, candidate]
    assert "confusion_matrix.png" in models[1]["report"] and "report.md" in models[0]["report"]
    picture = requests.get(f"{live.url}/api/admin/models/{candidate}/report/confusion_matrix.png",
                           headers=auth, timeout=30)  # fmt: skip
    assert picture.status_code == 200 and picture.content.startswith(b"\x89PNG")
    publish = requests.post(f"{live.url}/api/admin/models/{candidate}/publish", headers=auth,
                            json={"force": True, "reason": "tiny test model"}, timeout=30)  # fmt: skip
    assert publish.status_code == 200
    current = requests.get(f"{live.url}/api/models/current", timeout=30).json()
    assert current["version"] == candidate
    for entry in current["files"]:
        assert requests.get(live.url + entry["url"], timeout=30).status_code == 200
    requests.post(f"{live.url}/api/admin/models/rollback", headers=auth, timeout=30)
    assert (
        requests.get(f"{live.url}/api/models/current", timeout=30).json()["version"]
        == STARTER_VERSION
    )


def test_the_live_models_conversion_figures_stand_only_for_the_photos_it_was_measured_on(
    small_ewaste, tmp_path
):
    """A retraining compares with the live model on the same test photos: the figures its
    conversion measured are reused only when they cover exactly those photos."""
    dataset = load_dataset(small_ewaste)
    test = dataset.split("test")
    metrics = {"test_set_fingerprint": dataset.split_fingerprint("test"), "test_images": len(test),
               "test_accuracy": 0.9, "per_class_recall": {c: 0.9 for c in dataset.classes}}  # fmt: skip
    reused = figures_measured_on({"metrics": metrics}, dataset, test)
    assert reused["test_accuracy"] == 0.9 and set(reused["per_class_recall"]) == set(
        dataset.classes
    )
    slice_only = {**metrics, "test_images": len(test) - 1}  # converted with --reference-images
    assert figures_measured_on({"metrics": slice_only}, dataset, test) is None

    other = tmp_path / "dataset"
    shutil.copytree(small_ewaste, other)
    next((other / "test").rglob("*.jpg")).unlink()  # one test photo fewer
    changed = load_dataset(other)
    assert figures_measured_on({"metrics": metrics}, changed, changed.split("test")) is None
    assert figures_measured_on({}, dataset, test) is None  # an older manifest: score it again


def test_corrections_join_their_kinds_dataset_folder_however_it_is_spelt(live, photo, tmp_path):
    """The dataset has a folder ``mouse``; corrections are stored under the kind ``Mouse``.
    Retraining puts them into ``mouse`` (a folder ``Mouse`` beside it was a second class that
    competed with the first, its photos spread over train, val and test as a new kind's)."""
    from server.jobs.retrain import build_training_folder
    from server.tables import Submission

    colours = {"mouse": (200, 30, 30), "battery": (30, 30, 200)}
    for split in ("train", "val", "test"):
        for c, (folder, colour) in enumerate(colours.items()):
            for i in range(2):
                solid_jpeg(tmp_path / "ds" / split / folder / f"{i}.jpg", colour,
                           noise_seed=100 * c + 10 * len(split) + i)  # fmt: skip
    sent = submit(live, photo, label="mouse")
    assert sent.status_code == 201 and sent.json()["submission"]["label"] == "Mouse"
    with live.app.app_context():
        submissions = db.session.query(Submission).all()
        counts = build_training_folder(load_dataset(tmp_path / "ds"), submissions, tmp_path / "out")
    [row] = submissions
    assert counts == {"mouse": 1}
    assert (tmp_path / "out" / "train" / "mouse" / f"submission-{row.id}.jpg").exists()
    assert not list((tmp_path / "out").glob("*/Mouse"))


def _shots(photo: bytes, count: int) -> list[bytes]:
    """Several shots of one thing, as a phone sends them: resized, brighter, cropped."""
    import io

    from PIL import Image, ImageEnhance

    original = Image.open(io.BytesIO(photo)).convert("RGB")
    w, h = original.size
    variants = [
        original.resize((w * 9 // 10, h * 9 // 10)),
        ImageEnhance.Brightness(original).enhance(1.05),
        original.crop((3, 3, w - 3, h - 3)),
        original.resize((w * 4 // 5, h * 4 // 5)),
    ]
    return [jpeg_bytes(v, quality=88) for v in variants[:count]]


def test_corrections_that_copy_held_out_photos_are_left_out_and_copies_split_together(
    live, small_ewaste, ewaste_zip, tmp_path
):
    """The dataset is public: a correction can be a test photo sent again (re-encoded by the
    server). Trained on, it is recognised at test time and flatters the figure the publish
    gate compares; it is left out, and the job's log says which. Shots of one new thing go to
    one split, so none of them is tested on its twin in train."""
    from server.jobs.retrain import build_training_folder
    from server.registry.photos import photo_path
    from server.tables import Submission

    base = load_dataset(small_ewaste)
    test_photo = base.split("test")[0]
    with zipfile.ZipFile(ewaste_zip) as archive:
        fresh = [archive.read(n) for n in sorted(archive.namelist())
                 if "/train/Printer/" in n][-8:]  # fmt: skip
    kind = base.classes[test_photo.label]
    assert submit(live, _shots(test_photo.path.read_bytes(), 1)[0], label=kind).status_code == 201
    assert submit(live, fresh[0], label="Printer").status_code == 201
    bursts = [*_shots(fresh[1], 4), *_shots(fresh[2], 4), *fresh[3:]]
    for shot in bursts:
        assert submit(live, shot, label="Mouse").status_code == 201
    lines: list[str] = []
    with live.app.app_context():
        submissions = db.session.query(Submission).order_by(Submission.id).all()
        copy_of_test, printer, *new_kind = submissions
        for s in new_kind:
            s.label = "Gizmo"  # a kind the base dataset does not have
        counts = build_training_folder(base, submissions, tmp_path / "out", log=lines.append)
    assert counts == {"Printer": 1, "Gizmo": len(bursts)}
    assert not list((tmp_path / "out").rglob(f"submission-{copy_of_test.id}.jpg"))
    assert (tmp_path / "out" / "train" / "Printer" / f"submission-{printer.id}.jpg").exists()
    (line,) = lines
    assert line.startswith(
        f"Left out 1 accepted correction, a copy of a validation or test photo of the base "
        f"dataset: submission {copy_of_test.id} (test/{test_photo.path.name})"
    )
    split_of = {p.name: p.parent.parent.name for p in (tmp_path / "out").rglob("submission-*")}
    for burst in (new_kind[:4], new_kind[4:8]):
        assert len({split_of[f"submission-{s.id}.jpg"] for s in burst}) == 1, split_of
    # A stored photo gone from the disk does not stop the retraining: the dataset's check
    # reports and skips it, as before the copy check read every photo.
    with live.app.app_context():
        photo_path(printer.image_path).unlink()
        build_training_folder(base, submissions, tmp_path / "again", log=lines.append)


def test_a_worker_waits_out_a_database_outage_and_carries_on(tmp_path):
    """The database restarted under a waiting worker: it died with the driver's traceback and
    `binbot serve` counted a crash. Now it says so once, waits, and carries on."""
    with fresh_postgres_database("binbot_outage") as url:
        env = os.environ | {"DATABASE_URL": url, "BINBOT_INSTANCE_DIR": str(tmp_path)}
        assert binbot("db", "upgrade", "--no-starter", env=env).returncode == 0
        worker = subprocess.Popen(
            [sys.executable, "-m", "binbot", "worker"], env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        lines: list[str] = []
        threading.Thread(target=lambda: lines.extend(worker.stdout), daemon=True).start()

        def wait_for(text: str) -> None:
            deadline = time.monotonic() + 60
            while not any(text in line for line in lines):
                assert worker.poll() is None, "".join(lines)
                assert time.monotonic() < deadline, f"no {text!r} in: {''.join(lines)}"
                time.sleep(0.2)

        try:
            wait_for("waiting for retraining jobs")
            with database_down(url):
                wait_for("the database cannot be reached")
            wait_for("the database is back")
        finally:
            worker.send_signal(signal.SIGINT)
            worker.wait(timeout=60)
        output = "".join(lines)
        assert worker.returncode == 0 and "Traceback" not in output, output
        assert output.count("the database cannot be reached") == 1  # once, not every retry


def test_a_running_job_outlives_a_database_blip(tmp_path, monkeypatch):
    """One failed beat ended the heartbeat thread, so a job that trained on was later taken
    for dead by the other workers; one failed log line stopped the training."""
    from server.jobs import worker

    monkeypatch.setattr(worker, "HEARTBEAT_SECONDS", 0.2)
    with fresh_postgres_database("binbot_blip") as url:
        serving = serve_live(tmp_path, url)
        live = next(serving)
        stop, cancelled = threading.Event(), threading.Event()
        try:
            with live.app.app_context():
                job_id = enqueue({})[0].id
                claim_next("w1")
            beating = threading.Thread(
                target=worker._beat_until, args=(stop, cancelled, live.app, job_id), daemon=True
            )
            beating.start()
            with database_down(url):
                time.sleep(1)  # several beats fail
                echoed: list[str] = []
                reporter = worker.JobReporter(job_id, echoed.append, cancelled)
                with live.app.app_context():
                    reporter.log("head      epoch  3/30")  # training goes on
                    reporter.event({"event": "step", "step": "evaluating"})
                assert echoed[1].startswith(f"[job {job_id}] not stored in the job's record (")
            with live.app.app_context():
                reporter.log("head      epoch  4/30")
                assert db.session.get(TrainingJob, job_id).log.endswith("epoch  4/30\n")
            back = utcnow()
            deadline = time.monotonic() + 30
            while True:
                with live.app.app_context():
                    beat = db.session.get(TrainingJob, job_id).heartbeat_at
                if beat is not None and beat.replace(tzinfo=None) > back.replace(tzinfo=None):
                    break
                assert beating.is_alive() and time.monotonic() < deadline, "no beat since"
                time.sleep(0.2)
        finally:
            stop.set()
            next(serving, None)
