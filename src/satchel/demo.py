"""The demo application: every session feature on one small site, standard library only.

A visit counter, a login that rotates the session id (the pages show a fingerprint of the id
before and after, and which store keeps it), "remember me" (a persistent cookie for that
session alone), a secure area, flash messages, CSRF tokens on every form, and a logout that
revokes the session.  ``make_app`` builds it (tests import it); ``bind`` takes the port first,
so a busy port is reported before anything is created; ``serve`` runs it on wsgiref's server
with one daemon thread per request and shuts down cleanly on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import errno
import hashlib
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from html import escape
from socketserver import ThreadingMixIn
from types import FrameType
from typing import Any, TextIO
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from .session import Session
from .stores import Store
from .wsgi import SessionMiddleware

__all__ = ["DEMO_PASSWORD", "REMEMBER_SECONDS", "ThreadingWSGIServer", "bind", "make_app",
           "make_demo_server", "serve"]

DEMO_PASSWORD = "satchel"  # noqa: S105 - printed on the login page on purpose
MAX_FORM_BYTES = 16 * 1024
MAX_USERNAME = 64
REMEMBER_SECONDS = 7 * 24 * 3600  # "remember me": a week, which is also the demo's longest life
_STORE_KEY = "satchel.demo.store"  # the environ entry naming the store, for the pages

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
Response = tuple[str, list[tuple[str, str]], bytes]

_STYLE = """
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
 color:#1f2933;background:#f4f1ea}
header{background:#3b2f2a;color:#f4f1ea;padding:.8rem 1.5rem;display:flex;align-items:center;
 gap:1.5rem}
