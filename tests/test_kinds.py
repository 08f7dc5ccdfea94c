"""Kinds and their disposal advice as data: edited by admins, versioned, new kinds from the
photos people name "something else", and the advice reaching phones without a new model."""

from __future__ import annotations

import re
import zipfile
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from browser import PHONE, AppServer, choose_photo, wait_until_ready
from conftest import STARTER_VERSION, at_once, console_session, starter_variant, submit

ADVICE = {
    "category": "Batteries",
    "bin": "Battery box at the supermarket",
    "steps": ["Tape the terminals.", "Drop it in the box by the exit."],
    "hazards": ["fire risk"],
    "link": "https://example.org/batteries",
}


@pytest.fixture
def auth(live):
    from server.admin.tokens import create_admin_token

    with live.app.app_context():
        return {"Authorization": f"Bearer {create_admin_token()}"}


def test_advice_is_edited_as_data_and_phones_see_the_new_version(live, auth):
    before = requests.get(f"{live.url}/api/advice", timeout=30)
    etag = before.headers["ETag"]
    assert requests.get(f"{live.url}/api/advice", headers={"If-None-Match": etag},
                        timeout=30).status_code == 304  # fmt: skip
    saved = requests.put(f"{live.url}/api/admin/kinds/Battery/advice", json=ADVICE,
                         headers=auth, timeout=30)  # fmt: skip
    assert saved.status_code == 200
    after = requests.get(f"{live.url}/api/advice", headers={"If-None-Match": etag}, timeout=30)
    assert after.status_code == 200 and after.headers["ETag"] != etag
    assert after.json()["kinds"]["Battery"]["bin"] == "Battery box at the supermarket"
    labels = requests.get(f"{live.url}/api/labels", timeout=30).json()
    battery = next(label for label in labels["labels"] if label["name"] == "Battery")
    assert battery["guidance"]["steps"] == ADVICE["steps"]
    assert labels["advice_version"] == after.json()["advice_version"]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"steps": []}, "at least one step"),
        ({"link": "http://example.org"}, "https://"),
        ({"bin": ""}, "needs a bin"),
        ({"steps": ["x" * 300]}, "at most 10 lines of 200"),
        ({"steps": [1, {"a": 2}]}, "steps must be text"),  # not stored as "1" and "{'a': 2}"
        ({"hazards": {"fire": True}}, "hazards must be text"),
        ({"category": 5}, "category must be text"),
    ],
)
def test_bad_advice_is_refused_and_nothing_changes(live, auth, change, why):
    version = requests.get(f"{live.url}/api/advice", timeout=30).json()["advice_version"]
    refused = requests.put(f"{live.url}/api/admin/kinds/Mouse/advice", json={**ADVICE, **change},
                           headers=auth, timeout=30)  # fmt: skip
    assert refused.status_code == 422 and why in refused.json()["error"]
    assert requests.get(f"{live.url}/api/advice", timeout=30).json()["advice_version"] == version


def test_a_misspelt_or_misplaced_advice_field_is_refused_not_dropped(live, auth):
    """An edit that names a field advice does not have used to be saved without it (200): a
    "titel" was lost without a word, and a "revision" in the body, meant to guard against
    saving over someone's edit, guarded nothing. Now the request is refused and nothing saved;
    the same for a new kind's advice."""
    version = requests.get(f"{live.url}/api/advice", timeout=30).json()["advice_version"]
    url = f"{live.url}/api/admin/kinds"
    for extra in ({"titel": "Old batteries"}, {"revision": battery_revision(live, auth)}):
        refused = requests.put(f"{url}/Battery/advice", json={**ADVICE, **extra}, headers=auth,
                               timeout=30)  # fmt: skip
        name = next(iter(extra))
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"].startswith(f"unknown field '{name}'")
    made = requests.post(url, json={"name": "Charger", "advice": {**ADVICE, "titel": "x"},
                                    "from_proposal": "charger"}, headers=auth, timeout=30)  # fmt: skip
    assert made.status_code == 400 and "unknown advice field 'titel'" in made.json()["error"]
    assert requests.get(f"{live.url}/api/advice", timeout=30).json()["advice_version"] == version


def battery_revision(live, auth) -> int:
    kinds = requests.get(f"{live.url}/api/admin/kinds", headers=auth, timeout=30).json()["kinds"]
    return next(k["revision"] for k in kinds if k["name"] == "Battery")


def saved_bin(live) -> str:
    return requests.get(f"{live.url}/api/advice", timeout=30).json()["kinds"]["Battery"]["bin"]


