"""SQL stores through SessionMiddleware while their private server goes down and comes back.

A request that never touches its session is served as usual; one that touches it gets 503
within the timeout bound (``fail_closed``, the default) or runs anonymously without a cookie
(``fail_open``).  When the server returns on the same port, the same middleware and store
resume without being recreated.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

import satchel
from satchel import StoreUnavailable
from satchel.ids import new_id

from .servers import free_port
from .servers.mysql import MariaDBServer
from .servers.postgres import PostgresServer
from .wsgi_util import call

Response = tuple[str, list[tuple[str, str]], bytes]

# connect 2 s (libpq's minimum), statements 2 s: a touching request fails within about 2 s.
BOUND = 4.0
STORE_OPTIONS = {"connect_timeout": 2.0, "timeout": 2.0, "max_size": 3}


# -- a small WSGI client and three applications (also used by the store tests) ----------------


def request(app: Callable[..., Iterable[bytes]], cookie: str | None = None,
            path: str = "/") -> Response:
    resp = call(app, path, cookie=f"satchel={cookie}" if cookie else None)
    return resp.status, resp.headers, resp.body


def cookie_of(response: Response) -> str | None:
    for name, value in response[1]:
        if name.lower() == "set-cookie" and value.startswith("satchel="):
            return value.split(";", 1)[0].split("=", 1)[1] or None
    return None


def _reply(start_response: Callable[..., Any], body: bytes) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


def app_untouched(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    return _reply(start_response, b"hello")


def app_reading(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    return _reply(start_response, str(environ["satchel.session"].get("n", 0)).encode())


def app_writing(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    session = environ["satchel.session"]
    session["n"] = session.get("n", 0) + 1
    return _reply(start_response, str(session["n"]).encode())


def app_assigning(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """Only assigns, never reads: the engine writes blindly (``Store.update``)."""
    environ["satchel.session"]["w"] = environ.get("QUERY_STRING") or "assigned"
    return _reply(start_response, b"assigned")


def app_routed(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    apps = {"/read": app_reading, "/write": app_writing, "/assign": app_assigning}
    return apps.get(environ["PATH_INFO"], app_untouched)(environ, start_response)


# -- servers ---------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["postgres", "mysql"])
def server(request: pytest.FixtureRequest) -> Iterator[PostgresServer | MariaDBServer]:
    srv: PostgresServer | MariaDBServer = (
        PostgresServer() if request.param == "postgres" else MariaDBServer())
    with srv:
        yield srv


@pytest.fixture
def running(server: PostgresServer | MariaDBServer) -> PostgresServer | MariaDBServer:
    if server.proc is None:
        server.start()
    return server


def timed(call: Callable[[], Response]) -> tuple[Response, float]:
    began = time.monotonic()
    response = call()
    return response, time.monotonic() - began


# -- tests -----------------------------------------------------------------------------------


def test_fail_closed_outage_and_recovery(running: PostgresServer | MariaDBServer) -> None:
    store = satchel.open_store(running.url, **STORE_OPTIONS)
    mw = satchel.SessionMiddleware(app_routed, store=store, touch_interval=3600)
    try:
        first = request(mw, path="/write")
        sid = cookie_of(first)
        assert first[0].startswith("200") and sid
        assert request(mw, sid, "/read")[2] == b"1"

        running.stop()
        (status, headers, body), elapsed = timed(lambda: request(mw, sid, "/"))
        assert status.startswith("200") and body == b"hello" and elapsed < 0.5
        for path in ("/read", "/write", "/assign"):
            (status, headers, _), elapsed = timed(lambda p=path: request(mw, sid, p))
            assert status.startswith("503"), (path, status)
            assert elapsed < BOUND, (path, elapsed)
            assert cookie_of((status, headers, b"")) is None
        (status, _, _), elapsed = timed(lambda: request(mw, None, "/write"))  # a new visitor
        assert status.startswith("503") and elapsed < BOUND
        with pytest.raises(StoreUnavailable) as caught:
            store.load(sid)
        assert caught.value.__cause__ is not None  # chained from the driver's error

        running.start()
        (status, _, body), elapsed = timed(lambda: request(mw, sid, "/read"))
        assert status.startswith("200") and body == b"1", (status, body)
        assert elapsed < BOUND
        assert request(mw, sid, "/write")[2] == b"2"
        assert request(mw, sid, "/read")[2] == b"2"
    finally:
        mw.close()
        store.close()


def test_fail_open_serves_anonymously(running: PostgresServer | MariaDBServer) -> None:
    store = satchel.open_store(running.url, **STORE_OPTIONS)
    mw = satchel.SessionMiddleware(app_routed, store=store, on_unavailable="fail_open",
                                   touch_interval=3600)
    try:
        sid = cookie_of(request(mw, path="/write"))
        assert sid
        running.stop()
        for cookie, path, expected in ((sid, "/read", b"0"), (sid, "/write", b"1"),
                                       (None, "/write", b"1")):
            (status, headers, body), elapsed = timed(lambda c=cookie, p=path: request(mw, c, p))
            assert status.startswith("200") and body == expected, (path, status, body)
            assert not any(name.lower() == "set-cookie" for name, _ in headers), headers
            assert elapsed < BOUND
        running.start()
        assert request(mw, sid, "/read")[2] == b"1"
        assert request(mw, sid, "/write")[2] == b"2"
    finally:
        mw.close()
        store.close()


def test_unreachable_server_raises_promptly(running: PostgresServer | MariaDBServer) -> None:
    """A store pointed at a port where nothing listens: StoreUnavailable, never a hang."""
    url = running.url.replace(f":{running.port}/", f":{free_port()}/")
    store = satchel.open_store(url, **STORE_OPTIONS)
    try:
        began = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.load(new_id())
        assert time.monotonic() - began < BOUND
    finally:
        store.close()


def test_restart_between_requests_is_invisible(running: PostgresServer | MariaDBServer) -> None:
    """Pooled connections die with a restart; the next request still succeeds, first time."""
    store = satchel.open_store(running.url, **STORE_OPTIONS)
    mw = satchel.SessionMiddleware(app_routed, store=store, touch_interval=3600)
    try:
        sid = cookie_of(request(mw, path="/write"))
        assert sid and request(mw, sid, "/read")[2] == b"1"
        running.stop()
        running.start()
        (status, _, body), elapsed = timed(lambda: request(mw, sid, "/write"))
        assert status.startswith("200") and body == b"2", (status, body)
        assert elapsed < BOUND
        running.stop()
        running.start()
        (status, _, _), elapsed = timed(lambda: request(mw, sid, "/assign"))  # a blind write
        assert status.startswith("200") and elapsed < BOUND
        record = store.load(sid)
        assert record is not None and set(record.data) == {"n", "w"}
    finally:
        mw.close()
        store.close()
