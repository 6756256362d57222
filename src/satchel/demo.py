"""The demo application: every session feature on one small site, standard library only.

A visit counter, a login that rotates the session id, a secure area, flash messages, CSRF
tokens on every form, and a logout that revokes the session.  ``make_app`` builds it (tests
import it); ``serve`` runs it on wsgiref's server with one daemon thread per request and shuts
down cleanly on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

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

__all__ = ["DEMO_PASSWORD", "ThreadingWSGIServer", "make_app", "make_demo_server", "serve"]

DEMO_PASSWORD = "satchel"  # noqa: S105 - printed on the login page on purpose
MAX_FORM_BYTES = 16 * 1024
MAX_USERNAME = 64

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
            5 minutes unless told otherwise.

    Call ``close()`` on the result when done: it stops the purge thread and closes the store.
    """
    options.setdefault("auto_purge_every", 300)
    return SessionMiddleware(demo_app, store=store, **options)


def demo_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """The bare WSGI application; it expects the session in ``environ["satchel.session"]``."""
    session: Session = environ["satchel.session"]
    path = environ.get("PATH_INFO") or "/"
    method = environ.get("REQUEST_METHOD", "GET")
    route = _ROUTES.get(path)
    if route is None:
        status, headers, body = _page(environ, session, "Not found", "404 Not Found",
                                      "<p>There is no such page.</p>")
    elif method not in route:
        allowed = ", ".join(sorted(route))
        status, headers, body = "405 Method Not Allowed", [("Allow", allowed)], b""
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
    who = (f"You are logged in as <strong>{escape(user)}</strong>."
           if user else "You are not logged in.")
    content = f"""<h1>Welcome to the satchel demo</h1>
<p>Your visits to this page:</p>
<p class="count" id="visits">{visits}</p>
<p>Reload to count again: the number lives in your session, on the server.</p>
<p>{who} The <a href="{_url(environ, '/secure-area')}">secure area</a> needs a login.</p>"""
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
<button type="submit">Log in</button>
</form>
<p class="hint">Any username will do; the password is <code>{escape(DEMO_PASSWORD)}</code>.
Logging in gives your session a new id, so an id planted before cannot be used.</p>"""
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
    session.rotate()
    session.user = username
    session["username"] = username
    session["logged_in_at"] = time.time()
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
<dt>Session fingerprint</dt><dd><code>{_fingerprint(session)}</code></dd>
</dl>
<p class="hint">The fingerprint is a hash of the session id, which itself never appears in a page:
the cookie is HttpOnly.  It changed when you logged in.</p>"""
    return _page(environ, session, "Secure area", "200 OK", content)


def _logout(environ: Environ, session: Session) -> Response:
    form = _read_form(environ)
    if not session.check_csrf(form.get("csrf_token")):
        return _csrf_failure(environ, session)
    session.invalidate()
    session.flash("You have been logged out; your old session no longer exists.")
    return _redirect(environ, "/")


_ROUTES: dict[str, dict[str, Callable[[Environ, Session], Response]]] = {
    "/": {"GET": _home},
    "/login": {"GET": _login_form, "POST": _login},
    "/secure-area": {"GET": _secure_area},
    "/logout": {"POST": _logout},
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
<footer>Sessions by satchel · standard library only</footer>
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


def serve(app: SessionMiddleware, host: str = "127.0.0.1", port: int = 8080, *,
          out: TextIO | None = None) -> None:
    """Serve ``app`` until Ctrl-C or SIGTERM, then stop the server and close the middleware.

    Raises:
        OSError: when the address cannot be bound.
    """
    out = out or sys.stdout
    try:
        server = make_demo_server(app, host, port)
    except BaseException:
        app.close()
        raise
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