def test_an_edit_of_advice_someone_changed_meanwhile_is_refused_not_saved_over(live, auth):
    """Two admins edit the same advice: the one who saves second started from text that is no
    longer current, and is told so (412) instead of silently undoing the first one's edit."""
    url = f"{live.url}/api/admin/kinds/Battery/advice"
    opened = battery_revision(live, auth)
    first = requests.put(url, json=ADVICE, headers={**auth, "If-Match": f'"{opened}"'}, timeout=30)
    assert first.status_code == 200 and first.headers["ETag"] == f'"{first.json()["revision"]}"'
    late = requests.put(url, json={**ADVICE, "bin": "Somewhere else"},
                        headers={**auth, "If-Match": f'"{opened}"'}, timeout=30)  # fmt: skip
    assert late.status_code == 412 and "changed by someone else" in late.json()["error"]
    assert saved_bin(live) == ADVICE["bin"]
    again = requests.put(url, json={**ADVICE, "bin": "Somewhere else"},
                         headers={**auth, "If-Match": first.headers["ETag"]}, timeout=30)  # fmt: skip
    assert again.status_code == 200 and saved_bin(live) == "Somewhere else"
    odd = requests.put(url, json=ADVICE, headers={**auth, "If-Match": "yesterday"}, timeout=30)
    assert odd.status_code == 400 and "If-Match" in odd.json()["error"]

    # Eight saves from the same revision at once: one is saved, the others are told.
    opened = battery_revision(live, auth)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(
            lambda n: requests.put(url, json={**ADVICE, "bin": f"Bin {n}"},
                                   headers={**auth, "If-Match": f'"{opened}"'}, timeout=60),
            range(8),
        ))  # fmt: skip
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] + [412] * 7, statuses
    [winner] = [a for a in answers if a.status_code == 200]
    assert saved_bin(live) == winner.json()["guidance"]["bin"]


def test_the_console_keeps_a_refused_edit_in_its_form(live, auth):
    """In the console, a refused edit comes back in its form with the admin's own text and a
    message, not as a page with their typing gone: an invalid one (which keeps the revision it
    started from), and one whose page was out of date (which then takes the current one)."""
    jar, csrf = console_session(live)
    page = requests.get(f"{live.url}/admin/kinds", cookies=jar, timeout=30).text
    opened = re.search(r'id="kind-Battery".*?name="revision" value="(\d+)"', page, re.S).group(1)
    invalid = {"csrf_token": csrf, "revision": opened, "category": "Batteries",
               "bin": "Typed with care", "steps": "Step one", "hazards": "", "link": "http://x.org"}  # fmt: skip
    refused = requests.post(f"{live.url}/admin/kinds/Battery/advice", data=invalid, cookies=jar,
                            timeout=30)  # fmt: skip
    assert refused.status_code == 422 and "https://" in refused.text
    assert 'value="Typed with care"' in refused.text and 'value="http://x.org"' in refused.text
    kept = re.search(r'id="kind-Battery".*?name="revision" value="(\d+)"', refused.text, re.S)
    assert kept.group(1) == opened

    requests.put(f"{live.url}/api/admin/kinds/Battery/advice", json=ADVICE, headers=auth,
                 timeout=30)  # another admin saves first  # fmt: skip
    form = {"csrf_token": csrf, "revision": opened, "category": "Batteries",
            "bin": "My carefully typed bin", "steps": "Step one\nStep two", "hazards": "",
            "link": ""}  # fmt: skip
    refused = requests.post(f"{live.url}/admin/kinds/Battery/advice", data=form, cookies=jar,
                            timeout=30)  # fmt: skip
    assert refused.status_code == 409
    assert "changed by someone else" in refused.text and "not saved yet" in refused.text
    assert 'value="My carefully typed bin"' in refused.text and "Step one\nStep two" in refused.text
    assert saved_bin(live) == ADVICE["bin"]

    current = re.search(r'id="kind-Battery".*?name="revision" value="(\d+)"', refused.text,
                        re.S).group(1)  # fmt: skip
    saved = requests.post(f"{live.url}/admin/kinds/Battery/advice",
                          data={**form, "revision": current}, cookies=jar, timeout=30)  # fmt: skip
    assert saved.status_code == 200 and saved_bin(live) == "My carefully typed bin"


