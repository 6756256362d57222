"""RedisStore on one private redis-server: the store contract, its layout, blind updates, round
trips counted with MONITOR, the store's own connections (threads, fork, restart, timeouts), URLs
and outages."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis

import satchel
from satchel import Changes, SessionMeta, StoreTimeout, StoreUnavailable
from satchel.ids import new_id
from satchel.stores.redis import RedisStore

from . import server_fixtures
from .contract import HOUR, StoreContract, check_reads_as_absent, meta, put
from .server_fixtures import fresh_store
from .servers import LOOPBACK, free_port
from .servers.redis import (
    CommandLog,
    RedisServer,
    RedisTLSServer,
    redis_command,
    running_server,
)
from .wsgi_util import Response, call

server = server_fixtures.redis_server


@pytest.fixture
def store(server: RedisServer) -> Iterator[RedisStore]:
    with fresh_store(server) as store:
        yield store


class TestRedisStore(StoreContract):
    @pytest.fixture
    def store_spec(self, server: RedisServer) -> tuple[str, dict[str, Any]]:
        return server.url, {}


# -- layout ------------------------------------------------------------------------------------

def _raw(store: RedisStore) -> redis.Redis:
    """A plain client of the store's server, to see what the store wrote."""
    return redis.Redis(port=store.client().get_connection_kwargs()["port"], decode_responses=True)


def test_session_is_one_hash_with_prefixed_fields_and_native_ttl(store: RedisStore) -> None:
    sid = new_id()
    now = time.time()
    # a user key that looks like metadata must not collide with it
    store.save(sid, Changes(set={"a": "1", "m:created": '"mine"'}), meta(now, ttl=600))
    raw = _raw(store)
    key = f"satchel:s:{{{sid}}}"
    try:
        assert raw.type(key) == "hash"
        assert raw.hgetall(key) == {
            "d:a": "1", "d:m:created": '"mine"', "m:created": repr(now),
            "m:accessed": repr(now), "m:expires": repr(now + 600),
        }
        assert raw.pexpiretime(key) == int((now + 600) * 1000)
    finally:
        raw.close()
    record = store.load(sid)
    assert record is not None and record.data == {"a": "1", "m:created": '"mine"'}


def test_prefix_keeps_stores_apart(server: RedisServer, store: RedisStore) -> None:
    with RedisStore(LOOPBACK, server.port, prefix="other*[app]:") as other:
        mine, theirs = new_id(), new_id()
        put(store, mine, {"a": "1"})
        put(other, theirs, {"a": "1"})
        assert list(store.ids()) == [mine]
        assert list(other.ids()) == [theirs]
        assert other.load(mine) is None


def test_prefix_with_braces_is_refused() -> None:
    with pytest.raises(satchel.ConfigurationError, match="braces"):
        RedisStore(prefix="app{1}:")


def test_an_existing_client_is_used_and_left_open(server: RedisServer) -> None:
    with pytest.raises(satchel.ConfigurationError, match="decode_responses"):
        RedisStore(client=redis.Redis(port=server.port))
    client = redis.Redis(port=server.port, decode_responses=True)
    try:
        with RedisStore(client=client) as store:
            put(store, "c" * 43, {"a": "1"})
        assert client.exists("satchel:s:{" + "c" * 43 + "}") == 1  # still usable
    finally:
        client.close()


def test_sessions_with_thousands_of_keys(store: RedisStore) -> None:
    # beyond the stack limit of Lua's unpack(), which the script works around in chunks
    sid = new_id()
    data = {f"k{i}": str(i) for i in range(9000)}
    put(store, sid, data)
    store.save(sid, Changes(deleted=frozenset(f"k{i}" for i in range(8000)), create=False),
               meta())
    record = store.load(sid)
    assert record is not None and record.data == {f"k{i}": str(i) for i in range(8000, 9000)}


def test_stale_user_index_members_are_removed(store: RedisStore) -> None:
    kept, deleted, moved, expired = (new_id() for _ in range(4))
    for sid in (kept, deleted, moved):
        put(store, sid, {"a": "1"}, user="ana")
    now = time.time()
    store.save(expired, Changes(set={"a": "1"}), meta(now - 100, ttl=99, user="ana"))
    store.delete(deleted)
    store.save(moved, Changes(create=False), meta(user="bob"))
    client = store.client()
    assert len(client.smembers("satchel:u:{ana}")) == 4  # maintained lazily
    assert store.purge() == 0  # Redis expires sessions itself; purge only cleans the index
    assert client.smembers("satchel:u:{ana}") == {kept}
    assert store.user_sessions("ana") == [kept]
    assert store.user_sessions("bob") == [moved]


