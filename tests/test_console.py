"""The admin console over the real stack: gunicorn, a `binbot worker`, SQLite, Chromium.

The closed loop as people live it: a user sends corrections from the phone app; the admin
logs in, accepts them, retrains, watches, compares, publishes; the phone picks the new model
up and uses it offline; the admin rolls back and the phone follows. Screenshots of every
console page (laptop screen) go to artifacts/tests/.
"""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path

import pytest
import requests
from browser import LAPTOP, PHONE, Stack, screenshot, wait_until_ready

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_starter(trained_run, small_bundle, tmp_path_factory) -> Path:
    """The small run as the published model, with its evaluation (per-image predictions)."""
    out = shutil.copytree(small_bundle, tmp_path_factory.mktemp("console-bundle") / "small-1")
    shutil.copytree(trained_run / "evaluation", out / "evaluation")
    return out


@pytest.fixture
def stack(tmp_path, small_starter, small_ewaste, webclient_dist):
    env = {
        "BINBOT_STARTER_MODEL": str(small_starter),
        "BINBOT_BASE_DATASET": str(small_ewaste),
    }
    running = Stack(tmp_path / "instance", env).start()
    yield running
    running.stop()


def percent(text: str) -> float:
    return float(re.search(r"([\d.]+)%", text).group(1))


def log_in(page, url: str, token: str) -> None:
    page.goto(url + "admin/")
    assert "/admin/login" in page.url
    screenshot(page, "console-login")
    page.get_by_label("Admin token").fill("not-the-token")
    page.get_by_role("button", name="Log in").click()
    assert page.get_by_role("alert").inner_text() == "That admin token is not valid."
    page.get_by_label("Admin token").fill(token)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/admin/submissions")


def send_corrections(phone, photos: list[tuple[Path, str]]) -> None:
    for photo, label in photos:
        phone.evaluate("document.getElementById('result').hidden = true")
        phone.set_input_files("#gallery-input", str(photo))
        phone.wait_for_selector("#result:not([hidden])")
        if phone.locator("#wrong-button").is_visible():
            phone.get_by_role("button", name="No, that's wrong").click()
        phone.get_by_label("What is it?").select_option(label)
        phone.get_by_role("button", name="Send correction").click()
        phone.wait_for_function("document.getElementById('feedback-message').textContent !== ''")
    phone.wait_for_function("document.getElementById('queue-status').dataset.waiting === '0'")


def check_for_model(phone, version: str) -> None:
    phone.get_by_role("button", name="Check for a new model").click()
    phone.wait_for_function(
        f"document.getElementById('model-status').dataset.version === '{version}'",
        timeout=60_000,
    )


