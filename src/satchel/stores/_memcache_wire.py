"""memcached connections: bounded lists of idle pymemcache clients on kernel-timed sockets.

The rule that lives here: a command gets a client of its own (an idle one, a new one while
fewer than ``max_pool_size`` exist, or one given back within ``timeout``), whose socket every
``send`` and ``recv`` of is bounded by the operation timeout.  A write's TTL move (a meta get
that also answers the TTL it replaced) rides in the same packet as its ``append``
(:meth:`StoreClient.append_touching`), so that two commands cost one round trip and wake the
server once.  The store's two hot commands (a one-key ``gets`` and that
pair) are sent on the client's socket and read with pymemcache's own reply readers, which are
not public API: the ``memcached`` extra pins pymemcache below 5.  What the commands mean, how
their failures map to satchel's errors and fork safety are :mod:`satchel.stores.memcached`'s.
"""

from __future__ import annotations

import math
import socket
import struct
import sys
import threading
import time
import types
from typing import Any

from pymemcache.client.base import RECV_SIZE, Client, _readline, _readvalue
from pymemcache.exceptions import MemcacheUnknownError

from ..errors import StoreTimeout

__all__ = ["KERNEL_TIMEOUTS", "Clients", "Server", "StoreClient"]

Server = tuple[str, int]


class _TimedSockets(types.ModuleType):
    """The ``socket`` module as pymemcache's ``socket_module``, making sockets whose operation
    timeout the kernel enforces (``SO_RCVTIMEO``/``SO_SNDTIMEO``).

    Python enforces its own socket timeout by ``poll()`` before every ``send`` and ``recv``:
    two more system calls per command, about 1.5 µs of a 20 µs loopback round trip.  These
    sockets are left blocking by pymemcache (its ``timeout`` is None) and the kernel bounds
    each ``send`` and ``recv`` instead; one that runs out fails with ``EAGAIN``
    (``BlockingIOError``), which the store reports as ``StoreTimeout``.  The connect timeout is
    still Python's (pymemcache sets it around ``connect``).
    """

    def __init__(self, timeout: float) -> None:
        super().__init__("socket")
        # At least 1 µs: a zero timeval would mean no timeout at all.
        seconds, micros = divmod(max(1, math.ceil(timeout * 1e6)), 1_000_000)
        self._timeval = struct.pack("ll", seconds, micros)

    def __getattr__(self, name: str) -> Any:
        return getattr(socket, name)

    def socket(self, family: int = -1, type: int = -1, proto: int = -1) -> socket.socket:
        sock = socket.socket(family, type, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, self._timeval)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, self._timeval)
        except BaseException:
            sock.close()
            raise
        return sock


#: where ``SO_RCVTIMEO`` takes a ``struct timeval`` (Windows takes milliseconds: there,
#: Python's own socket timeout serves)
KERNEL_TIMEOUTS = sys.platform != "win32" and hasattr(socket, "SO_RCVTIMEO")


class StoreClient(Client):  # type: ignore[misc]  # pymemcache is untyped
    """pymemcache's ``Client``, with a quicker path through its key check for the keys this
    store builds (printable ASCII without spaces, at most 250 bytes: nothing memcached's text
    protocol could misread).  Any other key gets pymemcache's own check, and its error."""

    def check_key(self, key: Any, key_prefix: bytes) -> bytes:
        if (type(key) is str and not key_prefix and len(key) <= 250 and key.isascii()
                and key.isprintable() and " " not in key):
            return key.encode()
        return super().check_key(key, key_prefix)  # type: ignore[no-any-return]

    def gets_one(self, key: str) -> tuple[bytes | None, bytes | None]:
        """``gets`` of one key: ``(value, cas)``, or ``(None, None)`` when there is no item.

        pymemcache's ``gets`` goes through its many-key reader (a key map, a result dict, a
        deserializer per value), which costs about 1.5 µs more than the reply takes to read;
        this reads the one reply with pymemcache's own line and value readers, on its socket,
        and hands back the bytes as stored (no deserializer).  Any failure closes the socket,
        as pymemcache does, so no reply is ever left pending on it.
        """
        name = self.check_key(key, self.key_prefix)
        if self.sock is None:
            self._connect()
        sock = self.sock
        try:
            sock.sendall(b"gets " + name + b"\r\n")
            buf, line = _readline(sock, b"")
            if line == b"END":
                return None, None
            self._raise_errors(line, b"gets")
            head = line.split()
            if len(head) != 5 or head[0] != b"VALUE" or head[1] != name:
                raise MemcacheUnknownError(line[:32])
            buf, value = _readvalue(sock, buf, int(head[3]))
            buf, line = _readline(sock, buf)
            if line != b"END" or buf:
                raise MemcacheUnknownError(line[:32])
            return value, head[4]
        except BaseException:
            self.close()
            raise

    def append_touching(self, key: str, value: bytes, expire: int) -> tuple[bool, int | None]:
        """Move the item's TTL to ``expire`` and ``append`` to it, sent together: whether it
        was appended (not when there is no such item, or it would outgrow the size limit), and
        the TTL it had before (memcached's whole seconds, -1 for none; None for no item).

        The TTL is moved by memcached's meta get (``mg key t T<expire>``), which also answers
        the TTL it replaced: what lets the store tell a live session from one that memcached
        merely has not dropped yet.  pymemcache sends each command in its own packet, and on
        loopback every packet wakes memcached once more, which costs about as much as a whole
        round trip; so the two command lines leave in one ``sendall``, and the two answers are
        read with pymemcache's reader and error mapping.
        """
        name = self.check_key(key, self.key_prefix)
        if self.sock is None:
            self._connect()
        sock = self.sock
        try:
            sock.sendall(b"mg %b t T%d\r\nappend %b 0 0 %d\r\n%b\r\n" % (
                name, expire, name, len(value), value))
            reply = sock.recv(RECV_SIZE)  # the whole answer, all but always
            if reply[:4] == b"HD t" and reply[-10:] == b"\r\nSTORED\r\n":
                return True, int(reply[4:-10])
            buf, line = _readline(sock, reply)  # the meta get's answer
            ttl: int | None = None
            if line[:4] == b"HD t":
                ttl = int(line[4:])
            elif line != b"EN":
                self._raise_errors(line, b"mg")
                raise MemcacheUnknownError(line[:32])
            buf, line = _readline(sock, buf)  # the append's
            if buf:
                raise MemcacheUnknownError(buf[:32])
            if line == b"STORED":
                return True, ttl
            if line == b"NOT_STORED":
                return False, ttl
            self._raise_errors(line, b"append")
            raise MemcacheUnknownError(line[:32])
        except BaseException:
            self.close()  # an error answer may be followed by more: never reuse the socket
            raise


    def delete_if(self, key: str, cas: bytes) -> bytes:
        """Delete the item only if it is unchanged since ``cas`` (memcached's meta delete):
        ``b"HD"`` deleted, ``b"EX"`` changed meanwhile, ``b"NF"`` no such item."""
        name = self.check_key(key, self.key_prefix)
        if self.sock is None:
            self._connect()
        sock = self.sock
        try:
            sock.sendall(b"md %b C%b\r\n" % (name, cas))
            buf, line = _readline(sock, b"")
            if buf:
                raise MemcacheUnknownError(buf[:32])
            if line in (b"HD", b"EX", b"NF"):
                return line  # type: ignore[no-any-return]
            self._raise_errors(line, b"md")
            raise MemcacheUnknownError(line[:32])
        except BaseException:
            self.close()
            raise


