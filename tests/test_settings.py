"""Training settings are declared once; the command line and the retraining API both follow
that declaration (the console's form is checked in test_console.py)."""

from __future__ import annotations

import pytest
import requests
from conftest import binbot, console_session

from conversion.config import convert_settings
from server.jobs.queue import job_settings
from training.config import TrainConfig, train_settings


def test_every_training_setting_is_a_command_line_option_with_its_bounds():
    shown = binbot("train", "--help").stdout.replace("\n", " ")
    shown = " ".join(shown.split())
    for setting in train_settings():
        flag = f"--no-{setting.name.replace('_', '-')}" if setting.kind is bool else setting.flag
        assert flag in shown, flag
        if setting.bounds:
            assert setting.bounds in shown, (setting.name, setting.bounds)
    assert len(train_settings()) == len(TrainConfig.__dataclass_fields__) - 1  # all but extra


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-size", "0"], "batch_size must be a whole number from 1 to 512"),
        (["--head-epochs", "many"], "head_epochs must be a number, got 'many'"),
        (["--fine-tune-layers", "some"], "fine_tune_layers must be a number, got 'some'"),
        (["--dropout", "1.5"], "dropout must be a number from 0 to 0.95"),
    ],
)
def test_a_setting_out_of_bounds_is_one_line_and_exit_2(args, message, tmp_path):
    result = binbot("train", str(tmp_path), "--out", str(tmp_path / "run"), *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("binbot: error:") and message in lines[0]


def test_retraining_settings_come_from_the_same_declaration(live):
    from server.admin.tokens import create_admin_token
    from server.jobs.retrain import RetrainOptions
    from training.settings import declared

    names = [s.name for s in job_settings()]
    everywhere = [*train_settings(), *convert_settings(), *declared(RetrainOptions)]
    assert names == [s.name for s in everywhere if s.spec.retraining]
    assert {"reference_images", "batch_size", "from_scratch"} <= set(names)
    with live.app.app_context():
        auth = {"Authorization": f"Bearer {create_admin_token()}"}
    url = f"{live.url}/api/admin/jobs"
    refused = requests.post(url, json={"settings": {"batch_size": 0}}, headers=auth, timeout=30)
    assert refused.status_code == 400
    assert refused.json()["error"] == "batch_size must be a whole number from 1 to 512"
    fixed = requests.post(url, json={"settings": {"seed": 3}}, headers=auth, timeout=30)
    assert fixed.status_code == 400 and "unknown settings ['seed']" in fixed.json()["error"]
    queued = requests.post(url, json={"settings": {"batch_size": 8, "reference_images": 20}},
                           headers=auth, timeout=30)  # fmt: skip
    assert queued.status_code == 202
    assert queued.json()["job"]["settings"] == {"batch_size": 8, "reference_images": 20}
    # The job's console page names them as its form does, not as the JSON the API stores.
    chosen = {"batch_size": 8, "reference_images": None, "from_scratch": True}
    defaults = requests.post(url, json={}, headers=auth, timeout=30).json()["job"]["id"]
    picked = requests.post(url, json={"settings": chosen}, headers=auth, timeout=30)
    jar, _ = console_session(live)
    pages = [requests.get(f"{live.url}/admin/training/{job}", cookies=jar, timeout=30).text
             for job in (defaults, picked.json()["job"]["id"])]  # fmt: skip
    assert "Settings: the defaults." in pages[0]
    assert ("Settings: Batch size 8, Reference images all, From scratch yes; "
            "the rest at their defaults.") in pages[1]  # fmt: skip