def test_advice_of_a_kind_named_in_any_language_is_saved_from_the_console(live):
    """Kinds are named after their dataset's folders or by admins, in any language; the
    console's answer to a save points back at the kind's section, which must still be a
    header the server can send."""
    from server.extensions import db
    from server.registry.kinds import ensure_kinds

    with live.app.app_context():
        ensure_kinds(["Żarówka", "充電器"])
        db.session.commit()
    jar, csrf = console_session(live)
    for name in ("Żarówka", "充電器"):
        form = {"csrf_token": csrf, "category": "Lamps", "bin": f"{name} box", "steps": "Take it",
                "hazards": "", "link": ""}  # fmt: skip
        saved = requests.post(f"{live.url}/admin/kinds/{name}/advice", data=form, cookies=jar,
                              timeout=30, allow_redirects=False)  # fmt: skip
        assert saved.status_code == 302, name
        assert saved.headers["Location"].startswith("/admin/kinds#"), name
        advice = requests.get(f"{live.url}/api/advice", timeout=30).json()["kinds"][name]
        assert advice["bin"] == f"{name} box"
    # An address that spells the kind otherwise saves it and points at the kind's own section.
    form = {"csrf_token": csrf, "category": "Batteries", "bin": "Battery box", "steps": "Tape it",
            "hazards": "", "link": ""}  # fmt: skip
    saved = requests.post(f"{live.url}/admin/kinds/battery/advice", data=form, cookies=jar,
                          timeout=30, allow_redirects=False)  # fmt: skip
    assert saved.headers["Location"].endswith("#kind-Battery")


def test_a_model_trained_on_lowercase_folders_uses_the_kinds_it_names(live, auth, photo,
                                                                      tmp_path):  # fmt: skip
    """Folders are often lowercase (``mouse/``). Such a model's labels are the kinds whose names
    match by key: publishing it (a 500 before: a second kind with the same key), its advice,
    corrections sent under its labels (422 'unknown label' before) and the delete guard."""
    from server.registry.bundles import register_bundle

    def lowercase(manifest: dict) -> None:
        manifest["labels"] = [label.lower() for label in manifest["labels"]]

    with live.app.app_context():
        register_bundle(starter_variant(tmp_path / "lower", "lower-1", lowercase))
    mouse = requests.get(f"{live.url}/api/advice", timeout=30).json()["kinds"]["Mouse"]
    published = requests.post(f"{live.url}/api/admin/models/lower-1/publish", headers=auth,
                              json={"force": True, "reason": "lowercase folders"}, timeout=30)  # fmt: skip
    assert published.status_code == 200, published.text
    labels = requests.get(f"{live.url}/api/labels", timeout=30).json()["labels"]
    assert next(label["guidance"] for label in labels if label["name"] == "mouse") == mouse
    jar, _ = console_session(live)
    console = requests.get(f"{live.url}/admin/kinds", cookies=jar, timeout=30).text
    assert "not in the live model" not in kind_section(console, "Mouse")

    requests.put(f"{live.url}/api/admin/kinds/Mouse/advice", json={**ADVICE, "bin": "Mouse bin"},
                 headers=auth, timeout=30)  # fmt: skip
    advice = requests.get(f"{live.url}/api/advice", timeout=30).json()["kinds"]
    assert advice["mouse"]["bin"] == "Mouse bin"  # phones look it up by the model's label

    sent = submit(live, photo, label="mouse", predicted_label="battery", key="lower-case")
    assert sent.status_code == 201, sent.text
    assert sent.json()["submission"]["label"] == "Mouse"
    again = submit(live, photo, label="mouse", predicted_label="battery", key="lower-case")
    assert again.status_code == 200 and again.json()["replayed"] is True
    kept = requests.delete(f"{live.url}/api/admin/kinds/Mouse", headers=auth, timeout=30)
    assert kept.status_code == 409 and "live model lower-1" in kept.json()["error"]


def proposals(live, archive_zip, name: str, start: int, count: int) -> None:
    """Mouse photos sent as "something else" under ``name`` (by one person: the upload and
    proposal limits are raised for it)."""
    live.app.config["BINBOT_LIMITS"] = {**live.app.config["BINBOT_LIMITS"],
                                        "uploads per minute": (100, 60),
                                        "proposals per day": (100, 86400)}  # fmt: skip
    with zipfile.ZipFile(archive_zip) as archive:
        photos = sorted(n for n in archive.namelist() if "/train/Mouse/" in n)[
            start : start + count
        ]
        for i, photo in enumerate(photos):
            answer = submit(live, archive.read(photo), key=f"{name}-{start + i}", label="",
                            proposed_name=name)  # fmt: skip
            assert answer.status_code == 201, answer.text


