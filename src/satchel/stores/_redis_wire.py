"""How RedisStore talks to Redis: its Lua scripts, and its hot commands on reused connections.

A script is run by ``EVALSHA``, with one ``EVAL`` (which also caches it) when the server answers
``NOSCRIPT``.  On a single server the store's hot commands (``HGETALL`` and the scripts) skip
redis-py's per-command layers through :class:`Connections`; everything else goes through the
redis-py client as usual.  What the scripts do to a session is the store's layout, described in
:mod:`satchel.stores.redis`; how they reach the server lives here.
"""

from __future__ import annotations

import inspect
import os
import threading
import time
from collections.abc import Callable, Sequence
from hashlib import sha1
from typing import Any, cast

import redis
from redis.cluster import RedisCluster
from redis.connection import ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["MOVE", "SAVE", "TAKE", "TOUCH", "UPDATE", "Client", "Connections", "Script"]

Client = redis.Redis | RedisCluster

# hiredis is optional (redis-py's speed-up); without it the connection's own packer serves.
_pack_command: Callable[[tuple[Any, ...]], bytes] | None = None
try:
    import hiredis

    _pack_command = cast("Callable[[tuple[Any, ...]], bytes]", hiredis.pack_command)
except ImportError:
    pass

# redis-py before 5.3 wants a command name (unused) to hand out a connection; later versions
# warn when given one.
_CHECKOUT_ARGS = () if inspect.signature(ConnectionPool.get_connection).parameters[
    "command_name"].default is None else ("HGETALL",)


