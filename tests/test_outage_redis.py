"""A Redis outage seen through satchel.SessionMiddleware: the private server is stopped (and
frozen) mid-test; untouched sessions are unaffected, touched ones fail closed (503) or open
(anonymous, no cookie) within the store's timeouts, and service resumes when Redis is back."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import satchel
from satchel.stores.redis import RedisStore

from . import server_fixtures
from .server_fixtures import fresh_store
from .servers.redis import RedisServer
from .wsgi_util import call

TIMEOUT = 0.5  # the store's connect and reply timeouts
BOUND = 3 * TIMEOUT  # a request may take at most this long while Redis is away

server = server_fixtures.redis_server


@pytest.fixture
def store(server: RedisServer) -> Iterator[RedisStore]:
    with fresh_store(server, connect_timeout=TIMEOUT, timeout=TIMEOUT) as store:
        yield store


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    session = environ["satchel.session"]
    path = environ["PATH_INFO"]
    if path == "/write":
        session["n"] = session.get("n", 0) + 1
        body = str(session["n"]).encode()
    elif path == "/read":
        body = str(session.get("n")).encode()
    else:
        body = b"plain"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


def request(mw: Any, path: str, cookie: str | None = None) -> tuple[str, dict[str, str], bytes]:
    resp = call(mw, path, cookie=cookie)
    return resp.status, dict(resp.headers), resp.body


def timed(mw: Any, path: str, cookie: str | None = None) -> tuple[str, dict[str, str], bytes]:
    started = time.monotonic()
    answer = request(mw, path, cookie)
    elapsed = time.monotonic() - started
    assert elapsed < BOUND, f"{path} took {elapsed:.2f} s while Redis was away"
    return answer


def login(mw: Any) -> str:
    status, headers, body = request(mw, "/write")
    assert (status, body) == ("200 OK", b"1")
    return headers["Set-Cookie"].split(";")[0]


def test_fail_closed_server_stopped_then_restarted(server: RedisServer, store: RedisStore) -> None:
    mw = satchel.SessionMiddleware(app, store=store)
    cookie = login(mw)
    server.stop()
    status, _, body = timed(mw, "/plain", cookie)
    assert (status, body) == ("200 OK", b"plain")  # an untouched session needs no store
    status, headers, _ = timed(mw, "/read", cookie)
    assert status == "503 Service Unavailable" and "Set-Cookie" not in headers
    status, headers, _ = timed(mw, "/write")
    assert status == "503 Service Unavailable" and "Set-Cookie" not in headers

    server.start()  # same port, empty (no persistence): the old session is gone
    status, _, body = request(mw, "/read", cookie)
    assert (status, body) == ("200 OK", b"None")
    cookie = login(mw)  # the same middleware and store serve again
    assert request(mw, "/write", cookie)[2] == b"2"
    assert request(mw, "/read", cookie)[2] == b"2"


def test_fail_open_serves_anonymously_without_a_cookie(
    server: RedisServer, store: RedisStore
) -> None:
    mw = satchel.SessionMiddleware(app, store=store, on_unavailable="fail_open")
    cookie = login(mw)
    server.stop()
    status, headers, body = timed(mw, "/read", cookie)
    assert (status, body) == ("200 OK", b"None") and "Set-Cookie" not in headers
    status, headers, body = timed(mw, "/write", cookie)
    assert (status, body) == ("200 OK", b"1") and "Set-Cookie" not in headers
    status, headers, body = timed(mw, "/write")
    assert status == "200 OK" and "Set-Cookie" not in headers

    server.start()
    cookie = login(mw)
    assert request(mw, "/write", cookie)[2] == b"2"


def test_frozen_server_times_out_then_recovers(server: RedisServer, store: RedisStore) -> None:
    # SIGSTOP: connections still open, nothing answers — the case where only timeouts help.
    mw = satchel.SessionMiddleware(app, store=store)
    cookie = login(mw)
    server.freeze()
    try:
        status, _, body = timed(mw, "/plain", cookie)
        assert (status, body) == ("200 OK", b"plain")
        started = time.monotonic()
        status, _, _ = timed(mw, "/read", cookie)
        assert status == "503 Service Unavailable"
        assert time.monotonic() - started >= TIMEOUT * 0.9  # it did wait for the timeout
        with pytest.raises(satchel.StoreTimeout):
            store.load(cookie.split("=", 1)[1])
    finally:
        server.thaw()
    assert request(mw, "/write", cookie)[2] == b"2"  # the session survived the freeze


def test_by_default_a_frozen_server_fails_a_request_within_a_second(server: RedisServer) -> None:
    with fresh_store(server) as store:  # the default timeouts
        mw = satchel.SessionMiddleware(app, store=store)
        cookie = login(mw)
        server.freeze()
        try:
            for path in ("/read", "/write"):
                started = time.monotonic()
                status, _, _ = request(mw, path, cookie)
                elapsed = time.monotonic() - started
                assert status == "503 Service Unavailable"
                assert 0.9 <= elapsed < 1.4, (path, elapsed)
        finally:
            server.thaw()
        started = time.monotonic()
        assert request(mw, "/write", cookie)[2] == b"2"  # recovered at once
        assert time.monotonic() - started < 0.5


def test_two_hundred_threads_on_a_frozen_server_fail_within_the_timeout(
        server: RedisServer) -> None:
    """Requests queued for a connection give up as soon as one times out: a silent server
    fails every request within about the timeout, however many are waiting."""
    with fresh_store(server) as store:  # the default timeouts (1 s), 50 connections
        mw = satchel.SessionMiddleware(app, store=store)
        cookie = login(mw)
        threads = 200
        start = threading.Barrier(threads)

        def one(_: int) -> tuple[str, float]:
            start.wait(30)
            began = time.monotonic()
            status = request(mw, "/read", cookie)[0]
            return status, time.monotonic() - began

        server.freeze()
        try:
            with ThreadPoolExecutor(threads) as pool:
                answers = list(pool.map(one, range(threads)))
        finally:
            server.thaw()
        assert {status for status, _ in answers} == {"503 Service Unavailable"}
        assert max(elapsed for _, elapsed in answers) < 1.8
        assert request(mw, "/write", cookie)[2] == b"2"
