"""End-to-end helpers: a real server on loopback, and an HTTP client that keeps cookies.

The client is ``http.client`` with a small cookie jar of its own, so tests see every raw
``Set-Cookie`` header and every redirect rather than having them followed behind their back.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode, urlsplit

from satchel.demo import make_demo_server

from .servers import LOOPBACK, ServerProcess

__all__ = ["Client", "DemoProcess", "Response", "csrf_token", "serve_app"]

WSGIApp = Callable[..., Iterable[bytes]]

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    text: str

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    def all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    @property
    def location(self) -> str | None:
        return self.header("Location")


@dataclass
class Client:
    """A browser-like client for one site: it keeps cookies and never follows redirects itself."""

    base: str
    cookies: dict[str, str] = field(default_factory=dict)
    timeout: float = 10.0

    def request(self, method: str, path: str, *, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None, cookies: bool = True) -> Response:
        parts = urlsplit(self.base)
        send = dict(headers or {})
        body: bytes | None = None
        if form is not None:
            body = urlencode(form).encode()
            send["Content-Type"] = "application/x-www-form-urlencoded"
        if cookies and self.cookies:
            send["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        conn = http.client.HTTPConnection(parts.hostname or LOOPBACK, parts.port,
                                          timeout=self.timeout)
        try:
            conn.request(method, path, body=body, headers=send)
            raw = conn.getresponse()
            text = raw.read().decode("utf-8")
            response = Response(raw.status, raw.getheaders(), text)
        finally:
            conn.close()
        if cookies:
            self._store_cookies(response)
        return response

    def get(self, path: str, **kwargs: Any) -> Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, form: dict[str, str], **kwargs: Any) -> Response:
        return self.request("POST", path, form=form, **kwargs)

    def follow(self, response: Response, limit: int = 5) -> Response:
        """Follow redirects (with GET, as a browser does after 302/303), at most ``limit``."""
        for _ in range(limit):
            if response.status not in (301, 302, 303, 307, 308):
                return response
            location = response.location
            assert location is not None
            target = urlsplit(location)
            if target.netloc:  # an absolute URL (Bottle makes them): this site's path of it
                assert target.netloc == urlsplit(self.base).netloc, location
                location = target.path + (f"?{target.query}" if target.query else "")
            response = self.get(location)
        raise AssertionError(f"more than {limit} redirects")

    def _store_cookies(self, response: Response) -> None:
        for value in response.all("Set-Cookie"):
            jar: SimpleCookie = SimpleCookie()
            jar.load(value)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0" or morsel.value == "":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value


def csrf_token(html: str) -> str:
    """The CSRF token of the first form in a page."""
    found = _CSRF.search(html)
    assert found is not None, "no CSRF token in the page"
    return found.group(1)


@contextlib.contextmanager
def serve_app(app: WSGIApp) -> Iterator[str]:
    """Serve ``app`` on a free loopback port in a thread (threading wsgiref); yield its base URL.

    The app is the server's: once the server has stopped, the app is closed too (a middleware
    stops its purge thread and closes the store it opened), whatever happened.
    """
    try:
        server = make_demo_server(app, LOOPBACK, 0, quiet=True)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                  name="e2e-server", daemon=True)
        thread.start()
        try:
            yield f"http://{LOOPBACK}:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)
    finally:
        close = getattr(app, "close", None)
        if close is not None:
            close()


class DemoProcess(ServerProcess):
    """``python -m satchel demo`` on a free loopback port, with the given store URL."""

    name = "demo"
    start_timeout = 20.0

    def __init__(self, store_url: str) -> None:
        super().__init__()
        self.store_url = store_url

    def command(self) -> list[str]:
        return [sys.executable, "-m", "satchel", "demo", "--host", LOOPBACK,
                "--port", str(self.port), "--store", self.store_url]

    @property
    def base(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")
