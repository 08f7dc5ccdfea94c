"""The admin API over real HTTP: authentication, reviewing submissions, publish and rollback."""

from __future__ import annotations

import json
import zipfile

import pytest
import requests
from conftest import STARTER, STARTER_VERSION, at_once, serve_live, starter_variant, submit

from server.admin.tokens import create_admin_token
from server.registry.bundles import register_bundle


@pytest.fixture
def token(live):
    with live.app.app_context():
        return create_admin_token()


def get(live, path, token=None, **params):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(f"{live.url}{path}", headers=headers, params=params, timeout=30)


def post(live, path, token, body=None):
    return requests.post(
        f"{live.url}{path}", headers={"Authorization": f"Bearer {token}"}, json=body, timeout=30
    )


def test_admin_endpoints_need_the_token(live, token):
    anonymous = get(live, "/api/admin/submissions")
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert get(live, "/api/admin/submissions", token="wrong").status_code == 403
    assert post(live, "/api/admin/models/rollback", "wrong").status_code == 403
    assert get(live, "/api/admin/submissions", token=token).status_code == 200


def test_admin_tokens_are_listed_and_a_lost_one_revoked(live, token):
    """The API does what the console's Tokens page does: tokens told apart by note and last
    use (never the token or its hash), one revoked, the last one never."""
    with live.app.app_context():
        lost = create_admin_token("Alice's laptop")
    listed = get(live, "/api/admin/tokens", token=token).json()
    mine, other = listed["tokens"]
    assert listed["current"] == mine["id"] and other["note"] == "Alice's laptop"
    assert set(mine) == {"id", "note", "created_at", "last_used_at"} and mine["last_used_at"]
    assert other["last_used_at"] is None  # never used yet

    def revoke(number: int) -> requests.Response:
        return requests.delete(f"{live.url}/api/admin/tokens/{number}", timeout=30,
                               headers={"Authorization": f"Bearer {token}"})  # fmt: skip

    assert revoke(other["id"]).json() == {"revoked": other["id"]}
    assert get(live, "/api/admin/tokens", token=lost).status_code == 403
    assert revoke(other["id"]).status_code == 404
    last = revoke(mine["id"])
    assert last.status_code == 409 and "only admin token" in last.json()["error"]
    assert get(live, "/api/admin/tokens", token=token).status_code == 200


def test_two_admins_revoking_each_others_token_at_once_leave_one(live, token):
    """Each counted two tokens and went ahead: both revoked, nobody could log in."""
    with live.app.app_context():
        other = create_admin_token()
    ids = [t["id"] for t in get(live, "/api/admin/tokens", token=token).json()["tokens"]]
    mine_to_theirs = [(token, ids[1]), (other, ids[0])]

    def revoke(i: int) -> int:
        own, theirs = mine_to_theirs[i]
        return requests.delete(f"{live.url}/api/admin/tokens/{theirs}", timeout=30,
                               headers={"Authorization": f"Bearer {own}"}).status_code  # fmt: skip

    answers = at_once(2, revoke)
    assert sorted(answers) in ([200, 403], [200, 409]), answers
    with live.app.app_context():
        from server.admin.tokens import list_tokens

        assert len(list_tokens()) == 1


@pytest.fixture
def photos(ewaste_zip) -> list[bytes]:
    with zipfile.ZipFile(ewaste_zip) as archive:
        names = sorted(n for n in archive.namelist() if "/test/Printer/" in n)[:3]
        return [archive.read(n) for n in names]


