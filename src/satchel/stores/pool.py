"""Connection pools that a forked child never shares with its parent.

A pre-forking server (gunicorn, uWSGI) may build a store in the master and fork workers.  Two
processes talking over one socket corrupt each other's conversation, and a child that *closes*
an inherited connection ends the parent's session (PostgreSQL's Terminate, MySQL's COM_QUIT).
So each process builds its own pool on first use: :class:`PerProcess` remembers the pid that
built its value, and a child sets the inherited one aside (kept referenced, never closed, so
no finaliser touches the parent's sockets) and builds a fresh one.

:class:`ConnectionPool` is a small thread-safe pool for drivers without one of their own
(PyMySQL): LIFO reuse, a bound on open connections, idle connections beyond ``min_size``
closed after ``max_idle`` seconds.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["ConnectionPool", "PerProcess", "PoolExhausted"]

T = TypeVar("T")
C = TypeVar("C")

_fork_lock = threading.Lock()
# What a child inherited from its parent: kept alive so that no finaliser closes its sockets.
_inherited: list[object] = []


def _reset_after_fork() -> None:
    # Another thread of the parent may have held the lock at fork(); the child has no such thread.
    global _fork_lock
    _fork_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


class PoolExhausted(TimeoutError):
    """No connection became free within the pool's timeout."""


class PerProcess(Generic[T]):
    """A value built lazily once per process (a pool), never used across ``fork()``."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._slot: tuple[int, T] | None = None

    def get(self) -> T:
        """The value for this process, building it on first use (and first use after fork)."""
        slot = self._slot
        pid = os.getpid()
        if slot is not None and slot[0] == pid:
            return slot[1]
        with _fork_lock:
            slot = self._slot
            if slot is not None and slot[0] != pid:
                _inherited.append(slot[1])
                slot = self._slot = None
            if slot is None:
                slot = self._slot = (pid, self._build())
            return slot[1]

    def close(self, closer: Callable[[T], None]) -> None:
        """Close this process's value; a parent's value seen in a child is only set aside."""
        with _fork_lock:
            slot, self._slot = self._slot, None
        if slot is None:
            return
        if slot[0] == os.getpid():
            closer(slot[1])
        else:
            _inherited.append(slot[1])


class ConnectionPool(Generic[C]):
    """A bounded LIFO pool of connections made by ``connect`` and closed by ``close``.

    Build one per process (see :class:`PerProcess`); it is not itself fork-aware.

    Args:
        connect: opens a connection (raises the driver's error when it cannot).
        close: closes one, quietly.
        min_size: idle connections kept however long they idle.
        max_size: the most connections open at once; further callers wait.
        timeout: how long :meth:`acquire` waits for a free connection before ``PoolExhausted``.
        max_idle: seconds after which an idle connection beyond ``min_size`` is closed.
    """

    def __init__(self, connect: Callable[[], C], close: Callable[[C], None], *,
                 min_size: int = 1, max_size: int = 10, timeout: float = 2.0,
                 max_idle: float = 600.0) -> None:
        self._connect = connect
        self._close = close
        self.min_size = min_size
        self.max_size = max_size
        self.timeout = timeout
        self.max_idle = max_idle
        self._idle: list[tuple[C, float]] = []  # (connection, idle since); newest last
        self._open = 0
        self._closed = False
        self._cond = threading.Condition(threading.Lock())

    def acquire(self) -> tuple[C, bool]:
        """A connection for the caller's exclusive use, and whether it was used before.

        Give it back with :meth:`release`.  A reused connection may have died while idle (a
        server restart); a fresh one that fails means the server is really unreachable.
        """
        deadline = time.monotonic() + self.timeout
        with self._cond:
            while True:
                if self._closed:
                    raise RuntimeError("the connection pool is closed")
                if self._idle:
                    return self._idle.pop()[0], True
                if self._open < self.max_size:
                    self._open += 1
                    break
                left = deadline - time.monotonic()
                if left <= 0 or not self._cond.wait(left):
                    raise PoolExhausted(
                        f"no free connection within {self.timeout:g} s "
                        f"({self.max_size} in use)"
                    )
        try:
            return self._connect(), False
        except BaseException:
            with self._cond:
                self._open -= 1
                self._cond.notify()
            raise

    def release(self, conn: C, *, discard: bool = False) -> None:
        """Return ``conn``; with ``discard`` (it failed, or is in doubt) close it instead."""
        stale: list[C] = []
        now = time.monotonic()
        with self._cond:
            if discard or self._closed:
                self._open -= 1
                stale.append(conn)
            else:
                self._idle.append((conn, now))
                # The oldest idle connections beyond min_size have not been needed lately.
                while (len(self._idle) > self.min_size
                       and now - self._idle[0][1] > self.max_idle):
                    stale.append(self._idle.pop(0)[0])
                    self._open -= 1
            self._cond.notify()
        for old in stale:
            self._close(old)

    def discard_idle(self) -> int:
        """Close every idle connection (after a server restart they are all dead)."""
        with self._cond:
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._cond.notify_all()
        for conn, _ in idle:
            self._close(conn)
        return len(idle)

    def close(self) -> None:
        """Close the idle connections; those in use are closed as they come back."""
        with self._cond:
            self._closed = True
        self.discard_idle()

    @property
    def size(self) -> int:
        """How many connections are open (idle or in use)."""
        return self._open
