"""Purger: removes expired sessions on a schedule, in a thread that stops cleanly.

Stores with native expiry (Redis, memcached) need none.  The thread starts on the first
request rather than at import or construction, so a server that forks workers after loading
the application (gunicorn ``--preload``) runs it in each worker, not in a dead parent.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from .errors import StoreUnavailable

__all__ = ["Purger"]

log = logging.getLogger("satchel")


class Purger:
    """Calls ``purge()`` every ``every`` seconds in a daemon thread until :meth:`stop`."""

    def __init__(self, purge: Callable[[], int], every: float) -> None:
        self._purge = purge
        self.every = every
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self.runs = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._pid == os.getpid() and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread in this process, if it is not already running here."""
        with self._lock:
            if self.running or self._stop.is_set():
                return
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="satchel-purge", daemon=True)
            self._thread.start()

    def run_once(self) -> int:
        """Purge now, in this thread; log rather than raise (a purge must not fail a request)."""
        try:
            removed = self._purge()
        except StoreUnavailable:
            log.warning("session purge skipped: store unavailable")
            return 0
        except Exception:
            log.exception("session purge failed")
            return 0
        self.runs += 1
        if removed:
            log.debug("purged %d expired sessions", removed)
        return removed

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.run_once()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and wait for it (at most ``timeout`` seconds)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout)