def test_review_submissions_in_bulk(live, token, photos):
    for i, (photo, confidence) in enumerate(zip(photos, ("0.9", "0.2", "0.5"), strict=True)):
        response = submit(live, photo, label="Printer", key=f"p{i}",
                          predicted_label="Microwave", confidence=confidence)  # fmt: skip
        assert response.status_code == 201
    listed = get(live, "/api/admin/submissions", token, status="pending", order="low_confidence")
    rows = listed.json()["submissions"]
    assert [r["confidence"] for r in rows] == [0.2, 0.5, 0.9]
    ids = [r["id"] for r in rows]

    accepted = post(
        live, "/api/admin/submissions/review", token, {"ids": ids[:2], "action": "accept"}
    )
    assert accepted.status_code == 200 and accepted.json()["updated"] == 2
    assert post(live, "/api/admin/submissions/review", token,
                {"ids": [ids[2]], "action": "reject"}).status_code == 200  # fmt: skip
    relabel = post(live, "/api/admin/submissions/review", token,
                   {"ids": [ids[0]], "action": "relabel", "label": "Microwave"})  # fmt: skip
    assert relabel.json()["submissions"][0]["label"] == "Microwave"

    statuses = {
        r["id"]: r["status"]
        for r in get(live, "/api/admin/submissions", token).json()["submissions"]
    }
    assert statuses == {ids[0]: "accepted", ids[1]: "accepted", ids[2]: "rejected"}
    assert (
        len(get(live, "/api/admin/submissions", token, label="Microwave").json()["submissions"])
        == 1
    )
    for bad in ("Toaster", ["Microwave"], {"Microwave": 1}, 5, None):
        bad_label = post(live, "/api/admin/submissions/review", token,
                         {"ids": [ids[0]], "action": "relabel", "label": bad})  # fmt: skip
        assert bad_label.status_code == 422, bad
    # Kinds are compared by key, as a phone's corrections are; the photo gets the kind's name.
    spelt = post(live, "/api/admin/submissions/review", token,
                 {"ids": [ids[0]], "action": "relabel", "label": "  washing MACHINE "})  # fmt: skip
    assert spelt.json()["submissions"][0]["label"] == "Washing Machine"
    # Accepting "as Mouse" is not a relabel: refused, and the photos keep label and status.
    for action in ("accept", "reject"):
        as_mouse = post(live, "/api/admin/submissions/review", token,
                        {"ids": [ids[2]], "action": action, "label": "Mouse"})  # fmt: skip
        assert as_mouse.status_code == 400 and "relabel them first" in as_mouse.json()["error"]
    unchanged = get(live, "/api/admin/submissions", token).json()["submissions"]
    assert {(r["label"], r["status"]) for r in unchanged if r["id"] == ids[2]} == {
        ("Printer", "rejected")
    }
    missing = post(
        live, "/api/admin/submissions/review", token, {"ids": [ids[0], 999], "action": "accept"}
    )
    assert missing.status_code == 404
    assert missing.json()["error"] == "no submissions with ids 999 (1 of 2)"
    assert post(live, "/api/admin/submissions/review", token, {"ids": "all"}).status_code == 400
    # A flood of ids is refused with the bound, not sent to the database (a million were a 500
    # on SQLite; PostgreSQL takes at most 65,535 parameters) nor echoed back in a 404.
    flood = post(live, "/api/admin/submissions/review", token,
                 {"ids": list(range(1, 100_001)), "action": "accept"})  # fmt: skip
    assert flood.status_code == 400 and "at most 1000" in flood.json()["error"]
    many_missing = post(live, "/api/admin/submissions/review", token,
                        {"ids": list(range(500, 1500)), "action": "reject"})  # fmt: skip
    assert many_missing.status_code == 404 and len(many_missing.text) < 300


@pytest.fixture
def live_far_from_utc(tmp_path, database_url):
    """A server whose PostgreSQL answers in UTC+14 (Kiritimati), where a UTC evening is the
    next day: PostgreSQL gives times in its connection's zone, which need not be UTC."""
    if database_url.startswith("postgresql"):
        from conftest import _postgres_admin

        with _postgres_admin() as admin:
            name = database_url.rsplit("/", 1)[1]
            admin.execute(f"ALTER DATABASE \"{name}\" SET timezone TO 'Pacific/Kiritimati'")
    yield from serve_live(tmp_path, database_url)


def test_api_times_carry_their_offset_and_date_filters_mean_utc_days(live_far_from_utc, photos):
    """A client reading the API cannot guess a time's zone: SQLite's came without one (read as
    the client's local time), PostgreSQL's in its connection's zone. And a day in the
    submission filter is a UTC day, as the console shows times; in another zone it was that
    zone's day, so a photo of a UTC evening was filed under the next day."""
    from datetime import UTC, datetime

    from sqlalchemy import update

    from server.extensions import db
    from server.tables import Submission

    live = live_far_from_utc
    with live.app.app_context():
        token = create_admin_token()
    assert submit(live, photos[0], label="Printer").status_code == 201
    evening = datetime(2026, 12, 7, 20, 0, tzinfo=UTC)
    with live.app.app_context():
        db.session.execute(update(Submission).values(created_at=evening))
        db.session.commit()

    def listed(**days) -> list[dict]:
        return get(live, "/api/admin/submissions", token, **days).json()["submissions"]

    (row,) = listed()
    assert row["created_at"] == "2026-12-07T20:00:00+00:00"
    assert len(listed(since="2026-12-07", until="2026-12-07")) == 1
    assert listed(since="2026-12-08") == [] and listed(until="2026-12-06") == []
    (mine,) = get(live, "/api/admin/tokens", token).json()["tokens"]
    assert datetime.fromisoformat(mine["created_at"]).utcoffset().total_seconds() == 0
    published = requests.get(f"{live.url}/api/models/current", timeout=30).json()
    assert published["published_at"].endswith("+00:00")


