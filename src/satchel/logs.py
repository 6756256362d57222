"""satchel's loggers: silent unless configured, and a ``satchel.security`` that cannot be flooded.

A library must not print: ``satchel`` has a ``NullHandler``, so an application that configures
no logging sees nothing.  Every client can send a tampered cookie, so the warnings they cause
are rate-limited per message kind (the message's format string): at most
``SecurityRateLimit.per_window`` per minute, then silence; the first warning of the next
window says how many like it were suppressed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["SecurityRateLimit", "install", "security_limit"]

WINDOW = 60.0
PER_WINDOW = 10
_MAX_KINDS = 1000  # format strings are satchel's own, so few; bounded anyway


class SecurityRateLimit(logging.Filter):
    """A logger filter: at most ``per_window`` records per message kind per ``window`` seconds.

    Args:
        clock: a monotonic time source; tests pass one they control.
    """

    def __init__(self, per_window: int = PER_WINDOW, window: float = WINDOW,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.per_window = per_window
        self.window = window
        self.clock = clock
        self._lock = threading.Lock()
        # kind -> [window start, records let through, records suppressed]
        self._kinds: dict[tuple[int, str], list[float]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.levelno, str(record.msg))
        now = self.clock()
        with self._lock:
            state = self._kinds.get(kind)
            suppressed = 0
            if state is None or now - state[0] >= self.window:
                if state is not None:
                    suppressed = int(state[2])
                elif len(self._kinds) >= _MAX_KINDS:
                    self._kinds.clear()
                state = self._kinds[kind] = [now, 0, 0]
            if state[1] >= self.per_window:
                state[2] += 1
                return False
            state[1] += 1
        if suppressed:
            record.msg = (f"{record.getMessage()} ({suppressed} more like this suppressed in "
                          f"the last {self.window:g} s)")
            record.args = None
        return True

    def reset(self) -> None:
        """Forget every window (tests start from a quiet log)."""
        with self._lock:
            self._kinds.clear()


security_limit = SecurityRateLimit()


def install() -> None:
    """Attach the ``NullHandler`` and the rate limit once (idempotent)."""
    root = logging.getLogger("satchel")
    if not any(isinstance(h, logging.NullHandler) for h in root.handlers):
        root.addHandler(logging.NullHandler())
    security = logging.getLogger("satchel.security")
    if security_limit not in security.filters:
        security.addFilter(security_limit)
