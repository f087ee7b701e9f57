"""Browser tests: Playwright's sync API driving the system Chromium.

The binary comes from CHROMIUM_PATH or /usr/bin/chromium (Debian's package; CI
installs it). Without it every test here is skipped with the reason, not failed.
"""

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM_PATH = os.environ.get("CHROMIUM_PATH") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HERE = Path(__file__).parent


def chromium_available() -> bool:
    path = Path(CHROMIUM_PATH)
    return (path.is_file() and os.access(path, os.X_OK)) or bool(
        shutil.which(CHROMIUM_PATH)
    )


def pytest_collection_modifyitems(config, items):
    if chromium_available():
        return
    skip = pytest.mark.skip(
        reason=f"no Chromium at {CHROMIUM_PATH} (apt-get install chromium, or set "
        "CHROMIUM_PATH)"
    )
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(skip)


@pytest.fixture(scope="package", autouse=True)
def _allow_orm_next_to_playwright():
    """Set DJANGO_ALLOW_ASYNC_UNSAFE while this folder's tests run, then restore it.

    Playwright's sync API keeps an event loop running in the test thread, so Django
    refuses ORM calls (factories, fixtures, the live server's flush) unless told that
    they are safe, which they are: they are plain synchronous calls. Scoped to this
    package so the variable never leaks into later tests (``check --deploy`` rejects
    it) and the browser below is closed before it is unset.
    """
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="package")
def browser(_allow_orm_next_to_playwright):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(
        viewport={"width": 1366, "height": 860}, locale="pl-PL"
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()
