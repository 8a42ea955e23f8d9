"""Headless Chromium for the suite's browser tests: Debian's `chromium`, driven by Playwright.

Playwright launches the machine's browser (`executable_path`); it never downloads one. Without
a chromium on the machine the tests fail, never skip (.ci/run installs Debian's package). The
flags keep the browser from reaching out on its own (component updates, sync, background
networking): on this machine its background connections are otherwise refused many at a
time. Each browser gets a fresh profile folder.

Screenshots go to $AIOFLOW_TEST_ARTIFACTS when set (CI keeps them), else to the test's
temporary folder; with $AIOFLOW_UPDATE_DOCS=1 the report's is also written to docs/report.png,
the README's picture.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS_SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "report.png"


def chromium_path() -> str:
    """The machine's chromium; a test failure (not a skip) saying how to install it."""
    for candidate in (os.environ.get("AIOFLOW_CHROMIUM"), *CANDIDATES, shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.fail(
        "No chromium on this machine: the browser tests need Debian's package "
        "(apt-get install chromium; .ci/run installs it), or $AIOFLOW_CHROMIUM.",
        pytrace=False,
    )


@contextmanager
def browser_page(profile: Path) -> Iterator[tuple[Any, list[str]]]:
    """A page of a fresh headless chromium, and the list its console errors and page errors
    are appended to as they happen."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    errors: list[str] = []
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=executable,
            args=FLAGS,
            headless=True,
            viewport={"width": 1240, "height": 900},
        )
        try:
            page = context.new_page()
            page.set_default_timeout(30_000)
            page.on(
                "console",
                lambda message: errors.append(message.text) if message.type == "error" else None,
            )
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            yield page, errors
        finally:
            context.close()


def artifacts_folder(tmp_path: Path) -> Path:
    """Where a test saves its screenshots."""
    folder = Path(os.environ.get("AIOFLOW_TEST_ARTIFACTS") or tmp_path / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
