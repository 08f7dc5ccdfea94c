"""The web app's side of the model contract, in real Chromium against gunicorn.

A first visit shows the model download in real bytes and percentages; a model whose manifest
breaks the schema, whose resize recipe this app does not know, or whose graph this app's TF.js
cannot run, is refused with a message people can act on, and the app keeps the model it has.
"""

from __future__ import annotations

import json
import re

import pytest
from browser import PHONE, classify_in_page, publish_bundle, wait_until_ready
from conftest import STARTER, STARTER_VERSION, starter_variant

from conversion.manifest import bundle_files

pytestmark = pytest.mark.slow

STATUS_LOG = """
window.statusLog = [];
new MutationObserver(() => {
  const text = document.getElementById('status')?.textContent;
  if (text && window.statusLog.at(-1) !== text) window.statusLog.push(text);
}).observe(document, { subtree: true, childList: true, characterData: true });
"""
DOWNLOADING = re.compile(r"Downloading the model: (\S+)% \((\S+) of (\S+) MB\)")


def throttled_page(browser, megabits_per_second: float):
    """A phone-sized page on a slow network (no service worker: the page fetches itself)."""
    context = browser.new_context(viewport=PHONE, service_workers="block")
    context.add_init_script(STATUS_LOG)
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 40, "uploadThroughput": 1_000_000 / 8,
         "downloadThroughput": megabits_per_second * 1_000_000 / 8},
    )  # fmt: skip
    return context, page


def test_the_first_visit_shows_the_download_in_real_bytes(browser, server):
    total_mb = json.loads((STARTER / "manifest.json").read_text())["bundle_bytes"] / 1e6
    context, page = throttled_page(browser, megabits_per_second=12)  # about 2.6 s for 3.9 MB
    page.goto(server.url)
    wait_until_ready_without_worker(page)
    shown = [DOWNLOADING.match(text) for text in page.evaluate("window.statusLog")]
    progress = [(float(m[1]), float(m[2]), float(m[3])) for m in shown if m]
    assert len(progress) >= 5, page.evaluate("window.statusLog")
    percents = [p for p, _, _ in progress]
    assert percents == sorted(percents) and percents[-1] == 100
    assert sum(0 < p < 100 for p in percents) >= 3, percents  # real steps, not 0 then 100
    assert {total for _, _, total in progress} == {round(total_mb, 1)}
    for percent, received, total in progress:  # the two figures tell the same story, within
        lowest = 100 * (received - 0.05) / (total + 0.05) - 1  # the rounding of MB to 0.1
        highest = 100 * (received + 0.05) / (total - 0.05) + 1  # and of the percentage
        assert lowest <= percent <= highest, (percent, received, total)
    context.close()


def assert_refused_and_kept(page, reasons: list[str], photo: bytes) -> None:
    """The status says why the published model was refused and to reload; the app still has,
    uses and caches only the model it had (nothing of the refused one is kept)."""
    page.wait_for_function("document.getElementById('status').textContent.includes('Reload')")
    message = page.locator("#status").inner_text()
    for reason in reasons:
        assert reason in message
    assert page.locator("#model-status").get_attribute("data-version") == STARTER_VERSION
    assert page.evaluate("window.binbot.cachedVersions()") == [STARTER_VERSION]
    [result] = classify_in_page(page, [photo])
    assert result["version"] == STARTER_VERSION


def wait_until_ready_without_worker(page) -> None:
    page.wait_for_function("window.binbot && window.binbot.state.entry", timeout=60_000)


def test_a_model_whose_resize_recipe_the_app_does_not_know_is_refused(
    browser, server, tmp_path, small_ewaste
):
    page = browser.new_page(viewport=PHONE)
    page.goto(server.url)
    wait_until_ready(page)

    def future_recipe(manifest):
        manifest["input"]["resize"]["version"] = 2

    version = publish_bundle(server, starter_variant(tmp_path / "v2", "recipe-2", future_recipe))
    page.get_by_role("button", name="Check for a new model").click()
    recipe = f'Model {version} prepares photos with "center-square-box-bilinear" version 2'
    photo = next((small_ewaste / "test").glob("*/*")).read_bytes()
    assert_refused_and_kept(page, [recipe, "does not know"], photo)
    page.close()

    # Someone opening the app for the first time gets the message and no wrong answers.
    fresh = browser.new_context(viewport=PHONE)
    first = fresh.new_page()
    first.goto(server.url)
    first.wait_for_function("document.getElementById('status').textContent.includes('Reload')")
    assert "does not know" in first.locator("#status").inner_text()
    assert first.evaluate("window.binbot.state.entry") is None
    fresh.close()