def test_script_cache_flushed_falls_back_to_eval(store: RedisStore) -> None:
    sid = new_id()
    store.client().script_flush()
    put(store, sid, {"a": "1"}, user="ana")
    store.client().script_flush()
    assert store.touch(sid, time.time(), time.time() + 60) is True
    record = store.load(sid)
    assert record is not None and record.data == {"a": "1"} and record.user == "ana"


# -- update: one script that reads the stored created time itself -----------------------------

def test_update_capped_expiry_is_exact_and_native(store: RedisStore) -> None:
    sid = new_id()
    now = time.time()
    created = now - 100.123456789
    store.save(sid, Changes(set={"a": "1"}), SessionMeta(created, created, now + 60, "ana"))
    assert store.update(sid, Changes(set={"a": "2"}, create=False), now, now + HOUR, 400.0)
    record = store.load(sid)
    assert record is not None
    assert record.expires == created + 400.0  # the very float Python computes, not 14 digits
    assert (record.created, record.accessed, record.user) == (created, now, "ana")
    raw = _raw(store)
    try:
        assert raw.pexpiretime(store.session_key(sid)) == int((created + 400.0) * 1000)
        # uncapped: the expiry given, written as given
        assert store.update(sid, Changes(create=False), now, now + 30, 400.0)
        assert raw.hget(store.session_key(sid), "m:expires") == repr(now + 30)
        assert raw.pexpiretime(store.session_key(sid)) == int((now + 30) * 1000)
        # an idle-less manager sends an infinite expiry; the lifetime always caps it
        assert store.update(sid, Changes(create=False), now, float("inf"), 400.0)
        assert raw.pexpiretime(store.session_key(sid)) == int((created + 400.0) * 1000)
    finally:
        raw.close()
    assert store.user_sessions("ana") == [sid]  # the user index is untouched


def test_update_cleared_keeps_created_and_user(store: RedisStore) -> None:
    sid = new_id()
    now = time.time()
    store.save(sid, Changes(set={"a": "1", "b": "2"}),
               SessionMeta(now - 10, now - 10, now + 60, "ana"))
    assert store.update(sid, Changes(set={"z": "26"}, deleted=frozenset({"a"}), cleared=True,
                                     create=False), now, now + HOUR, None)
    record = store.load(sid)
    assert record is not None
    assert record.data == {"z": "26"}
    assert (record.created, record.accessed, record.expires, record.user) == (
        now - 10, now, now + HOUR, "ana")
    assert store.user_sessions("ana") == [sid]


def test_update_with_thousands_of_keys(store: RedisStore) -> None:
    sid = new_id()
    put(store, sid, {f"k{i}": str(i) for i in range(3000)})
    now = time.time()
    changes = Changes(set={f"n{i}": str(i) for i in range(2500)},
                      deleted=frozenset(f"k{i}" for i in range(2000)), create=False)
    assert store.update(sid, changes, now, now + HOUR, None)
    record = store.load(sid)
    assert record is not None
    assert record.data == {**{f"k{i}": str(i) for i in range(2000, 3000)},
                           **{f"n{i}": str(i) for i in range(2500)}}


def test_update_after_script_flush_falls_back_to_eval(store: RedisStore) -> None:
    sid = new_id()
    put(store, sid, {"a": "1"})
    store.client().script_flush()
    now = time.time()
    assert store.update(sid, Changes(set={"b": "2"}, create=False), now, now + HOUR, None)
    record = store.load(sid)
    assert record is not None and record.data == {"a": "1", "b": "2"}


# -- round trips, counted -------------------------------------------------------------------

def _warm(store: RedisStore) -> None:
    """Open the pooled connection and cache the scripts: the first use of each after a server
    (re)start costs a connection handshake and one EVAL after the NOSCRIPT answer."""
    sid = new_id()
    put(store, sid, {"a": "1"})
    store.touch(sid, time.time(), time.time() + 60)
    store.update(sid, Changes(create=False), time.time(), time.time() + 60, None)
    store.delete(sid)