def test_a_new_kind_needs_a_fresh_name_advice_and_enough_photos(live, auth, ewaste_zip):
    proposals(live, ewaste_zip, "computer mouse", 0, 12)
    url = f"{live.url}/api/admin/kinds"
    body = {"name": "Computer mouse", "advice": ADVICE, "from_proposal": "computer mouse"}
    few = requests.post(url, json=body, headers=auth, timeout=30)
    assert few.status_code == 422 and "at least 20 photos" in few.json()["error"]
    for taken in ("battery", "  BATTERY ", "B\u0430ttery"):  # case, spaces, a look-alike letter
        clash = requests.post(url, json={**body, "name": taken}, headers=auth, timeout=30)
        assert clash.status_code in (409, 422), taken
    # A name is also the folder training reads the kind's photos from.
    for folder_breaking in ("Mouse/trackpad", "Mouse\\trackpad", ".mouse", "__MACOSX"):
        odd = requests.post(url, json={**body, "name": folder_breaking}, headers=auth, timeout=30)
        assert odd.status_code == 422 and "training" in odd.json()["error"], folder_breaking
    kinds = requests.get(url, headers=auth, timeout=30).json()["kinds"]
    assert "Computer mouse" not in [k["name"] for k in kinds]  # nothing half-made

    proposals(live, ewaste_zip, "Computer  Mouse", 12, 20)  # the same name, spelled otherwise
    for not_text in ({"name": {"a": 1}}, {"name": ["Computer mouse"]}, {"from_proposal": 5}):
        wrong = requests.post(url, json={**body, **not_text}, headers=auth, timeout=30)
        assert wrong.status_code == 400 and "must be text" in wrong.json()["error"], not_text
    made = requests.post(url, json=body, headers=auth, timeout=30)
    assert made.status_code == 201, made.text
    rows = requests.get(f"{live.url}/api/admin/submissions", params={"label": "Computer mouse"},
                        headers=auth, timeout=30).json()["submissions"]  # fmt: skip
    assert len(rows) == 32 and {r["status"] for r in rows} == {"accepted"}
    live_kind = requests.delete(f"{url}/Battery", headers=auth, timeout=30)
    assert live_kind.status_code == 409 and "live model" in live_kind.json()["error"]


def test_edited_advice_reaches_a_phone_at_its_next_check_and_stays_offline(
    browser, tmp_path, small_ewaste, webclient_dist
):
    from server import create_app
    from server.admin.tokens import create_admin_token
    from server.extensions import db

    server = AppServer(tmp_path / "instance").start()
    try:
        context = browser.new_context(viewport=PHONE)
        phone = context.new_page()
        phone.goto(server.url)
        wait_until_ready(phone)
        photo = next((small_ewaste / "test" / "Washing Machine").iterdir())
        choose_photo(phone, photo)
        kind = phone.locator("#result").get_attribute("data-top")
        app = create_app(server.config)
        with app.app_context():
            token = create_admin_token()
            db.engine.dispose()
        new_step = f"Brand-new advice for {kind}: ask the shop that sells its replacement."
        answer = requests.put(f"{server.url}api/admin/kinds/{kind}/advice",
                              json={**ADVICE, "steps": [new_step]},
                              headers={"Authorization": f"Bearer {token}"}, timeout=30)  # fmt: skip
        assert answer.status_code == 200
        phone.get_by_role("button", name="Check for a new model").click()
        phone.wait_for_function(
            "document.getElementById('status').textContent.includes('advice was updated')"
        )
        assert phone.locator("#model-status").get_attribute("data-version") == STARTER_VERSION
        server.stop()
        context.set_offline(True)
        phone.reload()
        wait_until_ready(phone)
        choose_photo(phone, photo)
        if phone.locator("#result").get_attribute("data-verdict") == "known":
            assert new_step in phone.locator("#guidance").inner_text()
        else:  # not sure of this photo: the picker's guidance shows for the chosen kind
            assert phone.evaluate(
                f"window.binbot.state.entry.labels.find((l) => l.name === {kind!r}).guidance.steps[0]"
            ) == new_step  # fmt: skip
        context.close()
    finally:
        server.stop()


def proposal_groups(live, auth) -> dict[str, int]:
    answer = requests.get(f"{live.url}/api/admin/proposals", headers=auth, timeout=30)
    return {p["key"]: p["count"] for p in answer.json()["proposals"]}


