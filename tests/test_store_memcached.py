"""MemcachedStore against the store contract and against memcached's limits, on private servers.

Round trips are counted with the server's own command counters (``stats``), not by inspecting
the client.
"""

from __future__ import annotations

import json
import math
import os
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs
from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheIllegalInputError

import satchel
from satchel import Changes, SessionMeta
from satchel.ids import new_id
from satchel.stores._memcache_item import encode_base, encode_delta, parse_item
from satchel.stores.memcached import MemcachedStore, parse_servers

from .contract import HOUR, StoreContract, check_reads_as_absent, meta, put
from .servers import LOOPBACK, wait_until
from .servers.memcached import MemcachedServer
from .servers.relay import Relay
from .wsgi_util import counter_app, status_headers

DAY = 86400.0


@pytest.fixture(scope="module")
def server() -> Iterator[MemcachedServer]:
    with MemcachedServer() as srv:
        yield srv


def fresh_prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def store(server: MemcachedServer) -> Iterator[MemcachedStore]:
    # No folding at random: every write appends, so that commands can be counted exactly.
    with MemcachedStore(f"{LOOPBACK}:{server.port}", prefix=fresh_prefix(),
                        compact_every=0) as st:
        yield st


def raw_client(server: MemcachedServer) -> Client:
    return Client((LOOPBACK, server.port), connect_timeout=2, timeout=2)


class TestMemcachedStore(StoreContract):
    #: every write appends (0), every write rewrites the item whole (1), or a mix (one in four,
    #: so that the concurrency cases interleave both kinds of write)
    @pytest.fixture(params=[0, 1, 4], ids=["append", "rewrite", "mixed"])
    def store(self, server: MemcachedServer,
              request: pytest.FixtureRequest) -> Iterator[MemcachedStore]:
        prefix = fresh_prefix()
        self._spec = (server.url, {"prefix": prefix, "compact_every": request.param})
        with satchel.open_store(server.url, prefix=prefix, compact_every=request.param) as st:
            assert isinstance(st, MemcachedStore)
            yield st

    @pytest.fixture
    def store_spec(self, store: MemcachedStore) -> tuple[str, dict[str, Any]]:
        return self._spec


# -- round trips ---------------------------------------------------------------------------------


def counted(server: MemcachedServer, action: Callable[[], object]) -> int:
    before = server.commands()
    action()
    return server.commands() - before


def test_round_trips_of_each_operation(server: MemcachedServer, store: MemcachedStore) -> None:
    sid = new_id()
    before = server.stats()
    assert counted(server, lambda: put(store, sid, {"a": "1"})) == 1  # add
    assert counted(server, lambda: store.load(sid)) == 1  # gets
    # touch (no reply awaited) + append, in one packet
    assert counted(server, lambda: store.save(sid, Changes(set={"b": "2"}, create=False),
                                              meta())) == 2
    assert counted(server, lambda: store.touch(sid, time.time(), time.time() + HOUR)) == 2
    assert counted(server, lambda: store.exists(sid)) == 1
    assert counted(server, lambda: store.delete(sid)) == 1
    assert counted(server, lambda: store.purge()) == 0
    after = server.stats()
    assert after["cmd_touch"] - before["cmd_touch"] == 2
    assert after["cas_hits"] == before["cas_hits"]


def test_login_costs_the_index_once(server: MemcachedServer, store: MemcachedStore) -> None:
    sid = new_id()
    # gets index, add index, add session
    assert counted(server, lambda: put(store, sid, {"a": "1"}, user="ana")) == 3
    # same user again: no index write, only touch + append
    assert counted(server, lambda: store.save(
        sid, Changes(set={"b": "1"}, create=False, user_changed=False), meta(user="ana"))) == 2
    record = store.load(sid)
    assert record is not None and record.user == "ana" and record.data == {"a": "1", "b": "1"}
    assert counted(server, lambda: store.user_sessions("ana")) == 2  # index + sessions


