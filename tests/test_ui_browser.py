"""``retarget ui`` driven by a real browser: headless Chromium from the OS, through Playwright.

Two tiny videos in a fresh root; in the page: extract both, train a few steps (a preview
appears), render (a playable video). A second training survives a page reload and its Stop
leaves a resumable checkpoint; a ``../`` path is refused next to its button. No browser is
downloaded: without /usr/bin/chromium (``apt-get install chromium``) the test skips.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from helpers import load_script, make_video

CHROMIUM = Path(os.environ.get("RETARGET_CHROMIUM", "/usr/bin/chromium"))
ARGS = load_script("ui_screenshots").ARGS  # the flags the screenshots use, one list
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no browser: {CHROMIUM} absent (apt-get install chromium)"),
]
playwright = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install -e '.[dev]')")
pytest.importorskip("gradio", reason="gradio not installed (pip install -e '.[ui]')")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def app_url(tmp_path: Path):
    """``retarget ui --root ROOT`` serving a root with videos/a.mp4 and videos/b.mp4; yields (url, root)."""
    root = tmp_path / "root"
    make_video(root / "videos" / "a.mp4", frames=24, size=(64, 48))
    make_video(root / "videos" / "b.mp4", frames=24, size=(64, 48))
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    cmd = [sys.executable, "-m", "retarget", "ui", "--root", str(root), "--port", str(port), "--no-browser"]
    log = open(tmp_path / "app.log", "wb")
    app = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url, timeout=1).close()
                break
            except OSError:
                assert app.poll() is None, (tmp_path / "app.log").read_text()
                time.sleep(0.2)
        yield url, root
    finally:
        app.terminate()
        app.wait(10)
        log.close()
        for job in (root / ".retarget-ui" / "jobs").glob("*.json"):  # no training outlives the test
            import json

            pid = json.loads(job.read_text())["pid"]
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass


@pytest.fixture
def page(tmp_path: Path):
    with playwright.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=ARGS,
            viewport={"width": 1280, "height": 900},
        )
        ctx.set_default_timeout(30_000)
        yield ctx.new_page()
        ctx.close()


def pick(page, label: str, *values: str) -> None:
    """Choose ``values`` in the dropdown labelled ``label`` (in the visible tab)."""
    box = page.get_by_label(label, exact=True).locator("visible=true").first
    for value in values:
        option = page.get_by_role("option", name=value, exact=True)
        for attempt in range(10):  # the lists are read again when a tab opens, which may close an open list
            if not option.is_visible():  # a multiselect list stays open after a choice
                box.click()
            try:
                option.click(timeout=2000)
                break
            except playwright.Error:
                if attempt == 9:
                    raise
    page.keyboard.press("Escape")


def fill(page, label: str, value: str) -> None:
    page.get_by_label(label, exact=True).locator("visible=true").first.fill(value)


def error_line(page, button: str):
    """The error line under the button with id ``button``."""
    return page.locator(f"#{button} ~ .error-line").first


def extract(page, video: str) -> None:
    page.reload()  # an empty form
    pick(page, "Videos (under the app's folder)", video)
    fill(page, "Size (px)", "32")
    page.click("#extract-button")
    want = f"data/{Path(video).stem}: 24 frames"
    page.wait_for_function(
        "want => document.querySelector('#dataset-summary').innerText.includes(want)", arg=want, timeout=60_000
    )


def test_two_videos_to_a_translated_video(app_url, page) -> None:
    url, root = app_url
    page.goto(url)
    page.get_by_role("tab", name="Data").click()
    fill(page, "Dataset folder", "../outside")
    pick(page, "Videos (under the app's folder)", "videos/a.mp4")
    page.click("#extract-button")
    page.wait_for_function('() => document.body.innerText.includes("outside the app\'s folder")')
    assert not (root.parent / "outside").exists()
    extract(page, "videos/a.mp4")
    assert page.locator("#dataset-preview img").count() == 1
    extract(page, "videos/b.mp4")

    page.get_by_role("tab", name="Train").click()
    pick(page, "Datasets: A, B (more: one model)", "data/a", "data/b")
    page.get_by_label("tiny").check()
    for label, value in [("Size (px)", "32"), ("Steps", "3"), ("Preview every (steps)", "2")]:
        fill(page, label, value)
    page.click("#train-button")
    page.locator("#train-preview img").wait_for(timeout=90_000)
    page.wait_for_function("() => document.querySelector('#train-state').innerText.startsWith('finished')")
    assert (root / "models" / "a-to-b" / "config.json").is_file()

    page.get_by_role("tab", name="Render").click()
    pick(page, "Video to translate", "videos/a.mp4")
    pick(page, "Run", "models/a-to-b")
    page.click("#render-button")
    video = page.locator("#render-output video")
    video.wait_for(timeout=60_000)
    page.wait_for_function(
        "() => { const v = document.querySelector('#render-output video'); return v && v.readyState >= 1 && v.duration > 0 }"
    )
    assert (root / "renders" / "a_to_b.mp4").is_file()
    assert (root / "renders" / "a_to_b_side.mp4").is_file()

    page.get_by_role("tab", name="Runs").click()
    playwright.expect(page.locator("#runs-table")).to_contain_text("models/a-to-b")
    playwright.expect(page.locator("#runs-table")).to_contain_text("finished")


def state_is(page, start: str) -> None:
    """Wait until the Train page's state line starts with ``start``."""
    page.wait_for_function(
        "start => document.querySelector('#train-state').innerText.startsWith(start)", arg=start, timeout=60_000
    )


def test_training_survives_a_reload_and_stops_resumable(app_url, page) -> None:
    url, root = app_url
    page.goto(url)
    extract(page, "videos/a.mp4")
    extract(page, "videos/b.mp4")
    page.get_by_role("tab", name="Train").click()
    pick(page, "Datasets: A, B (more: one model)", "data/a", "data/b")
    page.get_by_label("tiny").check()
    for label, value in [("Size (px)", "32"), ("Steps", "100000"), ("Preview every (steps)", "2")]:
        fill(page, label, value)
    page.click("#train-button")
    page.locator("#train-preview img").wait_for(timeout=90_000)

    page.reload()  # the page forgets everything; the training goes on and is found by its run folder
    page.get_by_role("tab", name="Train").click()
    pick(page, "Run", "models/a-to-b")
    state_is(page, "training")
    page.locator("#train-preview img").wait_for()
    page.click("#stop-button")
    state_is(page, "stopped")
    playwright.expect(page.locator("#train-state")).to_contain_text("(resumable)")
    from retarget.views.runs import is_resumable

    assert is_resumable(root / "models" / "a-to-b")

    page.click("#resume-button")
    state_is(page, "training")
    page.click("#stop-button")
    state_is(page, "stopped")
