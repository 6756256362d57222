"""``satchel demo --quixote``: the demo's flow as a Quixote application, in headless Chromium
and as the command's own process."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from satchel.demo import DEMO_PASSWORD
from satchel.demo_quixote import make_app

from .e2e_util import Client, DemoProcess, csrf_token, serve_app
from .test_demo_browser import browser  # noqa: F401 - the shared Chromium fixture

COOKIE = "QX_session"


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[str]:
    app = make_app(f"sqlite:///{tmp_path}/sessions.db", quiet=True)
    with serve_app(app) as base:
        yield base


def session_cookie(page: Page) -> dict[str, object]:
    cookies = [c for c in page.context.cookies() if c["name"] == COOKIE]
    assert len(cookies) == 1
    return dict(cookies[0])


def test_quixote_demo_in_a_browser(browser: Browser, demo: str) -> None:  # noqa: F811
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
        page.fill("#username", "ada")
        page.fill("#password", DEMO_PASSWORD)
        page.click("main button[type=submit]")
        page.wait_for_url(demo + "/secure-area")
        assert "Welcome to the secure area, ada" in (page.text_content("#welcome") or "")
        assert page.text_content(".flash") == "Welcome, ada: you are logged in."
        assert "Home page visits: 2" in (page.text_content("main") or "")

        cookie = session_cookie(page)
        assert cookie["httpOnly"] is True and cookie["sameSite"] == "Lax"
        assert cookie["secure"] is False and cookie["path"] == "/"
        assert cookie["expires"] == -1  # a browser-session cookie
        assert cookie["value"] != anonymous["value"]  # set_user() rotated the id
        assert page.evaluate("document.cookie") == ""

        page.reload()
        assert page.locator(".flash").count() == 0  # shown once

        page.click("header button[type=submit]")  # "Log out ada"
        page.wait_for_url(demo + "/?logged-out=1")
        assert "You have been logged out" in (page.text_content(".flash") or "")
        assert session_cookie(page)["value"] != cookie["value"]

        page.goto(demo + "/secure-area")
        page.wait_for_url(demo + "/login")
        assert page.text_content(".flash") == "Please log in to see the secure area."
    finally:
        context.close()


def test_a_forged_logout_is_refused(demo: str) -> None:
    client = Client(demo)
    form = client.get("/login")
    r = client.post("/login", {"username": "ada", "password": DEMO_PASSWORD,
                               "csrf_token": csrf_token(form.text)})
    assert r.status == 303 and r.location == "/secure-area"
    assert client.post("/logout", {"csrf_token": "forged"}).status == 403
    assert client.get("/secure-area").status == 200
    assert client.post("/login", {"username": "eve", "password": DEMO_PASSWORD}).status == 403


class QuixoteDemoProcess(DemoProcess):
    def command(self) -> list[str]:
        return [*super().command(), "--quixote"]


def test_satchel_demo_quixote_serves_and_keeps_sessions_across_a_restart(
        tmp_path: Path) -> None:
    server = QuixoteDemoProcess(f"sqlite:///{tmp_path}/sessions.db")
    try:
        server.start()
        client = Client(server.base)
        form = client.get("/login")
        assert form.status == 200 and "Quixote" in form.text
        client.post("/login", {"username": "ada", "password": DEMO_PASSWORD,
                               "csrf_token": csrf_token(form.text)})
        server.stop(signal.SIGTERM)
        server.start()
        page = client.get("/secure-area")
        assert page.status == 200 and "ada" in page.text
        server.stop(signal.SIGTERM)
        output = server.output()
    finally:
        server.cleanup()
    assert "satchel demo (Quixote): sessions kept in" in output
    assert "Traceback" not in output
