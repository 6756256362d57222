"""Session3's own integration suite, ported: ``test/test_runner.py`` (a Quixote application)
and ``test/run_tests.py`` (eleven HTTP checks against it) from Session3's repository.

Session3's source distribution on PyPI does not ship these two files, so they are kept here as
a port, in this project's words: the same application, the same requests, the same checks, in
the same order.  As in the original, the application is built from
``SessionManager(DirectorySessionStore(directory, create=True))``; only the imports differ,
pointing at ``satchel.compat.session3``.  The original starts ``python -m quixote run`` on port
8080; here the publisher is served on a free loopback port in a thread.

The same application then runs over Session3's other stores, with the two checks that read the
session directory replaced by their store-level equivalent.
"""

from __future__ import annotations

import glob
import http.client
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from quixote import get_field, get_session, get_session_manager, get_user
from quixote.directory import Directory
from quixote.html import htmltext

# -- the imports Session3's test_runner.py makes, pointed at the facade -----------------------
from satchel.compat.session3.SessionManager import SessionManager
from satchel.compat.session3.store.DirectorySessionStore import DirectorySessionStore
from satchel.integrations.quixote import wsgi_app

from .e2e_util import serve_app
from .quixote_util import publishing


class RunnerRoot(Directory):  # type: ignore[misc]
    """The endpoints of Session3's test application, page for page."""

    _q_exports = ["", "login", "logout", "counter", "check", "create_token", "check_token",
                  "delete_old"]

    def _q_index(self) -> Any:
        user = get_user()
        session = get_session()
        if user:
            shown = session.id[:16] + "..." if session.id else "None"
            body = htmltext(
                "<p>Hello, %(user)s!</p><p>Session ID: %(sid)s</p><p>Counter: %(counter)s</p>"
                '<p><a href="logout">logout</a></p>'
            ) % {"user": user, "sid": shown, "counter": getattr(session, "counter", 0)}
        else:
            body = htmltext('<p>Not logged in.</p><p><a href="login">login</a></p>')
        return htmltext("<html><head><title>Session3 Test</title></head><body>%s</body></html>"
                        ) % body

    def login(self) -> Any:
        name = get_field("name")
        if not name:
            return htmltext('<html><body><form method="POST" action="login">'
                            '<input name="name" /><input type="submit" value="Login" />'
                            "</form></body></html>")
        session = get_session()
        session.set_user(name)
        session.counter = 0
        return htmltext("<html><body><p>Welcome! %s</p></body></html>") % get_user()

    def logout(self) -> Any:
        get_session_manager().expire_session()
        return htmltext("<html><body><p>Goodbye!</p></body></html>")

    def counter(self) -> Any:
        session = get_session()
        session.counter = getattr(session, "counter", 0) + 1
        return htmltext("<html><body><p>Counter: %s</p></body></html>") % session.counter

    def create_token(self) -> Any:
        token = get_session().create_form_token()
        return htmltext("<html><body><p>Token created: %s...</p></body></html>") % token[:16]

    def check_token(self) -> str:
        session = get_session()
        return "\n".join([
            f"session_id: {session.id}", f"user: {session.user}",
            f"has_form_tokens: {len(session._form_tokens) > 0}",
            f"form_token_count: {len(session._form_tokens)}",
            f"Access time: {session._access_time}",
        ])

    def delete_old(self, minutes: int = 0) -> Any:
        store = get_session_manager().store
        deleted, remaining = store.delete_old_sessions(int(minutes))
        return htmltext("<html><body><p>Deleted: %(d)s, Remaining: %(r)s</p></body></html>") % {
            "d": deleted, "r": remaining}

    def check(self) -> str:
        session = get_session()
        return "\n".join([
            f"session_id: {session.id}", f"user: {session.user}",
            f"counter: {getattr(session, 'counter', 'N/A')}",
            f"has_info: {session.has_info()}",
            f"form_tokens_count: {len(session._form_tokens)}",
            f"has_form_tokens: {len(session._form_tokens) > 0}",
            f"Access time: {session._access_time}",
        ])


