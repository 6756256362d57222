"""The exceptions satchel raises; each says whose fault it is.

``ConfigurationError`` is the programmer's, ``StoreUnavailable``/``StoreTimeout`` are the
infrastructure's, ``SessionConflict`` is a concurrent request's.  All share ``SatchelError``.
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "SatchelError",
    "SessionConflict",
    "SessionNotLoaded",
    "SessionTooLarge",
    "StoreMisconfigured",
    "StoreTimeout",
    "StoreUnavailable",
]


class SatchelError(Exception):
    """Root of every error satchel raises on purpose."""


class ConfigurationError(SatchelError, ValueError):
    """satchel was set up wrongly: a bad option, URL or secret.  Fix the code or config."""


class StoreMisconfigured(ConfigurationError):
    """The store refuses satchel's settings: credentials, database, an option, permissions.

    Not an outage: retrying will not help.  Raised when the store is first used (or built).
    """


class StoreUnavailable(SatchelError):
    """The store's backend cannot be reached or failed; the request may be retried later."""


class StoreTimeout(StoreUnavailable):
    """The store's backend did not answer within the configured timeout."""


class SessionConflict(SatchelError):
    """A concurrent request changed the session in a way this request cannot merge."""


class SessionNotLoaded(SatchelError, RuntimeError):
    """Async code touched a session that was not read yet, on the event loop, where reading
    it would block every request.  ``await session.load()`` first, or preload it."""


class SessionTooLarge(SatchelError):
    """A session does not fit where it must be kept (a cookie, a memcached item)."""

    def __init__(self, message: str, size: int, limit: int) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit
