"""The service as an attacker meets it: headers, limits, sessions, redirects, the CSP."""

from __future__ import annotations

import re
import time

import pytest
import requests
from conftest import cut_connections, database_down, fresh_postgres_database, serve_live, submit


def limits(live, **changes) -> None:
    """Set per-client limits on the running app (count, window in seconds)."""
    live.app.config["BINBOT_LIMITS"] = {**live.app.config["BINBOT_LIMITS"], **changes}


def test_every_answer_carries_the_security_headers(live):
    for path in ("/", "/api/models/current", "/api/nothing-here", "/admin/login"):
        headers = requests.get(live.url + path, timeout=30).headers
        csp = headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "'wasm-unsafe-eval'" in csp, path
        assert "unsafe-inline" not in csp and "'unsafe-eval'" not in csp, path
        assert headers["Referrer-Policy"] == "no-referrer" and headers["X-Frame-Options"] == "DENY"
        assert headers["Cross-Origin-Embedder-Policy"] == "require-corp"


def test_uploads_are_limited_per_client_with_retry_after(live, photo):
    limits(live, **{"uploads per minute": (3, 60)})
    answers = [submit(live, photo, key=f"r{i}").status_code for i in range(5)]
    assert answers[:3] == [201, 200, 200] and answers[3:] == [429, 429]
    refused = submit(live, photo, key="r9")
    # Three hits early in a window still weigh on the next one: at most a third of a window more.
    assert refused.status_code == 429 and 0 < int(refused.headers["Retry-After"]) <= 60 + 20
    assert "too many requests" in refused.json()["error"]
    assert live.submissions() == 1


def test_a_burst_across_a_window_end_is_still_limited_and_retry_after_is_honest(live):
    limits(live, **{"failed admin tokens": (3, 6)})
    url = f"{live.url}/api/admin/models"

    def guess() -> requests.Response:
        return requests.get(url, headers={"Authorization": "Bearer guess"}, timeout=30)

    time.sleep((4.5 - time.time()) % 6)  # till 1.5 s before a window ends
    assert [guess().status_code for _ in range(3)] == [403, 403, 403]
    time.sleep((0.2 - time.time()) % 6)  # just past the window's end: a fixed window forgets all
    refused = guess()
    assert refused.status_code == 429
    time.sleep(int(refused.headers["Retry-After"]))
    assert guess().status_code == 403  # let back in when it was told


def test_an_ipv6_client_cannot_escape_its_limit_by_changing_address(live_behind_front):
    """One connection is given a /64 (2**64 addresses): each must not count as a new client."""
    limits(live_behind_front, **{"failed admin tokens": (2, 900)})

    def guess(address: str) -> int:
        return requests.get(
            f"{live_behind_front.url}/api/admin/models",
            headers={"Authorization": "Bearer guess", "X-Forwarded-For": address},
            timeout=30,
        ).status_code

    assert [guess("2001:db8:1:2::1"), guess("2001:db8:1:2::2")] == [403, 403]
    assert guess("2001:db8:1:2:ab:cd:ef:99") == 429  # the same /64, another address
    assert guess("2001:db8:1:3::1") == 403  # the next /64 is another client
    # An IPv4 client is the same client when its address arrives IPv4-mapped.
    assert [guess("198.51.100.7"), guess("::ffff:198.51.100.7")] == [403, 403]
    assert guess("198.51.100.7") == 429 and guess("198.51.100.8") == 403


def test_a_full_review_queue_asks_phones_to_come_back_later(live, photo, ewaste_zip):
    import zipfile

    live.app.config["BINBOT_MAX_PENDING"] = 1
    assert submit(live, photo, key="first").status_code == 201
    with zipfile.ZipFile(ewaste_zip) as archive:
        other = archive.read("modified-dataset/test/Mouse/Mouse_106.jpg")
    full = submit(live, other, key="second")
    assert full.status_code == 503 and full.headers["Retry-After"] == "3600"
    assert "review queue is full" in full.json()["error"]
    assert submit(live, photo, key="first").json()["replayed"]  # a retry still gets its answer
    live.app.config["BINBOT_MIN_FREE_BYTES"] = 10**18  # more than any disk has
    live.app.config["BINBOT_MAX_PENDING"] = 100
    no_space = submit(live, other, key="second")
    assert no_space.status_code == 507 and "disk is nearly full" in no_space.json()["error"]
    assert live.submissions() == 1


def test_wrong_tokens_are_throttled_before_they_are_checked(live):
    from server.admin.tokens import create_admin_token

    with live.app.app_context():
        token = create_admin_token()
    limits(live, **{"failed admin tokens": (3, 900), "failed console logins": (2, 900)})
    url = f"{live.url}/api/admin/models"
    wrong = [requests.get(url, headers={"Authorization": "Bearer guess"}, timeout=30).status_code
             for _ in range(4)]  # fmt: skip
    assert wrong == [403, 403, 403, 429]
    # Even the right token waits now: guessing must not learn anything from the answer.
    right = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert right.status_code == 429 and int(right.headers["Retry-After"]) > 0
    logins = [requests.post(f"{live.url}/admin/login", data={"token": "guess"}, timeout=30)
              for _ in range(3)]  # fmt: skip
    assert [r.status_code for r in logins] == [403, 403, 429]
    # A refused login says how to get a token when the one printed at first start is lost.
    assert "binbot token new" in logins[0].text