def test_the_loop_from_corrections_to_a_published_model_and_back(
    browser, stack, small_ewaste, ewaste_zip, tmp_path
):
    import zipfile

    # Two Printer photos the small model never saw (from the full dataset's train split).
    with zipfile.ZipFile(ewaste_zip) as archive:
        names = sorted(n for n in archive.namelist() if "/train/Printer/" in n and n.endswith("g"))
        seen = {p.name for p in (small_ewaste / "train" / "Printer").iterdir()}
        photos = []
        for name in names:
            if Path(name).name not in seen and len(photos) < 2:
                target = tmp_path / Path(name).name
                target.write_bytes(archive.read(name))
                photos.append((target, "Printer"))

    url = stack.web.url
    phone_context = browser.new_context(viewport=PHONE)
    phone = phone_context.new_page()
    phone.goto(url)
    wait_until_ready(phone)
    assert phone.locator("#model-status").get_attribute("data-version") == "small-1"
    send_corrections(phone, photos)

    admin = browser.new_context(viewport=LAPTOP).new_page()
    log_in(admin, url, stack.admin_token())

    # Submissions: the two corrections, pending; accept both; the counts show what training adds.
    admin.get_by_label("Status").select_option("pending")
    admin.get_by_role("button", name="Filter").click()
    assert admin.locator(".gallery .card").count() == 2
    screenshot(admin, "console-submissions")
    admin.get_by_label("Select all shown").check()
    admin.get_by_label("Action").select_option("accept")
    admin.get_by_role("button", name="Apply to selected").click()
    assert "accept: 2 submissions updated." in admin.get_by_role("status").first.inner_text()
    assert admin.locator('.accepted-count[data-class="Printer"]').inner_text() == "2"

    # Training: start a short retraining and watch it live until it finishes. It starts from
    # the live model, which knows every kind here, so its head needs no phase of its own.
    admin.get_by_role("link", name="Training").click()
    for name, value in (("Fine tune epochs", "1"), ("Batch size", "16")):
        admin.get_by_label(name).fill(value)
    admin.get_by_role("button", name="Start retraining").click()
    admin.wait_for_url(re.compile(r".*/admin/training/\d+$"))
    admin.wait_for_function(
        "document.querySelectorAll('#epochs tbody tr').length >= 1", timeout=300_000
    )
    assert "fine-tune epoch 1/1" in admin.locator("#job-phase").inner_text()
    screenshot(admin, "console-training-running")
    admin.wait_for_function(
        "document.getElementById('job')?.dataset.status === 'succeeded'", timeout=600_000
    )
    admin.wait_for_selector("#job-result:not([hidden])")
    candidate = re.search(r"Candidate (\S+):", admin.locator("#job-result").inner_text()).group(1)
    assert "2 of them corrections" in admin.locator("#job-result").inner_text()
    assert "which knows every kind here" in admin.locator("#job-log").inner_text()
    assert admin.locator("#epochs tbody tr").count() == 1
    screenshot(admin, "console-training-finished")

    # Compare with the live model: same test images, both confusion matrices, changed images.
    admin.get_by_role("link", name="Compare with the live model").click()
    assert admin.locator("h1").inner_text() == f"small-1 vs {candidate}"
    assert admin.locator(".matrices img").count() == 2
    for image in admin.locator(".matrices img").all():  # loaded, not still loading, and whole
        admin.wait_for_function("(img) => img.complete", arg=image.element_handle())
        assert image.evaluate("(img) => img.naturalWidth > 0"), image.get_attribute("src")
    assert admin.locator(".recall-row").count() == 10
    assert re.match(r"\d+ changed", admin.locator("#changed-summary").inner_text())
    for image in admin.locator(".changed img").all():  # thumbnails from the base dataset
        image.scroll_into_view_if_needed()
        admin.wait_for_function("(img) => img.complete", arg=image.element_handle())
        assert image.evaluate("(img) => img.naturalWidth > 0"), image.get_attribute("src")
    screenshot(admin, "console-compare")

    # Publish: below the gate it is refused until forced with a reason.
    admin.get_by_role("link", name="Models").click()
    # Nothing to roll back to yet: no button that can only be refused.
    assert admin.get_by_role("button", name=re.compile("Roll back")).count() == 0
    assert "No earlier published version" in admin.locator("#no-rollback").inner_text()
    row = admin.locator(f'tr[data-version="{candidate}"]')
    row.get_by_role("button", name=f"Publish {candidate}").click()
    if admin.locator(".flash.error").count():
        assert "Refused" in admin.locator(".flash.error").inner_text()
        row = admin.locator(f'tr[data-version="{candidate}"]')
        row.get_by_label("Force").check()
        row.get_by_label("Reason").fill("browser test: small data")
        row.get_by_role("button", name=f"Publish {candidate}").click()
    assert f"{candidate} is live" in admin.get_by_role("status").first.inner_text()
    assert admin.locator("#live").inner_text().startswith(f"Live: {candidate} since ")
    screenshot(admin, "console-models")
    # The comparison offered is the live model against the one before, not itself.
    assert admin.locator('select[name="a"]').input_value() == candidate
    assert admin.locator('select[name="b"]').input_value() == "small-1"

    # The phone picks it up at its next check and classifies with it offline.
    check_for_model(phone, candidate)
    phone_context.set_offline(True)
    phone.reload()
    wait_until_ready(phone)
    phone.set_input_files("#gallery-input", str(photos[0][0]))
    phone.wait_for_function(
        f"window.binbot.lastResult && window.binbot.lastResult.version === '{candidate}'"
    )
    phone_context.set_offline(False)

    # Roll back: the phone follows.
    rollback_form = {name: admin.locator(f'form:has(button:text("Roll back")) [name="{name}"]')
                     .get_attribute("value") for name in ("csrf_token", "from")}  # fmt: skip
    # It asks first: "no" leaves the candidate live.
    asked = []
    admin.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    admin.get_by_role("button", name="Roll back to small-1").click()  # names what comes back
    assert asked == ["Roll back to small-1? Phones switch to it at their next check."]
    assert admin.locator("#live").inner_text().startswith(f"Live: {candidate} since ")
    admin.once("dialog", lambda dialog: dialog.accept())
    admin.get_by_role("button", name="Roll back to small-1").click()
    assert "small-1 is live again" in admin.get_by_role("status").first.inner_text()
    # The same form sent again (a double click) changes nothing: it was not toggled back.
    again = admin.request.post(f"{stack.web.url}admin/models/rollback", form=rollback_form)
    assert f"{candidate} is no longer live" in again.text()
    admin.reload()
    assert admin.locator("#live").inner_text().startswith("Live: small-1 since ")
    check_for_model(phone, "small-1")
    phone_context.close()


