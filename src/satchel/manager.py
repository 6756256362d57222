"""SessionManager: the session policy, and nothing else.

It validates client ids, judges expiry and, at the end of a request, decides what must happen:
save, touch, delete or nothing, and whether the client's id must be set or revoked.  Like h11,
it does no I/O: it is given ``now`` and the session, and it returns a :class:`Decision` for the
engine to carry out.  That is why every front door (WSGI, ASGI, Quixote, ...) shares it as is.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import math
from dataclasses import dataclass

from .errors import ConfigurationError
from .ids import is_legacy_id, is_valid_id, legacy_id, mint_id, minted_age, new_id
from .record import Changes, SessionMeta, SessionRecord
from .session import EXPIRY_KEY, Session

__all__ = ["Action", "CookieOp", "Decision", "SessionManager"]

security_log = logging.getLogger("satchel.security")

#: Seconds during which a minted id may name a new session (see ``SessionManager.adopts``).
MINT_WINDOW = 30.0
#: How far ahead of this process's clock another process's mint may be and still count.
_MINT_SKEW = 5.0


class Action(enum.Enum):
    """What the store must do at the end of a request."""

    NOTHING = "nothing"
    SAVE = "save"
    UPDATE = "update"  # blind write: apply changes to the stored session, never read
    TOUCH = "touch"
    DELETE = "delete"


class CookieOp(enum.Enum):
    """What the client must be told about its id."""

    KEEP = "keep"
    SET = "set"
    REVOKE = "revoke"


@dataclass(slots=True)
class Decision:
    """The manager's verdict on one request's session.

    ``token`` is set by the engine for a client-side store: the sealed session the client must
    hold instead of the bare ``sid``.  ``domain`` and ``path``, when set, replace the configured
    cookie attributes for this response (``session.cookie_domain``/``cookie_path``).
    """

    action: Action
    sid: str | None = None
    changes: Changes | None = None
    meta: SessionMeta | None = None
    discard: tuple[str, ...] = ()
    cookie: CookieOp = CookieOp.KEEP
    max_age: int | None = None
    vary: bool = False
    token: str | None = None
    domain: str | None = None
    path: str | None = None

    @property
    def value(self) -> str | None:
        """What the client is sent to hold: the sealed token, else the id."""
        return self.sid if self.token is None else self.token


# Shared verdicts for the common cases; never mutated (the engine completes only fresh SAVE and
# TOUCH decisions).
NOTHING = Decision(Action.NOTHING)
READ_ONLY = Decision(Action.NOTHING, vary=True)


class SessionManager:
    """Session policy: ids, expiry, strictness, touch throttling, what to save.

    Args:
        idle_timeout: seconds of inactivity after which a session is dead (None: no limit).
        absolute_timeout: seconds after creation after which a session is dead, however busy
            (None: no limit).  At least one of the two must be set.
        touch_interval: a session that was only read has its access time written at most once
            per this many seconds (a cheap touch, not a save).
        strict: never adopt a client-supplied id that the store does not hold, except one this
            application minted with ``mint_key`` (see :meth:`mint_id`).
        persistent: the client keeps its id across browser restarts (cookie ``Max-Age``).
        mint_key: the key that authenticates ids handed out before anything is stored (the
            query-string transport redirects to a URL holding one).
        mint_window: seconds after minting during which such an id may name a new session;
            kept to half the shortest configured lifetime at most (``math.inf``: that much;
            see :meth:`adopts`).
        legacy_ids: honour, once, the old id (Beaker's, Session3's, Pesto's) of a session that
            ``satchel migrate`` copied: the session is found by :func:`~satchel.ids.legacy_id`
            and rotated to a fresh id on that request.  An old id that was not migrated finds
            nothing and is never adopted.
        issue_ids: give every visitor an id on the first response, as Pesto did, so that a
            session's id is stable before it stores anything.  The id is minted (needs
            ``mint_key``) and nothing is stored for it until the application stores something.
        explicit_save: changes are saved only when the application called ``session.save()``
            (or rotated the id); others are dropped at the end of the request, as Beaker drops
            them.  Access-time touches, deletions and revocations still happen.
        save_empty: a session that holds no keys is still stored (a new one gets an id and a
            cookie; an emptied one keeps its record) instead of being dropped or deleted, as
            Beaker stores every session it saves.  A session just invalidated stays gone
            unless ``save()`` is called after.
    """

    def __init__(
        self,
        *,
        idle_timeout: float | None = 1800,
        absolute_timeout: float | None = 86400,
        touch_interval: float = 60,
        strict: bool = True,
        persistent: bool = False,
        mint_key: bytes | None = None,
        mint_window: float = MINT_WINDOW,
        legacy_ids: bool = False,
        issue_ids: bool = False,
        explicit_save: bool = False,
        save_empty: bool = False,
    ) -> None:
        for name, value in (("idle_timeout", idle_timeout), ("absolute_timeout", absolute_timeout)):
            if value is not None and (not _is_number(value) or value <= 0):
                raise ConfigurationError(f"{name} must be a positive number of seconds or None")
        if idle_timeout is None and absolute_timeout is None:
            raise ConfigurationError(
                "set idle_timeout or absolute_timeout (or both): a session must expire some day"
            )
        if not _is_number(touch_interval) or touch_interval < 0:
            raise ConfigurationError("touch_interval must be a number of seconds >= 0")
        if (not isinstance(mint_window, (int, float)) or isinstance(mint_window, bool)
                or not mint_window > 0):
            raise ConfigurationError("mint_window must be a positive number of seconds")
        self.idle_timeout = idle_timeout
        self.absolute_timeout = absolute_timeout
        self.touch_interval = touch_interval
        self.strict = strict
        self.persistent = persistent
        self._mint_key = mint_key
        shortest = min(t for t in (idle_timeout, absolute_timeout) if t is not None)
        self.mint_window = min(float(mint_window), shortest / 2)
        self.legacy_ids = legacy_ids
        if issue_ids and mint_key is None:
            raise ConfigurationError("issue_ids needs a mint_key to recognise the ids it issued")
        self.issue_ids = issue_ids
        self.explicit_save = explicit_save
        self.save_empty = save_empty

    # -- at the start ----------------------------------------------------------------------------

    def client_id(self, raw: str | None) -> str | None:
        """The client's id if it is well-formed, else None (and a warning for a malformed one)."""
        if raw is None or raw == "":
            return None
        if is_valid_id(raw):
            return raw
        if self.legacy_ids and is_legacy_id(raw):
            return legacy_id(raw)  # the engine rotates what it finds (see ``legacy_ids``)
        security_log.warning("ignored a malformed session id from a client")
        return None

    def mint_id(self, now: float) -> str:
        """An id to hand out at ``now`` before its session is stored; strict mode adopts it
        for ``mint_window`` seconds."""
        if self._mint_key is None:
            raise ConfigurationError("this manager has no mint_key")
        return mint_id(self._mint_key, now)

    def adopts(self, sid: str, now: float) -> bool:
        """Whether a well-formed id that the store does not hold may name a new session at ``now``.

        Strict mode adopts only an id this application minted, and only within
        ``mint_window`` seconds of minting: long enough to follow the redirect that handed it
        out, too short for a harvested id to be planted in a link for a victim much later.
        After that only the store decides, and without I/O here: the window is shorter than
        the shortest lifetime a session stored under the id can have, so the store still holds
        it whenever it could be adopted, and once it has expired the window is long past.
        """
        if not self.strict:
            return True
        key = self._mint_key
        if key is None:
            return False
        age = minted_age(sid, key, now)
        return age is not None and -_MINT_SKEW <= age <= self.mint_window

    def accept(self, record: SessionRecord | None, now: float,
               lifetime: float | None = None) -> SessionRecord | None:
        """The record if it is still alive at ``now`` under this policy, else None.

        ``lifetime`` is the record's own idle lifetime (``Session.set_expiry``), if it has one.
        """
        if record is None:
            return None
        if now >= record.expires or now >= self._expiry(record.created, record.accessed,
                                                         lifetime):
            return None
        return record

    def why_dead(self, record: SessionRecord, now: float,
                 lifetime: float | None = None) -> str | None:
        """Why ``record`` is dead at ``now``: ``"absolute"`` once ``created`` plus the absolute
        timeout has passed, else ``"idle"``; None while it is alive.

        Judged from the record's own times, so it needs a record: a store that drops expired
        records (the contract's ``load``) leaves only the ones it still returns to judge.
        """
        if now < record.expires and now < self._expiry(record.created, record.accessed,
                                                       lifetime):
            return None
        absolute = self.absolute_timeout
        if absolute is not None and now >= record.created + absolute:
            return "absolute"
        return "idle"

    def expires(self, created: float, accessed: float, lifetime: float | None = None) -> float:
        """The moment a session created and last accessed at these times dies.

        ``lifetime`` (seconds, from ``Session.set_expiry``) replaces the idle timeout for this
        session when positive; the absolute timeout caps it either way.
        """
        return self._expiry(created, accessed, lifetime)

    def _expiry(self, created: float, accessed: float, lifetime: float | None = None) -> float:
        idle = lifetime if lifetime else self.idle_timeout
        absolute = self.absolute_timeout
        if idle is None:
            return created + absolute  # type: ignore[operator]
        if absolute is None:
            return accessed + idle
        return min(accessed + idle, created + absolute)

    def outlived(self, created: float, now: float, lifetime: float | None = None) -> float:
        """A moment by which every copy of a session created at ``created`` is dead, even one
        that a request running at ``now`` saves later: its absolute end or, without an absolute
        timeout, two idle lifetimes after ``now`` (for requests that finish within one).

        Used to bound how long a logged-out session's id must be remembered as refused.
        """
        if self.absolute_timeout is not None:
            return created + self.absolute_timeout
        idle = lifetime if lifetime else self.idle_timeout
        return now + 2 * idle  # type: ignore[operator]  # one of the two is set

    def _persistent(self, lifetime: float | None) -> bool:
        # A per-session lifetime decides the cookie's kind: positive persists, 0 does not.
        return self.persistent if lifetime is None else lifetime > 0

    # -- at the end ------------------------------------------------------------------------------

    def finish(self, session: Session, now: float, *, failed: bool = False) -> Decision:
        """Decide what happens to ``session`` after a request.

        A failed request (one that raised) saves nothing, as in Quixote's
        ``finish_failed_request``.  A session is kept when its ``keep`` predicate says so or,
        without one, when it holds data or names a user; otherwise a new one is not stored and
        a stored one is deleted, its id revoked.  Raises TypeError (from the codec) when a
        value cannot be stored, naming its key.
        """
        decision = self._decide(session, now, failed)
        domain, path = session.cookie_domain, session.cookie_path
        if (domain is None and path is None) or not session.touched:
            return decision
        # Cookie attributes chosen for this response: a kept session's cookie is sent again
        # with them, and any cookie this response carries (a revocation too) uses them.
        cookie = decision.cookie
        if cookie is CookieOp.KEEP and decision.action in (Action.SAVE, Action.TOUCH,
                                                           Action.UPDATE):
            cookie = CookieOp.SET
        return dataclasses.replace(decision, cookie=cookie, domain=domain, path=path)

    def _decide(self, session: Session, now: float, failed: bool) -> Decision:
        if failed or not session.touched:
            return NOTHING
        if session._degraded:
            # The store was down when the session was opened and the policy let the request
            # run anonymously: do not overwrite the client's real session or its cookie.
            return Decision(Action.NOTHING, vary=True)
        keep = session.keep
        # A keep predicate may read the session (which ends a blind write): ask it first.
        has_data = bool(keep()) if keep is not None else None
        if session._opener is not None:
            return self._blind(session, now)
        discard = tuple(session._discard)
        if has_data is None:
            # A session is worth keeping while it holds a key or names a user: a login that
            # stores nothing but ``session.user`` is still a login.
            has_data = bool(session._data) or session._user is not None
        created = session._created
        sid = session._loaded_id  # an existing session keeps the id it was loaded under
        lifetime = session._lifetime()
        persistent = self._persistent(lifetime)
        saving = session._save_requested or not self.explicit_save

        if sid is None:
            keep_empty = self.save_empty and (session._save_requested or not session._revoke)
            if not saving or not (has_data or keep_empty):
                issued = session._sid
                if self.issue_ids and issued is not None and not session._revoke:
                    # Pesto's visitor id: the client holds it (or gets it now); nothing is
                    # stored for it until the application stores something.
                    cookie = CookieOp.KEEP if issued == session.client_id else CookieOp.SET
                    return Decision(Action.NOTHING, issued, discard=discard, cookie=cookie,
                                    vary=True)
                stale = session._revoke or bool(discard) or session.client_id is not None
                return Decision(Action.NOTHING, discard=discard,
                                cookie=CookieOp.REVOKE if stale else CookieOp.KEEP, vary=True)
            new_sid = session._sid
            if new_sid is None:
                new_sid = session._sid = new_id()
            first = session._changes() or Changes(create=True)
            meta = SessionMeta(created, now, self._expiry(created, now, lifetime), session._user)
            return Decision(Action.SAVE, new_sid, first, meta, discard, CookieOp.SET,
                            self._max_age(meta.expires, now, persistent), True)

        if saving and not has_data and not self.save_empty:
            return Decision(Action.DELETE, sid, discard=(*discard, sid),
                            cookie=CookieOp.REVOKE, vary=True)
        changes = session._changes() if saving else None
        if changes is not None:
            meta = SessionMeta(created, now, self._expiry(created, now, lifetime), session._user)
            cookie = self._refresh(persistent, EXPIRY_KEY in changes.set
                                   or EXPIRY_KEY in changes.deleted or changes.cleared)
            return Decision(Action.SAVE, sid, changes, meta, discard, cookie,
                            self._max_age(meta.expires, now, persistent), True)
        if now - session._accessed >= self.touch_interval:
            expires = self._expiry(created, now, lifetime)
            meta = SessionMeta(created, now, expires, session._user)
            return Decision(Action.TOUCH, sid, None, meta, discard, self._refresh(persistent),
                            self._max_age(expires, now, persistent), True)
        if not discard:
            return READ_ONLY
        return Decision(Action.NOTHING, sid, discard=discard, vary=True)

    def _blind(self, session: Session, now: float) -> Decision:
        """The request only assigned keys of a session it never read: update it in place.

        The stored created time is not known here, so the store caps the new expiry at
        ``created + absolute_timeout`` itself (``Store.update``).  Nor is a lifetime that an
        earlier request gave with ``set_expiry``: rather than cut a "remember me" session
        short, the record is kept up to that absolute cap, and the next read judges idle
        expiry by the stored access time and the session's own lifetime (:meth:`accept`);
        the client's cookie is left as it is.  Without an absolute limit there is no safe
        cap, and the update slides the expiry by the configured idle timeout.
        """
        changes = session._changes()
        if changes is None or (self.explicit_save and not session._save_requested):
            return Decision(Action.NOTHING, session.client_id, vary=True)
        lifetime = session._lifetime()  # known only when set in this request
        if lifetime is None and self.absolute_timeout is not None:
            meta = SessionMeta(now, now, math.inf, None)
            return Decision(Action.UPDATE, session.client_id, changes, meta, (),
                            CookieOp.KEEP, None, True)
        idle = lifetime if lifetime else self.idle_timeout
        expires = now + idle if idle is not None else math.inf
        meta = SessionMeta(now, now, expires, None)
        persistent = self._persistent(lifetime)
        cookie = (self._refresh(persistent, EXPIRY_KEY in changes.set)
                  if idle is not None else CookieOp.KEEP)
        return Decision(Action.UPDATE, session.client_id, changes, meta, (), cookie,
                        self._max_age(expires, now, persistent), True)

    @staticmethod
    def _refresh(persistent: bool, changed: bool = False) -> CookieOp:
        # A persistent cookie's Max-Age must follow the sliding expiry; a browser-session
        # cookie needs re-sending only when the session's lifetime changed its kind.
        return CookieOp.SET if persistent or changed else CookieOp.KEEP

    @staticmethod
    def _max_age(expires: float, now: float, persistent: bool) -> int | None:
        if not persistent or math.isinf(expires):
            return None
        return max(0, int(expires - now))


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
