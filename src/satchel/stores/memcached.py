"""MemcachedStore: sessions as memcached items, merged by appending, expired by memcached itself.

One session is one item, ``prefix + sid``: a log of frames (the formats are
:mod:`satchel.stores._memcache_item`'s).  The first frame holds the whole session; each write
appends one frame with only what it changed, its times and, if it changed, the user, using
memcached's ``append``.  Reading applies the frames in order.  So a write never reads first and
costs one round trip, and two concurrent requests that write different keys both land, in the
order memcached took them: the merge is memcached's own, atomic per item.

* ``append`` moves no TTL, so each append rides in one packet with a meta get that moves it to
  the new expiry and answers the TTL it had (one round trip, one wake-up of the server).
* ``append`` does nothing on an item that is not there: an update or touch of a session that
  was deleted or expired meanwhile is refused, never resurrected.  memcached's clock ticks in
  whole seconds, so it may keep an item a little past the session's expiry, and it knows
  nothing of the caller's clock: a frame written at or after the session's expiry (its access
  time, the writer's now, is not before it) ends the session for every reader, and a write
  whose item had too little TTL left to be surely live by the caller's now reads the item back
  to tell the caller whether it landed (see :func:`_surely_live`).
* About one write in ``compact_every`` (at random, so that processes share no bookkeeping)
  instead reads the item with ``gets`` and writes it back whole, folded into one frame, with
  ``cas`` (two round trips; again after losing a race, a bounded number of times, then
  ``SessionConflict``).  So does a write that memcached refuses because the log would outgrow
  the item size limit, and a load that finds more than ``max_waste`` frames and replaced values
  to skip folds them with one ``cas``.  A new session is one ``add``.
* A load is one ``gets``; a request that never touches its session sends nothing.

Next to Beaker's ``ext:memcached``, a read costs one round trip to Beaker's two, and a write one
to Beaker's two (a ``get`` and a blind ``set`` of the whole session, which loses the keys of a
concurrent request).  A save that changes the session's user adds two more (the per-user index,
below).

Limits of memcached, and what this store does about them:

* **Item size.**  memcached refuses items above its ``-I`` limit (1 MiB by default).  A write
  whose frame, or whose whole session once folded (key, frames and memcached's ~60-byte item
  header), would exceed ``max_item_size`` raises ``SessionTooLarge`` naming the size and the
  limit, before it is sent; a log that merely grew too long is folded instead.  Set
  ``max_item_size`` to match the servers' ``-I``.
* **Eviction.**  memcached is a cache: under memory pressure it may drop any item, sessions
  included, before they expire.  A dropped session reads as absent (the user is logged out).
  Nothing is raised because nothing can be known; size the servers (``-m``) for the sessions
  they hold, or use a persistent store where losing a session is not acceptable.
* **No listing.**  memcached cannot enumerate its keys, so ``ids()`` and ``count()`` raise
  ``NotImplementedError`` and the class declares ``listable = False``.
* **Per-user index.**  So that ``user_sessions`` and ``delete_user`` ("log out everywhere") work,
  each user has an index item (``prefix + "user:" + sha256(user)``) listing their session ids,
  updated with gets/cas when a session's user changes.  Answers are checked against the
  session items, so an index entry never outlives what it names in effect; dead entries are
  pruned when the index is next written.  The index item has no TTL of its own (a touch may
  extend a session past any TTL chosen at login) and may itself be evicted under pressure.
* **Expiry** is native: each item's TTL follows ``meta.expires``, so ``purge`` returns 0.
  memcached reads a TTL above 30 days as an absolute unix time; both forms are sent correctly.
* **No authentication.**  Whoever reaches the servers can write items; an item that does not
  parse reads as absent (and is logged, without its key), never as an error, and the load that
  finds it deletes it, so that later appends are refused as on no item.

Several servers (``memcached://h1:p1,h2:p2``) share the keys by rendezvous hashing; a session
lives on exactly one server, and an unreachable server makes its sessions raise
``StoreUnavailable`` rather than silently moving them elsewhere.

The protocol is pymemcache's: each command is a call on a pymemcache ``Client`` taken from a
short list of idle ones (see :mod:`satchel.stores._memcache_wire`), which skips the lock and
context manager its ``PooledClient`` costs per call while keeping the bounds it gave.  The two
commands of every request (a one-key ``gets``; ``touch`` + ``append``) are sent on that client's
socket and read with pymemcache's reply readers, past its many-key command layer.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn
from urllib.parse import SplitResult

from pymemcache.client.base import Client
from pymemcache.client.rendezvous import RendezvousHash
from pymemcache.exceptions import (
    MemcacheClientError,
    MemcacheError,
    MemcacheServerError,
    MemcacheUnexpectedCloseError,
)

from ..errors import (
    ConfigurationError,
    SatchelError,
    SessionConflict,
    SessionTooLarge,
    StoreTimeout,
    StoreUnavailable,
)
from ..record import Changes, SessionMeta, SessionRecord
from ._memcache_item import (
    decode_index,
    decode_item,
    encode_base,
    encode_delta,
    encode_index,
    parse_item,
)
from ._memcache_wire import Clients, Server, StoreClient
from .base import BaseStore, url_options

__all__ = ["MemcachedStore", "from_url"]

log = logging.getLogger("satchel")

#: builds the record to write whole from the stored one (None: absent or dead); None: write nothing
_Merge = Callable[[SessionRecord | None], SessionRecord | None]

MIB = 1024 * 1024
#: memcached reads an expiry above this many seconds as an absolute unix time
RELATIVE_TTL_LIMIT = 30 * 24 * 3600
#: room for memcached's item header, flags and CAS value, counted against ``max_item_size``
#: (memcached 1.6 with ``-I 1m`` keeps key + value + 59 bytes at most)
ITEM_OVERHEAD = 64
#: an index entry younger than this is kept even if its session is not (yet) written
INDEX_GRACE = 300.0
#: how long an emptied per-user index lingers (seconds)
EMPTY_INDEX_TTL = 3600
DEFAULT_PORT = 11211

#: what a pooled connection closed by the server while idle raises on its next use
_STALE = (MemcacheUnexpectedCloseError, BrokenPipeError, ConnectionResetError)


class MemcachedStore(BaseStore):
    """Sessions in one or more memcached servers.

    Args:
        servers: ``"host:port"``, ``"h1:p1,h2:p2"`` or a sequence of ``(host, port)``.
        prefix: prepended to every key, so that several applications can share servers.
        max_item_size: the servers' item size limit (``-I``) in bytes.
        connect_timeout, timeout: seconds to connect, and to wait for each answer.
        max_pool_size: connections kept per server; a caller waits up to ``timeout`` for one.
        cas_retries: how many times a save re-reads and merges after losing a race.
        compact_every: about one write in this many folds the session's log into one frame
            (two round trips instead of one); 0 leaves folding to reads and to the size limit.
            A fold costs about as much as 30 appends, while a longer log only makes each
            append copy a few more kilobytes inside memcached (a read folds a log it finds long
            in any case), so the default lets a write-only session's log reach 64 frames.
    """

    thread_safe = True
    multiprocess_safe = True
    native_expiry = True
    listable = False
    #: an index entry younger than this (seconds) is kept even if its session is not (yet)
    #: written: a login writes its index entry just before its session
    index_grace = INDEX_GRACE
    #: a load that finds more waste than this in a log (frames beyond the first, and values
    #: that later frames replaced) folds it, one more round trip: a little parses faster than a
    #: round trip costs, a lot slows every read that follows
    max_waste = 8

    def __init__(
        self,
        servers: str | Sequence[Server] = f"127.0.0.1:{DEFAULT_PORT}",
        *,
        prefix: str = "satchel:",
        max_item_size: int = MIB,
        connect_timeout: float = 2.0,
        timeout: float = 2.0,
        max_pool_size: int = 16,
        cas_retries: int = 16,
        compact_every: int = 64,
    ) -> None:
        self.servers = parse_servers(servers) if isinstance(servers, str) else list(servers)
        if not self.servers:
            raise ConfigurationError("MemcachedStore: at least one server is needed")
        if not prefix.isprintable() or any(c.isspace() for c in prefix) or len(prefix) > 100:
            raise ConfigurationError("MemcachedStore: prefix must be printable, without spaces, "
                                     "at most 100 characters")
        for name, value in (("max_item_size", max_item_size), ("max_pool_size", max_pool_size),
                            ("cas_retries", cas_retries)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigurationError(f"MemcachedStore: {name} must be a positive integer")
        if not isinstance(compact_every, int) or isinstance(compact_every, bool) \
                or compact_every < 0:
            raise ConfigurationError("MemcachedStore: compact_every must be an integer >= 0")
        for name, seconds in (("connect_timeout", connect_timeout), ("timeout", timeout)):
            if not isinstance(seconds, (int, float)) or not 0 < seconds < math.inf:
                raise ConfigurationError(f"MemcachedStore: {name} must be a positive number")
        self.prefix = prefix
        self.max_item_size = max_item_size
        self.connect_timeout = float(connect_timeout)
        self.timeout = float(timeout)
        self.max_pool_size = max_pool_size
        self.cas_retries = cas_retries
        self.compact_every = compact_every
        self._names = [f"{host}:{port}" for host, port in self.servers]
        self._hash = RendezvousHash(list(self._names))
        self._closed = False
        self._pid = os.getpid()
        self._pools: dict[str, Clients] = {}
        #: the one server's clients when there is one server (no hashing), else None
        self._single: Clients | None = None
        self._open_pools()

    # -- connections --------------------------------------------------------------------------

    def _open_pools(self) -> None:
        """Fresh, empty client lists (no socket is opened before a command needs one)."""
        pools = {name: Clients(name, server, self.max_pool_size, self.timeout,
                                self.connect_timeout)
                 for name, server in zip(self._names, self.servers, strict=True)}
        self._pools = pools
        self._single = pools[self._names[0]] if len(pools) == 1 else None

    def _forked(self) -> None:
        """In a forked child: drop the parent's clients, never writing to their sockets.

        No lock is taken (the parent's may have been held by another thread at the fork).  Two
        threads of a child that both get here merely build the lists twice; the loser's few
        clients are collected after their one command.
        """
        if self._closed:
            self._pools, self._single = {}, None
        else:
            self._open_pools()
        self._pid = os.getpid()  # last: until now, every thread of the child comes here

    def _run(self, key: str, what: str, method: Callable[..., Any], *args: Any) -> Any:
        """``method(client, *args)`` on a client of the server owning ``key``; memcache errors
        become satchel's.

        A pooled connection that the server closed while idle (a restart) fails on first use;
        the command is then sent once more on a fresh connection.  Every command here may be
        repeated: reads are pure, a repeated ``add``/``cas`` finds the item already changed and
        the caller re-reads and merges again (applying changes is idempotent), a frame
        appended twice applies the same changes twice, to the same effect, and a repeated
        ``delete`` merely reports the item gone.  A timeout is not repeated.
        """
        if self._pid != os.getpid():
            self._forked()
        clients = self._single
        if clients is None:
            clients = self._pools.get(self._hash.get_node(key))
            if clients is None:
                raise StoreUnavailable("MemcachedStore is closed")
        idle = clients.idle
        try:
            client = idle.pop()  # the common case of take(), inline
        except IndexError:
            client = clients.take()
        try:
            try:
                return method(client, *args)
            except _STALE:
                client.close()
                return method(client, *args)
        except MemcacheClientError:
            client.close()
            raise  # a malformed command is a bug here, not an outage
        except (OSError, MemcacheError) as exc:
            client.close()
            raise self._failure(exc, clients.name, what) from exc
        except BaseException:
            client.close()  # interrupted mid-reply: the socket is out of step
            raise
        finally:
            idle.append(client)  # give(), inline
            if clients.waiting or clients.closed:
                clients.given()

    def _failure(self, exc: OSError | MemcacheError, name: str, what: str) -> SatchelError:
        """The satchel error for a failed command (raise it ``from exc``)."""
        if isinstance(exc, (TimeoutError, BlockingIOError)):  # Python's timeout, the kernel's
            return StoreTimeout(f"memcached {name}: {what} timed out after {self.timeout} s")
        if isinstance(exc, MemcacheServerError) and "too large" in str(exc):
            return SessionTooLarge(f"memcached {name} refused an item as too large "
                                   f"(max_item_size={self.max_item_size})",
                                   -1, self.max_item_size)
        return StoreUnavailable(f"memcached {name}: {what} failed ({_describe(exc)})")

    def _get(self, key: str) -> bytes | None:
        return self._run(key, "get", Client.get, key)  # type: ignore[no-any-return]

    def _gets(self, key: str) -> tuple[bytes | None, bytes | None]:
        return self._run(key, "gets", StoreClient.gets_one, key)  # type: ignore[no-any-return]

    def _get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        """One ``get`` per server holding any of ``keys``."""
        by_server: dict[str, list[str]] = {}
        for key in keys:
            by_server.setdefault(self._hash.get_node(key), []).append(key)
        found: dict[str, bytes] = {}
        for group in by_server.values():
            found.update(self._run(group[0], "get", Client.get_many, group))
        return found

    def _check_size(self, key: str, payload: bytes) -> None:
        """Refuse, before sending, an item memcached would refuse (or silently not keep)."""
        size = len(key) + len(payload) + ITEM_OVERHEAD
        if size > self.max_item_size:
            raise SessionTooLarge(
                f"memcached item of {size} bytes exceeds max_item_size={self.max_item_size} bytes",
                size, self.max_item_size)

    def _write(self, key: str, payload: bytes, cas: bytes | None, expire: int) -> bool:
        """``add`` when ``cas`` is None, else ``cas``; True if it was stored."""
        self._check_size(key, payload)
        if cas is None:
            return bool(self._run(key, "add", Client.add, key, payload, expire, False))
        return self._run(key, "cas", Client.cas, key, payload, cas, expire, False) is True

    # -- the contract --------------------------------------------------------------------------

    def load(self, sid: str) -> SessionRecord | None:
        key = self.prefix + sid
        raw, cas = self._gets(key)
        parsed = parse_item(raw)
        if parsed is None:
            if raw is not None:
                # Unreadable: drop it, so that appends to it fail as they do on no item.
                self._run(key, "delete", Client.delete, key, True)
            return None
        record = parsed.record
        if parsed.waste > self.max_waste and cas is not None:
            self._fold(key, record, cas)
        if record.expires <= time.time():
            return None
        return record

    def save(self, sid: str, changes: Changes, meta: SessionMeta) -> bool:
        key = self._key(sid)

        def merged(stored: SessionRecord | None) -> SessionRecord | None:
            if stored is None and not changes.create:
                return None
            data = changes.apply({} if stored is None else stored.data)
            return SessionRecord(data, meta.created, meta.accessed, meta.expires, meta.user)

        if meta.user is not None and changes.user_changed:
            # The index is written first: an entry whose session was never written is
            # filtered out on reading, while a session missing from its index would
            # survive "log out everywhere".
            self._index_update(meta.user, add=sid)
        if changes.create:
            first = merged(None)
            assert first is not None
            if self._write(key, _base(first), None, _expire(meta.expires)):
                return True
            return self._rewrite(key, merged, "save", meta.accessed)  # the id is taken: merge
        frame = encode_delta(changes, meta.accessed, meta.expires, user=meta.user,
                             set_user=changes.user_changed)
        return self._append(key, frame, meta.accessed, meta.expires, merged, "save")

    def update(self, sid: str, changes: Changes, accessed: float, expires: float,
               lifetime: float | None) -> bool:
        """One appended frame that keeps the stored created time and user: one round trip, no
        load first; the frame carries ``lifetime``, so reading caps the expiry."""

        def merged(stored: SessionRecord | None) -> SessionRecord | None:
            if stored is None:
                return None
            capped = expires if lifetime is None else min(expires, stored.created + lifetime)
            return SessionRecord(changes.apply(stored.data), stored.created, accessed, capped,
                                 stored.user)

        frame = encode_delta(changes, accessed, expires, lifetime)
        return self._append(self._key(sid), frame, accessed, expires, merged, "update")

    def touch(self, sid: str, accessed: float, expires: float) -> bool:
        """A frame of times alone, appended with a touch of memcached's TTL: one round trip."""

        def merged(stored: SessionRecord | None) -> SessionRecord | None:
            if stored is None:
                return None
            return SessionRecord(stored.data, stored.created, accessed, expires, stored.user)

        frame = encode_delta(None, accessed, expires)
        try:
            return self._append(self._key(sid), frame, accessed, expires, merged, "touch")
        except SessionConflict:
            return True  # every attempt lost to a save, and each such save wrote fresh times

    def move(self, old: str, new: str, changes: Changes, meta: SessionMeta) -> bool:
        """Read the old item, delete it only if no write landed since (memcached's meta
        delete with its CAS value; else read again and merge), then add the new one.  A write
        to ``old`` after the delete finds no item."""
        okey, nkey = self._key(old), self._key(new)
        if meta.user is not None:
            self._index_update(meta.user, add=new)  # first, as in save
        for attempt in range(self.cas_retries):
            raw, cas = self._gets(okey)
            stored = decode_item(raw)
            if stored is None or cas is None or stored.expires <= meta.accessed:
                return False
            record = SessionRecord(changes.apply(stored.data), meta.created, meta.accessed,
                                   meta.expires, meta.user)
            payload = _base(record)
            self._check_size(nkey, payload)  # before the old item goes
            deleted = self._run(okey, "delete", StoreClient.delete_if, okey, cas)
            if deleted == b"NF":
                return False
            if deleted == b"HD":
                return self._write(nkey, payload, None, _expire(meta.expires))
            _backoff(attempt)  # a write landed meanwhile: carry it over
        raise SessionConflict(f"session changed concurrently {self.cas_retries} times; "
                              "the rotation was not applied")

    def delete(self, sid: str) -> bool:
        key = self._key(sid)
        return bool(self._run(key, "delete", Client.delete, key, False))

    def purge(self, now: float | None = None) -> int:
        return 0  # memcached drops expired items itself

    def ids(self) -> Iterator[str]:
        raise NotImplementedError(
            "memcached cannot list its keys: MemcachedStore.ids() is not supported")

    def count(self) -> int:
        raise NotImplementedError(
            "memcached cannot list its keys: MemcachedStore.count() is not supported")

    def user_sessions(self, user: str) -> list[str]:
        raw = self._get(self._user_key(user))
        if raw is None:
            return []
        sids = list(decode_index(raw))
        live = self._live_of(user, sids)
        return [sid for sid in sids if sid in live]

    def delete_user(self, user: str) -> int:
        sids = self.user_sessions(user)
        removed = sum(1 for sid in sids if self.delete(sid))
        self._index_update(user, drop=set(sids))
        return removed

    def close(self) -> None:
        """Close the idle connections; a busy one is closed when its command is done."""
        self._closed = True
        pools, self._pools, self._single = self._pools, {}, None
        if self._pid != os.getpid():
            return  # a parent's, seen in a child that never used them: not ours to close
        for clients in pools.values():
            clients.close()

    def __repr__(self) -> str:
        return f"<MemcachedStore {','.join(self._names)} prefix={self.prefix!r}>"

    # -- internals ------------------------------------------------------------------------------

    def _key(self, sid: str) -> str:
        return self.prefix + sid

    def _append(self, key: str, frame: bytes, now: float, expires: float, merged: _Merge,
                what: str) -> bool:
        """Append ``frame`` (written at the caller's ``now``) to the item, moving its TTL to
        ``expires``: one round trip.

        memcached refuses the append when there is no such item (False: nothing is
        resurrected) and when the item would outgrow its size limit; then, and for about one
        write in ``compact_every`` (at random, so that nothing is shared between processes),
        the item is rewritten whole with ``merged``, which folds its log into one frame.  An
        append to an item whose TTL left it in doubt is checked by reading the item back.
        """
        self._check_size(key, frame)
        if self.compact_every and random.random() * self.compact_every < 1:
            return self._rewrite(key, merged, what, now)
        appended, ttl = self._run(key, "append", StoreClient.append_touching, key, frame,
                                  _expire(expires))
        if not appended:
            return self._rewrite(key, merged, what, now)
        if _surely_live(ttl, now):
            return True
        # Near its end, or judged by another clock: the frame counts only if the session was
        # live at ``now`` (readers ignore a frame written after its end).  A dead one is
        # dropped, so that the TTL this write moved keeps nothing alive.
        record = decode_item(self._get(key))
        if record is not None and record.expires > now:
            return True
        self._run(key, "delete", Client.delete, key, True)
        return False

    def _rewrite(self, key: str, merged: _Merge, what: str, now: float) -> bool:
        """Read the item with ``gets``, write ``merged(stored)`` back whole with ``add`` or
        ``cas``, and again while another request wins the race; False if ``merged`` says there
        is nothing to write.  A session dead at the caller's ``now`` is absent."""
        for attempt in range(self.cas_retries):
            raw, cas = self._gets(key)
            stored = decode_item(raw)
            if stored is not None and stored.expires <= now:
                stored = None  # dead but not yet dropped: never merge into it
            record = merged(stored)
            if record is None:
                return False
            if self._write(key, _base(record), None if raw is None else cas,
                           _expire(record.expires)):
                return True
            _backoff(attempt)
        raise SessionConflict(f"session changed concurrently {self.cas_retries} times; "
                              f"the {what} was not applied")

    def _fold(self, key: str, record: SessionRecord, cas: bytes) -> None:
        """Rewrite a long log as one frame, unless it changed since it was read (its writer
        or the next reader folds it then).  Best effort: the read it serves goes on."""
        try:
            self._write(key, _base(record), cas, _expire(record.expires))
        except SatchelError:
            log.warning("memcached session item could not be folded", exc_info=True)

    def _user_key(self, user: str) -> str:
        # Hashed: a user name may hold any character, and memcached keys may not.
        return self.prefix + "user:" + hashlib.sha256(user.encode()).hexdigest()

    def _live_of(self, user: str, sids: Sequence[str]) -> set[str]:
        """Those of ``sids`` whose session is live and belongs to ``user``."""
        if not sids:
            return set()
        now = time.time()
        found = self._get_many([self._key(sid) for sid in sids])
        live = set()
        for sid in sids:
            record = decode_item(found.get(self._key(sid)))
            if record is not None and record.user == user and record.expires > now:
                live.add(sid)
        return live

    def _index_update(self, user: str, *, add: str | None = None,
                      drop: set[str] | frozenset[str] = frozenset()) -> None:
        """Add ``add`` to and remove ``drop`` from the user's index, pruning dead entries."""
        key = self._user_key(user)
        for attempt in range(self.cas_retries):
            raw, cas = self._gets(key)
            entries = decode_index(raw) if raw is not None else {}
            if add is None and raw is None:
                return
            now = time.time()
            old = [s for s, added in entries.items() if now - added > self.index_grace and s != add]
            dead = set(old) - self._live_of(user, old)
            kept = {s: t for s, t in entries.items() if s not in dead and s not in drop}
            if add is not None:
                kept[add] = now  # young again: its session is about to be (re)written
            elif kept == entries:
                return
            payload = encode_index(kept)
            # An empty index is written, not deleted (memcached's delete takes no CAS, so it
            # could drop a concurrent login), and left to expire unless a login refills it.
            expire = 0 if kept else EMPTY_INDEX_TTL
            if self._write(key, payload, None if raw is None else cas, expire):
                return
            _backoff(attempt)
        raise SessionConflict(f"the user index changed concurrently {self.cas_retries} times")


def _base(record: SessionRecord) -> bytes:
    return encode_base(record.data, record.created, record.accessed, record.expires, record.user)


def _describe(exc: BaseException) -> str:
    """The error's type and the server's or the OS's words; never a key or a value."""
    if isinstance(exc, OSError):
        detail = exc.strerror or ""
    elif exc.args and isinstance(exc.args[0], bytes):
        detail = exc.args[0].decode("ascii", "replace")
    else:
        detail = str(exc)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _expire(expires: float) -> int:
    """memcached's expiry for an absolute moment: relative seconds up to 30 days, else the
    unix time itself (memcached's own rule); -1 (already expired) for a moment past; 0 (no
    expiry) for none (``math.inf``: a session without an idle timeout).

    memcached's clock ticks once a second, so an item may be dropped up to a second before
    the expiry it was given: one second of slack keeps it at least until ``expires`` (``load``
    still refuses it once ``expires`` has passed).
    """
    if expires == math.inf:
        return 0
    remaining = expires - time.time()
    if remaining <= 0:
        return -1
    ttl = math.ceil(remaining) + 1
    if ttl <= RELATIVE_TTL_LIMIT:
        return ttl
    return math.ceil(expires) + 1


#: memcached keeps an item within this many seconds of the TTL it was given by this machine's
#: clock (its own clock ticks in whole seconds, and the TTL was rounded up with a second spare)
_TTL_SLACK = 3


def _surely_live(ttl: int | None, now: float) -> bool:
    """Whether an item that had ``ttl`` seconds left (memcached's answer; -1: none) holds a
    session still live at the caller's ``now``, without reading it.

    The TTL follows the session's expiry on this machine's clock, give or take
    ``_TTL_SLACK``: enough to be sure while the session has a few seconds left and the caller's
    clock agrees with this machine's, which is all but every write.
    """
    if ttl is None:
        return False
    return ttl < 0 or now - time.time() <= ttl - _TTL_SLACK


def _backoff(attempt: int) -> None:
    """A jittered, exponentially growing pause (capped at 50 ms) after a lost race, so that
    contenders spread out instead of colliding again in lock step."""
    time.sleep(random.uniform(0, min(0.05, 0.0005 * 2**attempt)))


def _fail(message: str) -> NoReturn:
    raise ConfigurationError(message)


def parse_servers(spec: str) -> list[Server]:
    """``"h1:p1,h2:p2"`` (port optional, IPv6 in brackets) -> ``[(host, port), ...]``."""
    servers = []
    for item in spec.split(","):
        item = item.strip()
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            port_text = rest[1:] if rest.startswith(":") else ""
            if rest and not rest.startswith(":"):
                _fail(f"memcached://: malformed server {item!r}")
        else:
            host, _, port_text = item.partition(":")
        if not host:
            _fail(f"memcached://: server {item!r} has no host")
        try:
            port = int(port_text) if port_text else DEFAULT_PORT
        except ValueError:
            _fail(f"memcached://: server {item!r} has a malformed port")
        if not 0 < port < 65536:
            _fail(f"memcached://: server {item!r} has a port out of range")
        servers.append((host, port))
    return servers


_INT_OPTIONS = ("max_item_size", "max_pool_size", "cas_retries", "compact_every")
_FLOAT_OPTIONS = ("connect_timeout", "timeout")


def from_url(parsed: SplitResult, **options: Any) -> MemcachedStore:
    """``memcached://host:port`` or ``memcached://h1:p1,h2:p2?prefix=app:&timeout=1``."""
    if "@" in parsed.netloc:
        _fail("memcached:// takes no user or password")
    if parsed.path not in ("", "/"):
        _fail("memcached:// takes no path (use memcached://host:port?prefix=...)")
    servers = parse_servers(parsed.netloc) if parsed.netloc else [("127.0.0.1", DEFAULT_PORT)]
    query = url_options(parsed)
    for name in (*_INT_OPTIONS, *_FLOAT_OPTIONS, "prefix"):
        if name not in query:
            continue
        text = query.pop(name)
        try:
            value: Any = (int(text) if name in _INT_OPTIONS
                          else float(text) if name in _FLOAT_OPTIONS else text)
        except ValueError:
            _fail(f"memcached://: {name} must be a number")
        options.setdefault(name, value)
    if query:
        _fail(f"memcached://: unknown option(s) {sorted(query)}")
    return MemcachedStore(servers, **options)