def blind_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    environ["satchel.session"]["seen"] = environ["PATH_INFO"]  # assigned, never read
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def test_round_trips_through_the_middleware(server: MemcachedServer) -> None:
    """Counted at the wire: commands sent together in one packet are one round trip."""
    with Relay(server.port) as relay, \
            MemcachedStore(relay.host_port, prefix=fresh_prefix(), compact_every=0) as store:
        app = satchel.SessionMiddleware(counter_app, store=store, touch_interval=3600)
        status, headers = status_headers(app, path="/write")
        assert status == "200 OK"
        cookie = headers["Set-Cookie"].split(";")[0]
        assert relay.count(lambda: status_headers(app, cookie, "/untouched")) == 0
        assert relay.count(lambda: status_headers(app, None, "/untouched")) == 0
        assert relay.count(lambda: status_headers(app, cookie, "/read")) == 1  # gets
        # gets, then touch + append
        assert relay.count(lambda: status_headers(app, cookie, "/write")) == 2
        blind = satchel.SessionMiddleware(blind_app, store=store)
        commands = server.commands()
        assert relay.count(lambda: status_headers(blind, cookie, "/blind")) == 1  # touch + append
        assert server.commands() - commands == 2
        # Writing a new session is one add; touching an old one is one more append.
        assert relay.count(lambda: status_headers(app, None, "/write")) == 1
        toucher = satchel.SessionMiddleware(counter_app, store=store, touch_interval=0)
        # gets, then touch + append
        assert relay.count(lambda: status_headers(toucher, cookie, "/read")) == 2
        record = store.load(cookie.split("=", 1)[1])
        assert record is not None and record.data["seen"] == '"/blind"'


# -- limits --------------------------------------------------------------------------------------


def test_oversized_session_raises_before_sending(server: MemcachedServer,
                                                 store: MemcachedStore) -> None:
    sid = new_id()
    before = server.commands()
    big = '"' + "x" * (1024 * 1024) + '"'
    with pytest.raises(satchel.SessionTooLarge, match=r"\d+ bytes exceeds max_item_size=1048576") \
            as caught:
        store.save(sid, Changes(set={"big": big}), meta())
    assert caught.value.size > caught.value.limit == 1024 * 1024
    assert server.commands() - before == 0  # refused before anything was sent
    assert store.load(sid) is None
    # Just under the limit is kept: the check does not cut below what memcached accepts.
    nearly = '"' + "y" * (1024 * 1024 - 400) + '"'
    put(store, sid, {"big": nearly})
    record = store.load(sid)
    assert record is not None and record.data["big"] == nearly


def test_configured_item_limit(server: MemcachedServer) -> None:
    with MemcachedStore(f"{LOOPBACK}:{server.port}", prefix=fresh_prefix(),
                        max_item_size=4096) as st:
        put(st, new_id(), {"a": '"' + "a" * 3000 + '"'})
        with pytest.raises(satchel.SessionTooLarge, match="max_item_size=4096") as caught:
            put(st, new_id(), {"a": '"' + "a" * 5000 + '"'})
        assert caught.value.limit == 4096


def test_listing_is_refused_clearly(store: MemcachedStore) -> None:
    assert MemcachedStore.listable is False
    with pytest.raises(NotImplementedError, match="memcached cannot list"):
        store.ids()
    with pytest.raises(NotImplementedError, match="memcached cannot list"):
        store.count()


# -- native expiry -------------------------------------------------------------------------------


def test_native_ttl_drops_the_item(server: MemcachedServer, store: MemcachedStore) -> None:
    sid = new_id()
    now = time.time()
    store.save(sid, Changes(set={"a": "1"}), SessionMeta(now, now, now + 1.2))
    raw = raw_client(server)
    try:
        assert raw.get(store.prefix + sid) is not None
        assert store.load(sid) is not None
        # memcached itself forgets the item (its clock ticks in whole seconds)
        wait_until(lambda: raw.get(store.prefix + sid) is None, 5, "memcached dropping the item")
    finally:
        raw.close()
    assert time.time() >= now + 1.2
    assert store.load(sid) is None
    assert store.save(sid, Changes(set={"b": "1"}, create=False), meta()) is False


@pytest.mark.parametrize("ttl", [29 * DAY, 30 * DAY, 30 * DAY + 5, 400 * DAY])
def test_long_ttls_cross_memcacheds_absolute_time_rule(server: MemcachedServer,
                                                       store: MemcachedStore,
                                                       ttl: float) -> None:
    # Sent as relative seconds above 30 days, memcached would read a date in 1970 and drop it.
    sid = new_id()
    put(store, sid, {"a": "1"}, ttl=ttl)
    assert store.load(sid) is not None
    assert store.touch(sid, time.time(), time.time() + ttl) is True
    assert store.load(sid) is not None


def test_session_without_expiry(server: MemcachedServer, store: MemcachedStore) -> None:
    # A manager without an idle timeout writes expires=inf: memcached is given no TTL.
    sid = new_id()
    now = time.time()
    assert store.save(sid, Changes(set={"a": "1"}), SessionMeta(now, now, math.inf))
    assert store.update(sid, Changes(set={"b": "2"}, create=False), now, math.inf, None)
    assert store.touch(sid, now, math.inf)
    record = store.load(sid)
    assert record is not None and record.expires == math.inf
    assert record.data == {"a": "1", "b": "2"}
    assert store.update(sid, Changes(set={"c": "3"}, create=False), now, math.inf, DAY)
    record = store.load(sid)
    assert record is not None and record.expires == now + DAY


def test_touch_extends_native_ttl(server: MemcachedServer, store: MemcachedStore) -> None:
    sid = new_id()
    now = time.time()
    store.save(sid, Changes(set={"a": "1"}), SessionMeta(now, now, now + 1.2))
    assert store.touch(sid, now, now + HOUR) is True
    time.sleep(2.2)
    assert store.load(sid) is not None


# -- the per-user index --------------------------------------------------------------------------


def test_user_index_is_filtered_and_pruned(server: MemcachedServer,
                                           store: MemcachedStore) -> None:
    user = "ana ünïcode @example"
    a, b, c = new_id(), new_id(), new_id()
    put(store, a, {"x": "1"}, user=user)
    put(store, b, {"x": "1"}, user=user)
    store.delete(a)
    assert store.user_sessions(user) == [b]  # filtered against the session items
    index_key = store._user_key(user)
    raw = raw_client(server)
    try:
        assert set(json.loads(raw.get(index_key))) == {a, b}  # a is young: kept for now
        store.index_grace = 0.0
        put(store, c, {"x": "1"}, user=user)  # the next index write prunes the dead entry
        assert set(json.loads(raw.get(index_key))) == {b, c}
        assert store.delete_user(user) == 2
        assert store.user_sessions(user) == []
        assert json.loads(raw.get(index_key)) == {}  # rewritten empty, left to expire
    finally:
        raw.close()


def test_user_change_moves_the_session_between_indexes(store: MemcachedStore) -> None:
    sid = new_id()
    put(store, sid, {"x": "1"}, user="ana")
    store.save(sid, Changes(create=False), meta(user="bob"))
    assert store.user_sessions("ana") == []
    assert store.delete_user("ana") == 0
    assert store.user_sessions("bob") == [sid]
    assert store.load(sid) is not None


# -- several servers -----------------------------------------------------------------------------


def test_two_servers_share_the_sessions(server: MemcachedServer) -> None:
    second = MemcachedServer()
    second.start()
    try:
        url = f"memcached://{LOOPBACK}:{server.port},{LOOPBACK}:{second.port}"
        st = satchel.open_store(url, prefix=fresh_prefix())
        assert isinstance(st, MemcachedStore)
        try:
            before = (server.stats()["curr_items"], second.stats()["curr_items"])
            sids = [new_id() for _ in range(24)]
            for sid in sids:
                put(st, sid, {"k": '"v"'}, user="ana")
            after = (server.stats()["curr_items"], second.stats()["curr_items"])
            assert all(a > b for a, b in zip(after, before))
            assert all(st.load(sid) is not None for sid in sids)
            assert sorted(st.user_sessions("ana")) == sorted(sids)
            assert st.delete_user("ana") == len(sids)
        finally:
            st.close()
    finally:
        second.cleanup()


# -- the item format -----------------------------------------------------------------------------


def test_record_round_trips_exactly(store: MemcachedStore) -> None:
    sid = new_id()
    created, accessed, expires = 1700000000.123456789, time.time(), time.time() + 1 / 3 + HOUR
    data = {"": '""', "ünï cödé": '"✓ ok"', "tab\tkey": '"a\\u0000b"', "k": "x" * 5000}
    for user in (None, "", "ana", "-", "+bob"):
        store.save(sid, Changes(set=data, cleared=True), SessionMeta(created, accessed, expires,
                                                                     user))
        record = store.load(sid)
        assert record is not None
        assert (record.data, record.created, record.accessed, record.expires, record.user) == \
            (data, created, accessed, expires, user)


def test_nul_in_a_key_or_value_falls_back_to_json(server: MemcachedServer,
                                                  store: MemcachedStore) -> None:
    sid = new_id()
    put(store, sid, {"a\x00b": '"1"', "c": '"d\x00e"'}, user="u\x00v")
    raw = raw_client(server)
    try:
        assert raw.get(store.prefix + sid)[1] & 8  # the frame's body is a JSON array
    finally:
        raw.close()
    record = store.load(sid)
    assert record is not None
    assert record.data == {"a\x00b": '"1"', "c": '"d\x00e"'} and record.user == "u\x00v"
    assert store.save(sid, Changes(set={"x": "2"}, create=False), meta(user="u\x00v"))
    record = store.load(sid)
    assert record is not None and record.data == {"a\x00b": '"1"', "c": '"d\x00e"', "x": "2"}


def frame(mark: int, flags: int, body: bytes, n_set: int = 0, n_del: int = 0,
          size: int | None = None) -> bytes:
    """A frame of the item format, put together by hand (see ``_memcache_item``)."""
    now = time.time()
    return struct.pack("<BBIIIddd", mark, flags, len(body) if size is None else size, n_set,
                       n_del, now, now + HOUR, now) + body


GOOD = frame(2, 1 | 4, b"-\x00k\x00v", 1)


@pytest.mark.parametrize("payload", [
    b"", b"\x02short", b"{not json",
    frame(1, 1 | 4, b"-"),  # an unknown format mark
    frame(2, 4, b"-"),  # the first frame is not a base
    frame(2, 1, b""),  # a base without its user
    frame(2, 1 | 4, b"?"),  # a user field that is neither - nor +name
    frame(2, 1 | 4, b"-\x00odd", 1),  # fewer fields than the count says
    frame(2, 1 | 4, b"-\x00a\x00b", 0),  # more fields than the count says
    frame(2, 1 | 4, b"-\x00\xff\xfe\x00v", 1),  # not UTF-8
    frame(2, 1 | 4, b"-", size=50),  # truncated
    frame(2, 1 | 4 | 8, b'["-", 1, "v"]', 1),  # a JSON body holding a number
    frame(2, 1 | 4 | 8, b'{"a": 1}', 0),  # a JSON body that is not an array
    GOOD + frame(2, 1 | 4, b"-"),  # a second base
    GOOD + frame(2, 0, b"k", 1),  # a delta with an odd pair
    GOOD + b"\x02",  # a torn tail
])
def test_unreadable_item_reads_as_absent(server: MemcachedServer, store: MemcachedStore,
                                         payload: bytes, caplog: pytest.LogCaptureFixture) -> None:
    sid = new_id()
    raw = raw_client(server)
    try:
        raw.set(store.prefix + sid, payload, expire=3600, noreply=False)
    finally:
        raw.close()
    assert store.load(sid) is None  # and the unreadable item is dropped, so that...
    assert store.exists(sid) is False
    assert store.touch(sid, time.time(), time.time() + HOUR) is False  # ...appends fail
    assert store.update(sid, Changes(set={"a": "1"}, create=False), time.time(),
                        time.time() + HOUR, None) is False
    assert store.save(sid, Changes(set={"a": "1"}, create=False), meta()) is False
    assert "unreadable" in caplog.text
    assert sid not in caplog.text
    put(store, sid, {"a": "1"})  # a new session replaces the unreadable item
    record = store.load(sid)
    assert record is not None and record.data == {"a": "1"}


def test_unreadable_user_index_is_rebuilt(server: MemcachedServer, store: MemcachedStore) -> None:
    raw = raw_client(server)
    try:
        raw.set(store._user_key("ana"), b"\x00garbage", expire=3600, noreply=False)
    finally:
        raw.close()
    assert store.user_sessions("ana") == []
    sid = new_id()
    put(store, sid, {"a": "1"}, user="ana")
    assert store.user_sessions("ana") == [sid]


def test_malformed_key_never_reaches_the_server(server: MemcachedServer,
                                                store: MemcachedStore) -> None:
    sid = new_id()
    put(store, sid, {"a": "1"})
    before = server.commands()
    for bad in ("a b", "x\r\nflush_all", "tab\t", "nul\x00", "é", "k" * 300):
        with pytest.raises(MemcacheIllegalInputError):
            store.load(bad)
    assert server.commands() == before
    assert store.load(sid) is not None  # the connection is still in step


# -- fork safety ---------------------------------------------------------------------------------


def test_forked_child_uses_its_own_connections(server: MemcachedServer,
                                               store: MemcachedStore) -> None:
    sid = new_id()
    put(store, sid, {"parent": "1"})  # the parent now holds a pooled connection
    parent_pool = store._pools[f"{LOOPBACK}:{server.port}"]
    connections = server.stats()["total_connections"]
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, never return into pytest
        code = 1
        try:
            os.close(read_fd)
            for i in range(50):
                store.save(sid, Changes(set={f"c{i}": "1"}, create=False), meta())
            child_pool = store._pools[f"{LOOPBACK}:{server.port}"]
            os.write(write_fd, b"fresh" if child_pool is not parent_pool else b"shared")
            store.close()
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    # The parent keeps working meanwhile, on its own socket.
    for i in range(50):
        store.save(sid, Changes(set={f"p{i}": "1"}, create=False), meta())
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read_fd, "rb") as pipe:
        verdict = pipe.read()
    assert os.waitstatus_to_exitcode(status) == 0
    assert verdict == b"fresh"
    assert store._pools[f"{LOOPBACK}:{server.port}"] is parent_pool
    assert server.stats()["total_connections"] > connections  # the child dialled its own
    record = store.load(sid)
    assert record is not None
    assert {f"c{i}" for i in range(50)} | {f"p{i}" for i in range(50)} <= set(record.data)


# -- connections ---------------------------------------------------------------------------------


def test_pool_size_bounds_connections(server: MemcachedServer) -> None:
    with MemcachedStore(f"{LOOPBACK}:{server.port}", prefix=fresh_prefix(),
                        max_pool_size=2) as st:
        sid = new_id()
        put(st, sid, {"seed": "0"})
        dialled = server.stats()["total_connections"]
        errors: list[BaseException] = []

        def writer(prefix: str) -> None:
            try:
                for i in range(15):
                    st.save(sid, Changes(set={f"{prefix}{i}": "1"}, create=False), meta())
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(f"w{n}_",)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors == []
        # six threads shared at most two connections, one opened before; each stats() call
        # dials one of its own
        assert server.stats()["total_connections"] - dialled - 1 <= 1
        record = st.load(sid)
        assert record is not None and len(record.data) == 1 + 6 * 15
    with pytest.raises(satchel.StoreUnavailable, match="closed"):
        st.load(sid)


def test_a_caller_waits_for_a_busy_connection(server: MemcachedServer) -> None:
    with MemcachedStore(f"{LOOPBACK}:{server.port}", prefix=fresh_prefix(), max_pool_size=1,
                        timeout=0.3) as st:
        sid = new_id()
        put(st, sid, {"a": "1"})
        clients = st._pools[f"{LOOPBACK}:{server.port}"]
        held = clients.take()  # the only connection, busy elsewhere
        started = time.monotonic()
        with pytest.raises(satchel.StoreTimeout, match="no free connection"):
            st.load(sid)
        assert 0.25 <= time.monotonic() - started < 1.0
        loaded: list[object] = []
        waiter = threading.Thread(target=lambda: loaded.append(st.load(sid)))
        waiter.start()
        time.sleep(0.05)
        clients.idle.append(held)  # given back, as a finished command does
        clients.given()
        waiter.join(5)
        assert not waiter.is_alive() and loaded and loaded[0] is not None
        assert clients._made == 1


def test_kernel_bounds_each_socket_operation(server: MemcachedServer,
                                             store: MemcachedStore) -> None:
    sid = new_id()
    put(store, sid, {"a": "1"})
    client = store._pools[f"{LOOPBACK}:{server.port}"].idle[-1]
    sock = client.sock
    # Python's own timeout would poll() before every send and recv; the kernel's does not.
    assert sock.gettimeout() is None
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16) != bytes(16)
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, 16) != bytes(16)


# -- configuration -------------------------------------------------------------------------------


def test_url_options(server: MemcachedServer) -> None:
    st = satchel.open_store(f"{server.url}/?prefix=app:&timeout=0.5&connect_timeout=0.25"
                            "&max_pool_size=3&cas_retries=5&max_item_size=2048")
    assert isinstance(st, MemcachedStore)
    assert (st.prefix, st.timeout, st.connect_timeout) == ("app:", 0.5, 0.25)
    assert (st.max_pool_size, st.cas_retries, st.max_item_size) == (3, 5, 2048)
    assert st.servers == [(LOOPBACK, server.port)]
    st.close()


def test_parse_servers() -> None:
    assert parse_servers("a:1,b, [::1]:3,[::1]") == [("a", 1), ("b", 11211), ("::1", 3),
                                                     ("::1", 11211)]


@pytest.mark.parametrize("url", [
    "memcached://h:notaport", "memcached://h:70000", "memcached://user:pw@h:1",
    "memcached://h:1/path", "memcached://h:1?bogus=1", "memcached://h:1?timeout=x",
    "memcached://h:1?timeout=0", "memcached://h:1?max_pool_size=0", "memcached://:1",
    "memcached://h:1?prefix=a%20b",
])
def test_bad_urls(url: str) -> None:
    with pytest.raises(ValueError, match=r"memcached://|MemcachedStore"):
        satchel.open_store(url)


