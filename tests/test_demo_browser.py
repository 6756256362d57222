"""The demo in a real headless browser (Debian's chromium driven by Playwright).

What an HTTP client cannot show: the browser honours the cookie's attributes (HttpOnly hides it
from scripts), follows the 303s after the forms, and renders the pages.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from satchel.demo import DEMO_PASSWORD, make_app

from .e2e_util import serve_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
# Set SATCHEL_SCREENSHOT=/tmp/demo.png to look at the secure area page.
SCREENSHOT = os.environ.get("SATCHEL_SCREENSHOT")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/system-packages (Debian's chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[str]:
    app = make_app(f"sqlite:///{tmp_path}/sessions.db")
    with serve_app(app) as base:
        yield base


def session_cookie(page: Page) -> dict[str, object]:
    cookies = [c for c in page.context.cookies() if c["name"] == "satchel"]
    assert len(cookies) == 1
    return dict(cookies[0])


def test_demo_in_a_browser(browser: Browser, demo: str) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(10_000)

        page.goto(demo + "/")
        assert page.text_content("#visits") == "1"
        page.reload()
        assert page.text_content("#visits") == "2"
        anonymous = session_cookie(page)

        page.click("text=Log in")
        assert page.url == demo + "/login"
        assert DEMO_PASSWORD in (page.text_content("main") or "")
        page.fill("#username", "ada")
        page.fill("#password", DEMO_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(demo + "/secure-area")
        assert "Welcome to the secure area, ada" in (page.text_content("#welcome") or "")
        assert page.text_content(".flash") == "Welcome, ada: you are logged in."

        cookie = session_cookie(page)
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Lax"
        assert cookie["secure"] is False  # plain http on loopback
        assert cookie["path"] == "/"
        assert cookie["expires"] == -1  # a browser-session cookie: no Max-Age
        assert cookie["value"] != anonymous["value"]  # rotated at login
        assert page.evaluate("document.cookie") == ""  # HttpOnly: invisible to scripts
        if SCREENSHOT:
            page.screenshot(path=SCREENSHOT, full_page=True)

        page.reload()
        assert page.locator(".flash").count() == 0  # a flash shows once

        page.click("header button[type=submit]")  # "Log out ada"
        page.wait_for_url(demo + "/")
        assert "You have been logged out" in (page.text_content(".flash") or "")
        assert session_cookie(page)["value"] != cookie["value"]

        page.goto(demo + "/secure-area")
        page.wait_for_url(demo + "/login")
        assert page.text_content(".flash") == "Please log in to see the secure area."
    finally:
        context.close()


def log_in(page: Page, demo: str, name: str, *, remember: bool) -> None:
    page.goto(demo + "/login")
    page.fill("#username", name)
    page.fill("#password", DEMO_PASSWORD)
    if remember:
        page.check("#remember")
    page.click("main button[type=submit]")
    page.wait_for_url(demo + "/secure-area")


def test_fingerprints_store_and_the_home_page_while_logged_in(browser: Browser,
                                                              demo: str) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto(demo + "/")
        store = page.text_content("#store") or ""
        assert store.startswith("SQLiteStore path=") and store.endswith("sessions.db'")
        assert "needs a login" in (page.text_content("#who") or "")
        before = page.text_content("#fingerprint")
        assert before and len(before) == 12

        log_in(page, demo, "ada", remember=False)
        assert (page.text_content("#fingerprint-before") or "").strip() == before
        after = page.text_content("#fingerprint")
        assert after and after != before  # rotated at login, and the page shows both
        assert page.text_content("#store") == store
        assert "ends when the browser closes" in (page.text_content("#remembered") or "")

        page.goto(demo + "/")
        who = page.text_content("#who") or ""
        assert "You are logged in as ada" in who and "needs a login" not in who
        assert page.text_content("#fingerprint") == after
    finally:
        context.close()


def test_logout_and_missing_pages_are_pages(browser: Browser, demo: str) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(10_000)
        missing = page.goto(demo + "/no/such/page")
        assert missing is not None and missing.status == 404
        assert page.text_content("h1") == "Page not found"
        page.click("main >> text=Go to the home page")
        page.wait_for_url(demo + "/")

        page.goto(demo + "/logout")
        assert "nothing to log out of" in (page.text_content("main") or "")
        log_in(page, demo, "grace", remember=False)
        page.goto(demo + "/logout")  # typed in the address bar: a page that asks
        assert "Log out grace?" in (page.text_content("main") or "")
        page.click("#confirm-logout")
        page.wait_for_url(demo + "/")
        assert "You have been logged out" in (page.text_content(".flash") or "")
        assert "You are not logged in" in (page.text_content("#who") or "")
    finally:
        context.close()


@pytest.mark.parametrize("remember", [True, False])
def test_remember_me_survives_a_browser_restart(browser: Browser, demo: str,
                                                remember: bool) -> None:
    first = browser.new_context()
    try:
        page = first.new_page()
        page.set_default_timeout(10_000)
        log_in(page, demo, "ada", remember=remember)
        cookie = session_cookie(page)
        remembered = page.text_content("#remembered") or ""
        kept = [c for c in first.cookies() if c["expires"] != -1]  # what a restart keeps
    finally:
        first.close()
    if remember:
        week = 7 * 24 * 3600
        assert remembered.startswith("yes: a persistent cookie, until ")
        assert time.time() + week - 120 < float(cookie["expires"]) <= time.time() + week + 5
    else:
        assert cookie["expires"] == -1 and kept == []
    second = browser.new_context()
    try:
        second.add_cookies(kept)
        page = second.new_page()
        page.set_default_timeout(10_000)
        page.goto(demo + "/secure-area")
        if remember:
            assert page.url == demo + "/secure-area"
            assert "Welcome to the secure area, ada" in (page.text_content("#welcome") or "")
        else:
            page.wait_for_url(demo + "/login")
    finally:
        second.close()