def _variant(tmp_path, version: str, accuracy: float):
    """The starter bundle under another version with another recorded test accuracy."""
    return starter_variant(
        tmp_path / version, version, lambda m: m["metrics"].update(test_accuracy=accuracy)
    )


def recorded_starter_accuracy() -> float:
    return json.loads((STARTER / "manifest.json").read_text())["metrics"]["test_accuracy"]


def publish_good_then_bad(live, token, tmp_path) -> None:
    """good-2, then bad-3, published after the starter: bad-3 is live."""
    starter_accuracy = recorded_starter_accuracy()
    with live.app.app_context():
        register_bundle(_variant(tmp_path, "good-2", starter_accuracy + 0.01))
        register_bundle(_variant(tmp_path, "bad-3", starter_accuracy + 0.02))
    for version in ("good-2", "bad-3"):
        assert post(live, f"/api/admin/models/{version}/publish", token).status_code == 200


def current_version(live) -> str:
    return requests.get(f"{live.url}/api/models/current", timeout=30).json()["version"]


def test_publish_is_gated_and_rollback_restores_the_previous_version(live, token, tmp_path):
    starter_accuracy = recorded_starter_accuracy()
    with live.app.app_context():
        register_bundle(_variant(tmp_path, "worse-1", starter_accuracy - 0.05))
        register_bundle(_variant(tmp_path, "better-1", starter_accuracy + 0.01))

    models = get(live, "/api/admin/models", token).json()["models"]
    assert [(m["version"], m["published"]) for m in models] == [
        (STARTER_VERSION, True), ("worse-1", False), ("better-1", False),
    ]  # fmt: skip
    refused = post(live, "/api/admin/models/worse-1/publish", token)
    assert refused.status_code == 409 and "below the published" in refused.json()["error"]
    assert current_version(live) == STARTER_VERSION
    no_reason = post(live, "/api/admin/models/worse-1/publish", token, {"force": True})
    assert no_reason.status_code == 400
    forced = post(live, "/api/admin/models/worse-1/publish", token,
                  {"force": True, "reason": "testing the gate"})  # fmt: skip
    assert forced.status_code == 200
    assert current_version(live) == "worse-1"

    assert post(live, "/api/admin/models/better-1/publish", token).status_code == 200
    assert current_version(live) == "better-1"
    assert post(live, "/api/admin/models/rollback", token).status_code == 200
    assert current_version(live) == "worse-1"
    assert post(live, "/api/admin/models/nope/publish", token).status_code == 404
    history = get(live, "/api/admin/models", token).json()["history"]
    assert [(h["version"], h["action"]) for h in history] == [
        (STARTER_VERSION, "publish"), ("worse-1", "publish"), ("better-1", "publish"),
        ("worse-1", "rollback"),
    ]  # fmt: skip


def test_rollback_steps_back_through_the_history_and_a_repeated_one_changes_nothing(
    live, token, tmp_path
):
    """Two admins (or one double click) press "Roll back" on a bad version: the second press
    must not publish the bad version again, as "the last other version in the history" did.
    Rolling back twice on purpose goes two versions back, never to one rolled back from."""
    publish_good_then_bad(live, token, tmp_path)
    assert post(live, "/api/admin/models/bad-3/publish", token).status_code == 200  # twice

    first = post(live, "/api/admin/models/rollback", token, {"from": "bad-3"})
    assert first.status_code == 200 and current_version(live) == "good-2"
    again = post(live, "/api/admin/models/rollback", token, {"from": "bad-3"})
    assert again.status_code == 409 and "bad-3 is no longer live" in again.json()["error"]
    assert current_version(live) == "good-2"

    assert post(live, "/api/admin/models/rollback", token).status_code == 200
    assert current_version(live) == STARTER_VERSION  # not back to bad-3
    none_left = post(live, "/api/admin/models/rollback", token)
    assert none_left.status_code == 409 and current_version(live) == STARTER_VERSION
    not_a_version = post(live, "/api/admin/models/rollback", token, {"from": "x/" * 300})
    assert not_a_version.status_code == 400 and len(not_a_version.text) < 200


