"""Session events: what the engine tells an application's ``on_event`` hook.

An event names a session by its fingerprint (a short keyed hash of the id: enough to follow one
session through the log, useless to whoever reads it), with its user and a reason, never the
id or the data.  A hook that raises is logged on ``satchel`` and the request goes on: an audit
trail must not be able to take the site down.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["CREATED", "EXPIRED", "INVALIDATED", "LOADED", "ROTATED", "SAVED", "Event",
           "EventHook", "Events"]

log = logging.getLogger("satchel")

CREATED = "created"  # a new session was stored
LOADED = "loaded"  # a live session was read for a request
SAVED = "saved"  # an existing session's changes were stored
ROTATED = "rotated"  # a session went on under a fresh id (the fingerprint is the new id's)
EXPIRED = "expired"  # a session was found dead on load
INVALIDATED = "invalidated"  # a session was logged out (``session.invalidate()``)

FINGERPRINT_HEX = 16


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened to one session.

    Attributes:
        kind: one of ``created``, ``loaded``, ``saved``, ``rotated``, ``expired``,
            ``invalidated``.
        fingerprint: a keyed hash of the session id (16 hex digits), stable for the id.
        user: the session's user, when it has one.
        reason: why, where there is more to say (``"idle_timeout"``, ``"blind_write"``...).
    """

    kind: str
    fingerprint: str
    user: str | None = None
    reason: str | None = None


EventHook = Callable[[Event], object]


class Events:
    """The hook and the fingerprint key, bound once per middleware."""

    __slots__ = ("hook", "key")

    def __init__(self, hook: EventHook, key: bytes) -> None:
        self.hook = hook
        self.key = key

    def fingerprint(self, sid: str) -> str:
        """The keyed hash that stands for ``sid`` in events."""
        digest = hmac.new(self.key, sid.encode(), hashlib.sha256).hexdigest()
        return digest[:FINGERPRINT_HEX]

    def emit(self, kind: str, sid: str, user: str | None = None,
             reason: str | None = None) -> None:
        """Call the hook; a hook that raises is logged, never raised to the request."""
        event = Event(kind, self.fingerprint(sid), user, reason)
        try:
            self.hook(event)
        except Exception:
            log.exception("on_event hook failed on a %r event; the request goes on", kind)