def test_update_appends_without_reading(server: MemcachedServer, store: MemcachedStore) -> None:
    sid = new_id()
    put(store, sid, {"a": "1"}, user="ana")
    before, commands = server.stats(), server.commands()
    now = time.time()
    assert store.update(sid, Changes(set={"b": "2"}, create=False), now, now + 600, None)
    after = server.stats()
    assert server.commands() - commands == 2  # touch + append, no read at all (one packet:
    # see test_round_trips_through_the_middleware)
    assert after["cmd_get"] == before["cmd_get"]
    assert after["cmd_touch"] - before["cmd_touch"] == 1
    record = store.load(sid)
    assert record is not None and record.data == {"a": "1", "b": "2"} and record.user == "ana"


# -- the log of frames ---------------------------------------------------------------------------


def frames_of(server: MemcachedServer, store: MemcachedStore, sid: str) -> int:
    raw = raw_client(server)
    try:
        parsed = parse_item(raw.get(store.prefix + sid))
    finally:
        raw.close()
    assert parsed is not None
    return parsed[1]


def test_writes_append_frames_and_a_long_log_is_folded_on_reading(
        server: MemcachedServer, store: MemcachedStore) -> None:
    sid = new_id()
    put(store, sid, {"a": "1", "b": "2"})
    now = time.time()
    expected = {"a": "1", "b": "2"}
    for i in range(store.max_waste + 5):
        changes = Changes(set={f"k{i % 7}": str(i)}, deleted=frozenset({"b"} if i == 3 else ()),
                          create=False)
        assert store.update(sid, changes, now, now + HOUR, None)
        expected = changes.apply(expected)
    assert frames_of(server, store, sid) == store.max_waste + 6
    commands = server.commands()
    record = store.load(sid)
    assert server.commands() - commands == 2  # the gets, and the cas that folded the log
    assert record is not None and record.data == expected
    assert frames_of(server, store, sid) == 1
    again = store.load(sid)
    assert again is not None and again.data == expected and again.expires == record.expires


def test_a_log_is_folded_on_reading_by_what_it_wastes(server: MemcachedServer,
                                                      store: MemcachedStore) -> None:
    sid = new_id()
    ten = {f"k{i}": '"' + "v" * 100 + '"' for i in range(10)}
    put(store, sid, ten)
    now = time.time()
    for value in ('"x"', '"y"'):
        assert store.update(sid, Changes(set={"k0": value}, create=False), now, now + HOUR, None)
    commands = server.commands()
    assert store.load(sid) is not None
    assert server.commands() - commands == 1  # a short log is read as it is
    assert frames_of(server, store, sid) == 3
    # One frame that rewrites every key: reading it would mean parsing the session twice.
    assert store.update(sid, Changes(set=ten, create=False), now, now + HOUR, None)
    commands = server.commands()
    record = store.load(sid)
    assert server.commands() - commands == 2  # gets, and the cas that folded it
    assert record is not None and record.data == ten
    assert frames_of(server, store, sid) == 1


def test_cleared_and_user_frames(server: MemcachedServer, store: MemcachedStore) -> None:
    sid = new_id()
    put(store, sid, {"a": "1"}, user="ana")
    assert store.save(sid, Changes(set={"b": "2"}, cleared=True, create=False), meta(user="bob"))
    assert store.save(sid, Changes(set={"c": "3"}, create=False, user_changed=False),
                      meta(user="bob"))
    assert frames_of(server, store, sid) == 3
    record = store.load(sid)
    assert record is not None and record.data == {"b": "2", "c": "3"} and record.user == "bob"
    assert store.user_sessions("bob") == [sid] and store.user_sessions("ana") == []


def test_every_write_rewrites_when_compact_every_is_one(server: MemcachedServer) -> None:
    with MemcachedStore(f"{LOOPBACK}:{server.port}", prefix=fresh_prefix(),
                        compact_every=1) as st:
        sid = new_id()
        put(st, sid, {"a": "1"})
        before = server.stats()
        now = time.time()
        assert st.update(sid, Changes(set={"b": "2"}, create=False), now, now + HOUR, None)
        assert st.touch(sid, now, now + HOUR)
        after = server.stats()
        assert after["cas_hits"] - before["cas_hits"] == 2
        assert after["cmd_touch"] == before["cmd_touch"]
        assert frames_of(server, st, sid) == 1
        record = st.load(sid)
        assert record is not None and record.data == {"a": "1", "b": "2"}