def test_rollbacks_sent_at_the_same_moment_roll_back_once(live, token, tmp_path):
    """Eight presses of "Roll back" on bad-3 at once: one rolls back, seven are told bad-3 is
    no longer live. All eight used to succeed, each recording a rollback in the history."""
    publish_good_then_bad(live, token, tmp_path)

    answers = at_once(
        8, lambda _: post(live, "/api/admin/models/rollback", token, {"from": "bad-3"})
    )
    assert sorted(a.status_code for a in answers) == [200] + [409] * 7
    refused = next(a for a in answers if a.status_code == 409).json()["error"]
    assert refused == "bad-3 is no longer live (good-2 is live): nothing was rolled back"
    assert current_version(live) == "good-2"
    history = get(live, "/api/admin/models", token).json()["history"]
    assert [(h["version"], h["action"]) for h in history][-2:] == [
        ("bad-3", "publish"), ("good-2", "rollback"),
    ]  # fmt: skip


def test_the_quality_gate_judges_against_the_version_live_at_that_moment(live, token, tmp_path):
    """Two admins publish at the same moment: much-better-2 and slightly-worse-2 (within the
    margin of the starter, far below much-better-2). Whatever the order, phones never end up
    on slightly-worse-2 after much-better-2 went live: the gate compares with what is live
    when it decides, not with what was live when the request came in."""
    starter_accuracy = recorded_starter_accuracy()
    with live.app.app_context():
        register_bundle(_variant(tmp_path, "much-better-2", starter_accuracy + 0.03))
        register_bundle(_variant(tmp_path, "slightly-worse-2", starter_accuracy - 0.005))

    versions = ["much-better-2", "slightly-worse-2"] * 4
    answers = at_once(
        len(versions), lambda i: post(live, f"/api/admin/models/{versions[i]}/publish", token)
    )
    assert current_version(live) == "much-better-2"
    history = [h["version"] for h in get(live, "/api/admin/models", token).json()["history"]]
    first_better = history.index("much-better-2")
    assert "slightly-worse-2" not in history[first_better:]
    for version, answer in zip(versions, answers, strict=True):
        if answer.status_code == 409:
            assert (
                version == "slightly-worse-2"
                and "below the published much-better-2" in (answer.json()["error"])
            )
        else:
            assert answer.status_code == 200


def send(live, method, path, token, data, content_type="application/json"):
    headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
    return requests.request(method, f"{live.url}{path}", headers=headers, data=data, timeout=30)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_forged_admin_requests_get_a_clear_4xx_and_change_nothing(live, token):
    """Ids past 64 bits, non-object or NaN bodies, misspelt fields, wrong types: each is
    refused with a JSON error a script can read (they were 500s), and no job is queued."""
    huge = "9" * 25
    assert get(live, f"/api/admin/jobs/{huge}", token).status_code == 404
    assert post(live, f"/api/admin/jobs/{huge}/cancel", token).status_code == 404
    refusals = [
        ("POST", f"/api/admin/models/{STARTER_VERSION}/publish", "1e999", "JSON object"),
        ("POST", f"/api/admin/models/{STARTER_VERSION}/publish", "[true]", "JSON object"),
        ("POST", f"/api/admin/models/{STARTER_VERSION}/publish", '{"force": "false"}', "force"),
        ("POST", f"/api/admin/models/{STARTER_VERSION}/publish",
         json.dumps({"force": True, "reason": {"why": 1}}), "reason"),
        ("POST", "/api/admin/jobs", '{"head_epochs": 2}', "unknown field 'head_epochs'"),
        ("POST", "/api/admin/jobs", '{"settings": {"head_epochs": NaN}}', "not valid JSON"),
        ("POST", "/api/admin/jobs", "[" * 100_000, "not valid JSON"),
        ("POST", "/api/admin/submissions/review",
         json.dumps({"ids": [int(huge)], "action": "accept"}), "ids"),
        ("POST", "/api/admin/submissions/review", '{"ids": [true], "action": "accept"}', "ids"),
        ("POST", "/api/admin/kinds", '{"name": "Charger", "advice": "recycle it"}', "advice"),
    ]  # fmt: skip
    for method, path, body, says in refusals:
        response = send(live, method, path, token, body)
        assert 400 <= response.status_code < 500, (path, body[:40], response.status_code)
        assert says in response.json()["error"], (body[:40], response.json())
    for count in (huge, "²", "-1"):
        listed = get(live, "/api/admin/submissions", token, offset=count)
        assert listed.status_code == 400 and listed.json()["error"].startswith(
            "offset must be a whole number, at most 1,000,000,000,000, got "
        )  # a bound people can read (it said "up to 1000000000000")
    assert get(live, "/api/admin/jobs", token).json()["jobs"] == []
    history = get(live, "/api/admin/models", token).json()["history"]
    assert [event["version"] for event in history] == [STARTER_VERSION]