def test_round_trips_of_each_operation(server: RedisServer, store: RedisStore) -> None:
    sid = new_id()
    _warm(store)
    with CommandLog(server.port) as log:
        put(store, sid, {"a": "1", "b": "2"}, user="ana")
    assert log.calls == ["EVALSHA"]
    assert log.lua == ["HGET", "HSET", "PEXPIREAT", "SADD"]
    with CommandLog(server.port) as log:
        store.save(sid, Changes(set={"a": "10"}, deleted=frozenset({"b"}), create=False), meta())
    assert log.calls == ["EVALSHA"]
    assert log.lua == ["HGET", "HDEL", "HSET", "PEXPIREAT"]  # HDEL b and m:user
    with CommandLog(server.port) as log:
        store.save(sid, Changes(set={"z": "1"}, cleared=True, create=False), meta())
    assert log.calls == ["EVALSHA"]
    assert log.lua == ["HGET", "DEL", "HDEL", "HSET", "PEXPIREAT"]
    with CommandLog(server.port) as log:
        assert store.load(sid) is not None
    assert log.calls == ["HGETALL"]
    with CommandLog(server.port) as log:
        assert store.touch(sid, time.time(), time.time() + 60) is True
    assert log.calls == ["EVALSHA"] and log.lua == ["HGET", "HSET", "PEXPIREAT"]
    with CommandLog(server.port) as log:
        assert store.touch(new_id(), time.time(), time.time() + 60) is False
    assert log.calls == ["EVALSHA"] and log.lua == ["HGET"]
    with CommandLog(server.port) as log:
        assert store.delete(sid) is True
    assert log.calls == ["DEL"]


def test_round_trips_of_update(server: RedisServer, store: RedisStore) -> None:
    sid = new_id()
    _warm(store)
    put(store, sid, {"a": "1", "b": "2"}, user="ana")
    now = time.time()
    with CommandLog(server.port) as log:
        assert store.update(sid, Changes(set={"a": "10"}, create=False), now, now + HOUR, 900.0)
    assert log.calls == ["EVALSHA"]
    assert log.lua == ["HMGET", "HSET", "PEXPIREAT"]
    with CommandLog(server.port) as log:
        assert store.update(sid, Changes(set={"c": "3"}, deleted=frozenset({"b"}),
                                         create=False), now, now + HOUR, None)
    assert log.calls == ["EVALSHA"]
    assert log.lua == ["HMGET", "HDEL", "HSET", "PEXPIREAT"]
    with CommandLog(server.port) as log:
        assert store.update(sid, Changes(set={"z": "1"}, cleared=True, create=False),
                            now, now + HOUR, None)
    assert log.calls == ["EVALSHA"]
    assert log.lua == ["HMGET", "DEL", "HSET", "HSET", "PEXPIREAT"]  # created and user kept
    with CommandLog(server.port) as log:
        assert store.update(new_id(), Changes(set={"a": "1"}, create=False),
                            now, now + HOUR, None) is False
    assert log.calls == ["EVALSHA"] and log.lua == ["HMGET"]


def _cookie(resp: Response) -> str:
    """The session cookie a response set, as the next request sends it back."""
    set_cookie = resp.header("Set-Cookie")
    assert set_cookie is not None
    return set_cookie.split(";")[0]


def _session_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    session = environ["satchel.session"]
    path = environ["PATH_INFO"]
    body = b"plain"
    if path == "/write":
        session["n"] = session.get("n", 0) + 1
        body = str(session["n"]).encode()
    elif path == "/assign":  # writes without reading: a blind update
        session["last"] = "assigned"
    elif path == "/read":
        body = str(session.get("n")).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


def test_round_trips_of_requests_through_the_middleware(
    server: RedisServer, store: RedisStore
) -> None:
    clock = [time.time()]
    app = satchel.SessionMiddleware(_session_app, store=store, clock=lambda: clock[0])
    _warm(store)
    with CommandLog(server.port) as log:
        first = call(app, "/write")
    assert (first.status, first.body) == ("200 OK", b"1")
    assert log.calls == ["EVALSHA"]  # a new session: nothing to load, one save
    cookie = _cookie(first)
    with CommandLog(server.port) as log:
        assert call(app, "/plain", cookie=cookie).body == b"plain"
    assert log.calls == []  # untouched session: no command at all
    with CommandLog(server.port) as log:
        assert call(app, "/read", cookie=cookie).body == b"1"
    assert log.calls == ["HGETALL"]  # read only, no touch due
    with CommandLog(server.port) as log:
        assert call(app, "/write", cookie=cookie).body == b"2"
    assert log.calls == ["HGETALL", "EVALSHA"]
    clock[0] += 120  # past the touch interval
    with CommandLog(server.port) as log:
        assert call(app, "/read", cookie=cookie).body == b"2"
    assert log.calls == ["HGETALL", "EVALSHA"] and log.lua[-1] == "PEXPIREAT"


