"""Every screen a person uses, audited by axe-core (WCAG 2 A and AA rules and axe's best
practices) in Chromium: the phone app in its verdicts on the narrowest phones (320 px), and
the admin console's pages on phones 320 and 360 px wide and on a laptop.

The hand-written checks in test_webclient.py cover what matters most to the app (names,
focus, keyboard order, contrast); axe covers the rest of the rule book, on the console too,
where a table too wide for a phone was a scroll region no keyboard could reach.
"""

from __future__ import annotations

import re
import zipfile

import pytest
import requests
from browser import (
    LAPTOP,
    PHONE,
    PROJECT,
    choose_photo,
    publish_bundle,
    screenshot,
    wait_until_ready,
)
from conftest import STARTER_VERSION, grey_card, starter_variant

pytestmark = pytest.mark.slow
SMALL_PHONE = {"width": 320, "height": 568}  # the narrowest phones in use
AXE = PROJECT / "node_modules" / "axe-core" / "axe.min.js"


def violations(page) -> list[str]:
    """axe's findings on the page as it is now: rule, impact, and the first elements."""
    page.add_script_tag(path=str(AXE))
    return page.evaluate(
        """async () => (await axe.run(document)).violations.map((v) =>
             `${v.id} (${v.impact}): ${v.help}: ${v.nodes.slice(0, 3).map((n) => n.target).join(', ')}`)"""
    )


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_app_passes_axe_before_a_photo_and_in_its_verdicts(
    browser, server, small_ewaste, tmp_path, scheme
):
    """Known (then the picker opened by "No"), not recognised (a grey card), and not sure
    when one of the test photos gets that verdict; then a correction waiting in the list. In
    both colour schemes: a phone in dark mode got a white page."""
    grey = grey_card(tmp_path)
    page = browser.new_page(viewport=SMALL_PHONE, color_scheme=scheme)
    page.goto(server.url)
    wait_until_ready(page)
    assert violations(page) == [], "before a photo"
    colour = page.evaluate("getComputedStyle(document.documentElement).backgroundColor")
    red, green, blue = map(int, re.findall(r"\d+", colour)[:3])
    assert (red + green + blue < 3 * 64) == (scheme == "dark"), colour

    seen = set()
    for photo in [*sorted((small_ewaste / "test").glob("*/*"))[:12], grey]:
        choose_photo(page, photo)
        verdict = page.locator("#result").get_attribute("data-verdict")
        if verdict in seen:
            continue
        seen.add(verdict)
        assert violations(page) == [], verdict
        assert page.evaluate("document.documentElement.scrollWidth") <= SMALL_PHONE["width"]
        if verdict == "known":
            page.get_by_role("button", name="No, that's wrong").click()
            assert violations(page) == [], "the picker opened on a known verdict"
    assert {"known", "unknown"} <= seen, seen

    page.context.set_offline(True)
    page.get_by_label("What is it?").select_option(index=0)
    page.get_by_role("button", name="Send correction").click()
    page.wait_for_selector("#queue-list li.waiting")
    assert violations(page) == [], "a correction waiting"
    screenshot(page, f"phone-{scheme}-scheme")
    page.close()


@pytest.mark.parametrize("viewport", [SMALL_PHONE, PHONE, LAPTOP], ids=["320", "360", "laptop"])
def test_the_console_pages_pass_axe(browser, server, ewaste_zip, tmp_path, viewport):
    with zipfile.ZipFile(ewaste_zip) as archive:
        photos = [archive.read(n) for n in sorted(archive.namelist()) if "/test/Mouse/" in n][:2]
    for photo, form in zip(
        photos, ({"label": "Mouse"}, {"proposed_name": "desk lamp"}), strict=True
    ):
        sent = requests.post(server.url + "api/submissions", data=form, timeout=30,
                             files={"image": ("p.jpg", photo, "image/jpeg")})  # fmt: skip
        assert sent.status_code == 201, sent.text

    token = server.admin_token()
    auth = {"Authorization": f"Bearer {token}"}
    job = requests.post(server.url + "api/admin/jobs", json={}, headers=auth, timeout=30)
    assert job.status_code == 202, job.text  # queued: no worker runs in this test
    publish_bundle(server, starter_variant(tmp_path / "bundle", "starter-variant"))

    page = browser.new_page(viewport=viewport)
    page.goto(server.url + "admin/login")
    assert violations(page) == [], "login"
    page.get_by_label("Admin token").fill(token)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/admin/submissions")
    for path in (
        "submissions",
        "submissions?status=all",
        "kinds",
        "models",
        f"models/compare?a={STARTER_VERSION}&b=starter-variant",
        "training",
        f"training/{job.json()['job']['id']}",
        "tokens",
    ):
        page.goto(server.url + "admin/" + path)
        assert violations(page) == [], path
        # Nothing wider than the screen: wide tables scroll inside their own region.
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"], path
        if path == "kinds":  # every step and hazard readable, without scrolling inside a box
            clipped = page.evaluate(
                "[...document.querySelectorAll('textarea')]"
                ".filter((t) => t.scrollHeight > t.clientHeight + 1).map((t) => t.name)"
            )
            assert clipped == [], clipped
    page.close()
