"""Loading a page in headless Chromium (Debian's ``chromium`` package, driven by Playwright) and reading
back what a reader would see: console errors, every image's and video's loaded size, the tables' text."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
APT_TIMEOUT_S = 600
# Opens every collapsed section, loads lazy images now and waits for every picture and video's metadata.
LOAD_EVERYTHING = """async () => {
  document.querySelectorAll('details').forEach(d => d.open = true);
  for (const img of document.images) img.loading = 'eager';
  await Promise.all([...document.images].map(img => img.decode().catch(() => null)));
  await Promise.all([...document.querySelectorAll('video')].map(v => v.readyState >= 1 ? null :
    new Promise(done => {
      v.addEventListener('loadedmetadata', done); v.addEventListener('error', done); v.load();
    })));
}"""


@dataclass
class LoadedPage:
    errors: list[str] = field(default_factory=list)  # console errors, page errors, failed requests
    images: list[dict] = field(default_factory=list)  # src, naturalWidth, naturalHeight
    videos: list[dict] = field(default_factory=list)  # src, duration, videoWidth, error
    tables: list[str] = field(default_factory=list)  # each table's text
    text: str = ""


def chromium() -> str:
    """The system Chromium; installed with apt-get where it is missing and we may, else the test skips."""
    found = next((shutil.which(name) for name in CHROMIUM_NAMES if shutil.which(name)), None)
    if found:
        return found
    apt = shutil.which("apt-get")
    if not apt or os.geteuid() != 0:
        pytest.skip(
            "no chromium on PATH and no way to install it here (needs apt-get as root): "
            "apt-get install chromium"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in ([apt, "update"], [apt, "install", "-y", "--no-install-recommends", "chromium"]):
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=APT_TIMEOUT_S, check=False
        )
        if done.returncode != 0:
            output = (done.stdout + done.stderr)[-800:]
            pytest.skip(f"could not install chromium ({' '.join(command)}): {output}")
    found = shutil.which("chromium")
    if not found:
        pytest.skip("apt-get installed chromium but it is not on PATH")
    return found


def load_page(page_file: Path, screenshot: Path, width: int = 1280, height: int = 900) -> LoadedPage:
    """Open ``page_file`` from the file system, load everything on it, screenshot the first screen."""
    from playwright.sync_api import sync_playwright

    loaded = LoadedPage()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium())
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.on(
                "console",
                lambda message: (
                    loaded.errors.append(f"console: {message.text}") if message.type == "error" else None
                ),
            )
            page.on("pageerror", lambda error: loaded.errors.append(f"page: {error}"))
            page.on(
                "requestfailed",
                lambda request: loaded.errors.append(f"request: {request.url}: {request.failure}"),
            )
            page.goto(page_file.resolve().as_uri(), wait_until="load")
            page.evaluate(LOAD_EVERYTHING)
            loaded.images = page.evaluate(
                "[...document.images].map(i => ({src: i.getAttribute('src'), "
                "width: i.naturalWidth, height: i.naturalHeight}))"
            )
            loaded.videos = page.evaluate(
                "[...document.querySelectorAll('video')].map(v => ({src: "
                "v.getAttribute('src'), duration: v.duration, width: v.videoWidth, "
                "error: v.error && v.error.code}))"
            )
            loaded.tables = page.evaluate("[...document.querySelectorAll('table')].map(t => t.innerText)")
            loaded.text = page.evaluate("document.body.innerText")
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=str(screenshot))
        finally:
            browser.close()
    return loaded