def test_a_running_retraining_can_be_cancelled_from_the_console(browser, stack):
    admin = browser.new_context(viewport=LAPTOP).new_page()
    log_in(admin, stack.web.url, stack.admin_token())
    admin.get_by_role("link", name="Training").click()
    admin.get_by_label("Head epochs").fill("50")
    admin.get_by_role("button", name="Start retraining").click()
    admin.wait_for_function(
        "document.getElementById('job')?.dataset.status === 'running'", timeout=120_000
    )
    admin.get_by_role("button", name="Cancel this job").click()  # a page load: no #job for a moment
    admin.wait_for_function(
        "document.getElementById('job')?.dataset.status === 'cancelled'", timeout=120_000
    )
    assert "cancelled by an admin" in admin.locator("#job-error").inner_text()


def test_a_choice_of_kind_is_needed_before_photos_are_filed_under_it(browser, server, ewaste_zip):
    """The kind lists of "Map to this kind" and "Relabel as…" started on the first kind, so a
    press without a choice filed the photos as Battery. Now nothing is sent until a kind is
    chosen; rejecting needs no kind."""
    with zipfile.ZipFile(ewaste_zip) as archive:
        photos = [archive.read(n) for n in sorted(archive.namelist()) if "/test/Mouse/" in n][:4]
    forms = ({"proposed_name": "gizmo"},) * 2 + ({"proposed_name": "doohickey"}, {"label": "Mouse"})
    for photo, form in zip(photos, forms, strict=True):
        sent = requests.post(server.url + "api/submissions", data=form, timeout=30,
                             files={"image": ("p.jpg", photo, "image/jpeg")})  # fmt: skip
        assert sent.status_code == 201, sent.text
    admin = browser.new_page(viewport=LAPTOP)
    admin.goto(server.url + "admin/login")
    admin.get_by_label("Admin token").fill(server.admin_token())
    admin.get_by_role("button", name="Log in").click()
    admin.wait_for_url("**/admin/submissions")

    gizmo = admin.locator('tr.proposal[data-key="gizmo"]')
    gizmo.get_by_role("button", name="Map to this kind").click()
    assert gizmo.get_by_label("Kind").evaluate("(select) => select.validity.valueMissing")
    admin.get_by_label("Action").select_option("relabel")
    admin.locator('input[name="ids"]').first.check()
    admin.get_by_role("button", name="Apply to selected").click()
    assert admin.get_by_label("New label").evaluate("(select) => select.validity.valueMissing")
    admin.reload()
    assert admin.locator(".flash").count() == 0  # neither form was sent
    assert admin.locator('tr.proposal[data-key="gizmo"] .proposal-count').inner_text() == "2"

    gizmo.get_by_label("Kind").select_option("Mouse")
    gizmo.get_by_role("button", name="Map to this kind").click()
    assert "map: 2 photos proposed as 'gizmo'" in admin.locator(".flash").inner_text()
    doohickey = admin.locator('tr.proposal[data-key="doohickey"]')
    doohickey.get_by_role("button", name="Reject").click()
    assert "reject: 1 photo proposed as 'doohickey'" in admin.locator(".flash").inner_text()
    admin.close()