class Script:
    """A Lua script run by ``EVALSHA``; one ``EVAL`` (which also caches it) on ``NOSCRIPT``."""

    __slots__ = ("sha", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = sha1(text.encode(), usedforsecurity=False).hexdigest()

    def run(self, client: Client, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run on the server of ``keys`` (a single server, or one cluster slot) via redis-py."""
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return client.eval(self.text, len(keys), *keys, *args)


# ARGV: create, cleared, expire-at (ms), sid, now, number of fields to delete, those fields,
# then field/value pairs to set.  KEYS[2], when given, is the user's index set (single server
# only).  A session is live while its expiry is after the caller's now; a dead one (or one
# without a readable expiry) is absent: refused without create, started afresh with it.
# Fields go in chunks: Lua's unpack() has a stack limit of a few thousand values.
SAVE = Script("""
local key = KEYS[1]
local stored = redis.call('HGET', key, 'm:expires')
local ends = tonumber(stored)
if not ends or ends <= tonumber(ARGV[5]) then
  if ARGV[1] ~= '1' then return 0 end
  if stored then redis.call('DEL', key) end
elseif ARGV[2] == '1' then
  redis.call('DEL', key)
end
local i, last = 7, 6 + tonumber(ARGV[6])
while i <= last do
  local stop = math.min(i + 499, last)
  redis.call('HDEL', key, unpack(ARGV, i, stop))
  i = stop + 1
end
last = #ARGV
while i <= last do
  local stop = math.min(i + 999, last)
  redis.call('HSET', key, unpack(ARGV, i, stop))
  i = stop + 1
end
redis.call('PEXPIREAT', key, ARGV[3])
if KEYS[2] then redis.call('SADD', KEYS[2], ARGV[4]) end
return 1
""")

# ARGV: now, accessed, expires, lifetime ('' for none), cleared, expire-at (ms; '' for none),
# number of fields to delete, those fields, then field/value pairs to set.  Never creates; a
# session dead by the caller's now (``accessed``) is left alone.  The stored created time caps
# the expiry, and with ``cleared`` the stored created and user are written back after the DEL.
# A capped expiry is formatted with 17 significant digits, which read back as the very same
# float.  Every write runs this script, so it keeps to the cheap path: the caller computes the
# expire-at, the times and the first fields go in one HSET, and only a cap or ``cleared`` does
# more.
UPDATE = Script("""
local key = KEYS[1]
local stored = redis.call('HMGET', key, 'm:created', 'm:expires', 'm:user')
local created, ends = tonumber(stored[1]), tonumber(stored[2])
if not created or not ends or ends <= tonumber(ARGV[1]) then return 0 end
local text, at = ARGV[3], ARGV[6]
if ARGV[4] ~= '' then
  local cap = created + tonumber(ARGV[4])
  if cap < tonumber(text) then
    text, at = string.format('%.17g', cap), string.format('%d', math.floor(cap * 1000))
  end
end
local first, last = 8 + tonumber(ARGV[7]), #ARGV
if ARGV[5] == '1' then
  redis.call('DEL', key)
  if stored[3] then
    redis.call('HSET', key, 'm:created', stored[1], 'm:user', stored[3])
  else
    redis.call('HSET', key, 'm:created', stored[1])
  end
else
  local i = 8
  while i < first do
    local stop = math.min(i + 499, first - 1)
    redis.call('HDEL', key, unpack(ARGV, i, stop))
    i = stop + 1
  end
end
local stop = math.min(first + 995, last)
redis.call('HSET', key, 'm:accessed', ARGV[2], 'm:expires', text, unpack(ARGV, first, stop))
local i = stop + 1
while i <= last do
  stop = math.min(i + 999, last)
  redis.call('HSET', key, unpack(ARGV, i, stop))
  i = stop + 1
end
if at ~= '' then
  redis.call('PEXPIREAT', key, at)
else
  redis.call('PERSIST', key)
end
return 1
""")


# KEYS: the old session, the new one, and (optional) the user's index set; ARGV as SAVE's
# (``sid`` is the new id).  A live old session is renamed, then changed as SAVE changes one;
# a dead or absent one is left alone (0).  One server only: the keys are in different slots.
MOVE = Script("""
local ends = tonumber(redis.call('HGET', KEYS[1], 'm:expires'))
if not ends or ends <= tonumber(ARGV[5]) then return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
local key = KEYS[2]
if ARGV[2] == '1' then redis.call('DEL', key) end
local i, last = 7, 6 + tonumber(ARGV[6])
while i <= last do
  local stop = math.min(i + 499, last)
  redis.call('HDEL', key, unpack(ARGV, i, stop))
  i = stop + 1
end
last = #ARGV
while i <= last do
  local stop = math.min(i + 999, last)
  redis.call('HSET', key, unpack(ARGV, i, stop))
  i = stop + 1
end
redis.call('PEXPIREAT', key, ARGV[3])
if KEYS[3] then redis.call('SADD', KEYS[3], ARGV[4]) end
return 1
""")

# ARGV: the caller's now.  A live session's fields, read and deleted at once (a rotation in
# a cluster, where the new id lives in another slot); nil for a dead or absent one.
TAKE = Script("""
local ends = tonumber(redis.call('HGET', KEYS[1], 'm:expires'))
if not ends or ends <= tonumber(ARGV[1]) then return false end
local fields = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return fields
""")


# ARGV: accessed (the caller's now), expires, expire-at (ms).  Never creates; a session dead
# by the caller's now is left alone.
TOUCH = Script("""
local ends = tonumber(redis.call('HGET', KEYS[1], 'm:expires'))
if not ends or ends <= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'm:accessed', ARGV[1], 'm:expires', ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 1
""")


class Connections:
    """The store's fast lane to one server: pooled connections driven by their own API.

    ``Redis.execute_command`` costs about as much as a loopback round trip: a pool checkout and
    check-in (two lock rounds and metrics hooks), a retry wrapper and timers built per call, and
    a response-callback lookup.  The store's hot commands (``HGETALL`` and its scripts) skip
    those layers and use the connection's public ``send_packed_command``/``read_response``
    (which map socket failures to ``ConnectionError``/``TimeoutError`` and drop the socket),
    keeping what the layers guaranteed:

    * Connections come from a pool of their own (connected, authenticated, with the client's
      timeouts and TLS) and stay on this list of idle ones instead of going back after each
      command.  ``list.pop``/``append`` are atomic, so threads share the list without a lock
      and each connection serves one thread at a time.  At most ``limit`` are made; when all
      are busy a caller waits for one to come back (so a threaded server with more threads
      than connections queues instead of failing): while others finish, up to ``timeout``
      between two that do, and no longer once a command has timed out (see :meth:`_take`).  A
      waiter counts itself (``_waiting``) before it looks at the list, and whoever gives a
      connection back looks at the count after the append: either the waiter finds the
      connection, or it is counted and notified.  A thread that ends leaks nothing.
    * A reply is always read to its end, or the socket is dropped (``disconnect``): a
      connection never goes back on the list with a reply pending.
    * A ``ConnectionError`` (typically a socket that died with a restarted server) is retried
      once on a new socket; a timeout is never retried, so a frozen server costs one timeout
      and a command that may have run is not sent again.  (The retried commands are idempotent:
      a read, or a script that leaves the same state when run twice with the same arguments.)
    * After a fork the child drops the list, which holds its parent's sockets, and takes new
      connections from the pool, which resets itself in the child.
    """

    __slots__ = ("_cond", "_given", "_idle", "_limit", "_lock", "_made", "_pid", "_pool",
                 "_silent_at", "_timeout", "_waiting")

    def __init__(self, pool: ConnectionPool, limit: int, timeout: float) -> None:
        self._pool = pool
        self._limit = limit
        self._timeout = timeout
        self._lock = threading.Lock()
        self._cond = threading.Condition(threading.Lock())
        self._pid = os.getpid()
        self._idle: list[Any] = []
        self._made = 0
        self._waiting = 0
        self._given = 0  # connections given back while someone waited
        self._silent_at = -1.0  # when a command last timed out (monotonic)

    def call(self, *args: str | int | float, decode: bool = True) -> Any:
        """Send one command and return its raw reply (RESP2: HGETALL answers a flat list);
        with ``decode`` false, as bytes."""
        if self._pid != os.getpid():
            self._forked()
        # hiredis packs in C what the connection's packer would first walk in Python; both
        # write a float as its repr, which reads back as the same float.
        packed = [_pack_command(args)] if _pack_command is not None else None
        idle = self._idle
        try:
            conn = idle.pop()
        except IndexError:
            conn = self._take()
        try:
            try:
                conn.send_packed_command(packed or conn.pack_command(*args))
                return conn.read_response() if decode else conn.read_response(
                    disable_decoding=True)
            except RedisConnectionError:
                conn.disconnect()  # the next send connects anew
                conn.send_packed_command(packed or conn.pack_command(*args))
                return conn.read_response() if decode else conn.read_response(
                    disable_decoding=True)
        except ResponseError:
            raise  # an error reply was read whole: the connection is still in step
        except RedisTimeoutError:
            self._silent_at = time.monotonic()  # waiters for a connection give up now
            conn.disconnect()
            raise
        except BaseException:
            conn.disconnect()
            raise
        finally:
            idle.append(conn)
            if self._waiting:
                with self._cond:
                    self._given += 1
                    self._cond.notify()  # one waiter; the others see the count when they wake

    def _take(self) -> Any:
        """An idle connection, a new one while fewer than ``limit`` exist, or one given back.

        A waiter waits while the queue moves: it gives up after ``timeout`` without any
        connection coming back, or at once when a command times out meanwhile (the server
        stopped answering), so a busy server queues its requests and a silent one fails them
        within about the timeout.
        """
        with self._cond:
            self._waiting += 1
            try:
                began = time.monotonic()
                deadline = began + self._timeout
                given = self._given
                while True:
                    if self._silent_at >= began:  # a command timed out while we waited
                        raise RedisTimeoutError("the server stopped answering")
                    try:
                        return self._idle.pop()
                    except IndexError:
                        pass
                    if self._made < self._limit:
                        self._made += 1
                        break
                    now = time.monotonic()
                    if self._given != given:  # another request finished: progress
                        given = self._given
                        deadline = now + self._timeout
                    if now >= deadline:
                        raise RedisTimeoutError(
                            f"no free connection within {self._timeout:g} s "
                            f"(max_connections={self._limit})")
                    self._cond.wait(deadline - now)
            finally:
                self._waiting -= 1
        try:
            return self._pool.get_connection(*_CHECKOUT_ARGS)
        except BaseException:
            with self._cond:
                self._made -= 1
                self._silent_at = time.monotonic()  # no connection to be had: nor for waiters
                self._cond.notify()
            raise

    def hgetall(self, key: str) -> dict[str, str]:
        """``HGETALL`` as a dict, whichever protocol the connections speak."""
        reply = self.call("HGETALL", key)
        if type(reply) is list:  # RESP2: field, value, field, value...
            pairs = iter(reply)
            return dict(zip(pairs, pairs, strict=True))
        return cast("dict[str, str]", reply)  # RESP3 (protocol=3) answers a map

    def run(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run ``script`` on this server, as :meth:`Script.run` does through redis-py."""
        try:
            return self.call("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            return self.call("EVAL", script.text, len(keys), *keys, *args)

    def _forked(self) -> None:
        with self._lock:
            if self._pid != os.getpid():
                self._idle = []  # the parent's sockets: never written to by this process
                self._made = self._waiting = 0
                self._cond = threading.Condition(threading.Lock())
                self._pid = os.getpid()

    def close(self) -> None:
        """Hand the idle connections back to the pool (which the client then disconnects)."""
        idle, self._idle = self._idle, []
        if self._pid == os.getpid():
            for conn in idle:
                self._pool.release(conn)