def make_request(base: str, path: str, method: str = "GET", data: str | None = None,
                 cookies: str | None = None) -> dict[str, Any]:
    """run_tests.py's request helper: the raw Set-Cookie header comes back as ``cookies``, and
    is sent back verbatim as the Cookie header."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    headers = {}
    if cookies:
        headers["Cookie"] = cookies
    body = None
    if data and method == "POST":
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        body = data.encode("utf-8")
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        text = response.read().decode("utf-8")
        return {"status": response.status, "body": text,
                "cookies": response.getheader("Set-Cookie")}
    finally:
        conn.close()


def session_id_of(response: dict[str, Any]) -> str:
    line = next(x for x in response["body"].split("\n") if x.startswith("session_id:"))
    return line.split(": ")[1]


def test_session3_runner_checks_pass_through_the_facade(tmp_path: Path) -> None:
    session_dir = tmp_path / "session3_test_runner"
    session_dir.mkdir()
    store = DirectorySessionStore(str(session_dir), create=True)
    manager = SessionManager(store)
    with publishing(RunnerRoot(), manager, display_exceptions="plain") as publisher, \
            serve_app(wsgi_app(publisher)) as base:

        def req(path: str, **kw: Any) -> dict[str, Any]:
            return make_request(base, path, **kw)

        # 1. test_new_session
        r = req("/")
        assert r["status"] == 200 and "Not logged in" in r["body"]

        # 2. test_login_creates_session
        r = req("/login", method="POST", data="name=TestUser")
        assert r["status"] == 200 and "TestUser" in r["body"]
        assert r["cookies"] is not None, "No session cookie set after login"
        cookie = r["cookies"]

        # 3. test_session_persist
        r = req("/", cookies=cookie)
        assert r["status"] == 200 and "TestUser" in r["body"]

        # 4. test_counter
        r1 = req("/counter", cookies=cookie)
        cookie = r1["cookies"] if r1["cookies"] else cookie
        r2 = req("/counter", cookies=cookie)
        assert "Counter: 1" in r1["body"], r1["body"]
        assert "Counter: 2" in r2["body"], r2["body"]

        # 5. test_check_endpoint
        r = req("/check", cookies=cookie)
        for expected in ("user: TestUser", "session_id:", "has_info: TestUser",
                         "form_tokens_count:", "has_form_tokens:"):
            assert expected in r["body"], (expected, r["body"])

        # 6. test_logout
        r = req("/logout", cookies=cookie)
        assert r["status"] == 200

        # 7. test_session_file_deleted
        files = os.listdir(session_dir)
        assert len(files) == 0, f"Expected 0 session files, got {files}"

        # 8. test_form_tokens
        r = req("/login", method="POST", data="name=TokenUser")
        cookie = r["cookies"]
        req("/create_token", cookies=cookie)
        r3 = req("/check_token", cookies=cookie)
        assert "has_form_tokens: True" in r3["body"], r3["body"]

        # 9. test_delete_old_sessions
        r = req("/login", method="POST", data="name=DeleteTest")
        cookie = r["cookies"]
        r2 = req("/delete_old?minutes=0", cookies=cookie)
        assert "Deleted:" in r2["body"], r2["body"]

        # 10. test_session_not_found: the file removed behind the server's back, then re-login
        r = req("/login", method="POST", data="name=RecoveryTest")
        cookie = r["cookies"]
        old_id = session_id_of(req("/check", cookies=cookie))
        for name in glob.glob(os.path.join(session_dir, "*")):
            os.remove(name)
        r2 = req("/login", method="POST", data="name=RecoveryTest")
        cookie = r2["cookies"]
        r_new = req("/check", cookies=cookie)
        new_id = session_id_of(r_new)
        assert len(os.listdir(session_dir)) > 0, "Expected new session file to be created"
        assert old_id != new_id
        assert "user: RecoveryTest" in r_new["body"]

        # 11. test_session_not_found_no_crash
        r = req("/login", method="POST", data="name=NoCrashTest")
        cookie = r["cookies"]
        for name in glob.glob(os.path.join(session_dir, "*")):
            os.remove(name)
        assert req("/check", cookies=cookie) is not None

        # Beyond the original: only session files were ever left, named by valid ids.
        assert all(len(name) == 43 for name in os.listdir(session_dir))