header strong{font-size:1.2rem;letter-spacing:.02em}
header nav{display:flex;gap:1rem;align-items:center;flex:1}
header a{color:#f4d9a6;text-decoration:none}
header a:hover{text-decoration:underline}
header .account{margin-left:auto}
main a{color:#8a5a2b}
main{max-width:40rem;margin:2rem auto;padding:0 1rem}
.card{background:#fff;border-radius:10px;padding:1.5rem 1.75rem;
 box-shadow:0 1px 3px rgba(0,0,0,.12)}
h1{margin-top:0;font-size:1.5rem}
.flash{padding:.7rem 1rem;border-radius:8px;margin-bottom:1rem;background:#e3f1e6;
 border:1px solid #9cc8a6}
.flash.error{background:#fbe4e1;border-color:#e0a39b}
.count{font-size:3rem;font-weight:700;color:#8a5a2b;margin:0;line-height:1.2}
label{display:block;margin:.8rem 0 .2rem;font-weight:600}
label.check{font-weight:400}
input[type=text],input[type=password]{width:100%;padding:.5rem .6rem;border:1px solid #c8c2b8;
 border-radius:6px;font:inherit}
button{margin-top:1rem;padding:.5rem 1.1rem;border:0;border-radius:6px;background:#8a5a2b;
 color:#fff;font:inherit;cursor:pointer}
button:hover{background:#6f4520}
header button{margin:0;background:#f4d9a6;color:#3b2f2a}
.hint{color:#52606d;font-size:.9rem}
code{background:#f0ebe1;padding:.1rem .3rem;border-radius:4px}
dl{display:grid;grid-template-columns:auto 1fr;gap:.3rem 1rem}
dt{font-weight:600}dd{margin:0}
footer{max-width:40rem;margin:1rem auto;padding:0 1rem;color:#7b8794;font-size:.85rem}
"""

_SECURITY_HEADERS = [
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Content-Security-Policy",
     "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
     "frame-ancestors 'none'; base-uri 'none'"),
]


def make_app(store: Store | str | None = None, **options: Any) -> SessionMiddleware:
    """The demo application wrapped in :class:`SessionMiddleware`.

    Args:
        store: a store or store URL (None: satchel's embedded SQLite default).
        **options: further middleware options; the demo purges expired sessions every
            5 minutes, and lets a remembered session live a week, unless told otherwise.

    Call ``close()`` on the result when done: it stops the purge thread and closes the store.
    """
    options.setdefault("auto_purge_every", 300)
    options.setdefault("absolute_timeout", REMEMBER_SECONDS)
    shown = ["the store given"]

    def site(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        environ[_STORE_KEY] = shown[0]
        return demo_app(environ, start_response)

    middleware = SessionMiddleware(site, store=store, **options)
    shown[0] = repr(middleware.store).strip("<>")  # stores' reprs never show a password
    return middleware


def demo_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """The bare WSGI application; it expects the session in ``environ["satchel.session"]``."""
    session: Session = environ["satchel.session"]
    path = environ.get("PATH_INFO") or "/"
    method = environ.get("REQUEST_METHOD", "GET")
    route = _ROUTES.get(path)
    if route is None:
        status, headers, body = _page(environ, session, "Page not found", "404 Not Found", f"""
<h1>Page not found</h1>
<p>There is no page at <code>{escape(path)}</code>.</p>
<p><a href="{_url(environ, '/')}">Go to the home page</a></p>""")
    elif method not in route:
        allowed = ", ".join(sorted(route))
        status, headers, body = _page(environ, session, "Method not allowed",
                                      "405 Method Not Allowed", f"""
<h1>Method not allowed</h1>
<p><code>{escape(path)}</code> answers {escape(allowed)}, not {escape(method)}.</p>
<p><a href="{_url(environ, '/')}">Go to the home page</a></p>""")
        headers = [*headers, ("Allow", allowed)]
    else:
        status, headers, body = route[method](environ, session)
    headers = [*headers, ("Content-Length", str(len(body))), *_SECURITY_HEADERS]
    start_response(status, headers)
    return [body]


# -- pages ---------------------------------------------------------------------------------------


def _home(environ: Environ, session: Session) -> Response:
    visits = int(session.get("visits", 0)) + 1
    session["visits"] = visits
    user = session.get("username")
    secure = f'<a href="{_url(environ, "/secure-area")}">secure area</a>'
    who = (f"You are logged in as <strong>{escape(user)}</strong>: the {secure} is open to you."
           if user else f"You are not logged in. The {secure} needs a login.")
    content = f"""<h1>Welcome to the satchel demo</h1>
<p>Your visits to this page:</p>
<p class="count" id="visits">{visits}</p>
<p>Reload to count again: the number lives in your session, in the store below.</p>
<p id="who">{who}</p>
{_session_facts(environ, session)}"""
    return _page(environ, session, "Home", "200 OK", content)


def _login_form(environ: Environ, session: Session) -> Response:
    if session.get("username"):
        return _redirect(environ, "/secure-area")
    content = f"""<h1>Log in</h1>
<form method="post" action="{_url(environ, '/login')}">
{_csrf_field(session)}
<label for="username">Username</label>
<input type="text" id="username" name="username" maxlength="{MAX_USERNAME}" required autofocus>
<label for="password">Password</label>
<input type="password" id="password" name="password" required>
<label class="check"><input type="checkbox" id="remember" name="remember" value="1">
Remember me on this browser for {REMEMBER_SECONDS // 86400} days</label>
<button type="submit">Log in</button>
</form>
<p class="hint">Any username will do; the password is <code>{escape(DEMO_PASSWORD)}</code>.
Logging in gives your session a new id, so an id planted before cannot be used: compare the
fingerprint below with the one the secure area shows.  Without "remember me" the session's
cookie ends when the browser closes.</p>
{_session_facts(environ, session)}"""
    return _page(environ, session, "Log in", "200 OK", content)


def _login(environ: Environ, session: Session) -> Response:
    form = _read_form(environ)
    if not session.check_csrf(form.get("csrf_token")):
        return _csrf_failure(environ, session)
    username = form.get("username", "").strip()
    if not username or len(username) > MAX_USERNAME or form.get("password") != DEMO_PASSWORD:
        session.flash(f"Wrong username or password: the password is {DEMO_PASSWORD!r}.",
                      "error")
        return _redirect(environ, "/login")
    before = _fingerprint(session)
    session.rotate()
    session.user = username
    session["username"] = username
    session["logged_in_at"] = time.time()
    session["fingerprint_before_login"] = before
    # A persistent cookie for this session alone; the others keep the browser-session cookie.
    session.set_expiry(REMEMBER_SECONDS if form.get("remember") else None)
    session.flash(f"Welcome, {username}: you are logged in.")
    return _redirect(environ, "/secure-area")


def _secure_area(environ: Environ, session: Session) -> Response:
    username = session.get("username")
    if not username:
        session.flash("Please log in to see the secure area.", "error")
        return _redirect(environ, "/login")
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(session.get("logged_in_at", 0)))
    content = f"""<h1>Secure area</h1>
<p id="welcome">Welcome to the secure area, <strong>{escape(username)}</strong>.</p>
<dl>
<dt>Logged in since</dt><dd>{escape(since)}</dd>
<dt>Home page visits</dt><dd>{int(session.get("visits", 0))}</dd>
<dt>Fingerprint before login</dt>
<dd><code id="fingerprint-before">{escape(str(session.get("fingerprint_before_login", "-")))}
</code></dd>
<dt>Fingerprint now</dt><dd><code id="fingerprint">{_fingerprint(session)}</code></dd>
<dt>Remembered</dt><dd id="remembered">{_remembered(session)}</dd>
<dt>Store</dt><dd><code id="store">{escape(environ.get(_STORE_KEY, "?"))}</code></dd>
</dl>
<p class="hint">A fingerprint is a hash of the session id, which itself never appears in a page:
the cookie is HttpOnly.  The two differ because logging in gave the session a new id.</p>"""
    return _page(environ, session, "Secure area", "200 OK", content)


def _logout(environ: Environ, session: Session) -> Response:
    form = _read_form(environ)
    if not session.check_csrf(form.get("csrf_token")):
        return _csrf_failure(environ, session)
    session.invalidate()
    session.flash("You have been logged out; your old session no longer exists.")
    return _redirect(environ, "/")


def _logout_page(environ: Environ, session: Session) -> Response:
    username = session.get("username")
    if not username:
        content = f"""<h1>Log out</h1>
<p>You are not logged in, so there is nothing to log out of.</p>
<p><a href="{_url(environ, '/')}">Go to the home page</a> or
<a href="{_url(environ, '/login')}">log in</a>.</p>"""
    else:
        content = f"""<h1>Log out</h1>
<form method="post" action="{_url(environ, '/logout')}">
{_csrf_field(session)}
<p>Log out <strong>{escape(username)}</strong>? The session is deleted from the store.</p>
<button type="submit" id="confirm-logout">Log out</button>
</form>"""
    return _page(environ, session, "Log out", "200 OK", content)


_ROUTES: dict[str, dict[str, Callable[[Environ, Session], Response]]] = {
    "/": {"GET": _home},
    "/login": {"GET": _login_form, "POST": _login},
    "/secure-area": {"GET": _secure_area},
    "/logout": {"GET": _logout_page, "POST": _logout},
}


# -- building blocks -------------------------------------------------------------------------------


def _url(environ: Environ, path: str) -> str:
    return escape(environ.get("SCRIPT_NAME", "") + path)


def _redirect(environ: Environ, path: str) -> Response:
    # 303: the browser follows with a GET, so reloading the result never re-posts the form.
    return "303 See Other", [("Location", environ.get("SCRIPT_NAME", "") + path)], b""


def _csrf_field(session: Session) -> str:
    return f'<input type="hidden" name="csrf_token" value="{escape(session.csrf_token)}">'


def _csrf_failure(environ: Environ, session: Session) -> Response:
    content = """<h1>Request refused</h1>
<p>The form's CSRF token is missing or wrong.  Go back, reload the page and try again.</p>"""
    return _page(environ, session, "Request refused", "403 Forbidden", content)


def _fingerprint(session: Session) -> str:
    return hashlib.sha256(session.id.encode()).hexdigest()[:12]


def _session_facts(environ: Environ, session: Session) -> str:
    return f"""<dl>
<dt>Session fingerprint</dt><dd><code id="fingerprint">{_fingerprint(session)}</code></dd>
<dt>Store</dt><dd><code id="store">{escape(environ.get(_STORE_KEY, "?"))}</code></dd>
</dl>"""


def _remembered(session: Session) -> str:
    if not session.expiry:
        return "no: the cookie ends when the browser closes"
    until = time.strftime("%Y-%m-%d %H:%M", time.localtime(session.expires_at))
    return f"yes: a persistent cookie, until {until} unless you log out"


def _read_form(environ: Environ) -> dict[str, str]:
    """The url-encoded form in the request body, one value per field, bounded in size."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length <= 0:
        return {}
    body = environ["wsgi.input"].read(min(length, MAX_FORM_BYTES))
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {key: values[0] for key, values in fields.items()}


def _page(environ: Environ, session: Session, title: str, status: str,
          content: str) -> Response:
    flashes = "".join(
        f'<div class="flash {escape(category)}">{escape(message)}</div>'
        for category, message in session.pop_flashes()
    )
    if session.get("username"):
        account = (f'<form class="account" method="post" action="{_url(environ, "/logout")}">'
                   f'{_csrf_field(session)}<button type="submit">Log out '
                   f'{escape(session["username"])}</button></form>')
    else:
        account = f'<a class="account" href="{_url(environ, "/login")}">Log in</a>'
    html = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · satchel demo</title>
<link rel="icon" href="data:,">
<style>{_STYLE}</style>
</head>
<body>
<header><strong>satchel</strong>
<nav><a href="{_url(environ, '/')}">Home</a>
<a href="{_url(environ, '/secure-area')}">Secure area</a>{account}</nav>
</header>
<main>{flashes}<div class="card">
{content}
</div></main>
<footer>Sessions by satchel · kept in {escape(environ.get(_STORE_KEY, "?"))}</footer>
</body>
</html>
"""
    return status, [("Content-Type", "text/html; charset=utf-8")], html.encode("utf-8")


# -- serving -------------------------------------------------------------------------------------


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    """wsgiref's server with a daemon thread per request, so one slow client blocks no one."""

    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    """Logs one line per request without the query string (it may carry a session id)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        line = self.requestline.split(" ")
        if len(line) == 3:
            line[1] = line[1].split("?", 1)[0]
        self.log_message('"%s" %s %s', " ".join(line), str(code), str(size))


def make_demo_server(app: Callable[..., Iterable[bytes]], host: str = "127.0.0.1",
                     port: int = 8080, *, quiet: bool = False) -> ThreadingWSGIServer:
    """A threading wsgiref server for ``app``, bound and ready for ``serve_forever``.

    Raises:
        OSError: when the address cannot be bound (in use, not local, ...).
    """
    handler = _SilentHandler if quiet else _QuietHandler
    server = ThreadingWSGIServer((host, port), handler)
    server.set_app(app)
    return server


class _SilentHandler(_QuietHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


def bind(host: str = "127.0.0.1", port: int = 8080) -> ThreadingWSGIServer:
    """The demo's server, bound before there is an application (or a data directory) to serve.

    Raises:
        OSError: the address cannot be bound; its message names the address, and says what
            to do when the port is in use.
    """
    try:
        return make_demo_server(_unset, host, port)
    except OSError as exc:
        where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
        if exc.errno == errno.EADDRINUSE:
            message = (f"port {port} is in use on {host} (another demo, or another program): "
                       "choose a free one with --port")
        else:
            message = f"cannot serve the demo on {where}: {exc.strerror or exc}"
        raise OSError(exc.errno, message) from exc


def _unset(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    raise RuntimeError("the demo server was bound but given no application")


def serve(app: SessionMiddleware, host: str = "127.0.0.1", port: int = 8080, *,
          out: TextIO | None = None, server: ThreadingWSGIServer | None = None) -> None:
    """Serve ``app`` until Ctrl-C or SIGTERM, then stop the server and close the middleware.

    ``server``: one :func:`bind` made (``host`` and ``port`` are then its own).

    Raises:
        OSError: when the address cannot be bound.
    """
    out = out or sys.stdout
    try:
        if server is None:
            server = bind(host, port)
        server.set_app(app)
    except BaseException:
        app.close()
        raise
    host = str(server.server_address[0])
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        # serve_forever runs in this (the main) thread; shutdown() waits for it, so it is
        # called from another thread.
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, name="satchel-demo-stop",
                             daemon=True).start()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    shown_host = f"[{host}]" if ":" in host else host
    bound_port = server.server_address[1]
    print(f"satchel demo: serving on http://{shown_host}:{bound_port}/ "
          "(Ctrl-C to stop)", file=out, flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.server_close()
        app.close()
        print("satchel demo: stopped", file=out, flush=True)