def test_two_admins_making_the_same_kind_at_once_get_one_kind(live, auth, ewaste_zip):
    """Two admins (or two tabs) create the kind from the same proposal at the same moment:
    one kind, and the other request is answered with it or told, never a 500."""
    proposals(live, ewaste_zip, "computer mouse", 0, 20)
    body = {"name": "Computer mouse", "advice": ADVICE, "from_proposal": "computer mouse"}
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: requests.post(f"{live.url}/api/admin/kinds", json=body,
                                                        headers=auth, timeout=30), range(8)))  # fmt: skip
    assert {a.status_code for a in answers} <= {201, 409}, [a.text for a in answers]
    kinds = requests.get(f"{live.url}/api/admin/kinds", headers=auth, timeout=30).json()["kinds"]
    assert [k["name"] for k in kinds].count("Computer mouse") == 1


def test_a_new_kind_takes_only_the_photos_still_waiting_under_its_name(live, auth, ewaste_zip):
    """People keep sending mice as "computer mouse". The admin mapped the first 20 to Mouse;
    later they make the next ones a kind of their own. The new kind must take the photos in
    the group the console showed, not move the ones already filed under Mouse (all 40 moved)."""
    proposals(live, ewaste_zip, "computer mouse", 0, 20)
    settle = f"{live.url}/api/admin/proposals/settle"
    for key in ("computer mouse", "nothing sent under this name"):
        garbled = requests.post(settle, json={"key": key, "action": "mpa"}, headers=auth,
                                timeout=30)  # fmt: skip
        assert garbled.status_code == 400
        assert garbled.json()["error"] == "action must be map or reject"
    for key in (["computer mouse"], None, ""):  # a list was looked up as "['computer mouse']"
        garbled = requests.post(settle, json={"key": key, "action": "reject"}, headers=auth,
                                timeout=30)  # fmt: skip
        assert garbled.status_code == 400 and "key must be" in garbled.json()["error"]
    mapped = requests.post(settle, json={"key": "computer mouse", "action": "map",
                                         "label": "Mouse"}, headers=auth, timeout=30)  # fmt: skip
    assert mapped.json()["updated"] == 20
    proposals(live, ewaste_zip, "computer mouse", 20, 20)
    assert proposal_groups(live, auth) == {"computer mouse": 20}
    body = {"name": "Computer mouse", "advice": ADVICE, "from_proposal": "computer mouse"}
    made = requests.post(f"{live.url}/api/admin/kinds", json=body, headers=auth, timeout=30)
    assert made.status_code == 201, made.text

    def accepted(label: str) -> int:
        rows = requests.get(f"{live.url}/api/admin/submissions", headers=auth, timeout=30,
                            params={"label": label, "limit": 100}).json()["submissions"]  # fmt: skip
        return len(rows)

    assert (accepted("Mouse"), accepted("Computer mouse")) == (20, 20)
    again = requests.post(f"{live.url}/api/admin/kinds", json=body, headers=auth, timeout=30)
    assert again.status_code == 201  # a double click: the same kind, nothing moved
    assert (accepted("Mouse"), accepted("Computer mouse")) == (20, 20)


def test_a_kind_made_again_in_other_letters_is_the_same_kind(live, auth, ewaste_zip):
    """A second admin (or a second tab) makes the kind that was just made from "widget" again,
    spelt "Widget" where the first wrote "WIDGET". Names are compared without case, so that
    is the same kind, made already: the answer names it and nothing moves. It was refused as
    "a new kind needs at least 20 photos; 0 were sent as 'widget'", which they were."""
    url = f"{live.url}/api/admin/kinds"
    proposals(live, ewaste_zip, "widget", 0, 20)
    body = {"name": "WIDGET", "advice": ADVICE, "from_proposal": "widget"}
    assert requests.post(url, json=body, headers=auth, timeout=30).status_code == 201
    again = requests.post(url, json={**body, "name": "Widget"}, headers=auth, timeout=30)
    assert again.status_code == 201 and again.json()["name"] == "WIDGET", again.text

    kinds = [k["name"] for k in requests.get(url, headers=auth, timeout=30).json()["kinds"]]
    assert [k for k in kinds if k.lower() == "widget"] == ["WIDGET"]
    accepted = requests.get(f"{live.url}/api/admin/submissions", headers=auth, timeout=30,
                            params={"status": "accepted", "limit": 100}).json()["submissions"]  # fmt: skip
    assert [s["label"] for s in accepted] == ["WIDGET"] * 20