class Clients:
    """The idle pymemcache ``Client`` objects of one server, shared by threads without a lock.

    ``PooledClient`` takes a lock and enters a context manager to check a client out and in on
    every call.  Here ``idle.pop()`` and ``idle.append()`` (atomic) hand a client to one thread
    at a time; the lock is taken only to make a client or to wait for one:

    * At most ``limit`` clients are ever made; when all are busy a caller waits up to
      ``timeout`` for one to come back, then gets ``StoreTimeout``.
    * A client makes its own socket, with the connect and operation timeouts, on first use and
      after any failure (pymemcache closes it then, and so does
      :meth:`~satchel.stores.memcached.MemcachedStore._run` for whatever pymemcache does not
      catch): a client goes back on the list with no reply pending.
    * A waiter counts itself (``waiting``) before it looks at the list, and whoever gives a
      client back looks at the count after the append: either the waiter finds the client, or
      it is counted and notified (:meth:`given`).
    * Fork safety is the store's: a child drops its parent's lists (see
      :meth:`~satchel.stores.memcached.MemcachedStore._forked`).
    """

    __slots__ = ("_cond", "_limit", "_made", "_options", "_server", "_timeout", "closed", "idle",
                 "name", "waiting")

    def __init__(self, name: str, server: Server, limit: int, timeout: float,
                 connect_timeout: float) -> None:
        self.name = name
        self.closed = False
        self.idle: list[Any] = []
        self.waiting = 0
        self._server = server
        self._limit = limit
        self._timeout = timeout
        self._options: dict[str, Any] = {
            "connect_timeout": connect_timeout, "timeout": timeout, "no_delay": True,
            "default_noreply": False,
        }
        if KERNEL_TIMEOUTS:
            self._options.update(timeout=None, socket_module=_TimedSockets(timeout))
        self._made = 0
        self._cond = threading.Condition(threading.Lock())

    def take(self) -> Any:
        """An idle client, a new one while fewer than ``limit`` exist, or one given back within
        ``timeout``."""
        with self._cond:
            self.waiting += 1
            try:
                deadline = time.monotonic() + self._timeout
                while True:
                    try:
                        return self.idle.pop()
                    except IndexError:
                        pass
                    if self._made < self._limit:
                        self._made += 1
                        return StoreClient(self._server, **self._options)
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise StoreTimeout(
                            f"memcached {self.name}: no free connection within {self._timeout} "
                            f"s (max_pool_size={self._limit})")
                    self._cond.wait(remaining)
            finally:
                self.waiting -= 1

    def given(self) -> None:
        """After a client went back on ``idle`` while someone waits or the list is closed."""
        if self.closed:
            self.close()
        else:
            with self._cond:
                self._cond.notify()

    def close(self) -> None:
        """Close the idle clients, and from now on those given back."""
        self.closed = True
        idle = self.idle
        while idle:
            try:
                idle.pop().close()
            except IndexError:  # taken meanwhile
                break
