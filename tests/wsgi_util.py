"""A minimal in-process WSGI client for middleware tests (end-to-end tests use a real server)."""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Response:
    status: str
    headers: list[tuple[str, str]]
    body: bytes
    closed: bool = False
    exc_info: Any = None
    cookies: dict[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def code(self) -> int:
        return int(self.status.split()[0])


def environ(path: str = "/", *, method: str = "GET", cookie: str | None = None,
            query: str = "", scheme: str = "http", script_name: str = "",
            headers: dict[str, str] | None = None, run_once: bool = False) -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": method, "SCRIPT_NAME": script_name, "PATH_INFO": path,
        "QUERY_STRING": query, "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.version": (1, 0), "wsgi.url_scheme": scheme,
        "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr, "wsgi.multithread": True,
        "wsgi.multiprocess": False, "wsgi.run_once": run_once,
    }
    if cookie is not None:
        env["HTTP_COOKIE"] = cookie
    for name, value in (headers or {}).items():
        env["HTTP_" + name.upper().replace("-", "_")] = value
    return env


def call(app: Any, path: str = "/", **kw: Any) -> Response:
    """Run one request the way a server would: start_response, iterate, close."""
    captured: dict[str, Any] = {}
    written: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if exc_info is not None and captured.get("sent"):
            raise exc_info[1].with_traceback(exc_info[2])
        captured.update(status=status, headers=list(headers), exc_info=exc_info)
        return written.append

    result = app(environ(path, **kw), start_response)
    chunks: list[bytes] = []
    try:
        for chunk in result:
            captured["sent"] = True
            chunks.append(chunk)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    resp = Response(captured["status"], captured["headers"], b"".join(written + chunks),
                    closed=close is not None, exc_info=captured.get("exc_info"))
    for value in resp.all("Set-Cookie"):
        name, _, rest = value.partition("=")
        resp.cookies[name] = rest.split(";")[0]
    return resp


def status_headers(app: Any, cookie: str | None = None,
                   path: str = "/") -> tuple[str, dict[str, str]]:
    """One request through :func:`call`: its status and headers (the last of each name)."""
    resp = call(app, path, cookie=cookie)
    return resp.status, dict(resp.headers)


def counter_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """``/write`` counts in the session's ``n``, ``/read`` reads it, anything else leaves the
    session untouched."""
    path = environ["PATH_INFO"]
    session = environ["satchel.session"]
    if path == "/write":
        session["n"] = session.get("n", 0) + 1
    elif path == "/read":
        session.get("n")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
