"""Flask: ``flask.session`` becomes a satchel session.

    from satchel.integrations.flask import Satchel
    Satchel(app, store="redis://127.0.0.1:6379/0")

The session keeps Flask's meaning of ``permanent``, ``modified``, ``new`` and ``accessed``;
``flash()``/``get_flashed_messages()`` work unchanged.  The cookie follows Flask's
``SESSION_COOKIE_*`` configuration and a permanent session lives
``PERMANENT_SESSION_LIFETIME``.  With Flask-Login the id rotates whenever the logged-in user
changes (login, logout, a login from the "remember me" cookie): Flask-Login itself never
rotates it, which leaves a session id planted before login valid after it (fixation).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask.sessions import SessionInterface, SessionMixin

from ..errors import StoreUnavailable
from ..keys import SecretLike
from ..session import Session
from ..stores import Store, takes_secret
from ..transport import private_cache_control
from ._door import Door, SessionView

if TYPE_CHECKING:
    from flask import Flask, Request, Response

__all__ = ["FlaskSession", "Satchel", "SatchelSessionInterface"]

_DOOR_KEY = "satchel"
_UNAVAILABLE = "Service Unavailable: the session store cannot be reached.\n"


class FlaskSession(SessionView, SessionMixin):
    """The object behind ``flask.session``: Flask's session protocol over a satchel session.

    Everything satchel's session offers (``id``, ``user``, ``rotate()``, ``invalidate()``,
    ``set_expiry()``, ``expires_at``, ``csrf_token``) is reachable through it.
    """

    def __init__(self, session: Session, lifetime: float) -> None:
        super().__init__(session)
        self._lifetime = lifetime
        self._forced = False
        self._accessed = False

    # -- Flask's SessionMixin attributes ------------------------------------------------------

    @property
    def permanent(self) -> bool:
        """Flask's meaning: the cookie outlives the browser, for PERMANENT_SESSION_LIFETIME."""
        expiry = self.satchel.expiry
        return expiry is not None and expiry > 0

    @permanent.setter
    def permanent(self, value: bool) -> None:
        self.satchel.set_expiry(self._lifetime if value else None)

    @property
    def modified(self) -> bool:
        """Something was set, deleted or cleared (in-place changes are found at the end)."""
        return self._forced or self.satchel.modified

    @modified.setter
    def modified(self, value: bool) -> None:
        # Flask needs it after changing a value in place; satchel finds such changes by itself
        # at the end of the request, so the flag only answers the getter.
        self._forced = bool(value)

    @property
    def new(self) -> bool:  # type: ignore[override]
        """No stored session was found for this request."""
        return self.satchel.is_new

    @property
    def accessed(self) -> bool:
        """``flask.session`` was used in this request (Flask sets it; satchel reads nothing)."""
        return self._accessed or self.satchel.touched

    @accessed.setter
    def accessed(self, value: bool) -> None:
        # Flask sets this on every use of the ``session`` proxy, before any key is read: a flag,
        # not a load, so a view that only looks at the proxy costs no store call.
        self._accessed = bool(value)


class SatchelSessionInterface(SessionInterface):
    """Flask's session interface over satchel's engine: open lazily, save only what changed."""

    def __init__(self, door: Door) -> None:
        self.door = door

    def open_session(self, app: Flask, request: Request) -> FlaskSession:
        lifetime = app.permanent_session_lifetime.total_seconds()
        return FlaskSession(self.door.open(request.environ), lifetime)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not isinstance(session, FlaskSession):
            return
        from flask import request

        # As Django does: a server error saves nothing (satchel's rule for a failed request).
        try:
            headers = self.door.finish(session.satchel, request.environ,
                                       failed=response.status_code >= 500)
        except StoreUnavailable:
            # As satchel's middleware does when a save fails before the response left.
            _unavailable_response(response)
            return
        for name, value in headers:
            if name == "Vary":
                response.vary.add(value)
            elif name == "Cache-Control":
                merged = private_cache_control(response.headers.get("Cache-Control"))
                if merged is not None:
                    response.headers["Cache-Control"] = merged
            else:
                response.headers.add(name, value)


