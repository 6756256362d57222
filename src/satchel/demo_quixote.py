"""The demo as a Quixote application: ``satchel demo --quixote``.

The same flow as the WSGI demo (a visit counter, a login that rotates the session id, a secure
area, flash messages, CSRF-checked forms, logout), written the way a Quixote developer writes
it: a ``Directory``, ``get_session()``, custom session attributes, ``set_user`` and
``expire_session``, with :class:`satchel.integrations.quixote.SessionManager` as the
publisher's session manager.  Needs Quixote (``pip install 'satchel[quixote]'``).
"""

from __future__ import annotations

import hashlib
import io
import sys
from html import escape
from typing import Any, cast

import quixote
from quixote import get_request, get_response, get_session, get_session_manager, get_user
from quixote.directory import Directory
from quixote.logger import DefaultLogger
from quixote.publish import Publisher

from .demo import DEMO_PASSWORD, MAX_USERNAME
from .integrations.quixote import Session, SessionManager, wsgi_app

__all__ = ["DemoSession", "QuixoteDemo", "make_app"]

_STYLE = """
body{margin:0;font:16px/1.5 system-ui,sans-serif;color:#1f2933;background:#eef1f4}
header{background:#243447;color:#fff;padding:.8rem 1.5rem;display:flex;gap:1.5rem;
 align-items:center}
header a{color:#ffd479;text-decoration:none}
header form{margin-left:auto}
main{max-width:40rem;margin:2rem auto;padding:1.5rem 1.75rem;background:#fff;border-radius:10px}
.flash{padding:.6rem 1rem;border-radius:8px;margin-bottom:1rem;background:#e3f1e6}
.flash.error{background:#fbe4e1}
.count{font-size:3rem;font-weight:700;margin:0}
label{display:block;margin-top:.8rem;font-weight:600}
input[type=text],input[type=password]{width:100%;padding:.45rem;box-sizing:border-box}
button{margin-top:1rem;padding:.45rem 1rem;border:0;border-radius:6px;background:#2f6f9f;
 color:#fff;font:inherit;cursor:pointer}
header button{margin:0;background:#ffd479;color:#243447}
.hint{color:#52606d;font-size:.9rem}
"""

_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}


class DemoSession(Session):
    """The demo's session: a visit counter and one-time messages as plain attributes."""

    def __init__(self, id: str | None) -> None:
        super().__init__(id)
        self.visits = 0
        self.flashes: list[list[str]] = []

    def has_info(self) -> bool:
        # Quixote keeps a session with a user or a form token; the demo keeps counting
        # anonymous visits too.
        return bool(super().has_info() or self.visits or self.flashes)

    def flash(self, message: str, category: str = "message") -> None:
        self.flashes = [*self.flashes, [category, message]]


class QuixoteDemo(Directory):  # type: ignore[misc]
    """The pages: ``/``, ``/login``, ``/secure-area`` and ``/logout``."""

    _q_exports = ["", "login", ("secure-area", "secure_area"), "logout"]

    def _q_index(self) -> str:
        session = _session()
        session.visits += 1
        if get_request().get_field("logged-out"):
            session.flash("You have been logged out; your old session no longer exists.")
        who = (f"You are logged in as <strong>{escape(str(get_user()))}</strong>."
               if get_user() else "You are not logged in.")
        return _page("Home", f"""<h1>Welcome to the satchel demo, on Quixote</h1>
<p>Your visits to this page:</p>
<p class="count" id="visits">{session.visits}</p>
<p>Reload to count again: <code>session.visits</code> lives on the server.</p>
<p>{who} The <a href="secure-area">secure area</a> needs a login.</p>""")

    def login(self) -> str:
        session = _session()
        request = get_request()
        if request.get_method() == "POST":
            if not session.valid_csrf_token():
                return _refused()
            name = str(request.get_field("username") or "").strip()
            if not name or len(name) > MAX_USERNAME or \
                    request.get_field("password") != DEMO_PASSWORD:
                session.flash(f"Wrong username or password: the password is "
                              f"{DEMO_PASSWORD!r}.", "error")
                return _redirect("login")
            session.set_user(name)  # the login call: the session gets a new id
            session.flash(f"Welcome, {name}: you are logged in.")
            return _redirect("secure-area")
        if get_user():
            return _redirect("secure-area")
        return _page("Log in", f"""<h1>Log in</h1>
<form method="post" action="login">{_csrf_field()}
<label for="username">Username</label>
<input type="text" id="username" name="username" maxlength="{MAX_USERNAME}" required autofocus>
<label for="password">Password</label>
<input type="password" id="password" name="password" required>
<button type="submit">Log in</button>
</form>
<p class="hint">Any username will do; the password is <code>{escape(DEMO_PASSWORD)}</code>.
<code>session.set_user()</code> gives your session a new id.</p>""")

    def secure_area(self) -> str:
        user = get_user()
        session = _session()
        if not user:
            session.flash("Please log in to see the secure area.", "error")
            return _redirect("login")
        fingerprint = hashlib.sha256((session.id or "").encode()).hexdigest()[:12]
        return _page("Secure area", f"""<h1>Secure area</h1>
<p id="welcome">Welcome to the secure area, <strong>{escape(str(user))}</strong>.</p>
<p>Home page visits: {session.visits}.  Session fingerprint: <code>{fingerprint}</code>
(a hash of the id, which never appears in a page: the cookie is HttpOnly).</p>""")

    def logout(self) -> str:
        session = _session()
        if get_request().get_method() != "POST" or not session.valid_csrf_token():
            return _refused()
        get_session_manager().expire_session()  # the record is deleted, the cookie revoked
        return _redirect("?logged-out=1")


