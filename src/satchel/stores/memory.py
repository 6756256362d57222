"""MemoryStore: sessions in this process's memory, bounded by an LRU limit.

For one long-running process (and for tests).  Like Pesto's ``cache_size``, ``max_sessions``
bounds memory: the least recently used session is dropped when a new one would exceed it.
Purge pops an expiry heap, so it costs what it removes.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any
from urllib.parse import SplitResult

from ..errors import ConfigurationError
from ..record import Changes, SessionMeta, SessionRecord
from .base import BaseStore, now_or, url_options

__all__ = ["MemoryStore", "from_url"]


class MemoryStore(BaseStore):
    """An in-process, thread-safe, LRU-bounded store.

    Args:
        max_sessions: the most sessions kept at once; the least recently used goes first.
    """

    thread_safe = True
    blocking = False
    multiprocess_safe = False
    native_expiry = False

    def __init__(self, max_sessions: int = 10_000) -> None:
        if not isinstance(max_sessions, int) or max_sessions < 1:
            raise ConfigurationError("MemoryStore: max_sessions must be a positive integer")
        self.max_sessions = max_sessions
        self._records: OrderedDict[str, SessionRecord] = OrderedDict()
        self._heap: list[tuple[float, str]] = []
        self._users: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def load(self, sid: str) -> SessionRecord | None:
        with self._lock:
            record = self._records.get(sid)
            if record is None:
                return None
            if record.expires <= time.time():
                return None
            self._records.move_to_end(sid)
            return SessionRecord(
                dict(record.data), record.created, record.accessed, record.expires, record.user
            )

    def save(self, sid: str, changes: Changes, meta: SessionMeta) -> bool:
        with self._lock:
            record = self._records.get(sid)
            if record is not None and record.expires <= meta.accessed:
                self._forget(sid, record)
                record = None
            if record is None:
                if not changes.create:
                    return False
                record = SessionRecord(changes.apply({}), meta.created, meta.accessed, meta.expires)
                self._records[sid] = record
                while len(self._records) > self.max_sessions:
                    old_sid, old = next(iter(self._records.items()))
                    self._forget(old_sid, old)
            else:
                data = record.data  # never shared: load hands out copies
                if changes.cleared:
                    data.clear()
                for key in changes.deleted:
                    data.pop(key, None)
                data.update(changes.set)
                record.created = meta.created
                record.accessed = meta.accessed
                record.expires = meta.expires
                self._records.move_to_end(sid)
            self._set_user(sid, record, meta.user)
            self._push(meta.expires, sid)
            return True

    def update(self, sid: str, changes: Changes, accessed: float, expires: float,
               lifetime: float | None) -> bool:
        with self._lock:
            record = self._records.get(sid)
            if record is None or record.expires <= accessed:
                return False
            data = record.data
            if changes.cleared:
                data.clear()
            for key in changes.deleted:
                data.pop(key, None)
            data.update(changes.set)
            if lifetime is not None:
                expires = min(expires, record.created + lifetime)
            record.accessed = accessed
            record.expires = expires
            self._records.move_to_end(sid)
            self._push(expires, sid)
            return True

    def touch(self, sid: str, accessed: float, expires: float) -> bool:
        with self._lock:
            record = self._records.get(sid)
            if record is None or record.expires <= accessed:
                return False
            record.accessed = accessed
            record.expires = expires
            self._push(expires, sid)
            return True

    def move(self, old: str, new: str, changes: Changes, meta: SessionMeta) -> bool:
        """Under the store's lock: the record leaves ``old`` and, changed, lands at ``new``."""
        with self._lock:
            record = self._records.get(old)
            if record is None or record.expires <= meta.accessed:
                return False
            self._forget(old, record)
            moved = SessionRecord(changes.apply(record.data), meta.created, meta.accessed,
                                  meta.expires)
            self._records[new] = moved
            self._set_user(new, moved, meta.user)
            self._push(meta.expires, new)
            return True

    def delete(self, sid: str) -> bool:
        with self._lock:
            record = self._records.get(sid)
            if record is None:
                return False
            self._forget(sid, record)
            return True

    def exists(self, sid: str) -> bool:
        with self._lock:
            record = self._records.get(sid)
            return record is not None and record.expires > time.time()

    def purge(self, now: float | None = None) -> int:
        moment = now_or(now)
        removed = 0
        with self._lock:
            heap = self._heap
            while heap and heap[0][0] <= moment:
                expires, sid = heapq.heappop(heap)
                record = self._records.get(sid)
                # A heap entry is stale when the record was touched, saved again or deleted.
                if record is not None and record.expires == expires:
                    self._forget(sid, record)
                    removed += 1
        return removed

    def count(self) -> int:
        now = time.time()
        with self._lock:
            return sum(1 for r in self._records.values() if r.expires > now)

    def ids(self) -> Iterator[str]:
        now = time.time()
        with self._lock:
            live = [sid for sid, r in self._records.items() if r.expires > now]
        return iter(live)

    def user_sessions(self, user: str) -> list[str]:
        now = time.time()
        with self._lock:
            return [
                sid for sid in self._users.get(user, ())
                if self._records[sid].expires > now
            ]

    # -- internals (called with the lock held) ------------------------------------------------

    def _push(self, expires: float, sid: str) -> None:
        heapq.heappush(self._heap, (expires, sid))
        # Stale entries pile up with every touch; rebuild when they dominate.
        if len(self._heap) > 4 * len(self._records) + 64:
            self._heap = [(r.expires, s) for s, r in self._records.items()]
            heapq.heapify(self._heap)

    def _set_user(self, sid: str, record: SessionRecord, user: str | None) -> None:
        if record.user == user:
            return
        if record.user is not None:
            self._drop_user(sid, record.user)
        record.user = user
        if user is not None:
            self._users.setdefault(user, set()).add(sid)

    def _drop_user(self, sid: str, user: str) -> None:
        sids = self._users.get(user)
        if sids is not None:
            sids.discard(sid)
            if not sids:
                del self._users[user]

    def _forget(self, sid: str, record: SessionRecord) -> None:
        del self._records[sid]
        if record.user is not None:
            self._drop_user(sid, record.user)

    def __repr__(self) -> str:
        return f"<MemoryStore max_sessions={self.max_sessions}>"


def from_url(parsed: SplitResult, **options: Any) -> MemoryStore:
    """``memory://`` or ``memory://?max_sessions=500``."""
    if parsed.netloc or parsed.path not in ("", "/"):
        raise ConfigurationError("memory:// takes no host or path (use memory://?max_sessions=N)")
    query = url_options(parsed)
    if "max_sessions" in query:
        try:
            options.setdefault("max_sessions", int(query.pop("max_sessions")))
        except ValueError:
            raise ConfigurationError("memory://: max_sessions must be an integer") from None
    if query:
        raise ConfigurationError(f"memory://: unknown option(s) {sorted(query)}")
    return MemoryStore(**options)
