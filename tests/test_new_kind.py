"""The loop for a new kind, short, in Chromium over gunicorn, a `binbot worker` and SQLite:
a model that does not know mice, people naming mouse photos "something else", the admin making
the kind with its advice in the console, retraining, publishing, and the phone knowing it.
(benchmarks/new_kind_loop.py runs it on the full dataset and measures it.)"""

from __future__ import annotations

import re
import shutil
import uuid
import zipfile
from pathlib import Path

import pytest
import requests
from browser import LAPTOP, PHONE, Stack, wait_until_ready
from conftest import binbot

pytestmark = pytest.mark.slow
NEW_STEP = "Take the batteries out of a wireless mouse first."


@pytest.fixture(scope="module")
def without_mice(small_ewaste, tmp_path_factory) -> tuple[Path, Path]:
    """The small dataset without Mouse, and a model trained on it (float32 bundle)."""
    work = tmp_path_factory.mktemp("no-mice")
    data = work / "dataset"
    shutil.copytree(small_ewaste, data, ignore=shutil.ignore_patterns("Mouse"))
    result = binbot("train", str(data), "--out", str(work / "run"), "--head-epochs", "20",
                    "--fine-tune-epochs", "0", "--batch-size", "16")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    result = binbot("convert", str(work / "run"), "--out", str(work / "bundle"), "--quantize",
                    "none", "--version", "no-mice-1")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return data, work / "bundle"


def test_people_name_a_new_kind_and_the_phone_learns_it(browser, without_mice, ewaste_zip, tmp_path,
                                                        webclient_dist):  # fmt: skip
    data, bundle = without_mice
    stack = Stack(tmp_path / "instance", {"BINBOT_STARTER_MODEL": str(bundle),
                                          "BINBOT_BASE_DATASET": str(data),
                                          "BINBOT_UPLOADS_PER_MINUTE": "0",
                                          "BINBOT_PROPOSALS_PER_DAY": "0"}).start()  # fmt: skip
    try:
        url = stack.web.url
        with zipfile.ZipFile(ewaste_zip) as archive:
            mice = [archive.read(n) for n in sorted(archive.namelist()) if "/train/Mouse/" in n][
                :24
            ]
        for photo in mice:  # what phones send after "Something else: computer mouse"
            sent = requests.post(url + "api/submissions", data={"proposed_name": "computer mouse"},
                                 files={"image": ("m.jpg", photo, "image/jpeg")}, timeout=30,
                                 headers={"Idempotency-Key": str(uuid.uuid4())})  # fmt: skip
            assert sent.status_code == 201, sent.text

        admin = browser.new_context(viewport=LAPTOP).new_page()
        admin.goto(url + "admin/login")
        admin.get_by_label("Admin token").fill(stack.admin_token())
        admin.get_by_role("button", name="Log in").click()
        assert (
            admin.locator('tr.proposal[data-key="computer mouse"] .proposal-count').inner_text()
            == "24"
        )
        admin.get_by_role("link", name="Make it a new kind").click()
        form = admin.locator("#new-kind form")
        form.get_by_label("Name of the kind").fill("Mouse")
        form.get_by_label("Category").fill("Small IT equipment")
        form.get_by_label("Where it goes").fill("E-waste collection point")
        form.get_by_label("Steps, one per line").fill(NEW_STEP)
        form.get_by_role("button", name="Create the kind").click()
        assert "Mouse is a new kind" in admin.locator(".flash").first.inner_text(), admin.locator(
            ".flash"
        ).all_inner_texts()

        admin.get_by_role("link", name="Training").click()
        for name, value in (("Head epochs", "20"), ("Fine tune epochs", "0"), ("Batch size", "16")):
            admin.get_by_label(name).fill(value)
        admin.get_by_role("button", name="Start retraining").click()
        admin.wait_for_function(
            "document.getElementById('job')?.dataset.status === 'succeeded'", timeout=600_000
        )
        candidate = re.search(r"Candidate (\S+):", admin.locator("#job-result").inner_text()).group(
            1
        )
        admin.get_by_role("link", name="Models", exact=True).click()
        row = admin.locator(f'tr[data-version="{candidate}"]')
        row.get_by_label("Force").check()
        row.get_by_label("Reason").fill("a new kind: Mouse")
        row.get_by_role("button", name=f"Publish {candidate}").click()
        assert f"{candidate} is live" in admin.get_by_role("status").first.inner_text()

        phone_context = browser.new_context(viewport=PHONE)
        phone = phone_context.new_page()
        phone.goto(url)
        wait_until_ready(phone)
        assert phone.locator("#model-status").get_attribute("data-version") == candidate
        phone_context.set_offline(True)
        phone.reload()
        wait_until_ready(phone)
        labels = phone.evaluate("window.binbot.state.entry.labels")
        mouse = next(label for label in labels if label["name"] == "Mouse")
        assert mouse["guidance"]["steps"] == [NEW_STEP]
        assert "Mouse" in phone.locator("#label-select option").all_inner_texts()
        phone_context.close()
    finally:
        stack.stop()