def logged_in_cookie(live, token: str) -> dict[str, str]:
    answer = requests.post(f"{live.url}/admin/login", data={"token": token}, timeout=30,
                           allow_redirects=False)  # fmt: skip
    assert answer.status_code == 302
    return {"binbot_admin": answer.cookies["binbot_admin"]}


def csrf_of(live, cookie) -> str:
    page = requests.get(f"{live.url}/admin/training", cookies=cookie, timeout=30).text
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_logging_out_or_revoking_the_token_ends_the_session_on_the_server(live):
    from server.admin.tokens import create_admin_token, list_tokens, revoke_token

    with live.app.app_context():
        token = create_admin_token()
    cookie = logged_in_cookie(live, token)
    stolen_copy = dict(cookie)
    page = requests.get(f"{live.url}/admin/models", cookies=cookie, timeout=30)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    out = requests.post(f"{live.url}/admin/logout", cookies=cookie, timeout=30,
                        data={"csrf_token": csrf_of(live, cookie)}, allow_redirects=False)  # fmt: skip
    assert out.status_code == 302
    after = requests.get(f"{live.url}/admin/models", cookies=stolen_copy, timeout=30,
                         allow_redirects=False)  # fmt: skip
    assert after.status_code == 302 and "/admin/login" in after.headers["Location"]

    cookie = logged_in_cookie(live, token)
    with live.app.app_context():
        (row,) = list_tokens()
        assert revoke_token(row.id)
    revoked = requests.get(f"{live.url}/admin/models", cookies=cookie, timeout=30,
                           allow_redirects=False)  # fmt: skip
    assert revoked.status_code == 302
    api = requests.get(f"{live.url}/api/admin/models", timeout=30,
                       headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert api.status_code == 403


def test_a_lost_token_is_revoked_from_the_console_but_never_the_last_one(live):
    """A stolen laptop's token could be revoked only from the server's shell; the console now
    lists the tokens (note, last use) and revokes one, refusing the last (it would lock every
    admin out). Revoking this session's own token ends this session too."""
    from server.admin.tokens import create_admin_token, list_tokens

    def revoke(number: int, cookie, csrf: str | None) -> requests.Response:
        """The press of Revoke, then the page it leads to (with the flash in its cookie, which
        is Secure: carried by hand over http)."""
        sent = requests.post(f"{live.url}/admin/tokens/{number}/revoke", cookies=cookie,
                             data={"csrf_token": csrf} if csrf else {}, timeout=30,
                             allow_redirects=False)  # fmt: skip
        if sent.status_code != 302:
            return sent
        cookie = {"binbot_admin": sent.cookies.get("binbot_admin", cookie["binbot_admin"])}
        return requests.get(live.url + sent.headers["Location"], cookies=cookie, timeout=30)

    with live.app.app_context():
        mine = create_admin_token("the admin's desk")
    cookie = logged_in_cookie(live, mine)
    csrf = csrf_of(live, cookie)
    with live.app.app_context():
        [mine_id] = [t.id for t in list_tokens()]
    refused = revoke(mine_id, cookie, csrf)  # the only one
    assert "Refused: it is the only admin token" in refused.text
    assert refused.url.endswith("/admin/tokens")  # still logged in

    with live.app.app_context():
        lost = create_admin_token("Alice's laptop")
        lost_id = max(t.id for t in list_tokens())
    assert requests.get(f"{live.url}/api/admin/models", timeout=30,
                        headers={"Authorization": f"Bearer {lost}"}).status_code == 200  # fmt: skip
    page = requests.get(f"{live.url}/admin/tokens", cookies=cookie, timeout=30).text
    row = re.search(rf'<li class="card" data-token="{lost_id}">.*?</li>', page, re.S).group(0)
    assert "Alice&#39;s laptop" in row and "never" not in row  # its use is shown
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", row)  # times say they are UTC
    assert re.search(
        rf'data-token="{mine_id}">\s*<h2>Token {mine_id} <span class="badge">this session', page
    )
    assert revoke(lost_id, cookie, None).status_code == 400  # no CSRF token: nothing happens
    done = revoke(lost_id, cookie, csrf)
    assert f"Revoked token {lost_id} (Alice&#39;s laptop)" in done.text
    assert requests.get(f"{live.url}/api/admin/models", timeout=30,
                        headers={"Authorization": f"Bearer {lost}"}).status_code == 403  # fmt: skip

    with live.app.app_context():
        create_admin_token("a spare")
    own = revoke(mine_id, cookie, csrf)  # now not the last: this session ends with it
    assert own.url.endswith("/admin/login")
    after = requests.get(f"{live.url}/admin/tokens", cookies=cookie, allow_redirects=False,
                         timeout=30)  # fmt: skip
    assert after.status_code == 302 and "/admin/login" in after.headers["Location"]


def test_a_console_session_past_its_lifetime_ends_on_the_server(live):
    """A session nobody logged out of stayed on the server for ever, valid for any copy of its
    cookie that still passed the cookie's own age check. The server now ends it after the
    session lifetime by its own clock, and a later login clears such sessions away."""
    from datetime import timedelta

    from server.admin.tokens import create_admin_token
    from server.extensions import db
    from server.tables import ConsoleSession

    with live.app.app_context():
        token = create_admin_token()
    cookie = logged_in_cookie(live, token)
    models = f"{live.url}/admin/models"
    assert requests.get(models, cookies=cookie, timeout=30).status_code == 200
    with live.app.app_context():
        lifetime = live.app.permanent_session_lifetime
        for row in db.session.query(ConsoleSession):  # opened a lifetime and a minute ago
            row.created_at -= lifetime + timedelta(minutes=1)
        db.session.commit()
    expired = requests.get(models, cookies=cookie, timeout=30, allow_redirects=False)
    assert expired.status_code == 302 and "/admin/login" in expired.headers["Location"]
    fresh = logged_in_cookie(live, token)
    assert requests.get(models, cookies=fresh, timeout=30).status_code == 200
    with live.app.app_context():
        assert db.session.query(ConsoleSession).count() == 1  # the expired one is gone


@pytest.mark.parametrize("target", ["/admin/models\x00", "/admin/\r\nSet-Cookie: x=1", "/admin\\x"])
def test_control_characters_in_return_addresses_are_a_400(live, target):
    from server.admin.tokens import create_admin_token

    with live.app.app_context():
        token = create_admin_token()
    login = requests.post(f"{live.url}/admin/login", params={"next": target},
                          data={"token": token}, timeout=30, allow_redirects=False)  # fmt: skip
    assert login.status_code == 400 and "not allowed" in login.text
    cookie = logged_in_cookie(live, token)
    review = requests.post(f"{live.url}/admin/submissions/review", cookies=cookie, timeout=30,
                           data={"csrf_token": csrf_of(live, cookie), "back": target,
                                 "action": "accept"}, allow_redirects=False)  # fmt: skip
    assert review.status_code == 400


def test_a_submitted_photo_is_served_to_the_admin_as_private(live, photo):
    from server.admin.tokens import create_admin_token

    assert submit(live, photo, key="private").status_code == 201
    with live.app.app_context():
        cookie = logged_in_cookie(live, create_admin_token())
    answer = requests.get(f"{live.url}/admin/submissions/1/photo", cookies=cookie, timeout=30)
    assert answer.status_code == 200
    assert "private" in answer.headers["Cache-Control"]
    assert "public" not in answer.headers["Cache-Control"]
    for stored in live.stored_files():  # gone from the data disk: the console's page says so
        stored.unlink()
    gone = requests.get(f"{live.url}/admin/submissions/1/photo", cookies=cookie, timeout=30)
    assert gone.status_code == 500 and "text/html" in gone.headers["Content-Type"]
    assert "a file this answer needs is missing on the server" in gone.text


def test_a_database_outage_is_a_503_to_come_back_and_the_service_recovers(tmp_path):
    """A 500 read like a bug; phones keep their corrections and retry after Retry-After."""
    with fresh_postgres_database("binbot_down") as url:
        serving = serve_live(tmp_path, url)
        live = next(serving)
        try:
            assert requests.get(f"{live.url}/api/models/current", timeout=30).ok
            with database_down(url):
                for path in ("/api/models/current", "/api/labels"):
                    down = requests.get(f"{live.url}{path}", timeout=30)
                    assert down.status_code == 503 and down.headers["Retry-After"] == "30", path
                    assert down.json()["error"] == (
                        "the service's database is unavailable; try again shortly"
                    )
            assert requests.get(f"{live.url}/api/models/current", timeout=30).ok
            # A restart while the service was idle: its pooled connections are dead, and the
            # first request after it must not be the one to find out.
            cut_connections(url)
            assert requests.get(f"{live.url}/api/models/current", timeout=30).ok
        finally:
            next(serving, None)


def test_times_shown_as_utc_are_utc_whatever_zone_the_database_answers_in():
    """PostgreSQL gives a stored time in its connection's zone, which need not be UTC: shown as
    it came with "UTC" after it, a Paris server's times were an hour off."""
    from datetime import UTC, datetime, timedelta, timezone

    from server.tables import utc_text

    paris = datetime(2026, 12, 7, 20, 45, 30, tzinfo=timezone(timedelta(hours=1)))
    assert utc_text(paris) == "2026-12-07 19:45 UTC"
    assert utc_text(paris, seconds=True) == "2026-12-07 19:45:30 UTC"
    assert utc_text(datetime(2026, 12, 7, 19, 45)) == "2026-12-07 19:45 UTC"  # SQLite: UTC, bare
    assert utc_text(datetime(2026, 12, 7, 19, 45, tzinfo=UTC)) == "2026-12-07 19:45 UTC"
