"""Pesto's ``pesto.session.base`` over satchel: the session object, the managers' common
methods and ``session_middleware``.

Nothing here decides policy.  The middleware is satchel's :class:`~satchel.SessionMiddleware`
with Pesto's cookie and query parameter name (``pesto_session``) and Pesto's option names; a
manager is a satchel store (memory or file) behind Pesto's method names; the object an
application finds in ``environ['pesto.session']`` is satchel's session under Pesto's attribute
names.  What differs from Pesto, on purpose: ids are satchel's (256 bits, checked before any
store or path sees them), values are stored by satchel's codec (tagged JSON unless
``pickle=True`` and a ``secret`` are given), and a visitor's id is given at once (``issue_ids``)
but nothing is stored for it until the application stores something.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import Any

from ....codec import Codec, CodecError, JSONCodec
from ....ids import ID_LENGTH, is_valid_id, new_id
from ....manager import SessionManager
from ....record import Changes, SessionMeta, SessionRecord
from ....session import Session as _LiveSession
from ....stores.base import BaseStore, Store
from ....wsgi import SessionMiddleware, StartResponse, WSGIApp

__all__ = [
    "ID_LENGTH",
    "Session",
    "SessionManagerBase",
    "ThreadsafeSessionManagerBase",
    "generate_id",
    "is_valid_id",
    "session_middleware",
]

COOKIE_NAME = "pesto_session"
_ENVIRON_KEY = "satchel.session"
# A name that is safe as one path component: no separator, no dot, bounded.  ``get_path`` takes
# any such name (Pesto's own example asks for 'abcdefgh'); the stores take only satchel ids.
_PATH_SAFE = re.compile(r"[A-Za-z0-9_-]{1,128}")


def generate_id() -> str:
    """A fresh session id (satchel's: 256 bits from ``secrets``)."""
    return new_id()


def check_path_name(session_id: object) -> str:
    """``session_id`` if it can name a file inside the session directory, else ValueError."""
    if type(session_id) is not str or _PATH_SAFE.fullmatch(session_id) is None:
        raise ValueError("not a session id: it cannot name a session file")
    return session_id


class Session(MutableMapping[str, Any]):
    """Pesto's session object: a mapping with ``session_id``, ``is_new``, ``save()`` and
    ``invalidate()``.

    Built by the middleware over the request's satchel session (changes are saved at the end
    of a successful request, as Pesto's ``save_if_changed`` did), or directly as Pesto allowed,
    ``Session(manager, session_id, is_new, data=None)``, over a plain dict that ``save()``
    writes through ``manager.store(session)``.
    """

    COOKIE_NAME = COOKIE_NAME

    def __init__(self, session_manager: SessionManagerBase, session_id: str | None,
                 is_new: bool, data: Iterable[tuple[str, Any]] | dict[str, Any] | None = None
                 ) -> None:
        self.session_manager = session_manager
        self._session_id = session_id
        self._is_new = is_new
        self._live: _LiveSession | None = None
        self._changed = False
        self.data: MutableMapping[str, Any] = dict(data or {})

    @classmethod
    def _over(cls, manager: SessionManagerBase, live: _LiveSession) -> Session:
        """The request's satchel session under Pesto's names."""
        session = cls(manager, None, True)
        session._live = live
        session.data = live
        return session

    @property
    def session_id(self) -> str | None:
        """The id; a new session gets one when asked (no I/O)."""
        live = self._live
        return live.id if live is not None else self._session_id

    @session_id.setter
    def session_id(self, value: str | None) -> None:
        if self._live is not None:
            raise AttributeError("the id of a request's session is managed by satchel")
        self._session_id = value

    @property
    def is_new(self) -> bool:
        """True when no stored session was found for this request."""
        live = self._live
        return live.is_new if live is not None else self._is_new

    @is_new.setter
    def is_new(self, value: bool) -> None:
        if self._live is not None:
            raise AttributeError("is_new of a request's session is managed by satchel")
        self._is_new = value

    def save(self) -> None:
        """Write the session now (a request's session is saved at the end of the request)."""
        if self._live is None:
            self.session_manager.store(self)
            self._changed = False
            self._is_new = False

    def save_if_changed(self) -> bool:
        """Save when new or changed; return whether it saved (Pesto's end-of-request step)."""
        if self._live is not None:
            return False
        if self._changed or self._is_new:
            self.save()
            return True
        return False

    def invalidate(self) -> None:
        """Delete the stored session; a request's session also revokes the client's id."""
        if self._live is not None:
            self._live.invalidate()
            return
        if self._session_id is not None:
            self.session_manager.remove(self._session_id)
        self._session_id = None

    def has_key(self, key: str) -> bool:
        return key in self.data

    def text(self) -> str:
        """A short description (ids and keys only: values stay out of logs)."""
        return (f"<{type(self).__name__} id={self.session_id}, is_new={self.is_new}, "
                f"keys={sorted(self.data)}>")

    # -- the mapping ---------------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._changed = True
        self.data[key] = value

    def __delitem__(self, key: str) -> None:
        self._changed = True
        del self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def clear(self) -> None:
        self._changed = True
        self.data.clear()


class _LazyStore(BaseStore):
    """A store built on first use, as Pesto touched its directory only when a session was saved
    (so ``FileSessionManager('/path/to/session/store')`` can be built before that path exists).
    """

    def __init__(self, factory: Callable[[], Store], *, thread_safe: bool,
                 multiprocess_safe: bool) -> None:
        self._factory = factory
        self._store: Store | None = None
        self._lock = threading.Lock()
        self.thread_safe = thread_safe
        self.multiprocess_safe = multiprocess_safe

    @property
    def built(self) -> bool:
        return self._store is not None

    @property
    def inner(self) -> Store:
        store = self._store
        if store is None:
            with self._lock:
                store = self._store
                if store is None:
                    store = self._store = self._factory()
        return store

    def load(self, sid: str) -> SessionRecord | None:
        return self.inner.load(sid)

    def save(self, sid: str, changes: Changes, meta: SessionMeta) -> bool:
        return self.inner.save(sid, changes, meta)

    def update(self, sid: str, changes: Changes, accessed: float, expires: float,
               lifetime: float | None) -> bool:
        return self.inner.update(sid, changes, accessed, expires, lifetime)

    def delete(self, sid: str) -> bool:
        return self.inner.delete(sid)

    def touch(self, sid: str, accessed: float, expires: float) -> bool:
        return self.inner.touch(sid, accessed, expires)

    def exists(self, sid: str) -> bool:
        return self.inner.exists(sid)

    def purge(self, now: float | None = None) -> int:
        return self.inner.purge(now)

    def count(self) -> int:
        return self.inner.count()

    def ids(self) -> Iterator[str]:
        return self.inner.ids()

    def user_sessions(self, user: str) -> list[str]:
        return self.inner.user_sessions(user)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    def __repr__(self) -> str:
        return f"<lazy {self._store!r}>" if self._store is not None else "<lazy store, not built>"


class SessionManagerBase:
    """Pesto's session manager methods over a satchel store.

    Each method is one store call under Pesto's name.  The expiry policy is satchel's manager;
    ``session_middleware`` hands its own policy to the manager it wraps, so a session saved or
    touched here expires exactly as the middleware's do.
    """

    COOKIE_NAME = COOKIE_NAME
    PICKLE_PROTOCOL = -1

    def __init__(self, store: Store, *, codec: Codec | None = None) -> None:
        self._satchel_store = store
        self.codec: Codec = codec or JSONCodec()
        self.policy = SessionManager()
        self._lock = threading.RLock()

    @property
    def satchel_store(self) -> Store:
        """The satchel store behind this manager."""
        return self._satchel_store

    # -- locking: every store call is atomic already; these order an application's own steps --

    def acquire_lock(self, session_id: str | None = None) -> None:
        """Acquire this manager's lock (one lock for the whole storage, within this process)."""
        self._lock.acquire()

    def release_lock(self, session_id: str | None = None) -> None:
        """Release the lock taken by :meth:`acquire_lock`."""
        self._lock.release()

    # -- sessions --------------------------------------------------------------------------------

    def load(self, session_id: str | None) -> Session:
        """The stored session, or a new one with a fresh id when there is none."""
        record = self._record(session_id)
        if record is None or session_id is None:
            return Session(self, generate_id(), True)
        data = {}
        for key, text in record.data.items():
            try:
                data[key] = self.codec.decode(text)
            except CodecError:
                continue  # unreadable (corrupt, or signed with a retired key): reads as absent
        self.update_access_time(session_id)
        return Session(self, session_id, False, data)

    def read_session(self, session_id: str | None) -> Session:
        """Pesto's name for :meth:`load`, taking None for "no id"."""
        return self.load(session_id)

    def store(self, session: Session) -> None:
        """Write ``session``'s whole mapping under its id."""
        sid = session.session_id
        if sid is None or not is_valid_id(sid):
            raise ValueError("a stored session needs an id made by satchel")
        now = time.time()
        record = self._satchel_store.load(sid)
        created = record.created if record is not None else now
        encoded = {key: self.codec.encode(key, value) for key, value in session.data.items()}
        user = record.user if record is not None else None
        meta = SessionMeta(created, now, self.policy.expires(created, now), user)
        self._satchel_store.save(sid, Changes(encoded, cleared=True, user_changed=False), meta)

    def remove(self, session_id: str) -> None:
        """Delete the stored session (nothing happens for an unknown id)."""
        if is_valid_id(session_id):
            self._satchel_store.delete(session_id)

    def __contains__(self, session_id: object) -> bool:
        return is_valid_id(session_id) and self._satchel_store.exists(session_id)  # type: ignore[arg-type]

    def get_access_time(self, session_id: str) -> float:
        """When the session was last accessed (epoch seconds); KeyError when there is none."""
        record = self._record(session_id)
        if record is None:
            raise KeyError(session_id)
        return record.accessed

    def update_access_time(self, session_id: str) -> None:
        """Mark the session accessed now (its idle expiry moves on)."""
        record = self._record(session_id)
        if record is not None:
            now = time.time()
            self._satchel_store.touch(session_id, now, self.policy.expires(record.created, now))

    def purge(self, olderthan: float = 1800) -> int:
        """Remove expired sessions; return how many.

        A session's expiry was fixed by the policy when it was last written (the middleware's
        ``auto_purge_olderthan`` is its idle timeout), so ``olderthan`` is not consulted again.
        """
        return self._satchel_store.purge(time.time())

    def close(self) -> None:
        """Close the store."""
        self._satchel_store.close()

    def _record(self, session_id: str | None) -> SessionRecord | None:
        if session_id is None or not is_valid_id(session_id):
            return None
        return self._satchel_store.load(session_id)


class ThreadsafeSessionManagerBase(SessionManagerBase):
    """Pesto's base for in-process managers; satchel's stores are thread-safe already."""


def session_middleware(
    session_manager: SessionManagerBase,
    auto_purge_every: float = 60,
    auto_purge_olderthan: float = 1800,
    persist: str = "cookie",
    cookie_path: str | None = None,
    cookie_domain: str | None = None,
    **options: Any,
) -> Callable[[WSGIApp], SessionMiddleware]:
    """WSGI middleware for sessioning, with Pesto's signature and defaults.

    Args:
        session_manager: a ``MemorySessionManager`` or ``FileSessionManager`` (this module's).
        auto_purge_every: seconds between purges by a background thread (0: none); under
            ``wsgi.run_once`` (CGI) the purge runs after each request instead.
        auto_purge_olderthan: seconds without access after which a session is dead (satchel's
            ``idle_timeout``).
        persist: ``'cookie'`` or ``'querystring'``: where the ``pesto_session`` id travels.  In
            querystring mode a GET without an id is redirected to the same URL with a fresh id.
        cookie_path: the cookie's ``Path``; None takes it from ``SCRIPT_NAME``.
        cookie_domain: the cookie's ``Domain``; None sends none.
        **options: any other :class:`~satchel.SessionMiddleware` option (``secret``,
            ``pickle``, ``absolute_timeout``, ``cookie_secure``, ...).

    The session is ``environ['pesto.session']`` and the manager ``environ['pesto.sessionmanager']``.
    """
    name = session_manager.COOKIE_NAME  # a subclass may rename it, as in Pesto
    settings: dict[str, Any] = {
        "environ_key": _ENVIRON_KEY,
        "cookie_name": name,
        "query_param": name,
        "persist": persist,
        "cookie_path": cookie_path,
        "cookie_domain": cookie_domain,
        "auto_purge_every": auto_purge_every,
        "auto_purge_olderthan": auto_purge_olderthan,
        "issue_ids": True,  # Pesto gave every visitor an id at once; satchel stores nothing yet
    }
    if "codec" not in options and not options.get("pickle"):
        settings["codec"] = session_manager.codec
    settings.update(options)

    def middleware(app: WSGIApp) -> SessionMiddleware:
        def publish(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
            environ["pesto.sessionmanager"] = session_manager
            environ["pesto.session"] = Session._over(session_manager, environ[_ENVIRON_KEY])
            return app(environ, start_response)

        wrapped = SessionMiddleware(publish, store=session_manager.satchel_store, **settings)
        # Sessions the application saves or touches through the manager follow the same policy.
        session_manager.policy = wrapped.engine.manager
        session_manager.codec = wrapped.engine.codec
        return wrapped

    return middleware
