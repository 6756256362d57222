"""A memcached outage seen through the WSGI middleware: bounded, clear, and recovered from.

The private server is stopped (or frozen with SIGSTOP, to make it time out rather than refuse)
in the middle of a test and started again on the same port; the middleware is never recreated.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

import satchel
from satchel.ids import new_id
from satchel.stores.memcached import MemcachedStore

from .contract import put
from .servers import LOOPBACK
from .servers.memcached import MemcachedServer
from .wsgi_util import counter_app, status_headers

TIMEOUT = 0.5
#: how long a failing request may take beyond the store's timeout
SLACK = 0.75


@pytest.fixture
def server() -> Iterator[MemcachedServer]:
    """A server of each test's own: the tests stop, freeze and restart it."""
    with MemcachedServer() as srv:
        yield srv


@pytest.fixture
def store(server: MemcachedServer) -> Iterator[MemcachedStore]:
    with MemcachedStore(f"{LOOPBACK}:{server.port}", timeout=TIMEOUT,
                        connect_timeout=TIMEOUT) as st:
        yield st


def timed(app: Any, cookie: str | None, path: str) -> tuple[str, dict[str, str], float]:
    started = time.monotonic()
    status, headers = status_headers(app, cookie, path)
    return status, headers, time.monotonic() - started


def cookie_of(headers: dict[str, str]) -> str:
    return headers["Set-Cookie"].split(";")[0]


def test_stopped_server_fails_closed_then_recovers(server: MemcachedServer,
                                                   store: MemcachedStore) -> None:
    app = satchel.SessionMiddleware(counter_app, store=store)
    status, headers = status_headers(app, None, "/write")
    assert status == "200 OK"
    cookie = cookie_of(headers)

    server.stop()
    status, headers, elapsed = timed(app, cookie, "/untouched")
    assert status == "200 OK" and "Set-Cookie" not in headers
    for path in ("/read", "/write"):
        status, headers, elapsed = timed(app, cookie, path)
        assert status == "503 Service Unavailable"
        assert headers["Retry-After"] == "5" and "Set-Cookie" not in headers
        assert elapsed < TIMEOUT + SLACK
    with pytest.raises(satchel.StoreUnavailable, match=f"memcached {LOOPBACK}:{server.port}") \
            as caught:
        store.load(new_id())
    assert isinstance(caught.value.__cause__, OSError)  # chained to the socket's refusal

    server.start()  # same port, empty memory: the old session is gone
    status, headers = status_headers(app, cookie, "/write")
    assert status == "200 OK"
    fresh = cookie_of(headers)
    assert fresh != cookie  # strict mode: the lost id is not adopted
    status, headers = status_headers(app, fresh, "/write")
    assert status == "200 OK"
    store_sid = fresh.split("=", 1)[1]
    record = store.load(store_sid)
    assert record is not None and record.data["n"] == "2"


def test_fail_open_serves_without_a_session(server: MemcachedServer,
                                            store: MemcachedStore) -> None:
    app = satchel.SessionMiddleware(counter_app, store=store, on_unavailable="fail_open")
    status, headers = status_headers(app, None, "/write")
    cookie = cookie_of(headers)
    server.stop()
    for path in ("/untouched", "/read", "/write"):
        status, headers, elapsed = timed(app, cookie, path)
        assert status == "200 OK"
        assert "Set-Cookie" not in headers
        assert elapsed < TIMEOUT + SLACK
    server.start()
    status, headers = status_headers(app, cookie, "/write")
    assert status == "200 OK" and "Set-Cookie" in headers


def test_frozen_server_times_out_within_the_bound(server: MemcachedServer,
                                                  store: MemcachedStore) -> None:
    app = satchel.SessionMiddleware(counter_app, store=store)
    status, headers = status_headers(app, None, "/write")
    cookie = cookie_of(headers)
    server.freeze()  # accepts connections (the kernel does), answers nothing
    try:
        status, headers, elapsed = timed(app, cookie, "/read")
        assert status == "503 Service Unavailable"
        assert TIMEOUT * 0.9 <= elapsed < TIMEOUT + SLACK
        started = time.monotonic()
        with pytest.raises(satchel.StoreTimeout, match="timed out after 0.5 s") as caught:
            put(store, new_id(), {"a": "1"})
        assert time.monotonic() - started < TIMEOUT + SLACK
        assert isinstance(caught.value.__cause__, (TimeoutError, BlockingIOError))
    finally:
        server.thaw()
    status, headers = status_headers(app, cookie, "/write")
    assert status == "200 OK"


def test_first_request_after_a_quiet_restart_succeeds(server: MemcachedServer,
                                                      store: MemcachedStore) -> None:
    # The pooled connection is idle while the server restarts; its first use finds it closed.
    app = satchel.SessionMiddleware(counter_app, store=store)
    status, headers = status_headers(app, None, "/write")
    cookie = cookie_of(headers)
    server.stop()
    server.start()
    status, headers = status_headers(app, cookie, "/write")
    assert status == "200 OK" and "Set-Cookie" in headers
