"""SQL stores through SessionMiddleware while their private server goes down and comes back.

A request that never touches its session is served as usual; one that touches it gets 503
within the timeout bound (``fail_closed``, the default) or runs anonymously without a cookie
(``fail_open``).  When the server returns on the same port, the same middleware and store
resume without being recreated.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import pytest

import satchel
from satchel import Store, StoreUnavailable
from satchel.ids import new_id

from .servers import DatabaseServer, free_port
from .servers.mysql import MariaDBServer
from .servers.postgres import PostgresServer
from .sql_util import app_routed, cookie_of, request
from .wsgi_util import Response

# connect 2 s (libpq's minimum), statements 2 s: a touching request fails within about 2 s.
BOUND = 4.0
# A server that refuses connections (stopped, or nothing on the port) fails a request at once:
# well inside the 2 s a pooled wait or a connect timeout would take, with room for a busy machine.
PROMPT = 1.0
STORE_OPTIONS = {"connect_timeout": 2.0, "timeout": 2.0, "max_size": 3}


@pytest.fixture(scope="module", params=["postgres", "mysql"])
def server(request: pytest.FixtureRequest) -> Iterator[DatabaseServer]:
    srv: DatabaseServer = PostgresServer() if request.param == "postgres" else MariaDBServer()
    with srv:
        yield srv


@pytest.fixture
def running(server: DatabaseServer) -> DatabaseServer:
    if server.proc is None:
        server.start()
    return server


@contextmanager
def middleware(server: DatabaseServer,
               **options: Any) -> Iterator[tuple[satchel.SessionMiddleware, Store]]:
    """The routed application behind SessionMiddleware on a store of ``server``, closed after."""
    store = satchel.open_store(server.url, **STORE_OPTIONS)
    mw = satchel.SessionMiddleware(app_routed, store=store, touch_interval=3600, **options)
    try:
        yield mw, store
    finally:
        mw.close()
        store.close()


def timed(call: Callable[[], Response]) -> tuple[Response, float]:
    began = time.monotonic()
    response = call()
    return response, time.monotonic() - began


# -- tests -----------------------------------------------------------------------------------


def test_fail_closed_outage_and_recovery(running: DatabaseServer) -> None:
    with middleware(running) as (mw, store):
        first = request(mw, path="/write")
        sid = cookie_of(first)
        assert first.status.startswith("200") and sid
        assert request(mw, sid, "/read").body == b"1"

        running.stop()
        response, elapsed = timed(lambda: request(mw, sid, "/"))
        assert response.status.startswith("200") and response.body == b"hello" and elapsed < PROMPT
        for path in ("/read", "/write", "/assign", "/read"):
            response, elapsed = timed(partial(request, mw, sid, path))
            assert response.status.startswith("503"), (path, response.status)
            assert elapsed < PROMPT, (path, elapsed)
            assert cookie_of(response) is None
        response, elapsed = timed(lambda: request(mw, None, "/write"))  # a new visitor
        assert response.status.startswith("503") and elapsed < PROMPT
        with pytest.raises(StoreUnavailable) as caught:
            store.load(sid)
        assert caught.value.__cause__ is not None  # chained from the driver's error

        running.start()
        response, elapsed = timed(lambda: request(mw, sid, "/read"))
        assert response.status.startswith("200") and response.body == b"1", response
        assert elapsed < BOUND
        assert request(mw, sid, "/write").body == b"2"
        assert request(mw, sid, "/read").body == b"2"


def test_fail_open_serves_anonymously(running: DatabaseServer) -> None:
    with middleware(running, on_unavailable="fail_open") as (mw, _):
        sid = cookie_of(request(mw, path="/write"))
        assert sid
        running.stop()
        for cookie, path, expected in ((sid, "/read", b"0"), (sid, "/write", b"1"),
                                       (None, "/write", b"1")):
            response, elapsed = timed(partial(request, mw, cookie, path))
            assert response.status.startswith("200") and response.body == expected, (
                path, response.status, response.body)
            assert not response.all("Set-Cookie"), response.headers
            assert elapsed < PROMPT
        running.start()
        assert request(mw, sid, "/read").body == b"1"
        assert request(mw, sid, "/write").body == b"2"


def test_unreachable_server_raises_promptly(running: DatabaseServer) -> None:
    """A store pointed at a port where nothing listens: StoreUnavailable, never a hang."""
    url = running.url.replace(f":{running.port}/", f":{free_port()}/")
    store = satchel.open_store(url, **STORE_OPTIONS)
    try:
        began = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.load(new_id())
        assert time.monotonic() - began < PROMPT
        began = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.load(new_id())
        assert time.monotonic() - began < PROMPT
    finally:
        store.close()


def test_restart_between_requests_is_invisible(running: DatabaseServer) -> None:
    """Pooled connections die with a restart; the next request still succeeds, first time."""
    with middleware(running) as (mw, store):
        sid = cookie_of(request(mw, path="/write"))
        assert sid and request(mw, sid, "/read").body == b"1"
        running.stop()
        running.start()
        response, elapsed = timed(lambda: request(mw, sid, "/write"))
        assert response.status.startswith("200") and response.body == b"2", response
        assert elapsed < BOUND
        running.stop()
        running.start()
        response, elapsed = timed(lambda: request(mw, sid, "/assign"))  # a blind write
        assert response.status.startswith("200") and elapsed < BOUND
        record = store.load(sid)
        assert record is not None and set(record.data) == {"n", "w"}


# A server that accepts connections but never answers: only client-side bounds help.  A
# pooled connection waits out ``timeout`` (1 s here); a new connection ``connect_timeout``
# (2 s: libpq's least).
SILENT_OPTIONS = {"connect_timeout": 2.0, "timeout": 1.0, "max_size": 3}
SILENT_BOUND = 2.7


def test_a_frozen_server_fails_each_touched_request_within_its_timeouts(
        running: DatabaseServer) -> None:
    store = satchel.open_store(running.url, **SILENT_OPTIONS)
    mw = satchel.SessionMiddleware(app_routed, store=store, touch_interval=3600)
    try:
        sid = cookie_of(request(mw, path="/write"))
        assert sid
        running.freeze()
        try:
            response, elapsed = timed(lambda: request(mw, sid, "/read"))  # a pooled connection
            assert response.status.startswith("503") and 0.9 <= elapsed < 1.6, elapsed
            for path in ("/write", "/assign", "/read"):
                response, elapsed = timed(partial(request, mw, sid, path))
                assert response.status.startswith("503") and elapsed < SILENT_BOUND, (
                    path, elapsed)
        finally:
            running.thaw()
        response, elapsed = timed(lambda: request(mw, sid, "/write"))
        assert response.status.startswith("200") and response.body == b"2", response
        assert elapsed < BOUND
    finally:
        mw.close()
        store.close()


def test_a_listener_that_never_answers_fails_a_request_within_its_timeouts(
        running: DatabaseServer) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)  # the kernel accepts connections; nobody ever reads or answers
        port = listener.getsockname()[1]
        url = running.url.replace(f":{running.port}/", f":{port}/")
        store = satchel.open_store(url, **SILENT_OPTIONS)
        try:
            for _ in range(2):
                began = time.monotonic()
                with pytest.raises(StoreUnavailable):
                    store.load(new_id())
                assert time.monotonic() - began < SILENT_BOUND
        finally:
            store.close()
