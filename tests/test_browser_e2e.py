"""Seen in a real browser: our predictions in Label Studio 1.23.2's own editor, in Debian's Chromium.

The fixtures of test_labelstudio_e2e start a real Label Studio, `empathic serve` and the tiny
replica models; a video task (video_faces.xml: face tracks as VideoRectangle, emotion timeline as
TimelineLabels) and an audio task (audio_voice.xml: voice segments as Labels on the Audio) get
their predictions through "Retrieve predictions". Then Chromium, driven by Playwright, logs in
through the login page, opens each task from its project's Data Manager, switches to the
prediction's tab and reads the Outliner (the regions list of the side panel): every region of the
stored prediction is there, of its kind, with its label name. Screenshots go to
test-artifacts/browser/ (or $EMPATHIC_TEST_ARTIFACTS/browser/).

The browser is /usr/bin/chromium (`apt-get install chromium`, scripts/setup.sh --test); Playwright
never downloads one. A browser that cannot start fails the test. Every request to anything but the
loopback address is refused, and Chromium's own background traffic is turned off.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from labelstudio_harness import ADMIN_EMAIL, ADMIN_PASSWORD
from test_labelstudio_e2e import MODEL_VERSION, _check, _project, backend, label_studio, media  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("EMPATHIC_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",  # as root Chromium refuses to start with its sandbox
    "--headless", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions",
    "--no-default-browser-check", "--disable-features=Translate,MediaRouter,OptimizationHints",
    # names resolve to nothing but the loopback address (the page is refused the rest below as well)
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
]  # fmt: skip
VIEWPORT = {"width": 1600, "height": 1200}
TIMEOUT_MS = 30_000

# The Outliner names each region's model type in a class: lsf-tree__node_type_<type>
REGION_KIND = {"videorectangle": "videorectangleregion", "timelinelabels": "timelineregion", "labels": "audioregion"}
READ_OUTLINER = """() => Array.from(document.querySelectorAll('.lsf-outliner [role=treeitem]')).map(item => [
    item.querySelector('.lsf-outliner-item__index')?.innerText.trim(),
    (item.className.match(/lsf-tree__node_type_([a-z]+)/) || [])[1] || null,
    item.querySelector('.lsf-outliner-item__title')?.innerText.trim()])"""
# The media is on screen once its canvas has pixels: the video's frame (drawn from a hidden <video>
# once it is loaded, a spinner until then), the audio's waveform.
MEDIA_DRAWN = """selector => {
    if (document.querySelector('.lsf-video-canvas__loading, .lsf-video-canvas__buffering')) return false;
    const canvas = document.querySelector(selector);
    if (!canvas || !canvas.width || !canvas.height) return false;
    const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 3; i < pixels.length; i += 4) if (pixels[i]) return true;
    return false;
}"""
MEDIA_CANVAS = {"video": ".lsf-video-canvas__view canvas", "audio": "canvas#waveform-layer-main"}


def artifacts_dir() -> Path:
    root = os.environ.get("EMPATHIC_TEST_ARTIFACTS")
    folder = (Path(root) if root else REPO / "test-artifacts") / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _loopback(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "ws", "wss"):
        return True  # data:, blob:, about: never leave the machine
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(scope="module")
def browser_context():
    """A fresh Chromium profile; every non-loopback request is aborted (and listed in `refused`)."""
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        pytest.fail(f"Playwright for Python is not installed ({e}): scripts/setup.sh --test", pytrace=False)
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"no Chromium at {CHROMIUM}: `apt-get install chromium` (scripts/setup.sh --test does it)",
                    pytrace=False)
    profile = tempfile.mkdtemp(prefix="empathic-chromium-")  # a fresh profile: no state from an earlier run
    playwright = None
    try:
        playwright = sync_playwright().start()
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, viewport=VIEWPORT,
            chromium_sandbox=False, timeout=60_000)
    except (PlaywrightError, OSError) as e:
        if playwright is not None:
            playwright.stop()
        shutil.rmtree(profile, ignore_errors=True)
        pytest.fail(f"Chromium ({CHROMIUM}) did not start: {e}", pytrace=False)
    refused: list[str] = []

    def refuse(route):
        refused.append(route.request.url)
        route.abort("addressunreachable")

    context.route(lambda url: not _loopback(url), refuse)
    context.set_default_timeout(TIMEOUT_MS)
    context.refused = refused
    yield context
    context.close()
    playwright.stop()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def page(browser_context, label_studio):
    """Logged in through Label Studio's own login page."""
    from playwright.sync_api import expect

    page = browser_context.new_page()
    page.goto(f"{label_studio.url}/user/login/")
    page.locator("input[name=email]").fill(ADMIN_EMAIL)
    page.locator("input[name=password]").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/user/login" not in url)
    expect(page.locator("input[name=password]")).to_have_count(0, timeout=TIMEOUT_MS)
    return page


