"""The records that pass between the session, the manager and the stores.

A store holds, per session id, a :class:`SessionRecord`: the encoded values (one text per key,
made by the codec) and the times that govern expiry.  A save sends :class:`Changes`, never the
whole mapping, so two requests that write different keys of one session both survive.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Changes", "Ended", "SessionMeta", "SessionRecord", "stored_record"]

security_log = logging.getLogger("satchel.security")


@dataclass(slots=True)
class SessionRecord:
    """What a store returns from ``load``.

    Attributes:
        data: encoded value per key, as the codec produced it.
        created: when the session was first saved (epoch seconds).
        accessed: when it was last read or written, as far as the store knows.
        expires: the moment after which it is dead (the nearer of idle and absolute expiry).
        user: an optional identifier of the logged-in user, indexed by the store.
    """

    data: dict[str, str]
    created: float
    accessed: float
    expires: float
    user: str | None = None


def stored_record(data: Any, created: Any, accessed: Any, expires: Any, user: Any,
                  where: str) -> SessionRecord | None:
    """The record a store read, or None when its metadata cannot be trusted.

    Whoever can write to the backend can store anything: times that are not numbers (or are
    NaN, which compares false with everything and would never expire), a user that is not
    text, data that is not a mapping.  Such a session reads as absent (and its client gets a
    new one), with a warning on ``satchel.security`` naming the store ``where`` it was found,
    never the id or the data.  The values themselves are the codec's to judge.
    """
    if (type(data) is dict and _is_moment(created) and _is_moment(accessed)
            and _is_moment(expires) and (user is None or type(user) is str)):
        return SessionRecord(data, float(created), float(accessed), float(expires), user)
    unreadable(where)
    return None


def unreadable(where: str) -> None:
    """Warn that a session stored in ``where`` could not be read and counts as absent."""
    security_log.warning("%s: a stored session is unreadable; it reads as absent", where)


def _is_moment(value: Any) -> bool:
    # int or float, not bool, not NaN (inf is "never")
    return (type(value) is float and value == value) or type(value) is int


@dataclass(slots=True)
class SessionMeta:
    """The times and user a save or touch writes alongside the data."""

    created: float
    accessed: float
    expires: float
    user: str | None = None


@dataclass(slots=True)
class Changes:
    """Per-key changes to apply against what is stored *now*.

    Attributes:
        set: encoded values to write.
        deleted: keys to remove.
        cleared: remove every stored key before applying ``set`` (``session.clear()``, rotation).
        create: the record may be created if absent.  False for an existing session: if another
            request deleted it meanwhile (logout), the save must not resurrect it.
        user_changed: the save's user may differ from the stored one.  False only when the
            session was loaded with that user and kept it, so a store that indexes users may
            skip its index.
    """

    set: dict[str, str] = field(default_factory=dict)
    deleted: frozenset[str] = frozenset()
    cleared: bool = False
    create: bool = True
    user_changed: bool = True

    def apply(self, data: dict[str, str]) -> dict[str, str]:
        """Return ``data`` with these changes applied (for stores that merge in Python)."""
        merged = {} if self.cleared else dict(data)
        for key in self.deleted:
            merged.pop(key, None)
        merged.update(self.set)
        return merged


@dataclass(frozen=True, slots=True)
class Ended:
    """What a client-side store's ``open(..., why=True)`` returns for a value it sealed whose
    session is dead: ``reason`` is ``"expired"`` (``record`` then holds its times, for the
    policy to tell idle from absolute), ``"revoked"`` or ``"logged_out"``."""

    reason: str
    record: SessionRecord | None = None
