"""What the Quixote and Session3 tests share: a publisher that is torn down after each test, a
quiet logger, and an in-process client that speaks to Quixote's WSGI adapter.

Quixote allows one ``Publisher`` per process, so every test builds its own inside
:func:`publishing` and ``quixote.cleanup()`` runs after it, whatever happened.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode

import quixote
from quixote.logger import DefaultLogger
from quixote.publish import Publisher

from satchel.integrations.quixote import wsgi_app

from .e2e_util import Client as HTTPClient
from .e2e_util import Response, serve_app

__all__ = ["HTTPClient", "QuietLogger", "WSGIClient", "publishing", "serving"]


class QuietLogger(DefaultLogger):  # type: ignore[misc]
    """Quixote's logger without its side effect (it points ``sys.stdout`` at its error log);
    errors are kept in ``errors`` for the test to read."""

    def __init__(self) -> None:
        self.access_log = None
        self.errors = io.StringIO()
        self.error_log = self.errors
        self.error_email = None


@contextlib.contextmanager
def publishing(root: Any, session_manager: Any, **config: Any) -> Iterator[Publisher]:
    """A ``Publisher`` for ``root`` with ``session_manager``; removed (and the manager closed)
    afterwards so that the next test can make its own."""
    quixote.cleanup()
    stdout = sys.stdout
    try:
        yield Publisher(root, session_manager=session_manager, logger=QuietLogger(), **config)
    finally:
        sys.stdout = stdout
        quixote.cleanup()
        session_manager.close()


@contextlib.contextmanager
def serving(publisher: Publisher) -> Iterator[HTTPClient]:
    """The publisher behind a real HTTP server on loopback, and a client for it."""
    with serve_app(wsgi_app(publisher)) as base:
        yield HTTPClient(base)


@dataclass
class WSGIClient:
    """A browser-like client that calls Quixote's WSGI adapter in this process.

    Same interface as the HTTP client: it keeps cookies and never follows redirects.
    """

    app: Callable[..., Any]
    cookies: dict[str, str] = field(default_factory=dict)
    https: bool = False
    script_name: str = ""

    def request(self, method: str, path: str, *, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None, cookies: bool = True) -> Response:
        body = urlencode(form).encode() if form is not None else b""
        path, _, query = path.partition("?")
        env: dict[str, Any] = {
            "REQUEST_METHOD": method, "SCRIPT_NAME": self.script_name, "PATH_INFO": path,
            "QUERY_STRING": query, "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.0", "REMOTE_ADDR": "127.0.0.1",
            "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
            "wsgi.url_scheme": "https" if self.https else "http", "wsgi.multithread": False,
            "wsgi.multiprocess": False, "wsgi.run_once": False, "wsgi.version": (1, 0),
        }
        if self.https:
            env["HTTPS"] = "on"
        if form is not None:
            env["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
            env["CONTENT_LENGTH"] = str(len(body))
        if cookies and self.cookies:
            env["HTTP_COOKIE"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for name, value in (headers or {}).items():
            env["HTTP_" + name.upper().replace("-", "_")] = value
        captured: dict[str, Any] = {}

        def start_response(status: str, response_headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], None]:
            captured["status"], captured["headers"] = status, response_headers
            return lambda data: None

        chunks = self.app(env, start_response)
        text = b"".join(chunks).decode("utf-8")
        response = Response(int(captured["status"].split()[0]), captured["headers"], text)
        if cookies:
            for value in response.all("Set-Cookie"):
                jar: SimpleCookie = SimpleCookie()
                jar.load(value)
                for name, morsel in jar.items():
                    if morsel["max-age"] == "0" or morsel.value == "":
                        self.cookies.pop(name, None)
                    else:
                        self.cookies[name] = morsel.value
        return response

    def get(self, path: str, **kwargs: Any) -> Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, form: dict[str, str], **kwargs: Any) -> Response:
        return self.request("POST", path, form=form, **kwargs)


def wsgi_client(publisher: Publisher, **kwargs: Any) -> WSGIClient:
    """A client for ``publisher`` through Quixote's WSGI adapter, in this process."""
    return WSGIClient(wsgi_app(publisher), **kwargs)
