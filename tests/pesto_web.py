"""A small stand-in for the web half of Pesto, for running Pesto's session documentation.

Pesto itself cannot be imported on Python 3 (its modules are Python 2 syntax), and satchel
replaces only its session half.  The seed's examples also use Pesto's request/response layer
(``to_wsgi``, ``Response``, ``dispatcher_app``, ``pesto.testing.TestApp``); this module gives
them the few behaviours the examples rely on, and nothing about sessions: the session comes
from ``environ['pesto.session']``, put there by satchel's Pesto facade.
"""

from __future__ import annotations

import io
import sys
import types
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode

import satchel.compat.pesto as compat_pesto
import satchel.compat.pesto.session as compat_session
import satchel.compat.pesto.session.base as compat_base
import satchel.compat.pesto.session.filesessionmanager as compat_file
import satchel.compat.pesto.session.memorysessionmanager as compat_memory

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Request:
    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ
        self.session = environ["pesto.session"]
        params = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        if environ.get("REQUEST_METHOD") == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length).decode()
            params += parse_qsl(body, keep_blank_values=True)
        self.params = dict(params)

    def get(self, name: str, default: Any = None) -> Any:
        return self.params.get(name, default)


class Response:
    def __init__(self, content: Iterable[str] | None = None, status: str = "200 OK",
                 headers: list[tuple[str, str]] | None = None) -> None:
        self.content = list(content or [])
        self.status = status
        self.headers = list(headers or [("Content-Type", "text/html; charset=UTF-8")])

    @classmethod
    def redirect(cls, location: str) -> Response:
        return cls([], "302 Found", [("Location", location)])

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        start_response(self.status, self.headers)
        return [part.encode() for part in self.content]


def to_wsgi(handler: Callable[[Request], Any]) -> WSGIApp:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        result = handler(Request(environ))
        if not isinstance(result, Response):
            result = Response(result or [])
        return result(environ, start_response)
    return app


class DispatcherApp:
    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Callable[[Request], Any]] = {}

    def match(self, path: str, method: str) -> Callable[[Callable[..., Any]], Any]:
        def register(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
            self.routes[(path, method)] = handler
            handler.url = lambda: path  # type: ignore[attr-defined]
            return handler
        return register

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        handler = self.routes.get((environ.get("PATH_INFO", "/"), environ["REQUEST_METHOD"]))
        if handler is None:
            return Response(["not found"], "404 Not Found")(environ, start_response)
        return to_wsgi(handler)(environ, start_response)


def dispatcher_app() -> DispatcherApp:
    return DispatcherApp()


class TestResponse:
    def __init__(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def get_headers(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def get_header(self, name: str) -> str | None:
        values = self.get_headers(name)
        return values[0] if values else None


class TestApp:
    """Runs one request through a WSGI application, the way ``pesto.testing.TestApp`` did."""

    __test__ = False  # not a pytest class

    def __init__(self, app: WSGIApp, **environ: Any) -> None:
        self.app = app
        self.environ = environ

    def request(self, path: str, method: str, body: bytes = b"", **environ: Any
                ) -> TestResponse:
        path, _, query = path.partition("?")
        env: dict[str, Any] = {
            "REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path,
            "QUERY_STRING": query, "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
            "wsgi.multithread": False, "wsgi.multiprocess": False, "wsgi.run_once": False,
            "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": "application/x-www-form-urlencoded",
        }
        env.update(self.environ)
        env.update(environ)
        seen: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], None]:
            seen["status"], seen["headers"] = status, list(headers)
            return lambda data: None

        result = self.app(env, start_response)
        try:
            body_out = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return TestResponse(seen["status"], seen["headers"], body_out)

    def get(self, path: str = "/", **environ: Any) -> TestResponse:
        return self.request(path, "GET", **environ)

    def post(self, path: str, data: dict[str, str], **environ: Any) -> TestResponse:
        return self.request(path, "POST", urlencode(data).encode(), **environ)


def pesto_modules() -> dict[str, types.ModuleType]:
    """``sys.modules`` entries that make ``import pesto`` mean satchel's facade plus this web
    stand-in: the session modules are satchel's own, unchanged."""
    pesto = types.ModuleType("pesto")
    pesto.session_middleware = compat_pesto.session_middleware  # type: ignore[attr-defined]
    pesto.to_wsgi = to_wsgi  # type: ignore[attr-defined]
    pesto.Response = Response  # type: ignore[attr-defined]
    pesto.dispatcher_app = dispatcher_app  # type: ignore[attr-defined]
    pesto.__path__ = []  # a package, so ``import pesto.session...`` resolves
    testing = types.ModuleType("pesto.testing")
    testing.TestApp = TestApp  # type: ignore[attr-defined]
    pesto.testing = testing  # type: ignore[attr-defined]
    pesto.session = compat_session  # type: ignore[attr-defined]
    return {
        "pesto": pesto,
        "pesto.testing": testing,
        "pesto.session": compat_session,
        "pesto.session.base": compat_base,
        "pesto.session.memorysessionmanager": compat_memory,
        "pesto.session.filesessionmanager": compat_file,
    }