def test_a_write_only_request_costs_one_command(server: RedisServer, store: RedisStore) -> None:
    app = satchel.SessionMiddleware(_session_app, store=store)
    _warm(store)
    cookie = _cookie(call(app, "/write"))
    with CommandLog(server.port) as log:
        resp = call(app, "/assign", cookie=cookie)
    assert (resp.status, resp.body) == ("200 OK", b"plain")
    assert log.calls == ["EVALSHA"]  # no HGETALL: the session was never read
    assert log.lua == ["HMGET", "HSET", "PEXPIREAT"]
    record = store.load(cookie.split("=", 1)[1])
    assert record is not None and record.data == {"n": "1", "last": '"assigned"'}
    # a write-only request to a session that is gone starts a new one: update, then save
    store.delete(cookie.split("=", 1)[1])
    with CommandLog(server.port) as log:
        resp = call(app, "/assign", cookie=cookie)
    assert log.calls == ["EVALSHA", "EVALSHA"]
    assert _cookie(resp) != cookie


# -- the store's own connections (the fast lane for HGETALL and the scripts) -------------------

def _lane_id(store: RedisStore) -> int:
    """The server's id of the connection the store's hot commands run on (one thread)."""
    assert store._direct is not None
    return int(store._direct.call("CLIENT", "ID"))


def test_threads_share_a_bounded_set_of_connections(store: RedisStore) -> None:
    sid = new_id()
    put(store, sid, {"seed": "0"})
    workers, n = 6, 40
    start = threading.Barrier(workers)

    def work(w: int) -> None:
        start.wait(10)
        for i in range(n):
            now = time.time()
            assert store.update(sid, Changes(set={f"w{w}_{i}": "1"}, create=False),
                                now, now + HOUR, None)
            record = store.load(sid)
            assert record is not None and f"w{w}_{i}" in record.data

    # one thread a worker (each waits at the barrier for the others); map re-raises a failure
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(work, range(workers)))
    record = store.load(sid)
    assert record is not None and len(record.data) == 1 + workers * n
    assert store._direct is not None
    # threads that ended left their connections for reuse: no more than ever ran at once
    idle = len(store._direct._idle)
    assert 1 <= idle <= workers
    assert store._direct._made <= workers
    store.close()  # the idle connections go back to the pool
    assert store._direct._idle == []


