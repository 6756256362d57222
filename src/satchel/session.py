"""Session: the mapping the application sees, and the record of what it did to it.

The session loads nothing until first touched, decodes a value only when it is read, and keeps
track of which keys were set, deleted or cleared.  Values handed out that could be mutated in
place (lists, dicts, ...) are re-encoded at the end of the request and compared with what was
loaded, so ``session["cart"].append(x)`` is saved without any ``modified = True``.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import hmac
import logging
import math
import secrets
import uuid
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from .codec import Codec, CodecError, text_problem
from .ids import new_id
from .record import Changes, SessionMeta, SessionRecord

if TYPE_CHECKING:
    from .manager import SessionManager

__all__ = ["Session"]

FLASH_KEY = "_satchel_flashes"
CSRF_KEY = "_satchel_csrf"
#: The per-session lifetime (``set_expiry``) travels with the data, so every store keeps it.
EXPIRY_KEY = "_satchel_expiry"

#: When the session's user last logged in (``Session.login``), in epoch seconds.
LOGIN_KEY = "_satchel_login"

#: The longest user name every store keeps (MySQL's user_id is VARCHAR(255)).
MAX_USER_LENGTH = 255

_NONE_DELETED: frozenset[str] = frozenset()

security_log = logging.getLogger("satchel.security")

# Values of these types cannot change in place, so reading them needs no re-check at the end.
_IMMUTABLE = frozenset({
    str, int, float, bool, type(None), bytes, frozenset,
    _dt.datetime, _dt.date, _dt.time, decimal.Decimal, uuid.UUID,
})


# opener(session, request, fetch): learns the client's id and, when ``fetch`` is true, reads the
# store.  Returns True once nothing is left to read (no id, or the session was read).
Opener = Callable[["Session", Any, bool], bool]


class Session(MutableMapping[str, Any]):
    """A dict-like session.  Built by the engine per request; see the module docstring.

    Attributes beyond the mapping: ``id``, ``is_new``, ``created``, ``accessed``, ``user``,
    and the methods ``rotate``, ``invalidate``, ``flash``/``pop_flashes`` and the CSRF helpers.
    """

    __slots__ = (
        "_accessed", "_cleared", "_codec", "_created", "_data", "_decoded", "_degraded",
        "_deleted", "_discard", "_end_reason", "_ended", "_identified", "_loaded_id", "_now",
        "_opener", "_orig", "_origin_user", "_policy", "_request", "_revoke",
        "_rotated", "_save_requested", "_set", "_sid", "_user", "_user_changed", "_watch",
        "client_id", "cookie_domain", "cookie_path", "keep", "touched",
    )

    def __init__(self, codec: Codec, now: float, opener: Opener | None = None,
                 request: Any = None) -> None:
        self._codec = codec
        self._now = now
        self._opener = opener
        self._request = request
        self.touched = False
        self._identified = False
        self.client_id: str | None = None
        self._sid: str | None = None
        self._loaded_id: str | None = None
        # _data maps each key to its value: decoded for keys in _decoded, still the stored text
        # for the others (decoding waits for a read).  _orig keeps the stored texts.
        self._data: dict[str, Any] = {}
        self._decoded: set[str] = set()
        self._orig: dict[str, str] = {}
        self._watch: set[str] = set()
        self._set: set[str] = set()
        self._deleted: set[str] = set()
        self._cleared = False
        self._discard: list[str] = []
        self._rotated = False
        self._revoke = False
        self._degraded = False
        self._created = now
        self._accessed = now
        self._user: str | None = None
        self._user_changed = False
        # The user of the stored session this request found (or last saved), and the stored
        # sessions that invalidate() ended: id -> (that user, created, lifetime).  A client-side
        # store uses them to refuse the ended sessions' tokens (``ClientSideStore.end``).
        self._origin_user: str | None = None
        self._ended: dict[str, tuple[str, float, float | None]] | None = None
        # Why the session the client named was found dead (``ended``), as the engine judged.
        self._end_reason: str | None = None
        self._policy: SessionManager | None = None  # set by the engine when it opens the session
        self._save_requested = False
        # Cookie attributes for this response only (Beaker's ``session.domain``/``path``);
        # None keeps the configured ones.
        self.cookie_domain: str | None = None
        self.cookie_path: str | None = None
        # Whether the session is worth keeping at the end of the request; None: when it holds
        # data or names a user.  A front door sets it where its framework decides otherwise
        # (Quixote keeps a session only when ``has_info()`` says so, whatever it holds).
        self.keep: Callable[[], bool] | None = None

    # -- loading -------------------------------------------------------------------------------

    def _ensure(self) -> None:
        opener = self._opener
        self.touched = True
        if opener is not None:
            self._opener = None
            try:
                opener(self, self._request, True)
            except BaseException:
                self._opener = opener  # not read: a later touch (or load()) tries again
                raise
            self._request = None

    async def load(self) -> Session:
        """Read the session now, without blocking the event loop; returns the session.

        For async code (ASGI): a session is read on first touch, and a touch is synchronous.
        Await this before touching a session whose store does I/O (or let the middleware
        preload it); afterwards nothing on the session waits on the store.  Loading is not
        a touch: a session only loaded is neither saved nor given a cookie.  Under WSGI it
        simply reads the session.
        """
        opener = self._opener
        if opener is not None:
            load = getattr(opener, "load_async", None)
            self._opener = None
            try:
                if load is None:
                    opener(self, self._request, True)
                else:
                    await load(self, self._request)
            except BaseException:
                self._opener = opener
                raise
            self._request = None
        return self

    def _blind(self) -> None:
        """Prepare for a write that needs nothing from the store: learn the id, read nothing.

        A request that only assigns keys never reads its session; the engine sends the new
        values as an update of the stored session (one round trip), and only if that session
        turns out to be gone does the write start a new one.
        """
        self.touched = True
        if not self._identified:
            self._identified = True
            opener = self._opener
            if opener is not None and opener(self, self._request, False):
                self._opener = None
                self._request = None

    def _found_absent(self, sid: str | None) -> None:
        """The store holds no session for this request (any more): what is here is new, and is
        saved under ``sid`` if the policy adopted one, else under a fresh id."""
        self._opener = None
        self._request = None
        self._loaded_id = None
        self._sid = sid

    def _attach(self, sid: str | None, record: SessionRecord | None) -> None:
        """Called by the opener: adopt ``record`` under ``sid``, or start a new session.

        Keys assigned before the read (blind writes) keep their new values.
        """
        if record is None:
            return
        self._sid = self._loaded_id = sid
        self._orig = record.data
        data = record.data.copy()
        for key in self._set:
            data[key] = self._data[key]
        self._data = data
        self._created = record.created
        self._accessed = record.accessed
        self._user = self._origin_user = record.user

    # -- the mapping ---------------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        if self._opener is not None or not self.touched:
            self._ensure()
        value = self._data[key]
        if key not in self._decoded:
            value = self._decode(key, value)
        if type(value) not in _IMMUTABLE:
            self._watch.add(key)
        return value

    def _decode(self, key: str, text: str) -> Any:
        try:
            value = self._codec.decode(text)
        except CodecError as exc:
            # Unreadable (corrupt, foreign, or signed with a retired key): the key reads as
            # absent, and the save removes it.  The message never holds the value.
            security_log.warning("dropped a stored session value that cannot be decoded: %s", exc)
            del self._data[key]
            self._deleted.add(key)
            raise KeyError(key) from None
        self._data[key] = value
        self._decoded.add(key)
        return value

    def _decode_all(self) -> None:
        """Decode every value not yet read, dropping those that fail, so that the keys listed
        (``iter``, ``len``, ``keys``) are exactly those whose values can be read."""
        decoded = self._decoded
        data = self._data
        for key in [k for k in data if k not in decoded]:
            try:
                self._decode(key, data[key])
            except KeyError:
                continue

    def __setitem__(self, key: str, value: Any) -> None:
        if type(key) is not str:
            raise TypeError(f"session keys must be str, not {type(key).__name__}")
        if not key.isascii() or "\x00" in key:
            _check_key(key)
        self._codec.check(key, value)
        if self._opener is not None:
            self._blind()
        elif not self.touched:
            self.touched = True
        self._data[key] = value
        self._decoded.add(key)
        self._set.add(key)
        self._deleted.discard(key)

    def __delitem__(self, key: str) -> None:
        if self._opener is not None or not self.touched:
            self._ensure()
        del self._data[key]
        self._set.discard(key)
        self._watch.discard(key)
        self._deleted.add(key)

    def __iter__(self) -> Iterator[str]:
        if self._opener is not None or not self.touched:
            self._ensure()
        self._decode_all()
        return iter(list(self._data))

    def __len__(self) -> int:
        if self._opener is not None or not self.touched:
            self._ensure()
        self._decode_all()
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        if self._opener is not None or not self.touched:
            self._ensure()
        data = self._data
        if key not in data:
            return False
        if key not in self._decoded:
            try:
                self._decode(key, data[key])
            except KeyError:
                return False
        return True

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def clear(self) -> None:
        if self._opener is not None or not self.touched:
            self._ensure()
        self._data = {}
        self._decoded = set()
        self._watch = set()
        self._set = set()
        self._deleted = set()
        self._cleared = True

    def __repr__(self) -> str:
        state = "not loaded" if self._opener is not None else f"{len(self._data)} keys"
        return f"<Session {'new' if self._loaded_id is None else 'existing'}, {state}>"

    # -- metadata ------------------------------------------------------------------------------

    @property
    def id(self) -> str:
        """The session id.  A new session gets one on first request for it (no I/O)."""
        self._ensure()
        if self._sid is None:
            self._sid = new_id()
        return self._sid

    @property
    def is_new(self) -> bool:
        """True when no stored session was found for this request."""
        self._ensure()
        return self._loaded_id is None and not self._rotated

    @property
    def created(self) -> float:
        """When the session was created (epoch seconds)."""
        self._ensure()
        return self._created

    @property
    def accessed(self) -> float:
        """When the session was last accessed before this request (epoch seconds)."""
        self._ensure()
        return self._accessed

    @property
    def user(self) -> str | None:
        """The user this session belongs to, indexed by the store (log out everywhere)."""
        self._ensure()
        return self._user

    @user.setter
    def user(self, value: str | None) -> None:
        if value is not None:
            if type(value) is not str:
                raise TypeError("session.user must be a str or None")
            problem = text_problem(value)
            if problem is None and "\x00" in value:
                problem = "it holds a NUL character"
            if problem is None and len(value) > MAX_USER_LENGTH:
                problem = f"it is longer than {MAX_USER_LENGTH} characters"
            if problem is not None:
                raise ValueError(f"session.user cannot be stored: {problem}")
        self._ensure()
        if value != self._user:
            if value is not None and self._identifies():
                # A new user is a change of privilege: an id seen before it (a planted one)
                # must not work after it, even when the application forgets to rotate.  Once
                # per request is enough: the id is already fresh.
                self.rotate()
            self._user = value
            self._user_changed = True

    def _identifies(self) -> bool:
        """Whether the id this session goes by came from the client (loaded or adopted), and
        so must rotate before a user is named: one rotation per request is enough."""
        if self._rotated:
            return False
        return self._loaded_id is not None or (
            self._sid is not None and self._sid == self.client_id)

    @property
    def ended(self) -> str | None:
        """Why the session the client named was found dead, for a request that now has a new
        one: ``"idle"``, ``"absolute"``, ``"revoked"`` or ``"logged_out"``; None when it was
        alive, the client named none, or the store cannot tell (see the README's table)."""
        self._ensure()
        return self._end_reason

    def login(self, user: str) -> None:
        """Log ``user`` in: a new id (the data is kept), ``user`` set, the time recorded.

        The id rotates even when the user does not change (a second login is a new privilege
        grant), so an id planted before it never works after it.  The login time is kept
        under ``LOGIN_KEY`` and read back by :attr:`logged_in_at`.

        Raises:
            TypeError, ValueError: ``user`` is not a non-empty name every store can keep.
        """
        if type(user) is not str or not user:
            raise TypeError("session.login takes the user's name (a non-empty str)")
        self._ensure()
        if self._identifies():
            self.rotate()
        self.user = user
        self[LOGIN_KEY] = self._now

    @property
    def logged_in_at(self) -> float | None:
        """When this session's user logged in (:meth:`login`), epoch seconds; None if not."""
        value = self.get(LOGIN_KEY)
        return value if isinstance(value, (int, float)) and self._user is not None else None

    def logout(self) -> None:
        """Log out: the stored session is deleted and the client's id revoked (like
        :meth:`invalidate`); the object then starts afresh, anonymous."""
        self.invalidate()

    @property
    def modified(self) -> bool:
        """True when something was set, deleted or cleared in this request so far."""
        return bool(self._set or self._deleted or self._cleared or self._user_changed)

    # -- lifetime --------------------------------------------------------------------------------

    def set_expiry(self, value: float | None) -> None:
        """Give this session its own lifetime ("remember me"), or take it back.

        Args:
            value: seconds of idle lifetime for this session, with a persistent cookie that
                survives browser restarts; ``0`` for a browser-session cookie under the
                configured idle timeout; ``None`` back to the configured policy.  The
                configured absolute lifetime still caps it.

        Raises:
            ValueError: ``value`` is negative or not a number.
        """
        if value is None:
            if EXPIRY_KEY in self:
                del self[EXPIRY_KEY]
            return
        if not _is_lifetime(value):
            raise ValueError("set_expiry takes seconds >= 0, or None")
        if self.get(EXPIRY_KEY) != value:
            self[EXPIRY_KEY] = value

    @property
    def expiry(self) -> float | None:
        """The value given to :meth:`set_expiry` (None: the configured policy)."""
        return _lifetime(self.get(EXPIRY_KEY))

    @property
    def expires_at(self) -> float:
        """When this session dies if left alone (epoch seconds); reading it extends nothing.

        For a session loaded in this request that is its stored expiry; a request that
        writes or touches it moves it on.  ``math.inf`` when no limit applies.
        """
        self._ensure()
        policy = self._policy
        if policy is None:
            raise RuntimeError("this session was not opened by an engine")
        return policy.expires(self._created, self._accessed, self.expiry)

    def _lifetime(self) -> float | None:
        """The per-session lifetime as far as this request knows it, without loading."""
        if EXPIRY_KEY not in self._data:
            return None
        value = self._data[EXPIRY_KEY]
        if EXPIRY_KEY not in self._decoded:
            try:
                value = self._decode(EXPIRY_KEY, value)
            except KeyError:
                return None
        return _lifetime(value)

    # -- lifecycle -------------------------------------------------------------------------------

    def rotate(self) -> None:
        """Give the session a new id, keeping its data; the old record is deleted.

        Call it when privileges change (login) so that an id planted before cannot be used.
        The CSRF token is dropped too (a new one is made on next use), so a token seen
        before login is worthless after it.
        """
        self._ensure()
        self._data.pop(CSRF_KEY, None)
        self._decode_all()
        if self._loaded_id is not None:
            self._discard.append(self._loaded_id)
        self._loaded_id = None
        self._sid = new_id()
        self._cleared = True
        self._set = set(self._data)
        self._deleted = set()
        self._rotated = True
        # The data now lives under the new id only: it is written whatever the save policy.
        self._save_requested = True

    def save(self) -> None:
        """Ask for this session to be saved at the end of the request.

        Only the manager's ``explicit_save`` policy (Beaker's model) needs it: there, changes
        not followed by ``save()`` are dropped.  Otherwise every change is saved anyway.
        """
        self.touched = True
        self._save_requested = True

    def revert(self) -> None:
        """Drop this request's unsaved changes: the values go back to what was loaded (or last
        saved).  A new id from :meth:`rotate` or :meth:`invalidate` stays."""
        self._ensure()
        self._data = dict(self._orig)
        self._decoded = set()
        self._watch = set()
        self._set = set()
        self._deleted = set()
        self._cleared = False
        if self._rotated:
            # The loaded values must still move to the new id: write them all there.
            for key, value in list(self._data.items()):
                try:
                    self._decode(key, value)
                except KeyError:
                    continue
            self._cleared = True
            self._set = set(self._data)

    def invalidate(self) -> None:
        """Delete the stored session and revoke the client's id (logout).

        The object stays usable: writing to it afterwards starts a fresh session with a new id.
        """
        self._ensure()
        for sid in (self._loaded_id, self.client_id):
            if sid is not None and sid not in self._discard:
                self._discard.append(sid)
        user = self._origin_user
        if user is not None and self._discard:
            # A logout of a user's session: a client-side store may refuse its tokens from now
            # on, including one a request still in flight seals after this one.
            ended = self._ended = self._ended or {}
            lifetime = self._lifetime()
            for sid in self._discard:
                ended.setdefault(sid, (user, self._created, lifetime))
        self._loaded_id = None
        self._sid = None
        self._data = {}
        self._decoded = set()
        self._orig = {}
        self._watch = set()
        self._set = set()
        self._deleted = set()
        self._cleared = False
        self._rotated = False
        self._revoke = True
        self._created = self._accessed = self._now
        self._user = None
        self._user_changed = False

    # -- flash messages and CSRF -------------------------------------------------------------

    def flash(self, message: str, category: str = "message") -> None:
        """Queue a message for the next page that calls :meth:`pop_flashes`."""
        queue = list(self.get(FLASH_KEY) or [])
        queue.append([category, message])
        self[FLASH_KEY] = queue

    def pop_flashes(self, category: str | None = None) -> list[tuple[str, str]]:
        """Return and remove queued messages as (category, message), oldest first."""
        queue = self.get(FLASH_KEY)
        if not queue:
            return []
        taken = [(c, m) for c, m in queue if category is None or c == category]
        kept = [[c, m] for c, m in queue if category is not None and c != category]
        if kept:
            self[FLASH_KEY] = kept
        else:
            del self[FLASH_KEY]
        return taken

    @property
    def csrf_token(self) -> str:
        """This session's anti-CSRF token, made on first use."""
        token = self.get(CSRF_KEY)
        if not isinstance(token, str):
            token = secrets.token_urlsafe(32)
            self[CSRF_KEY] = token
        return token

    def check_csrf(self, token: str | None) -> bool:
        """True when ``token`` equals this session's CSRF token (constant-time)."""
        expected = self.get(CSRF_KEY)
        if not isinstance(expected, str) or not isinstance(token, str) or not token.isascii():
            return False  # tokens are ASCII; anything else (even a lone surrogate) is no match
        return hmac.compare_digest(expected, token)

    # -- what the manager reads at the end of the request ------------------------------------

    def _changes(self) -> Changes | None:
        """Encode what changed since load (or since the last save); None when nothing did.

        Raises TypeError naming the key when a value cannot be encoded.
        """
        codec = self._codec
        data = self._data
        orig = self._orig
        out: dict[str, str] = {}
        for key in self._set:
            out[key] = codec.encode(key, data[key])
        for key in self._watch:
            if key in out or key not in data:
                continue
            text = codec.encode(key, data[key])
            if text != orig.get(key):
                out[key] = text
        deleted = frozenset(self._deleted) if self._deleted else _NONE_DELETED
        if not (out or deleted or self._cleared or self._user_changed):
            return None
        # positional: this runs on every write (set, deleted, cleared, create, user_changed)
        return Changes(out, deleted, self._cleared, self._loaded_id is None, self._user_changed)

    def _saved(self, sid: str, changes: Changes | None, meta: SessionMeta) -> None:
        """Reset change tracking after a successful save, so a later flush sends only news."""
        if changes is not None:
            # _orig is this session's own copy of the stored texts: update it in place.
            orig = self._orig
            if changes.cleared:
                orig = self._orig = {}
            for key in changes.deleted:
                orig.pop(key, None)
            orig.update(changes.set)
        self._sid = self._loaded_id = sid
        self._created = meta.created
        self._accessed = meta.accessed
        self._origin_user = meta.user
        self._flushed()

    def _flushed(self) -> None:
        """Forget the changes just written, so a later flush sends only what is new."""
        self._set = set()
        self._deleted = set()
        self._cleared = False
        self._user_changed = False
        self._rotated = False
        self._revoke = False
        self._discard = []


def stored_lifetime(codec: Codec, data: Mapping[str, str]) -> float | None:
    """The per-session lifetime kept in a stored record's data, if any (see ``set_expiry``)."""
    text = data.get(EXPIRY_KEY)
    if text is None:
        return None
    try:
        return _lifetime(codec.decode(text))
    except CodecError:
        return None


def _check_key(key: str) -> None:
    """Refuse a key that some store could not keep, so that no store meets it."""
    problem = text_problem(key)
    if problem is None and "\x00" in key:
        problem = "it holds a NUL character"  # PostgreSQL's text and jsonb cannot hold one
    if problem is not None:
        raise ValueError(f"session key {key!r} cannot be stored: {problem}")


def _is_lifetime(value: object) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value >= 0)


def _lifetime(value: object) -> float | None:
    return value if _is_lifetime(value) else None  # type: ignore[return-value]
