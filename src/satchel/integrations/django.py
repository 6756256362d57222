"""Django: ``SESSION_ENGINE = "satchel.integrations.django"``.

    SESSION_ENGINE = "satchel.integrations.django"
    SATCHEL_STORE = "redis://127.0.0.1:6379/0"      # any satchel store URL
    SATCHEL_OPTIONS = {"absolute_timeout": 86400}   # optional: satchel's options

Django's own ``SessionMiddleware`` keeps the cookie (``SESSION_COOKIE_*``); this module gives it a
``SessionStore`` that meets ``SessionBase``'s contract over a satchel session and store, so
``django.contrib.auth``, messages and CSRF work unchanged.  The session is satchel's: values are
kept per key with satchel's codec (so a Flask or WSGI application on the same store reads them),
saved only as far as they changed, and ``cycle_key()`` is satchel's rotation.

Translations worth knowing:

- ``SESSION_COOKIE_AGE`` is the idle timeout, and there is no absolute limit unless
  ``SATCHEL_OPTIONS`` gives one (Django has none).
- ``set_expiry`` keeps Django's value (so ``get_expiry_age`` and friends answer as Django's do)
  and gives satchel the matching per-session lifetime; a ``datetime`` or ``timedelta`` becomes
  the seconds left, and one already past ends the session at the next save.
- ``django.contrib.auth``'s user id is the satchel session's ``user``, indexed by the store:
  ``store.delete_user(str(user.pk))`` logs that user out everywhere.
- Django's 32-character keys are not satchel ids: sessions made by another backend are not
  read (their users log in again once).
- With the cookie store (``SATCHEL_STORE = "cookie://"``, ``SATCHEL_OPTIONS = {"secret":
  [...]}``) the session key is the sealed session itself, as with Django's ``signed_cookies``
  backend: Django's middleware puts it in the cookie, and its size is checked against the
  browser's limit with Django's cookie attributes counted.
"""

from __future__ import annotations

import threading
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError

from ..config import Settings
from ..engine import SessionEngine
from ..ids import is_valid_id
from ..manager import Action, CookieOp, Decision
from ..session import Session

__all__ = ["SessionStore", "close", "engine"]

AUTH_USER_KEY = "_auth_user_id"  # django.contrib.auth's SESSION_KEY

_engines: dict[tuple[Any, ...], SessionEngine] = {}
_lock = threading.Lock()


def engine() -> SessionEngine:
    """The engine for the current settings, built once per process (and per settings value,
    so ``override_settings`` in tests switches stores)."""
    url = getattr(settings, "SATCHEL_STORE", None)
    options = dict(getattr(settings, "SATCHEL_OPTIONS", None) or {})
    key = (url, tuple(sorted(options.items(), key=lambda kv: kv[0])),
           settings.SESSION_COOKIE_AGE)
    found = _engines.get(key)
    if found is not None:
        return found
    with _lock:
        found = _engines.get(key)
        if found is None:
            options.setdefault("idle_timeout", settings.SESSION_COOKIE_AGE)
            options.setdefault("absolute_timeout", None)
            built = Settings.from_options(store=url, **options)
            store, _ = built.make_store()
            found = _engines[key] = built.make_engine(store)
    return found


def close() -> None:
    """Close every store this module opened (at shutdown, or between tests); the next
    session opens them again."""
    with _lock:
        engines = list(_engines.values())
        _engines.clear()
    for found in engines:
        found.store.close()


def _cookie_overhead(decision: Decision) -> int:
    """The bytes Django's middleware adds around a sealed session in its Set-Cookie header,
    measured by rendering that header with an empty value, at its longest (a ten-digit
    Max-Age and an Expires date), for the cookie store's check against the browser's 4096."""
    from django.http import HttpResponse

    response = HttpResponse()
    response.set_cookie(
        settings.SESSION_COOKIE_NAME, "", max_age=10**9,
        domain=settings.SESSION_COOKIE_DOMAIN, path=settings.SESSION_COOKIE_PATH,
        secure=settings.SESSION_COOKIE_SECURE or None,
        httponly=settings.SESSION_COOKIE_HTTPONLY or None,
        samesite=settings.SESSION_COOKIE_SAMESITE,
    )
    return len(response.cookies[settings.SESSION_COOKIE_NAME].OutputString().encode())