def test_commands_are_packed_by_the_connection_without_hiredis(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("satchel.stores._redis_wire._pack_command", None)
    sid = new_id()
    now = time.time()
    put(store, sid, {"a": "1"}, now=now)
    assert store.update(sid, Changes(set={"b": "2"}, create=False), now, now + HOUR, None)
    record = store.load(sid)
    assert record is not None and record.data == {"a": "1", "b": "2"}
    assert (record.accessed, record.expires) == (now, now + HOUR)


def test_resp3_replies_are_read_too(server: RedisServer) -> None:
    with RedisStore(LOOPBACK, server.port, protocol=3) as store:
        sid = new_id()
        put(store, sid, {"a": "1"}, user="ana")
        record = store.load(sid)
        assert record is not None and record.data == {"a": "1"} and record.user == "ana"
        assert store.load(new_id()) is None


def test_connection_recovers_after_a_server_restart() -> None:
    with running_server() as srv, RedisStore(LOOPBACK, srv.port, timeout=1) as store:
        sid = new_id()
        put(store, sid, {"a": "1"})
        srv.stop()
        srv.start()  # same port, empty: the connection the store holds is dead
        assert store.load(sid) is None  # no error: the dead socket is replaced on the spot
        put(store, sid, {"a": "2"})
        srv.stop()
        with pytest.raises(StoreUnavailable):
            store.load(sid)
        srv.start()
        put(store, sid, {"a": "3"})
        with CommandLog(srv.port) as log:
            record = store.load(sid)
        assert record is not None and record.data == {"a": "3"}
        assert log.calls == ["HGETALL"]


def test_a_dead_connection_is_retried_once_on_a_new_one() -> None:
    with running_server() as srv, RedisStore(LOOPBACK, srv.port, timeout=1) as store:
        sid = new_id()
        put(store, sid, {"a": "1"})
        _warm(store)
        before = _lane_id(store)
        # the server drops the store's connection while it sits idle
        assert redis_command(srv.port, "CLIENT", "KILL", "ID", str(before)).startswith(":1")
        with CommandLog(srv.port) as log:
            now = time.time()
            assert store.update(sid, Changes(set={"b": "2"}, create=False), now, now + HOUR,
                                None)
        assert log.calls.count("EVALSHA") == 1  # sent once, on the new connection
        assert _lane_id(store) != before


def test_a_timed_out_command_is_not_sent_again() -> None:
    with running_server() as srv, RedisStore(LOOPBACK, srv.port, timeout=0.3) as store:
        sid = new_id()
        put(store, sid, {"a": "1"})
        _warm(store)
        with CommandLog(srv.port) as log:
            srv.freeze()
            try:
                started = time.monotonic()
                now = time.time()
                with pytest.raises(StoreTimeout):
                    store.update(sid, Changes(set={"b": "2"}, create=False), now, now + HOUR,
                                 None)
                assert 0.25 < time.monotonic() - started < 1.0  # one timeout, not two
            finally:
                srv.thaw()
        assert log.calls == ["EVALSHA"]  # the server ran it once, when it woke
        record = store.load(sid)
        assert record is not None and record.data == {"a": "1", "b": "2"}


# -- fork safety -------------------------------------------------------------------------------

def test_fork_child_never_uses_the_parents_connection(store: RedisStore) -> None:
    sid = new_id()
    put(store, sid, {"a": "1"})
    parent_conn = store.client().client_id()
    parent_lane = _lane_id(store)
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: use the store, report, and leave without running any cleanup
        code = 1
        try:
            os.close(reader)
            record = store.load(sid)
            store.save(sid, Changes(set={"child": '"yes"'}, create=False), meta())
            report = {"conn": store.client().client_id(), "lane": _lane_id(store),
                      "a": record.data["a"] if record else None}
            os.write(writer, json.dumps(report).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        report = json.loads(pipe.read() or b"{}")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert report["a"] == "1"
    assert report["conn"] != parent_conn  # the child opened its own connections
    assert report["lane"] not in (parent_conn, parent_lane)
    assert store.client().client_id() == parent_conn  # the parent's sockets are intact
    assert _lane_id(store) == parent_lane
    record = store.load(sid)
    assert record is not None and record.data == {"a": "1", "child": '"yes"'}


# -- URLs and options --------------------------------------------------------------------------

def test_open_store_urls(server: RedisServer) -> None:
    url = f"redis://{LOOPBACK}:{server.port}/3?prefix=app:&max_connections=7&timeout=1.5"
    with satchel.open_store(url) as store:
        assert isinstance(store, RedisStore) and store.prefix == "app:"
        kwargs = store.client().get_connection_kwargs()
        assert (kwargs["db"], kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (
            3, 1.5, 1.0)
        assert store.client().connection_pool.max_connections == 7
        put(store, "x" * 43, {"a": "1"})
        assert store.load("x" * 43) is not None
    with satchel.open_store("rediss://u%40s:p%3Aw@example.invalid:6390/1") as tls:
        kwargs = tls.client().get_connection_kwargs()
        assert tls.client().connection_pool.connection_class is redis.SSLConnection
        assert (kwargs["username"], kwargs["password"], kwargs["port"]) == ("u@s", "p:w", 6390)
        assert "p:w" not in repr(tls)
    with satchel.open_store("redis+cluster://h1:7000,[::1]:7001") as cluster:
        assert isinstance(cluster, RedisStore) and cluster.is_cluster


def test_rediss_speaks_tls_and_verifies_the_certificate() -> None:
    with RedisTLSServer() as tls:
        assert isinstance(tls, RedisTLSServer)
        with satchel.open_store(tls.url) as store:
            put(store, "t" * 43, {"a": "1"})
            record = store.load("t" * 43)
            assert record is not None and record.data == {"a": "1"}
        # without the CA the self-signed certificate is refused: verification is on by default
        untrusted = f"rediss://{LOOPBACK}:{tls.port}/0?timeout=1&connect_timeout=1"
        with satchel.open_store(untrusted) as store, pytest.raises(StoreUnavailable) as info:
            store.load("t" * 43)
        assert "certificate" in str(info.value.__cause__).lower()


@pytest.mark.parametrize("url", [
    "redis://h:1/x", "redis://h:1/0?bogus=1", "redis://h:notaport", "redis://a:1,b:2",
    "redis://h/0?timeout=soon", "redis+cluster:///", "redis+cluster://h:1/2",
    "redis://h/0?max_connections=0", "redis://h/0?timeout=0",
])
def test_bad_urls(url: str) -> None:
    with pytest.raises(satchel.ConfigurationError):
        satchel.open_store(url)


# -- outages -----------------------------------------------------------------------------------

def test_server_down_raises_store_unavailable_fast() -> None:
    with RedisStore(LOOPBACK, free_port(), connect_timeout=0.5, timeout=0.5) as store:
        for call in (lambda: store.load(new_id()), lambda: put(store, new_id(), {"a": "1"}),
                     lambda: store.touch(new_id(), 0, 1), store.count):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as info:
                call()
            assert time.monotonic() - started < 1.5
            assert isinstance(info.value.__cause__, redis.ConnectionError)
            assert not isinstance(info.value, StoreTimeout)


def test_silent_server_raises_store_timeout_within_the_timeout() -> None:
    # A socket that accepts connections (the kernel completes them) and never answers.
    with socket.socket() as silent:
        silent.bind((LOOPBACK, 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        with RedisStore(LOOPBACK, port, connect_timeout=0.3, timeout=0.3) as store:
            started = time.monotonic()
            with pytest.raises(StoreTimeout) as info:
                store.load(new_id())
            assert time.monotonic() - started < 1.5
            assert isinstance(info.value.__cause__, redis.TimeoutError)


def test_two_hundred_threads_on_one_session_keep_every_key(store: RedisStore) -> None:
    """More requests at once than the pool has connections (50 by default): each waits for a
    connection, within the timeout, instead of failing at once."""

    def assign(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["satchel.session"][environ["QUERY_STRING"]] = 1  # a blind write
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    def seed(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["satchel.session"]["seed"] = 0
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    sid = call(satchel.SessionMiddleware(seed, store=store), "/").cookies["satchel"]
    mw = satchel.SessionMiddleware(assign, store=store)
    threads = 200
    start = threading.Barrier(threads)

    def one(i: int) -> int:
        start.wait(30)
        return call(mw, "/", cookie=f"satchel={sid}", query=f"k{i}").code

    with ThreadPoolExecutor(threads) as pool:
        codes = list(pool.map(one, range(threads)))
    record = store.load(sid)
    assert record is not None
    kept = len(set(record.data) - {"seed"})
    assert (codes.count(200), kept) == (threads, threads)


@pytest.mark.parametrize(("field", "value"), [("m:expires", "x"), ("m:created", None),
                                          ("m:accessed", "nan")])
def test_unreadable_metadata_reads_as_absent(store: RedisStore, caplog: pytest.LogCaptureFixture,
                                             field: str, value: str | None) -> None:
    sid = new_id()
    put(store, sid, {"a": '"1"'})
    key = store.session_key(sid)
    if value is None:
        store.client().hdel(key, field)
    else:
        store.client().hset(key, field, value)
    check_reads_as_absent(store, sid, caplog)


@pytest.mark.parametrize("fast_lane", [True, False])
def test_bytes_that_are_not_text_drop_their_field_alone(
        server: RedisServer, caplog: pytest.LogCaptureFixture, fast_lane: bool) -> None:
    options = {} if fast_lane else {"client": redis.Redis(port=server.port,
                                                          decode_responses=True)}
    with fresh_store(server, **options) as store:
        sid = new_id()
        put(store, sid, {"a": '"1"'})
        with redis.Redis(port=server.port) as raw:
            raw.hset(store.session_key(sid), mapping={"d:b": b"\xff\xfe", b"d:\xff": "2"})
        with caplog.at_level(logging.WARNING, logger="satchel.security"):
            record = store.load(sid)
        assert record is not None and record.data == {"a": '"1"'}
        assert "not UTF-8" in caplog.text and sid not in caplog.text
