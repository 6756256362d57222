"""satchel as Quixote's session manager.

Quixote's ``Publisher`` calls ``start_request``, ``finish_successful_request`` and
``finish_failed_request``; this module turns them into the steps every satchel front door takes
(open a lazy session, load it, commit it at the end) and turns the engine's decision into
Quixote's response cookie.  Ids, strict mode, expiry, rotation and what to save are satchel's
manager's business; nothing here decides them.

A Quixote :class:`Session` keeps its attributes in a satchel session: ``session.visits = 3`` is
the key ``"visits"``, encoded by satchel's codec (a value the codec cannot represent is a
``TypeError`` naming the attribute), saved per key and merged against what is stored now.
Whether a session is kept at all is Quixote's rule, ``session.has_info()``, handed to the core
as the session's ``keep`` predicate.

    from quixote.publish import Publisher
    from satchel.integrations.quixote import SessionManager

    manager = SessionManager("sqlite:////var/lib/app/sessions.db")
    publisher = Publisher(RootDirectory(), session_manager=manager)

Login is ``session.set_user(name)``: a change of user gives the session a new id.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import quixote
import quixote.session
from quixote.errors import PublishError

from ..config import Settings
from ..errors import ConfigurationError, StoreUnavailable
from ..ids import is_valid_id
from ..manager import CookieOp, Decision
from ..purge import Purger
from ..session import Session as CoreSession
from ..stores import Store
from ..transport import CookieTransport

__all__ = [
    "ENVIRON_KEY", "Session", "SessionManager", "SessionStoreUnavailable", "wsgi_app",
]

# The request's satchel session, as the WSGI middleware publishes it.
ENVIRON_KEY = "satchel.session"

# A user that is not a str is kept through the codec under this key ("user" is a property, so
# no attribute can claim it); a str user is the store's indexed user.
_USER_KEY = "user"
_RESERVED = "_satchel"  # names starting with it are this module's own, never stored
_REVOKED = "Thu, 01 Jan 1970 00:00:00 GMT"

# Quixote's config names the cookie; these satchel options would contradict it.
_QUIXOTE_OWNS = {
    "cookie_name": "session_cookie_name",
    "cookie_domain": "session_cookie_domain",
    "cookie_path": "session_cookie_path",
}
_NOT_HERE = ("transport", "persist", "environ_key", "query_param", "header_name")


class SessionStoreUnavailable(PublishError):  # type: ignore[misc]
    """The session store cannot be reached: Quixote answers 503 (the ``fail_closed`` policy)."""

    status_code = 503
    title = "Service Unavailable"
    description = "The session store cannot be reached at the moment; please try again shortly."


_DESCRIPTORS: dict[tuple[type, str], bool] = {}


def _is_data_descriptor(cls: type, name: str) -> bool:
    """True when ``name`` is a property (or other data descriptor) of ``cls``: not stored."""
    found = _DESCRIPTORS.get((cls, name))
    if found is None:
        found = False
        for klass in cls.__mro__:
            if name in vars(klass):
                found = hasattr(type(vars(klass)[name]), "__set__")
                break
        if len(_DESCRIPTORS) < 4096:
            _DESCRIPTORS[(cls, name)] = found
    return found


def _core_of(session: Any) -> CoreSession | None:
    core: CoreSession | None = session.__dict__.get("_satchel_core")
    return core


def _store_value(core: CoreSession, name: str, value: Any) -> None:
    try:
        core[name] = value
    except TypeError as exc:
        raise TypeError(f"session attribute {name!r} cannot be stored: {exc}") from exc


class Session(quixote.session.Session):  # type: ignore[misc]
    """Quixote's ``Session``, its attributes kept by satchel.

    Everything Quixote's session offers works as before (``user``, ``set_user``, ``has_info``,
    the form-token and CSRF methods); custom attributes are stored through satchel's codec.
    ``id`` is None until the session is first stored.  Setting a different user (``set_user``,
    or ``session.user = ...``) rotates the id: that is the login call.
    """

    def __init__(self, id: str | None) -> None:
        object.__setattr__(self, "_satchel_core", None)
        super().__init__(id)

    # -- where attributes live -----------------------------------------------------------------

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith(_RESERVED) or _is_data_descriptor(type(self), name):
            object.__setattr__(self, name, value)
            return
        core = _core_of(self)
        if core is not None:
            _store_value(core, name, value)
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        core = _core_of(self)
        if core is not None and not name.startswith(_RESERVED) and name in core:
            del core[name]
        object.__delattr__(self, name)

    def _satchel_attach(self, core: CoreSession) -> None:
        """Bind to ``core``: a new session writes its attributes into it, a stored one reads
        its attributes from it (without running ``__init__`` again)."""
        pending_user = self.__dict__.pop("_satchel_user", None)
        object.__setattr__(self, "_satchel_core", core)
        cls = type(self)
        if core.is_new:
            for name, value in list(self.__dict__.items()):
                if not name.startswith(_RESERVED):
                    _store_value(core, name, value)
            if pending_user is not None:
                self._satchel_set_user(core, pending_user, rotate=False)
        else:
            for key in core:
                if not key.startswith(_RESERVED) and not _is_data_descriptor(cls, key):
                    object.__setattr__(self, key, core[key])
            # Quixote's own bookkeeping, for a session stored without it (by ``satchel
            # migrate``, or by another front door): plain defaults, but the token queue is
            # stored, since Quixote appends to it in place.
            for name in ("_remote_address", "_csrf_token"):
                if name not in self.__dict__:
                    object.__setattr__(self, name, None)
            if "_form_tokens" not in self.__dict__:
                tokens: list[str] = []
                self._form_tokens = tokens
        core.keep = self.has_info

    def _satchel_detach(self) -> None:
        """Forget the satchel session (after expiry): later writes go nowhere."""
        object.__setattr__(self, "_satchel_core", None)

    # -- what Quixote keeps outside the attributes -----------------------------------------------

    @property
    def id(self) -> str | None:
        """The session id; None until the session is stored (or after it expired)."""
        core = _core_of(self)
        if core is None or core.is_new:
            return None
        return core.id

    @id.setter
    def id(self, value: str | None) -> None:
        if value is not None:
            raise AttributeError("satchel issues session ids; a session's id cannot be assigned")

    @property
    def user(self) -> Any:
        core = _core_of(self)
        if core is None:
            return self.__dict__.get("_satchel_user")
        if _USER_KEY in core:
            return core[_USER_KEY]
        return core.user

    @user.setter
    def user(self, value: Any) -> None:
        core = _core_of(self)
        if core is None:
            object.__setattr__(self, "_satchel_user", value)
        else:
            self._satchel_set_user(core, value, rotate=True)

    def _satchel_set_user(self, core: CoreSession, value: Any, *, rotate: bool) -> None:
        old = self.user
        if value is None or type(value) is str:
            if _USER_KEY in core:
                del core[_USER_KEY]
            core.user = value
        else:
            _store_value(core, _USER_KEY, value)
            core.user = None
        if rotate and value is not None and value != old:
            # A new user is a change of privilege: an id seen before it must not work after it.
            # A str user is the core's own ``user``, whose change rotates the id already.
            if type(value) is not str:
                core.rotate()
            if self.__dict__.get("_csrf_token") is not None:
                self._csrf_token = None

    @property
    def _creation_time(self) -> float:
        core = _core_of(self)
        if core is not None:
            return core.created
        return float(self.__dict__.get("_satchel_created", 0.0))

    @_creation_time.setter
    def _creation_time(self, value: float) -> None:
        object.__setattr__(self, "_satchel_created", value)  # the store's time wins once bound

    @property
    def _access_time(self) -> float:
        core = _core_of(self)
        if core is not None:
            return core.accessed
        return float(self.__dict__.get("_satchel_accessed", 0.0))

    @_access_time.setter
    def _access_time(self, value: float) -> None:
        object.__setattr__(self, "_satchel_accessed", value)

    def _set_access_time(self, resolution: float) -> None:
        """Nothing to do: satchel's manager moves the access time (throttled)."""

    def rotate(self) -> None:
        """Give the session a new id now, keeping its data (``set_user`` does it at login)."""
        core = _core_of(self)
        if core is not None:
            core.rotate()


