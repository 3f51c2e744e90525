"""Screenshots of the four pages of ``retarget ui`` into docs/images/ui_*.png.

Makes two synthetic video domains (the demo's) in a temporary root, starts ``retarget ui`` on it,
and in headless Chromium (the OS package, through Playwright; nothing is downloaded) extracts
both, trains a tiny run for a few seconds and renders, taking a screenshot of each page::

    python scripts/ui_screenshots.py [--out docs/images] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def make_videos(root: Path) -> None:
    """videos/stars.mp4 and videos/discs.mp4: the demo's two synthetic domains, 48 frames at 96 px."""
    from retarget.demo.synth import make_motion, render_clip, write_video

    (root / "videos").mkdir(parents=True)
    for name, domain, seed in (("stars", "A", 1), ("discs", "B", 2)):
        write_video(root / "videos" / f"{name}.mp4", render_clip(domain, make_motion(48, seed), 96, seed))


def start_app(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``retarget ui --root ROOT`` on a free port; the process and its address once it answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "retarget", "ui", "--root", str(root), "--port", str(port), "--no-browser"]
    app = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(300):
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return app, url
        except OSError:
            time.sleep(0.2)
    app.terminate()
    raise SystemExit(f"retarget ui did not answer on {url}")


def pick(page, label: str, *values: str) -> None:
    """Choose ``values`` in the visible dropdown labelled ``label``."""
    box = page.get_by_label(label, exact=True).locator("visible=true").first
    for value in values:
        option = page.get_by_role("option", name=value, exact=True)
        for _ in range(10):
            if not option.is_visible():
                box.click()
            try:
                option.click(timeout=2000)
                break
            except Exception:  # noqa: BLE001 - the list was re-read; open it again
                continue
    page.keyboard.press("Escape")


def tour(page, url: str, out: Path) -> None:
    """Drive the flow and save ui_data.png, ui_train.png, ui_render.png, ui_runs.png into ``out``."""
    page.goto(url)
    for video in ("videos/stars.mp4", "videos/discs.mp4"):
        page.reload()
        pick(page, "Videos (under the app's folder)", video)
        page.get_by_label("Size (px)", exact=True).locator("visible=true").first.fill("64")
        page.click("#extract-button")
        want = f"data/{Path(video).stem}: 48 frames"
        page.wait_for_function("w => document.querySelector('#dataset-summary').innerText.includes(w)", arg=want)
    page.wait_for_timeout(500)
    page.screenshot(path=str(out / "ui_data.png"), full_page=True)
    page.get_by_role("tab", name="Train").click()
    pick(page, "Datasets: A, B (more: one model)", "data/stars", "data/discs")
    page.get_by_label("tiny").check()
    for label, value in [("Size (px)", "64"), ("Steps", "60"), ("Preview every (steps)", "20")]:
        page.get_by_label(label, exact=True).locator("visible=true").first.fill(value)
    page.click("#train-button")
    page.wait_for_function("() => document.querySelector('#train-state').innerText.startsWith('finished')")
    page.wait_for_timeout(3000)  # the next refresh shows the last preview
    page.screenshot(path=str(out / "ui_train.png"), full_page=True)
    page.get_by_role("tab", name="Render").click()
    pick(page, "Video to translate", "videos/stars.mp4")
    pick(page, "Run", "models/stars-to-discs")
    page.click("#render-button")
    page.locator("#render-side video").wait_for()
    page.wait_for_timeout(1500)
    page.screenshot(path=str(out / "ui_render.png"), full_page=True)
    page.get_by_role("tab", name="Runs").click()
    pick(page, "Run", "models/stars-to-discs")
    page.wait_for_timeout(1500)
    page.screenshot(path=str(out / "ui_runs.png"), full_page=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "images")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "work"
        make_videos(root)
        app, url = start_app(root)
        try:
            with sync_playwright() as p:
                ctx = p.chromium.launch_persistent_context(
                    str(Path(tmp) / "chromium"),
                    executable_path=args.chromium,
                    headless=True,
                    args=ARGS,
                    viewport={"width": 1280, "height": 900},
                )
                ctx.set_default_timeout(120_000)
                tour(ctx.new_page(), url, args.out)
                ctx.close()
        finally:
            app.terminate()
            app.wait(10)
    print(f"wrote {', '.join(f'ui_{n}.png' for n in ('data', 'train', 'render', 'runs'))} into {args.out}")


if __name__ == "__main__":
    main()
