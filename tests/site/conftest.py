"""The built book, served over HTTP on 127.0.0.1, and a headless Chromium driven by Playwright.

These tests read ``_build/html`` (``make book`` writes it) and run with ``make test-browser``,
which sets ``STLAB_BROWSER=1``; a missing build or browser is then an error that says what to do.
Any other pytest run (``make test`` runs before the book is built, when ``_build`` may hold an
older book) skips them.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SITE = Path(os.environ.get("STLAB_SITE", ROOT / "_build" / "html"))
SCREENS = Path(os.environ.get("STLAB_SCREENS", ROOT / "_build" / "screens"))
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def pages() -> list[str]:
    """Every HTML page of the built site, relative to its root (assets and sources left out)."""
    if not SITE.is_dir():
        return []
    return sorted(path.relative_to(SITE).as_posix() for path in SITE.rglob("*.html")
                  if not path.relative_to(SITE).parts[0].startswith("_"))


def chromium_path() -> str | None:
    """$CHROMIUM, else the first Chromium or Chrome on the PATH."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    return next((found for name in BROWSER_NAMES if (found := shutil.which(name))), None)


def _unavailable(reason: str) -> None:
    pytest.fail(reason, pytrace=False)


# Session scope: pytest sets up wider-scoped fixtures first, so a function-scoped guard would come
# after the session's server and browser.
@pytest.fixture(autouse=True, scope="session")
def only_with_make_test_browser() -> None:
    if os.environ.get("STLAB_BROWSER") != "1":
        pytest.skip("the built site is tested by make test-browser, after make book")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # one line per request would drown pytest's output
        pass


@pytest.fixture(scope="session")
def site_url() -> Iterator[str]:
    """The built site served from ``_build/html`` on a free local port, as GitHub Pages would serve it."""
    if not (SITE / "intro.html").is_file():
        _unavailable(f"no built book in {SITE}: run `make book` first")
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium (Debian's package or $CHROMIUM; Playwright downloads no browser)."""
    executable = chromium_path()
    if executable is None:
        _unavailable("no Chromium found: install it (`sudo apt-get install chromium`) or set CHROMIUM=/path/to/chrome")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser, site_url):
    """A fresh page that may only talk to the local server: the book must work offline."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.outside_requests = []  # type: ignore[attr-defined]

    def route(request_route) -> None:
        if request_route.request.url.startswith(site_url) or request_route.request.url.startswith("data:"):
            request_route.continue_()
        else:
            page.outside_requests.append(request_route.request.url)  # type: ignore[attr-defined]
            request_route.abort()

    page.route("**/*", route)
    yield page
    context.close()