def _session() -> DemoSession:
    return cast(DemoSession, get_session())


def _csrf_field() -> str:
    token = escape(_session().get_csrf_token())
    return f'<input type="hidden" name="csrf_token" value="{token}">'


def _redirect(path: str) -> str:
    response = get_response()
    response.set_status(303)
    base = get_request().get_environ("SCRIPT_NAME", "")
    response.set_header("Location", f"{base}/{path}")
    return f"See {base}/{path}"


def _refused() -> str:
    get_response().set_status(403)
    return _page("Request refused", "<h1>Request refused</h1><p>The form's CSRF token is "
                                    "missing or wrong: reload the page and try again.</p>")


def _page(title: str, content: str) -> str:
    response = get_response()
    for name, value in _HEADERS.items():
        response.set_header(name, value)
    session = _session()
    flashes = "".join(f'<div class="flash {escape(c)}">{escape(m)}</div>'
                      for c, m in session.flashes)
    if session.flashes:
        session.flashes = []
    user = get_user()
    if user:
        account = (f'<form method="post" action="logout">{_csrf_field()}'
                   f'<button type="submit">Log out {escape(str(user))}</button></form>')
    else:
        account = '<a href="login">Log in</a>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{escape(title)} · satchel demo on Quixote</title><link rel="icon" href="data:,">
<style>{_STYLE}</style></head>
<body><header><strong>satchel · Quixote</strong><a href="./">Home</a>
<a href="secure-area">Secure area</a>{account}</header>
<main>{flashes}{content}</main></body></html>"""


class _Logger(DefaultLogger):  # type: ignore[misc]
    """Quixote's logger, errors to stderr, without pointing ``sys.stdout`` at them."""

    def __init__(self, quiet: bool = False) -> None:
        self.access_log = None
        self.error_log = io.StringIO() if quiet else sys.stderr
        self.error_email = None


class _App:
    """The publisher behind a WSGI callable, with ``close`` for the server to call."""

    def __init__(self, publisher: Publisher, manager: SessionManager) -> None:
        self.publisher = publisher
        self.manager = manager
        self._wsgi = wsgi_app(publisher)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self._wsgi(environ, start_response)

    def close(self) -> None:
        self.manager.close()
        if quixote.get_publisher() is self.publisher:
            quixote.cleanup()


def make_app(store: Any = None, *, quiet: bool = False, **options: Any) -> Any:
    """The Quixote demo as a WSGI application over ``store`` (a store or URL; None: SQLite
    in the working directory).  Quixote allows one publisher per process: ``close()`` the
    result before making another."""
    options.setdefault("auto_purge_every", 300)
    manager = SessionManager(store, session_class=DemoSession, **options)
    try:
        publisher = Publisher(QuixoteDemo(), session_manager=manager, logger=_Logger(quiet))
    except BaseException:
        manager.close()
        raise
    return _App(publisher, manager)