class SessionManager:
    """Quixote's session manager, over any satchel store.

    Args:
        store: a satchel store, a store URL, or None for SQLite in the working directory.
        session_class: the session class, :class:`Session` or a subclass of it.
        **options: satchel's options (``idle_timeout``, ``absolute_timeout``, ``strict``,
            ``persistent``, ``cookie_samesite``, ``cookie_secure``, ``cookie_httponly``,
            ``secret``, ``pickle``, ``on_unavailable``, ``auto_purge_every``, ...).  The cookie's
            name, domain and path come from Quixote's config (``session_cookie_name``, ...);
            its ``session_cookie_secure`` and ``session_cookie_httponly``, when true, force
            those attributes on (satchel sets ``HttpOnly`` always and ``Secure`` on https
            by default).
    """

    ACCESS_TIME_RESOLUTION = 1  # Quixote's attribute; satchel throttles with touch_interval

    def __init__(self, store: Store | str | None = None,
                 session_class: type[Session] = Session, **options: Any) -> None:
        for name, config_name in _QUIXOTE_OWNS.items():
            if name in options:
                raise ConfigurationError(
                    f"{name}: set Quixote's config {config_name} instead (one place for each)"
                )
        for name in _NOT_HERE:
            if name in options:
                raise ConfigurationError(f"{name} does not apply to Quixote's session manager")
        if not (isinstance(session_class, type) and issubclass(session_class, Session)):
            raise ConfigurationError(
                "session_class must be satchel.integrations.quixote.Session or a subclass"
            )
        settings = Settings.from_options(store=store, **options)
        self.settings = settings
        self.store, self._owns_store = settings.make_store()
        self.engine = settings.make_engine(self.store)
        self.session_class = session_class
        self._transports: dict[tuple[Any, ...], CookieTransport] = {}
        self.purger: Purger | None = None
        if settings.auto_purge_every:
            self.purger = Purger(self.engine.purge, settings.auto_purge_every)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} over {self.engine.store!r}>"

    # -- Quixote's main loop ---------------------------------------------------------------------

    def start_request(self) -> None:
        """Load the request's session (one store read when the client sent an id)."""
        purger = self.purger
        if purger is not None and not purger.running:
            purger.start()
        request = quixote.get_request()
        try:
            session = self.get_session()
        except StoreUnavailable as exc:
            raise SessionStoreUnavailable() from exc
        request.environ[ENVIRON_KEY] = session._satchel_core
        request.session = session
        session.start_request()

    def finish_successful_request(self) -> None:
        """Save what the request changed, and set or revoke the cookie, as satchel decides."""
        self.maintain_session(quixote.get_session())
        self.clear_session(quixote.get_request())

    def finish_failed_request(self) -> None:
        """The request raised: nothing is saved, no cookie is sent."""
        self.clear_session(quixote.get_request())

    # -- the session -----------------------------------------------------------------------------

    def get_session(self) -> Session:
        """The current request's session: the stored one named by the cookie, or a new one.

        A new session is neither stored nor given a cookie here: that happens at the end of the
        request, and only if ``has_info()`` says it is worth keeping.
        """
        core = self.engine.session(self._open, quixote.get_request())
        if core.is_new:  # loads: nothing is read without an id from the client
            session = self.new_session(None)
        else:
            cls = self.session_class
            session = cls.__new__(cls)
        session._satchel_attach(core)
        return session

    def new_session(self, id: str | None) -> Session:
        """A new session object of ``session_class``."""
        return self.session_class(id)

    def maintain_session(self, session: Session | None = None) -> bool:
        """Carry out satchel's decision for this request; True when the session is kept.

        Called by :meth:`finish_successful_request`; the ``session`` argument is Quixote's
        signature and not needed (the request's session is known).
        """
        request = quixote.get_request()
        # Taken off the request first: an error page after a failed save must not retry it.
        core: CoreSession | None = request.environ.pop(ENVIRON_KEY, None)
        if core is None:
            return False
        try:
            decision = self.engine.commit(core)
        except StoreUnavailable as exc:
            raise SessionStoreUnavailable() from exc
        self._apply(decision, request)
        return not core.is_new

    def expire_session(self) -> None:
        """End the current session: its record is deleted and the cookie revoked (logout)."""
        request = quixote.get_request()
        core: CoreSession | None = request.environ.get(ENVIRON_KEY)
        if core is not None:
            core.keep = None
            core.invalidate()
        session = request.session
        if isinstance(session, Session):
            session._satchel_detach()
        self.revoke_session_cookie()
        request.session = None

    def clear_session(self, request: Any = None) -> None:
        """Forget this request's session state (Session3's name)."""
        (request or quixote.get_request()).environ.pop(ENVIRON_KEY, None)

    def has_session(self, session_id: str) -> bool:
        """True when a live session is stored under ``session_id``."""
        return is_valid_id(session_id) and self.engine.store.exists(session_id)

    def has_session_cookie(self, must_exist: bool = False) -> bool:
        """True when the request carries a session cookie (naming a live session if
        ``must_exist``)."""
        config = quixote.get_publisher().config
        sid = quixote.get_cookie(config.session_cookie_name)
        if sid is None:
            return False
        return self.has_session(sid) if must_exist else True

    # -- cookies ---------------------------------------------------------------------------------

    def set_session_cookie(self, session_id: str, **attrs: Any) -> str:
        """Send the session cookie with ``session_id``; returns the cookie's name."""
        request = quixote.get_request()
        transport = self._transport()
        cookie = self._attributes(transport, request)
        cookie.update(attrs)
        request.response.set_cookie(transport.name, session_id, **cookie)
        return transport.name

    def revoke_session_cookie(self) -> None:
        """Tell the client to drop its session cookie, and hide it from the rest of the request."""
        name = self.set_session_cookie("", max_age=0, expires=_REVOKED)
        request = quixote.get_request()
        request.cookies.pop(name, None)

    # -- the mapping Quixote's own manager offers (admin tools) ----------------------------------

    def get(self, session_id: str, default: Any = None) -> Any:
        """The stored session ``session_id`` as a read-only snapshot, or ``default``."""
        if not is_valid_id(session_id):
            return default
        core = self.engine.session(_no_opener, None)
        self.engine.load(core, session_id)
        if core.is_new:
            return default
        cls = self.session_class
        session = cls.__new__(cls)
        session._satchel_attach(core)
        return session

    def __getitem__(self, session_id: str) -> Session:
        session = self.get(session_id)
        if session is None:
            raise KeyError(session_id)
        return session  # type: ignore[no-any-return]

    def __contains__(self, session_id: object) -> bool:
        return isinstance(session_id, str) and self.has_session(session_id)

    def __delitem__(self, session_id: str) -> None:
        if not (is_valid_id(session_id) and self.engine.store.delete(session_id)):
            raise KeyError(session_id)

    def __setitem__(self, session_id: str, session: Session) -> None:
        """Save the changes made to a session obtained with :meth:`get` (admin tools).

        The current request's own session needs no call: it is saved at the end of the request.
        """
        core = _core_of(session)
        if core is None or session.id != session_id:
            raise KeyError(session_id)
        publisher = quixote.get_publisher()
        request = publisher.get_request() if publisher is not None else None
        if request is not None and request.environ.get(ENVIRON_KEY) is core:
            return
        self.engine.commit(core)

    def __len__(self) -> int:
        return self.engine.store.count()

    def keys(self) -> list[str]:
        """The ids of the live sessions (scans; a store that cannot list raises
        ``NotImplementedError``)."""
        return list(self.engine.store.ids())

    def __iter__(self) -> Iterator[Session]:
        """The live sessions, as Quixote's manager iterates them."""
        for _, session in self.items():
            yield session

    def values(self) -> list[Session]:
        return [session for _, session in self.items()]

    def items(self) -> list[tuple[str, Session]]:
        found = []
        for sid in self.keys():
            session = self.get(sid)
            if session is not None:
                found.append((sid, session))
        return found

    def close(self) -> None:
        """Stop the purge thread, and close the store if this manager opened it."""
        if self.purger is not None:
            self.purger.stop()
        if self._owns_store:
            self.engine.store.close()

    # -- translation -----------------------------------------------------------------------------

    def _open(self, core: CoreSession, request: Any, fetch: bool) -> bool:
        raw = self._transport().read(request.get_environ("HTTP_COOKIE"))
        if raw == "*del*":  # how older Quixote versions revoked the cookie
            raw = None
        return self.engine.load(core, raw, fetch)

    def _transport(self) -> CookieTransport:
        """The cookie transport for the publisher's config (built once per distinct config)."""
        config = quixote.get_publisher().config
        key = (config.session_cookie_name, config.session_cookie_domain,
               config.session_cookie_path, bool(config.session_cookie_secure),
               bool(config.session_cookie_httponly))
        transport = self._transports.get(key)
        if transport is None:
            name, domain, path, secure, httponly = key
            settings = self.settings
            transport = CookieTransport(
                name, path=path or None, domain=domain or None,
                secure=True if secure else settings.cookie_secure,
                httponly=True if httponly else settings.cookie_httponly,
                samesite=settings.cookie_samesite,
            )
            self._transports[key] = transport
        return transport

    def _attributes(self, transport: CookieTransport, request: Any) -> dict[str, Any]:
        environ = request.environ
        https = request.get_scheme() == "https" or environ.get("wsgi.url_scheme") == "https"
        attrs = transport.attributes(https=https, script_name=environ.get("SCRIPT_NAME", ""))
        # Quixote writes an attribute for every value that is not None ("secure=False" too).
        return {
            "path": attrs["path"],
            "domain": attrs["domain"],
            "secure": True if attrs["secure"] else None,
            "httponly": True if attrs["httponly"] else None,
            "samesite": attrs["samesite"],
            "max_age": None,
            "expires": None,
        }

    def _apply(self, decision: Decision, request: Any) -> None:
        """Put the manager's decision on Quixote's response."""
        op = decision.cookie
        if op is CookieOp.SET:
            self.set_session_cookie(decision.value or "", max_age=decision.max_age)
        elif op is CookieOp.REVOKE:
            self.revoke_session_cookie()
        if decision.vary:
            response = request.response
            vary = response.get_header("Vary")
            if not vary:
                response.set_header("Vary", "Cookie")
            elif "cookie" not in vary.lower():
                response.set_header("Vary", f"{vary}, Cookie")


def wsgi_app(publisher: Any) -> Any:
    """Quixote's WSGI adapter (``QWIP``) for a threaded WSGI server: requests take turns.

    Quixote's publisher serves one request at a time (it holds the current request), so QWIP
    refuses a multithreaded server; this lets one in, one request at a time.  A
    ``Connection`` header Quixote adds is left to the server, as PEP 3333 asks.
    """
    from quixote.wsgi import QWIP

    qwip = QWIP(publisher)
    lock = threading.Lock()

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        def start(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            # Quixote says "Connection: close" for a body of unknown length; PEP 3333 leaves
            # hop-by-hop headers to the server (wsgiref refuses them).
            kept = [(k, v) for k, v in headers if k.lower() != "connection"]
            return start_response(status, kept, *exc_info)

        with lock:
            return qwip({**environ, "wsgi.multithread": False}, start)

    return app


def _no_opener(session: CoreSession, request: Any, fetch: bool) -> bool:
    return True