def _predicted(label_studio, backend, media, config_name: str, kind: str):
    """A project with the shipped config, its one task predicted by the backend through LS."""
    client, project, (task_id,), config = _project(label_studio, backend, config_name, [media[kind]])
    client.retrieve_predictions(project)
    (prediction,) = _check(client, config, [task_id])
    regions = Counter((REGION_KIND[r["type"]], (r["value"].get("labels") or r["value"].get("timelinelabels"))[0])
                      for r in prediction["result"] if r["type"] in REGION_KIND)
    return project, task_id, regions


def _outliner(page, expected: int) -> Counter:
    """(kind, label) of every region the Outliner lists. Its list is virtual (only the rows in view
    are in the page): when rows are missing it is read again while scrolling down, until no new row
    turns up."""
    rows: dict[int, tuple[str, str]] = {}
    outliner = page.locator(".lsf-outliner-tree")
    while True:
        before = len(rows)
        for index, kind, label in page.evaluate(READ_OUTLINER):
            rows[int(index)] = (kind, label)
        if len(rows) >= expected or len(rows) == before:
            break
        outliner.hover()
        page.mouse.wheel(0, 400)
        page.wait_for_timeout(300)  # the virtual list renders the new rows on its next frames
    return Counter(rows.values())


def _open_and_check(page, label_studio, project: int, task_id: int, kind: str, regions: Counter, name: str,
                    shots: list[Path]) -> None:
    from playwright.sync_api import expect

    folder = artifacts_dir()
    try:
        # As an annotator does: the project's Data Manager, then a click on the task's row. (Opening
        # /projects/<id>/data?task=<id> straight away loads the editor twice, and the second load
        # races the task list and at times comes without the task's predictions.)
        page.goto(f"{label_studio.url}/projects/{project}/data")
        row = page.get_by_test_id("table-row").filter(has=page.get_by_label(f"Select Task {task_id}", exact=True))
        row.locator(".lsf-table__cell").nth(1).click()  # the ID column (the checkbox is the first cell)
        page.wait_for_url(re.compile(rf"[?&]task={task_id}(&|$)"))
        outliner = page.locator(".lsf-outliner")
        expect(outliner.locator("[role=treeitem]").first).to_be_visible(timeout=TIMEOUT_MS)
        page.wait_for_function(MEDIA_DRAWN, arg=MEDIA_CANVAS[kind], polling=250)
        shots.append(folder / f"{name}-opened.png")
        page.screenshot(path=shots[-1])  # the annotation the editor starts from the prediction
        # the prediction itself: its tab carries the model version
        tab = page.locator(".lsf-annotation-button", has_text=MODEL_VERSION)
        expect(tab).to_have_count(1, timeout=TIMEOUT_MS)
        tab.click()
        expect(tab).to_have_class(re.compile(r"\blsf-annotation-button_selected\b"), timeout=TIMEOUT_MS)
        page.mouse.move(VIEWPORT["width"] // 2, VIEWPORT["height"] - 5)  # no tooltip over the picture
        page.wait_for_function(MEDIA_DRAWN, arg=MEDIA_CANVAS[kind], polling=250)
        for label_kind, label in sorted(regions):
            item = outliner.locator(f".lsf-tree__node_type_{label_kind}").filter(
                has=page.locator(".lsf-outliner-item__title").get_by_text(label, exact=True))
            expect(item.first).to_be_visible(timeout=TIMEOUT_MS)
        shots.append(folder / f"{name}-prediction.png")
        page.screenshot(path=shots[-1])
        assert _outliner(page, sum(regions.values())) == regions
    except BaseException:
        failed = folder / f"{name}-failure"
        try:  # what the page showed, and its DOM, for the failure's reader
            page.screenshot(path=failed.with_suffix(".png"))
            failed.with_suffix(".html").write_text(page.content())
            shots += [failed.with_suffix(".png"), failed.with_suffix(".html")]
        except Exception:
            pass
        raise


def test_predicted_regions_show_in_the_editor(browser_context, label_studio, backend, media, page, capsys):
    # browser_context first: a browser that cannot start fails the test before Label Studio starts
    video = _predicted(label_studio, backend, media, "video_faces.xml", "video")
    audio = _predicted(label_studio, backend, media, "audio_voice.xml", "audio")
    video_kinds = {kind for kind, _ in video[2]}
    assert video_kinds == {"videorectangleregion", "timelineregion"}, f"video prediction has {video[2]}"
    assert {kind for kind, _ in audio[2]} == {"audioregion"}, f"audio prediction has {audio[2]}"
    for old in artifacts_dir().glob("*-*.*"):  # this test's files from an earlier run
        if old.name.startswith(("video-faces-", "audio-voice-")):
            old.unlink()
    shots: list[Path] = []
    try:
        _open_and_check(page, label_studio, *video[:2], "video", video[2], "video-faces", shots)
        _open_and_check(page, label_studio, *audio[:2], "audio", audio[2], "audio-voice", shots)
    finally:
        with capsys.disabled():
            print(f"\nbrowser screenshots in {artifacts_dir()}: {', '.join(p.name for p in shots)}")
    # only loopback traffic: nothing was even asked of another address
    assert browser_context.refused == [], browser_context.refused