def test_photos_of_a_deleted_kind_go_back_to_the_proposals(live, auth, ewaste_zip):
    """An admin makes "Computer mouse" a kind, sees it duplicates Mouse, and deletes it: its
    photos must not stay accepted under a name that no longer exists (retraining would learn
    the deleted kind and publishing would bring it back with general advice). They return to
    the proposals, where the admin can map them to Mouse."""
    proposals(live, ewaste_zip, "computer mouse", 0, 20)
    url = f"{live.url}/api/admin/kinds"
    body = {"name": "Computer mouse", "advice": ADVICE, "from_proposal": "computer mouse"}
    assert requests.post(url, json=body, headers=auth, timeout=30).status_code == 201
    with zipfile.ZipFile(ewaste_zip) as archive:
        photo = archive.read(sorted(n for n in archive.namelist() if "/test/Mouse/" in n)[0])
    assert submit(live, photo, label="Computer mouse", key="after").status_code == 201

    # Kinds are named by key in URLs too: another spelling deletes the kind, by its own name.
    deleted = requests.delete(f"{url}/ COMPUTER  mouse", headers=auth, timeout=30)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"deleted": "Computer mouse", "returned_to_proposals": 21}
    assert "Computer mouse" not in [k["name"] for k in requests.get(
        url, headers=auth, timeout=30).json()["kinds"]]  # fmt: skip
    assert proposal_groups(live, auth)["computer mouse"] == 21
    mapped = requests.post(
        f"{live.url}/api/admin/proposals/settle",
        headers=auth,
        timeout=30,
        json={"key": "computer mouse", "action": "map", "label": "Mouse"},
    )
    assert mapped.json()["updated"] == 21
    accepted = requests.get(
        f"{live.url}/api/admin/submissions",
        headers=auth,
        timeout=30,
        params={"status": "accepted", "limit": 100},
    ).json()["submissions"]
    assert {s["label"] for s in accepted} == {"Mouse"} and len(accepted) == 21


def deleted_kind_known_by_a_model(live, auth, ewaste_zip, tmp_path) -> tuple[str, dict]:
    """The kind "Computer mouse", made from 20 proposals, learned by the registered version
    mice-2 (not live), then deleted; returns the kinds URL and the body that makes it again."""
    from server.registry.bundles import register_bundle

    def knows_computer_mouse(manifest: dict) -> None:
        manifest["labels"] = ["Computer mouse" if x == "Mouse" else x for x in manifest["labels"]]

    proposals(live, ewaste_zip, "computer mouse", 0, 20)
    url = f"{live.url}/api/admin/kinds"
    body = {"name": "Computer mouse", "advice": ADVICE, "from_proposal": "computer mouse"}
    assert requests.post(url, json=body, headers=auth, timeout=30).status_code == 201
    with live.app.app_context():
        register_bundle(starter_variant(tmp_path / "mice", "mice-2", knows_computer_mouse))
    assert requests.delete(f"{url}/Computer mouse", headers=auth, timeout=30).status_code == 200
    return url, body


def test_a_correction_queued_offline_under_a_kind_deleted_since_joins_the_proposals(
    live, auth, ewaste_zip, tmp_path
):
    """A phone whose model offered "Computer mouse" queued a correction offline; meanwhile an
    admin deleted that kind. Sent later, it was refused as an unknown label, and the person's
    photo and answer were lost. It now joins the proposals under that name, where the deleted
    kind's own photos went. A label that no model the photo names had is still refused."""
    deleted_kind_known_by_a_model(live, auth, ewaste_zip, tmp_path)
    with zipfile.ZipFile(ewaste_zip) as archive:
        photo = archive.read(sorted(n for n in archive.namelist() if "/test/Mouse/" in n)[0])

    for version in (STARTER_VERSION, "", "mice-9"):  # models that never offered the name
        refused = submit(live, photo, key=f"not-{version}", label="Computer mouse",
                         model_version=version)  # fmt: skip
        assert refused.status_code == 422 and "unknown label" in refused.json()["error"]
    assert proposal_groups(live, auth)["computer mouse"] == 20

    queued = submit(live, photo, key="queued", label="Computer mouse", model_version="mice-2")
    assert queued.status_code == 201, queued.text
    stored = queued.json()["submission"]
    assert (stored["label"], stored["proposed_name"]) == (None, "Computer mouse")
    assert proposal_groups(live, auth)["computer mouse"] == 21
    again = submit(live, photo, key="queued", label="Computer mouse", model_version="mice-2")
    assert again.status_code == 200 and again.json()["replayed"]


