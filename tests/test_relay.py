"""The round-trip relay, against a real memcached: what it counts is what a client waits for."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from pymemcache.client.base import Client

from tests.servers import LOOPBACK, free_port, wait_until
from tests.servers.memcached import MemcachedServer
from tests.servers.relay import Relay


@pytest.fixture(scope="module")
def server() -> Iterator[MemcachedServer]:
    srv = MemcachedServer()
    try:
        srv.start()
        yield srv
    finally:
        srv.cleanup()


@pytest.fixture
def relay(server: MemcachedServer) -> Iterator[Relay]:
    with Relay(server.port) as started:
        yield started


@pytest.fixture
def conn(relay: Relay) -> Iterator[socket.socket]:
    sock = socket.create_connection((LOOPBACK, relay.port), timeout=5)
    try:
        yield sock
    finally:
        sock.close()


def read_until(sock: socket.socket, end: bytes) -> bytes:
    """Read until the reply ends with ``end`` (or the connection closes)."""
    data = b""
    while not data.endswith(end):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def exchange(sock: socket.socket, *sends: bytes, end: bytes = b"END\r\n") -> bytes:
    for data in sends:
        sock.sendall(data)
    return read_until(sock, end)


def test_a_request_and_its_reply_are_one_round_trip(relay: Relay, conn: socket.socket) -> None:
    assert relay.count(lambda: exchange(conn, b"get a\r\n")) == 1


@pytest.mark.parametrize("gap", [0.0, 0.05], ids=["one-packet", "two-packets"])
def test_two_sends_before_a_reply_are_one_round_trip(
    relay: Relay, conn: socket.socket, gap: float
) -> None:
    def touch_then_get() -> bytes:
        conn.sendall(b"touch k 10 noreply\r\n")
        time.sleep(gap)  # with a gap, the relay reads the two commands separately
        conn.sendall(b"get k\r\n")
        return read_until(conn, b"END\r\n")

    assert relay.count(touch_then_get) == 1


def test_each_exchange_is_a_round_trip(relay: Relay, conn: socket.socket) -> None:
    def twice() -> None:
        exchange(conn, b"get a\r\n")
        exchange(conn, b"get b\r\n")

    assert relay.count(twice) == 2
    assert relay.round_trips == 2


def test_bytes_sent_without_waiting_are_counted(relay: Relay, conn: socket.socket) -> None:
    assert relay.count(lambda: conn.sendall(b"touch k 10 noreply\r\n")) == 1
    assert relay.count(lambda: exchange(conn, b"get k\r\n")) == 0  # the same wait


def test_connections_add_up(relay: Relay, conn: socket.socket) -> None:
    with socket.create_connection((LOOPBACK, relay.port), timeout=5) as other:
        assert relay.count(lambda: (exchange(conn, b"get a\r\n"),
                                    exchange(other, b"get a\r\n"))) == 2


def test_nothing_sent_is_nothing_counted(relay: Relay, conn: socket.socket) -> None:
    exchange(conn, b"get a\r\n")  # an idle open connection is not a round trip either
    assert relay.count(lambda: None) == 0


def test_pymemcache_through_the_relay(relay: Relay) -> None:
    client = Client((LOOPBACK, relay.port), connect_timeout=2, timeout=5)
    try:
        big = bytes(range(256)) * 2000  # 512 000 bytes: many chunks each way
        assert relay.count(lambda: client.set("small", b"v\r\nEND\r\n", noreply=False)) == 1
        assert relay.count(lambda: client.set("big", big, noreply=False)) == 1
        found: dict[str, object] = {}
        assert relay.count(lambda: found.update(small=client.get("small"))) == 1
        assert relay.count(lambda: found.update(big=client.get("big"))) == 1
        assert found == {"small": b"v\r\nEND\r\n", "big": big}
        assert relay.count(lambda: client.set("quiet", b"q")) == 1  # noreply, no wait: settled
        assert relay.count(lambda: client.get("quiet")) == 0  # ...so this is the same trip
    finally:
        client.close()


def test_the_server_closing_closes_the_client(conn: socket.socket) -> None:
    conn.sendall(b"quit\r\n")  # memcached closes the connection
    assert conn.recv(10) == b""


def test_the_client_closing_closes_the_server_side(
    server: MemcachedServer, relay: Relay
) -> None:
    before = server.stats()["curr_connections"]
    with socket.create_connection((LOOPBACK, relay.port), timeout=5) as sock:
        exchange(sock, b"get a\r\n")
        assert server.stats()["curr_connections"] == before + 1
    wait_until(lambda: server.stats()["curr_connections"] == before, 5,
               "memcached seeing the relayed connection close")


def test_a_target_that_is_down_closes_the_client() -> None:
    with Relay(free_port()) as relay, \
            socket.create_connection((LOOPBACK, relay.port), timeout=5) as sock:
        assert sock.recv(10) == b""


def test_stop_with_an_open_connection_is_prompt(server: MemcachedServer) -> None:
    relay = Relay(server.port)
    relay.start()
    with socket.create_connection((LOOPBACK, relay.port), timeout=5) as sock:
        exchange(sock, b"get a\r\n")
        began = time.monotonic()
        relay.stop()
        assert time.monotonic() - began < 1
        assert sock.recv(10) == b""  # the client sees its connection closed
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((LOOPBACK, relay.port), timeout=1).close()
