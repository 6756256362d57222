"""A client-side deadline for a blocking wait on a socket that the driver will not time out.

psycopg has no read timeout of its own: ``statement_timeout`` needs a server that answers,
and TCP keepalives and ``tcp_user_timeout`` need a peer whose kernel stops acknowledging.  A
server that is stopped (SIGSTOP, a hung host whose kernel still runs) or a pooler that accepts
connections but never answers leaves a query waiting forever.  A :class:`Watchdog` bounds such
a wait: one daemon thread per process shuts down the socket of an operation still running at
its deadline, so the driver's wait ends at once with a closed connection, which the store
reports as a timeout and its pool discards.

Arming and disarming cost a lock round each; the thread wakes every ``tick`` seconds while
anything may be armed, and ends after ``linger`` seconds with nothing armed.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import threading
import time

__all__ = ["Watchdog"]


class Watchdog:
    """Shuts down the socket of an operation that outlives its deadline.

    Args:
        tick: how often deadlines are checked, so how late past one a socket may be shut.
        linger: seconds with nothing armed after which the thread ends (it restarts on use).
    """

    def __init__(self, tick: float = 0.05, linger: float = 10.0) -> None:
        self.tick = tick
        self.linger = linger
        self._lock = threading.Lock()
        self._armed: dict[int, tuple[float, int]] = {}  # token -> (deadline, socket fd)
        self._fired: set[int] = set()
        self._tokens = itertools.count()
        self._running_in: int | None = None  # the pid whose thread is watching

    def arm(self, fd: int, seconds: float) -> int:
        """Watch the socket ``fd`` for ``seconds``; the token to :meth:`disarm` it with."""
        token = next(self._tokens)
        deadline = time.monotonic() + seconds
        with self._lock:
            self._armed[token] = (deadline, fd)
            if self._running_in != os.getpid():  # none yet, or a parent's (not in this child)
                self._running_in = os.getpid()
                threading.Thread(target=self._watch, name="satchel-watchdog",
                                 daemon=True).start()
        return token

    def disarm(self, token: int) -> bool:
        """Stop watching; True when the deadline had passed and the socket was shut down."""
        with self._lock:
            self._armed.pop(token, None)
            if token in self._fired:
                self._fired.discard(token)
                return True
        return False

    def _watch(self) -> None:
        idle_since = time.monotonic()
        while True:
            time.sleep(self.tick)
            now = time.monotonic()
            with self._lock:
                if not self._armed:
                    if now - idle_since >= self.linger:
                        self._running_in = None
                        return
                    continue
                idle_since = now
                for token, (deadline, fd) in list(self._armed.items()):
                    if deadline <= now:
                        # Under the lock: the operation cannot disarm, so the fd is still its.
                        del self._armed[token]
                        self._fired.add(token)
                        _shut_down(fd)


def _shut_down(fd: int) -> None:
    """End both directions of the socket ``fd`` without closing the descriptor (its owner
    does): a waiter on it wakes up to an end of stream."""
    with contextlib.suppress(OSError):
        dup = socket.socket(fileno=os.dup(fd))
        try:
            dup.shutdown(socket.SHUT_RDWR)
        finally:
            dup.close()