def test_a_proposal_group_settled_by_two_admins_at_once_is_settled_once(live, auth, ewaste_zip):
    """Four presses of "Map to Mouse" and four of "Reject" on one group at the same moment:
    one of them settles it and the others are told there is nothing left to settle. All
    eight used to answer "updated: 5", each settling the same photos over the one before."""
    proposals(live, ewaste_zip, "gizmo", 0, 5)
    choices = [
        {"key": "gizmo", "action": "map", "label": "Mouse"},
        {"key": "gizmo", "action": "reject"},
    ]

    answers = at_once(8, lambda i: requests.post(
        f"{live.url}/api/admin/proposals/settle", json=choices[i % 2], headers=auth, timeout=30
    ))  # fmt: skip
    assert sorted(a.status_code for a in answers) == [200] + [404] * 7
    winner = choices[next(i for i, a in enumerate(answers) if a.status_code == 200) % 2]
    rows = requests.get(f"{live.url}/api/admin/submissions", headers=auth, timeout=30,
                        params={"limit": 100}).json()["submissions"]  # fmt: skip
    expected = ("Mouse", "accepted") if winner["action"] == "map" else (None, "rejected")
    assert [(r["label"], r["status"]) for r in rows] == [expected] * 5


def test_a_kind_deleted_and_mapped_to_at_the_same_moment_ends_deleted_once_with_no_photos(
    live, auth, ewaste_zip
):
    """Admins map a group of proposals to "Computer mouse" while others delete that kind, all
    at the same moment. One deletion deletes it and the others are told it is gone (all four
    answered 200, each recording a deletion). The photos were either filed first (and the
    deletion sends them back to the proposals) or the kind was gone first (and the mapping is
    refused): never photos accepted under a kind that no longer exists, which retraining
    would learn."""
    proposals(live, ewaste_zip, "computer mouse", 0, 20)
    url = f"{live.url}/api/admin/kinds"
    body = {"name": "Computer mouse", "advice": ADVICE, "from_proposal": "computer mouse"}
    assert requests.post(url, json=body, headers=auth, timeout=30).status_code == 201
    proposals(live, ewaste_zip, "mouse gadget", 20, 12)
    settle = {"key": "mouse gadget", "action": "map", "label": "Computer mouse"}

    def press(i):
        if i % 2:
            return requests.delete(f"{url}/Computer mouse", headers=auth, timeout=30)
        return requests.post(f"{live.url}/api/admin/proposals/settle", json=settle,
                             headers=auth, timeout=30)  # fmt: skip

    answers = at_once(8, press)
    deletions, mappings = answers[1::2], answers[0::2]
    assert sorted(a.status_code for a in deletions) == [200, 404, 404, 404]  # one deleted it
    assert {a.status_code for a in mappings} <= {200, 404, 422}, [a.text for a in mappings]
    kinds = [k["name"] for k in requests.get(url, headers=auth, timeout=30).json()["kinds"]]
    accepted = requests.get(f"{live.url}/api/admin/submissions", headers=auth, timeout=30,
                            params={"status": "accepted", "limit": 100}).json()["submissions"]  # fmt: skip
    assert "Computer mouse" not in kinds
    assert [s["label"] for s in accepted] == []


def test_publishing_a_model_that_knows_a_deleted_kind_is_refused(live, auth, ewaste_zip,
                                                                 tmp_path):  # fmt: skip
    """A candidate trained while "Computer mouse" was a kind still knows it after an admin
    deleted the kind. Publishing it brought the kind back, with the general advice, undoing the
    deletion unnoticed; now it is refused, saying why, until the kind is made again (or the
    publish is forced with a reason)."""
    url, body = deleted_kind_known_by_a_model(live, auth, ewaste_zip, tmp_path)

    publish = f"{live.url}/api/admin/models/mice-2/publish"
    refused = requests.post(publish, headers=auth, json={}, timeout=30)
    assert refused.status_code == 409, refused.text
    assert "mice-2 knows 'Computer mouse' (deleted " in refused.json()["error"]
    assert "pass force with a reason" in refused.json()["error"]
    kinds = requests.get(url, headers=auth, timeout=30).json()["kinds"]
    assert "Computer mouse" not in [k["name"] for k in kinds]
    current = requests.get(f"{live.url}/api/models/current", timeout=30).json()
    assert current["version"] == STARTER_VERSION

    # The admin makes the kind again (its photos wait in the proposals): now it may go live.
    assert requests.post(url, json=body, headers=auth, timeout=30).status_code == 201
    published = requests.post(publish, headers=auth, json={}, timeout=30)
    assert published.status_code == 200, published.text
    advice = requests.get(f"{live.url}/api/advice", timeout=30).json()["kinds"]
    assert advice["Computer mouse"]["bin"] == ADVICE["bin"]