def test_an_update_frame_caps_the_expiry_at_the_lifetime(store: MemcachedStore) -> None:
    sid = new_id()
    now = time.time()
    store.save(sid, Changes(set={"a": "1"}), SessionMeta(now - 50, now, now + HOUR))
    assert store.update(sid, Changes(set={"b": "2"}, create=False), now, now + HOUR, 100.0)
    assert store.touch(sid, now, now + HOUR)  # a later frame does not lift the cap
    record = store.load(sid)
    assert record is not None and record.expires == now - 50 + 100.0
    assert store.update(sid, Changes(set={"c": "3"}, create=False), now, now + HOUR, 40.0)
    assert store.load(sid) is None  # created 50 s ago, with a lifetime of 40 s: dead


def test_an_item_at_the_size_limit_is_folded_then_refused(server: MemcachedServer) -> None:
    with MemcachedStore(f"{LOOPBACK}:{server.port}", prefix=fresh_prefix(),
                        compact_every=0) as st:
        sid = new_id()
        put(st, sid, {"big": '"' + "x" * 600_000 + '"'})
        now = time.time()
        value = '"' + "y" * 300_000 + '"'
        # Each write replaces one key, yet each appends a frame: the log outgrows memcached's
        # limit (1 MiB) on the third, which is then folded into one frame instead.
        for i in range(4):
            assert st.update(sid, Changes(set={"other": value[:-1] + str(i) + '"'},
                                          create=False), now, now + HOUR, None)
        assert frames_of(server, st, sid) <= 2
        record = st.load(sid)
        assert record is not None and record.data["other"] == value[:-1] + '3"'
        # A change whose folded session would still not fit is refused, and changes nothing.
        with pytest.raises(satchel.SessionTooLarge):
            st.update(sid, Changes(set={"third": value + value[1:]}, create=False), now,
                      now + HOUR, None)
        after = st.load(sid)
        assert after is not None and after.data == record.data


def test_touch_and_append_cost_one_round_trip(server: MemcachedServer) -> None:
    from satchel.stores._memcache_wire import Clients

    with Relay(server.port) as relay:
        clients = Clients("m", (LOOPBACK, relay.port), 1, 2.0, 2.0)
        client = clients.take()
        try:
            client.set("both-k", b"v", expire=5, noreply=False)  # connects
            touches = server.stats()["cmd_touch"]
            value = b"w\r\nEND\r\nSTORED\r\n\x00"  # protocol words inside a value are data
            answers: list[tuple[bool, int | None]] = []
            assert relay.count(
                lambda: answers.append(client.append_touching("both-k", value, 1000))) == 1
            assert answers == [(True, 5)]  # appended; the TTL it had before
            assert server.stats()["cmd_touch"] == touches + 1
            assert client.get("both-k") == b"v" + value
            ttl = client.raw_command(b"mg both-k t")  # memcached's meta get: remaining TTL
            assert 900 < int(ttl.split(b"t", 1)[1]) <= 1000
            # No item: nothing is stored, and the TTL move before it did nothing either.
            assert relay.count(lambda: client.append_touching("none-k", b"x", 1000)) == 1
            assert client.append_touching("none-k", b"x", 1000) == (False, None)
            assert client.get("none-k") is None
            # The connection is still in step for the next command.
            assert client.get("both-k") == b"v" + value
        finally:
            client.close()
            clients.close()


@pytest.mark.parametrize("value", [
    b"",
    b"v",
    b"END\r\nVALUE k 0 1 2\r\nEND\r\n",  # protocol words inside a value are data
    bytes(range(256)) * 40,  # more than one read of the socket, every byte value
    b"x" * (1024 * 1024 - 300),  # near the item size limit
])
def test_gets_one_reads_what_pymemcache_reads(server: MemcachedServer, value: bytes) -> None:
    from satchel.stores._memcache_wire import Clients

    clients = Clients("m", (LOOPBACK, server.port), 1, 2.0, 2.0)
    client = clients.take()
    key = f"g-{len(value)}-{value[:1].hex()}"
    try:
        assert client.gets_one(key) == (None, None)  # before any connection: connects
        client.set(key, value, expire=60, noreply=False)
        got, cas = client.gets_one(key)
        assert got == value
        assert (got, cas) == client.gets(key)
        assert client.cas(key, b"new", cas, expire=60, noreply=False) is True
        assert client.gets_one(key)[0] == b"new"  # the connection stayed in step
        assert client.gets_one("absent-k") == (None, None)
    finally:
        client.close()
        clients.close()