class Satchel:
    """Install satchel as ``app``'s session interface (now, or later with :meth:`init_app`).

    Args:
        app: the Flask application, or None to call :meth:`init_app` later.
        store: a store or a store URL; None takes ``app.config["SATCHEL_STORE"]``, else the
            embedded SQLite default.
        secret: for cookie sessions and ``pickle=True``; None takes the app's ``SECRET_KEY``
            when the store needs one.
        **options: satchel's options (the README's table); they win over Flask's
            ``SESSION_COOKIE_*`` configuration, which fills in the rest.

    The absolute lifetime defaults to at least ``PERMANENT_SESSION_LIFETIME``, so that a
    permanent session is not cut short by satchel's one-day default.
    """

    def __init__(self, app: Flask | None = None, store: Store | str | None = None,
                 secret: SecretLike | None = None, **options: Any) -> None:
        self.store = store
        self.secret = secret
        self.options = options
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Build the store and engine from this object's options and ``app.config``."""
        config = app.config
        store = self.store if self.store is not None else config.get("SATCHEL_STORE")
        secret = self.secret
        if secret is None and isinstance(store, str) and takes_secret(store):
            secret = config.get("SECRET_KEY")
        options = dict(self.options)
        lifetime = app.permanent_session_lifetime.total_seconds()
        absolute = options.get("absolute_timeout", 86400)
        if absolute is not None and "absolute_timeout" not in options:
            options["absolute_timeout"] = max(absolute, lifetime)
        options.setdefault("cookie_name", config["SESSION_COOKIE_NAME"])
        options.setdefault("cookie_domain", config["SESSION_COOKIE_DOMAIN"] or None)
        options.setdefault("cookie_path", config["SESSION_COOKIE_PATH"] or None)
        options.setdefault("cookie_httponly", config["SESSION_COOKIE_HTTPONLY"])
        # Flask's False and None are its defaults, not a choice: satchel's safer defaults
        # (Secure on https, SameSite=Lax) stand unless the application asked for more.
        if config["SESSION_COOKIE_SECURE"]:
            options.setdefault("cookie_secure", True)
        if config["SESSION_COOKIE_SAMESITE"]:
            options.setdefault("cookie_samesite", config["SESSION_COOKIE_SAMESITE"])
        door = Door(store, secret, **options)
        app.session_interface = SatchelSessionInterface(door)
        app.extensions[_DOOR_KEY] = door
        app.register_error_handler(StoreUnavailable, _unavailable)
        _rotate_on_login(app)


def _unavailable(error: StoreUnavailable) -> tuple[str, int, dict[str, str]]:
    """A store outage while the session was read: 503, as from satchel's middleware."""
    return _UNAVAILABLE, 503, {"Retry-After": "5", "Cache-Control": "no-store",
                               "Content-Type": "text/plain; charset=utf-8"}


def _unavailable_response(response: Response) -> None:
    body, status, headers = _unavailable(StoreUnavailable())
    response.status_code = status
    response.set_data(body)
    for name, value in headers.items():
        response.headers[name] = value


def _rotate_on_login(app: Flask) -> None:
    """With Flask-Login installed, give the session a new id whenever its user changes."""
    try:
        import flask_login
    except ImportError:
        return

    def logged_in(sender: Flask, user: Any = None, **extra: Any) -> None:
        session = _current()
        if session is not None:
            session.satchel.rotate()
            session.satchel.user = str(user.get_id()) if user is not None else None

    def logged_out(sender: Flask, user: Any = None, **extra: Any) -> None:
        session = _current()
        if session is not None:
            session.satchel.rotate()
            session.satchel.user = None

    for signal in (flask_login.user_logged_in, flask_login.user_loaded_from_cookie):
        signal.connect(logged_in, app, weak=False)
    flask_login.user_logged_out.connect(logged_out, app, weak=False)


def _current() -> FlaskSession | None:
    from flask import session

    obj = session._get_current_object()  # type: ignore[attr-defined]
    return obj if isinstance(obj, FlaskSession) else None