class SessionStore(SessionBase):  # type: ignore[misc]
    """Django's session API over a satchel session (see the module docstring)."""

    _session_cache: Session

    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        self._engine = engine()

    # -- the satchel session behind Django's _session -----------------------------------------

    def _open(self, key: str | None) -> Session:
        """A satchel session for ``key``, read at once (Django's ``load`` is eager)."""
        session = self._engine.session(self._engine.load, key)
        session.is_new  # noqa: B018 -- reading it loads the session
        return session

    def _get_session(self, no_load: bool = False) -> Session:
        self.accessed = True
        try:
            return self._session_cache
        except AttributeError:
            if self.session_key is None or no_load:
                self._session_cache = self._open(None)
            else:
                self._session_cache = self.load()
        return self._session_cache

    async def _aget_session(self, no_load: bool = False) -> Session:
        self.accessed = True
        try:
            return self._session_cache
        except AttributeError:
            if self.session_key is None or no_load:
                self._session_cache = await sync_to_async(self._open)(None)
            else:
                self._session_cache = await self.aload()
        return self._session_cache

    _session = property(_get_session)

    def load(self) -> Session:
        """The stored session for this key; an unknown or dead key leaves the key None."""
        session = self._open(self.session_key)
        if session.is_new:
            self._session_key = None
        return session

    # -- SessionBase's storage contract ---------------------------------------------------------

    def exists(self, session_key: str | None) -> bool:
        if self._engine.sealer is not None:
            return False  # as Django's signed_cookies: the client holds the session
        if not session_key or not is_valid_id(session_key):
            return False
        return self._engine.store.exists(session_key)

    def create(self) -> None:
        """A fresh session under a new id.  Nothing is stored until it holds data: satchel
        keeps no record, and sends no cookie, for a session that holds nothing."""
        self._session_cache = self._open(None)
        self._session_key = self._session_cache.id  # type: ignore[assignment]
        self.modified = True

    def save(self, must_create: bool = False) -> None:
        """Write what changed in this session (all of it for a new one).

        Raises:
            CreateError: ``must_create`` and the key is already taken.
            UpdateError: the session was deleted meanwhile (a logout in another request);
                Django's middleware turns it into ``SessionInterrupted``.
        """
        if must_create and self.session_key is not None and self.exists(self.session_key):
            raise CreateError
        session = self._get_session(no_load=must_create)
        expiry = session.get("_session_expiry")
        if expiry and self.get_expiry_age(expiry=expiry) <= 0:
            session.invalidate()  # a date already past: the session is over
        elif AUTH_USER_KEY in session:
            session.user = str(session[AUTH_USER_KEY])
        loaded = session._loaded_id is not None
        decision = self._engine.commit(session, overhead=_cookie_overhead)
        if loaded and decision.action is Action.NOTHING and decision.cookie is CookieOp.REVOKE:
            self._session_key = None
            raise UpdateError
        if decision.action in (Action.SAVE, Action.UPDATE, Action.TOUCH):
            # The key Django's middleware sends: the id, or for the cookie store the sealed
            # session itself.
            self._session_key = decision.value  # type: ignore[assignment]

    def delete(self, session_key: str | None = None) -> None:
        """Delete the stored session now (this one's when ``session_key`` is None)."""
        key = self.session_key if session_key is None else session_key
        if key and is_valid_id(key):
            self._engine.store.delete(key)

    def clear(self) -> None:
        self._session.clear()
        self.accessed = True
        self.modified = True

    def flush(self) -> None:
        """Logout: forget the data, delete the stored session, drop the key."""
        self.delete()
        self._session_cache = self._open(None)
        self._session_key = None
        self.accessed = True
        self.modified = True

    async def aflush(self) -> None:
        await sync_to_async(self.flush)()

    def cycle_key(self) -> None:
        """A new id for the same data, the old record deleted: satchel's rotation."""
        session = self._session
        session.rotate()
        self._commit_rotation(session)

    async def acycle_key(self) -> None:
        session = await self._aget_session()
        session.rotate()
        await sync_to_async(self._commit_rotation)(session)

    def _commit_rotation(self, session: Session) -> None:
        # Django's contract: the old key is gone when cycle_key returns.
        decision = self._engine.commit(session, overhead=_cookie_overhead)
        self._session_key = decision.token or session.id  # type: ignore[assignment]
        self.modified = True

    def set_expiry(self, value: Any) -> None:
        """Django's ``set_expiry``, and the same lifetime for satchel (see the module doc)."""
        super().set_expiry(value)
        self._lifetime()

    async def aset_expiry(self, value: Any) -> None:
        await super().aset_expiry(value)
        await sync_to_async(self._lifetime)()

    def _lifetime(self) -> None:
        expiry = self._session.get("_session_expiry")
        if expiry is None or expiry == 0:
            self._session.set_expiry(expiry)
        else:
            self._session.set_expiry(max(1, self.get_expiry_age(expiry=expiry)))

    @classmethod
    def clear_expired(cls) -> None:
        """Remove expired sessions (``manage.py clearsessions``); nothing to do on stores
        that expire natively."""
        engine().purge()