def test_an_append_past_the_size_limit_is_refused_in_step(server: MemcachedServer) -> None:
    from pymemcache.exceptions import MemcacheClientError, MemcacheServerError

    from satchel.stores._memcache_wire import Clients

    clients = Clients("m", (LOOPBACK, server.port), 1, 2.0, 2.0)
    client = clients.take()
    try:
        near_full = b"x" * (1024 * 1024 - 200)
        client.set("full-k", near_full, expire=60, noreply=False)
        assert client.append_touching("full-k", b"y" * 1000, 60) == (False, 60)
        assert client.get("full-k") == near_full  # unchanged, and the reply was read in step
        with pytest.raises(MemcacheClientError):  # refused before anything is sent
            client.append_touching("bad key", b"v", 60)
        assert client.get("full-k") == near_full
        # A value larger than any item is an error answer, read in full; the socket is dropped
        # with whatever might follow it, and the next command connects anew.
        with pytest.raises(MemcacheServerError, match="too large"):
            client.append_touching("full-k", b"z" * (1024 * 1024 + 1), 60)
        assert client.sock is None
        assert client.get("full-k") == near_full
    finally:
        client.close()
        clients.close()


_texts = hs.text(max_size=6)  # NUL and any other character included
_changes = hs.builds(Changes, set=hs.dictionaries(_texts, _texts, max_size=4),
                     deleted=hs.frozensets(_texts, max_size=3), cleared=hs.booleans(),
                     create=hs.just(False))


@settings(max_examples=200, deadline=None)
@given(base=hs.dictionaries(_texts, _texts, max_size=4), user=hs.none() | _texts,
       writes=hs.lists(hs.tuples(_changes, hs.none() | hs.just("") | _texts), max_size=6))
def test_a_log_reads_as_its_changes_applied_in_order(
        base: dict[str, str], user: str | None,
        writes: list[tuple[Changes, str | None]]) -> None:
    now = 1_800_000_000.0
    item = encode_base(base, now, now, now + HOUR, user)
    expected, expected_user = dict(base), user
    for i, (changes, new_user) in enumerate(writes):
        set_user = new_user != ""  # "" here: the write keeps the user
        item += encode_delta(changes, now + i, now + HOUR + i, None,
                             user=new_user if set_user else None, set_user=set_user)
        expected = changes.apply(expected)
        if set_user:
            expected_user = new_user
    parsed = parse_item(item)
    assert parsed is not None
    record, frames, waste = parsed
    assert frames == 1 + len(writes)
    pairs = len(base) + sum(len(changes.set) for changes, _ in writes)
    assert waste == len(writes) + pairs - len(expected)
    assert record.data == expected and record.user == expected_user
    assert record.accessed == now + len(writes) - 1 if writes else record.accessed == now


def test_a_write_in_the_ttl_slack_never_revives_a_session(store: MemcachedStore) -> None:
    """memcached keeps an item a little past the session's expiry (its clock ticks in whole
    seconds, and the TTL has a second spare): a write in that slack is refused, as on no item,
    and readers ignore any frame written after the end."""
    sid = new_id()
    now = time.time()
    put(store, sid, {"a": "1"}, now=now, ttl=0.5)
    time.sleep(max(0.0, now + 0.6 - time.time()))
    assert store._get(store._key(sid)) is not None  # memcached still holds the item
    later = time.time()
    assert store.update(sid, Changes(set={"a": "2"}, create=False), later, later + HOUR,
                        None) is False
    assert store.touch(sid, later, later + HOUR) is False
    assert store.load(sid) is None


def test_a_frame_written_after_the_end_is_ignored() -> None:
    now = time.time()
    base = encode_base({"a": "1"}, now, now, now + 60, "ana")
    live = encode_delta(Changes(set={"b": "2"}), now + 30, now + 90)
    late = encode_delta(Changes(set={"c": "3"}), now + 91, now + 200)
    parsed = parse_item(base + live + late + live)
    assert parsed is not None
    assert parsed.record.data == {"a": "1", "b": "2"}
    assert parsed.record.expires == now + 90  # dead at the late frame's time


@pytest.mark.parametrize(("created", "accessed", "expires"), [
    (math.nan, 0.0, 0.0), (0.0, math.nan, 0.0), (0.0, 0.0, math.nan)])
def test_unreadable_times_read_as_absent(store: MemcachedStore, server: MemcachedServer,
                                         caplog: pytest.LogCaptureFixture, created: float,
                                         accessed: float, expires: float) -> None:
    sid = new_id()
    now = time.time()
    item = encode_base({"a": '"1"'}, created or now, accessed or now, expires or now + HOUR, None)
    client = raw_client(server)
    try:
        client.set(store._key(sid), item, expire=60, noreply=False)
    finally:
        client.close()
    check_reads_as_absent(store, sid, caplog)