def sigmoid_head_variant(folder, version: str):
    """The starter bundle with a sigmoid instead of its softmax: an op the app's TF.js leaves
    out (conversion refuses such a graph; a registry can still be handed one)."""
    starter_variant(folder, version)
    graph = json.loads((folder / "model.json").read_text())
    for node in graph["modelTopology"]["node"]:
        if node["op"] == "Softmax":
            node["op"] = "Sigmoid"
    (folder / "model.json").write_text(json.dumps(graph))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"] = bundle_files(folder)  # sizes and hashes as conversion writes them
    manifest["bundle_bytes"] = sum(f["bytes"] for f in manifest["files"])
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_a_model_the_app_cannot_run_never_replaces_the_one_it_has(
    browser, server, tmp_path, small_ewaste
):
    page = browser.new_page(viewport=PHONE)
    page.goto(server.url)
    wait_until_ready(page)
    version = publish_bundle(server, sigmoid_head_variant(tmp_path / "v2", "sigmoid-2"))
    page.get_by_role("button", name="Check for a new model").click()
    photo = next((small_ewaste / "test").glob("*/*")).read_bytes()
    reasons = [f"Model {version} needs something this version of BinBot cannot run", "Sigmoid"]
    assert_refused_and_kept(page, reasons, photo)
    assert "github" not in page.locator("#status").inner_text()  # TF.js's advice to developers
    page.reload()  # which checks again, downloads the model again and refuses it again
    wait_until_ready(page)
    assert_refused_and_kept(page, reasons, photo)
    page.close()


def test_a_manifest_that_breaks_the_schema_is_refused(browser, server):
    context = browser.new_context(viewport=PHONE, service_workers="block")
    page = context.new_page()

    def sizes_instead_of_bytes(route):
        """The mix-up that once showed 'Downloading the model: NaN%'."""
        answer = route.fetch()
        body = answer.json()
        for entry in body["manifest"]["files"]:
            entry["size"] = entry.pop("bytes")
        route.fulfill(response=answer, json=body)

    page.route("**/api/models/current", sizes_instead_of_bytes)
    page.goto(server.url)
    page.wait_for_function("document.getElementById('status').textContent.includes('Reload')")
    message = page.locator("#status").inner_text()
    assert "not one this app can read" in message and "bytes" in message
    assert page.evaluate("window.binbot.state.entry") is None
    assert page.evaluate("window.binbot.cachedVersions()") == []
    context.close()


def test_a_model_cached_by_an_older_app_still_loads_offline(browser, server, small_ewaste):
    """Phones stored version-1 manifests before this app: they keep working offline."""
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.goto(server.url)
    wait_until_ready(page)
    page.evaluate(
        """async () => {
            const db = await new Promise((resolve, reject) => {
              const open = indexedDB.open('binbot');
              open.onsuccess = () => resolve(open.result);
              open.onerror = () => reject(open.error);
            });
            const store = db.transaction('state', 'readwrite').objectStore('state');
            const entry = await new Promise((r) => { const g = store.get('active-model'); g.onsuccess = () => r(g.result); });
            delete entry.manifest.manifest_version;
            entry.manifest.input.resize = { method: 'centre square, box, bilinear', size: [224, 224] };
            await new Promise((r) => { const p = store.put(entry, 'active-model'); p.onsuccess = r; });
        }"""
    )
    server.stop()
    context.set_offline(True)
    page.reload()
    wait_until_ready(page)
    [result] = classify_in_page(page, [next((small_ewaste / "test").glob("*/*")).read_bytes()])
    assert result["version"] == STARTER_VERSION
    context.close()