def test_console_sessions_are_protected(stack):
    url = stack.web.url
    anonymous = requests.get(url + "admin/models", allow_redirects=False, timeout=10)
    assert anonymous.status_code == 302 and "/admin/login" in anonymous.headers["Location"]

    session = requests.Session()
    wrong = session.post(url + "admin/login", data={"token": "nope"}, timeout=10)
    assert wrong.status_code == 403
    ok = session.post(url + "admin/login", data={"token": stack.admin_token()}, timeout=10,
                      allow_redirects=False)  # fmt: skip
    cookie = ok.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Strict" in cookie
    # requests will not send a Secure cookie over http: pass it by hand, as a browser on
    # 127.0.0.1 (a secure context) does.
    jar = {"binbot_admin": ok.cookies["binbot_admin"]}
    page = requests.get(url + "admin/training", cookies=jar, timeout=10)
    assert page.status_code == 200
    schedule = re.search(r'id="warm-schedule">([^<]+)<', page.text).group(1)
    assert " ".join(schedule.split()) == (
        "10 head epochs, none when the live model knows every kind, then 4 fine-tuning epochs"
    )
    # A page that cannot be shown is an HTML page saying why (a script asking for JSON gets it).
    for bad_filter, why in (("page=two", "page must be a whole number"),
                            ("since=21.11.2026", "dates are YYYY-MM-DD"),
                            ("order=random", "order must be one of"),
                            ("status=lost", "status must be one of")):  # fmt: skip
        answer = requests.get(url + "admin/submissions?" + bad_filter, cookies=jar, timeout=10)
        assert answer.status_code == 400, bad_filter
        assert answer.headers["Content-Type"].startswith("text/html")
        assert why in re.search(r'id="error-message">([^<]+)<', answer.text).group(1)
    as_json = requests.get(url + "admin/submissions?order=random", cookies=jar, timeout=10,
                           headers={"Accept": "application/json"})  # fmt: skip
    assert as_json.status_code == 400 and "order must be one of" in as_json.json()["error"]
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)

    # Every change needs the session's CSRF token; nothing happens without it.
    forged = requests.post(
        url + "admin/training", data={"head_epochs": "1"}, cookies=jar, timeout=10
    )
    assert forged.status_code == 400 and "CSRF check" in forged.text
    assert requests.post(url + "admin/models/rollback", cookies=jar, timeout=10).status_code == 400
    jobs = requests.get(url + "admin/training", cookies=jar, timeout=10).text
    assert "No retraining yet." in jobs
    started = requests.post(url + "admin/training", data={"head_epochs": "1", "csrf_token": token},
                            cookies=jar, timeout=10, allow_redirects=False)  # fmt: skip
    assert started.status_code == 302 and "/admin/training/" in started.headers["Location"]
    bad = requests.post(url + "admin/training", data={"head_epochs": "-3", "csrf_token": token},
                        cookies=jar, timeout=10, allow_redirects=False)  # fmt: skip
    assert bad.status_code == 302 and bad.headers["Location"].endswith("/admin/training")
    listing = requests.get(url + "admin/training", cookies=jar, timeout=10).text
    assert len(re.findall(r">Job \d+</a>", listing)) == 1  # only the valid request made a job