def test_a_bulk_accept_does_not_swallow_photos_sent_as_something_else(
    live, auth, photo, ewaste_zip
):
    """Pressing "Select all, Accept" on the review page must not take a proposal (a name, no kind) out
    of its group: it would be accepted under no label, never learned and never offered to map
    again. Relabelling one files it under that kind, out of the group."""
    named = submit(live, photo, label="", proposed_name="desk lamp", key="lamp").json()
    with zipfile.ZipFile(ewaste_zip) as archive:
        mouse = archive.read(sorted(n for n in archive.namelist() if "/test/Mouse/" in n)[0])
    corrected = submit(live, mouse, label="Mouse", key="mouse").json()
    ids = [named["submission"]["id"], corrected["submission"]["id"]]
    review = f"{live.url}/api/admin/submissions/review"
    refused = requests.post(review, json={"ids": ids, "action": "accept"}, headers=auth,
                            timeout=30)  # fmt: skip
    assert refused.status_code == 422 and "desk lamp" in refused.json()["error"]
    assert proposal_groups(live, auth) == {"desk lamp": 1}
    pending = requests.get(f"{live.url}/api/admin/submissions", headers=auth, timeout=30,
                           params={"status": "pending"}).json()["submissions"]  # fmt: skip
    assert len(pending) == 2  # all or nothing

    relabelled = requests.post(
        review,
        json={"ids": ids[:1], "action": "relabel", "label": "Battery"},
        headers=auth,
        timeout=30,
    )
    assert relabelled.status_code == 200
    assert proposal_groups(live, auth) == {}
    accepted = requests.post(review, json={"ids": ids, "action": "accept"}, headers=auth,
                             timeout=30)  # fmt: skip
    assert accepted.status_code == 200
    assert sorted(s["label"] for s in accepted.json()["submissions"]) == ["Battery", "Mouse"]


def console_post(live, jar: dict, path: str, form: dict) -> str:
    """Post a console form and follow its redirect, as a browser would, flash message and all
    (the Secure session cookie, which carries the message, is passed by hand over http)."""
    answer = requests.post(f"{live.url}{path}", data=form, cookies=jar, timeout=30,
                           allow_redirects=False)  # fmt: skip
    assert answer.status_code == 302, answer.text
    jar.update(answer.cookies.get_dict())
    return requests.get(f"{live.url}{answer.headers['Location']}", cookies=jar, timeout=30).text


def kind_section(page: str, name: str) -> str:
    return re.search(rf'<section[^>]*data-kind="{name}".*?</section>', page, re.S).group(0)


def test_the_console_keeps_a_refused_new_kind_and_deletes_a_kind_no_model_uses(live, ewaste_zip):
    """Making a kind from the console: a refusal (too few photos) comes back with the name and
    advice the admin typed, not an empty form. A kind no model uses has a Delete button (the
    live model's kinds have none), and deleting returns its photos to the proposals."""
    jar, csrf = console_session(live)
    proposals(live, ewaste_zip, "computer mouse", 0, 12)
    form = {"csrf_token": csrf, "proposal": "computer mouse", "name": "Computer mouse",
            "category": "Peripherals", "bin": "Typed with care", "steps": "Step one\nStep two",
            "hazards": "", "link": ""}  # fmt: skip
    refused = requests.post(f"{live.url}/admin/kinds", data=form, cookies=jar, timeout=30)
    assert refused.status_code == 422 and "at least 20 photos" in refused.text
    assert 'value="Computer mouse"' in refused.text and 'value="Typed with care"' in refused.text
    assert "Step one\nStep two" in refused.text

    proposals(live, ewaste_zip, "computer mouse", 12, 8)
    made = console_post(live, jar, "/admin/kinds", form)
    assert "Computer mouse is a new kind" in made
    assert "Delete Computer mouse" in kind_section(made, "Computer mouse")
    assert "Delete" not in kind_section(made, "Battery")
    deleted = console_post(live, jar, "/admin/kinds/Computer mouse/delete", {"csrf_token": csrf})
    assert "20 photos went back" in deleted and 'data-kind="Computer mouse"' not in deleted
    assert (
        'data-key="computer mouse"'
        in requests.get(f"{live.url}/admin/submissions", cookies=jar, timeout=30).text
    )  # its proposal group is back, to be mapped to Mouse
