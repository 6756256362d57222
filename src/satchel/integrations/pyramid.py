"""Pyramid: an ``ISessionFactory`` whose ``request.session`` is a satchel session.

    config.include("satchel.integrations.pyramid")      # reads satchel.* settings
    # or: config.set_session_factory(SatchelSessionFactory(store="redis://...", **options))

``request.session`` implements Pyramid's ``ISession`` (``created``, ``new``, ``changed``,
``invalidate``, ``flash``/``pop_flash``/``peek_flash``, ``new_csrf_token``/``get_csrf_token``)
over satchel's session, so Pyramid's CSRF checks and flash messages work.  A request whose view
raised (an exception view rendered the response) saves nothing, as in satchel's middleware.

pyramid_beaker's users switch by changing one include: its ``session.*`` (and
``beaker.session.*``) settings are read through satchel's table of Beaker options
(``satchel.compat.beaker.options``), and ``session_factory_from_settings`` keeps its name.
Sessions are saved when they changed, without ``save()``; ``cookie_on_exception = true`` saves
them after an exception view too (satchel's default: not).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pyramid.interfaces import ISession, ISessionFactory
from zope.interface import implementer

from ..config import Settings
from ..errors import StoreUnavailable
from ..keys import SecretLike
from ..session import CSRF_KEY, FLASH_KEY, Session
from ..stores import Store
from ..transport import private_cache_control
from ._door import Door, SessionView

if TYPE_CHECKING:
    from pyramid.config import Configurator
    from pyramid.request import Request
    from pyramid.response import Response

__all__ = ["PyramidSession", "SatchelSessionFactory", "includeme",
           "session_factory_from_settings", "settings_options", "unavailable_view"]

PREFIX = "satchel."
#: pyramid_beaker's prefixes: its users switch by changing one include.
BEAKER_PREFIXES = ("session.", "beaker.session.")


@implementer(ISession)
class PyramidSession(SessionView):
    """Pyramid's ``ISession`` over a satchel session; satchel's own API is reachable too
    (``id``, ``user``, ``rotate()``, ``set_expiry()``, ``expires_at``, ...)."""

    # -- IDict -----------------------------------------------------------------------------------

    def keys(self) -> Any:
        return self.satchel.keys()

    def values(self) -> Any:
        return self.satchel.values()

    def items(self) -> Any:
        return self.satchel.items()

    def pop(self, key: str, *default: Any) -> Any:
        return self.satchel.pop(key, *default)

    def popitem(self) -> tuple[str, Any]:
        return self.satchel.popitem()

    def setdefault(self, key: str, default: Any = None) -> Any:
        return self.satchel.setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self.satchel.update(*args, **kwargs)

    # -- ISession --------------------------------------------------------------------------------

    @property
    def created(self) -> float:
        """When the session was created (epoch seconds)."""
        return self.satchel.created

    @property
    def new(self) -> bool:
        """No stored session was found for this request."""
        return self.satchel.is_new

    def invalidate(self) -> None:
        """Delete the stored session and revoke the cookie; later writes start a new one."""
        self.satchel.invalidate()

    def changed(self) -> None:
        """Pyramid's "a mutable value changed in place": satchel finds such changes by itself,
        so this only makes sure the session is loaded."""
        len(self.satchel)

    def flash(self, msg: Any, queue: str = "", allow_duplicate: bool = True) -> None:
        """Queue ``msg`` on ``queue`` (satchel's flash store: one implementation for all)."""
        if allow_duplicate or msg not in self.peek_flash(queue):
            self.satchel.flash(msg, queue)

    def pop_flash(self, queue: str = "") -> list[Any]:
        return [message for _, message in self.satchel.pop_flashes(queue)]

    def peek_flash(self, queue: str = "") -> list[Any]:
        return [m for c, m in self.satchel.get(FLASH_KEY) or () if c == queue]

    def new_csrf_token(self) -> str:
        self.satchel.pop(CSRF_KEY, None)
        return self.satchel.csrf_token

    def get_csrf_token(self) -> str:
        return self.satchel.csrf_token


@implementer(ISessionFactory)
class SatchelSessionFactory:
    """A Pyramid session factory over one satchel store and engine.

    Args:
        store: a store, a store URL, or None for the embedded SQLite default.
        secret: for cookie sessions and ``pickle=True``.
        **options: satchel's options (the README's table).
    """

    def __init__(self, store: Store | str | None = None, secret: SecretLike | None = None,
                 *, save_on_exception: bool = False, **options: Any) -> None:
        # save_on_exception: pyramid_beaker's cookie_on_exception, for those who relied on it.
        self.door = Door(store, secret, **options)
        self.save_on_exception = save_on_exception

    def __call__(self, request: Request) -> PyramidSession:
        session = PyramidSession(self.door.open(request.environ))
        request.add_response_callback(self._finish(session.satchel))
        return session

    def _finish(self, session: Session) -> Callable[[Request, Response], None]:
        door = self.door
        save_on_exception = self.save_on_exception

        def finish(request: Request, response: Response) -> None:
            failed = not save_on_exception and getattr(request, "exception", None) is not None
            try:
                headers = door.finish(session, request.environ, failed=failed)
            except StoreUnavailable:
                # As satchel's middleware does when a save fails before the response left.
                _unavailable(response)
                return
            for name, value in headers:
                if name == "Vary":
                    vary = list(response.vary or ())
                    if value not in vary:
                        response.vary = [*vary, value]
                elif name == "Cache-Control":
                    merged = private_cache_control(response.headers.get("Cache-Control"))
                    if merged is not None:
                        response.headers["Cache-Control"] = merged
                else:
                    response.headerlist.append((name, value))

        return finish

    def close(self) -> None:
        """Close the store if this factory opened it."""
        self.door.close()


def _unavailable(response: Response) -> None:
    response.status = "503 Service Unavailable"
    response.content_type = "text/plain"
    response.text = "Service Unavailable: the session store cannot be reached.\n"
    response.headers["Retry-After"] = "5"
    response.headers["Cache-Control"] = "no-store"


def unavailable_view(exc: StoreUnavailable, request: Request) -> Response:
    """The exception view for a store outage while a session is read: 503."""
    from pyramid.response import Response

    response = Response()
    _unavailable(response)
    return response


def settings_options(settings: Mapping[str, Any]) -> dict[str, Any]:
    """satchel's options from a Pyramid settings mapping.

    ``satchel.<option>`` keys are satchel's options, with the strings an ``.ini`` file gives
    turned into each option's type.  pyramid_beaker's ``session.*`` (and ``beaker.session.*``)
    keys are read too, through the one table that maps Beaker's options
    (``satchel.compat.beaker.options``); a ``satchel.*`` key wins over them.
    """
    fields = {f.name: str(f.type) for f in dataclasses.fields(Settings)}
    options: dict[str, Any] = {}
    beaker: dict[str, Any] = {}
    for key, value in settings.items():
        if key.startswith(PREFIX):
            name = key[len(PREFIX):]
            kind = fields.get(name, "")
            options[name] = _coerce(value, kind) if isinstance(value, str) else value
        elif key.startswith(BEAKER_PREFIXES):
            beaker[key] = value
    if beaker:
        options = {**_beaker_options(beaker), **options}
    return options


def _beaker_options(settings: dict[str, Any]) -> dict[str, Any]:
    from ..compat.beaker.options import collect, translate

    prefixed = {k: v for k, v in settings.items() if not k.endswith("cookie_on_exception")}
    translated: dict[str, Any] = dict(translate(collect(prefixed, {})).settings)
    # pyramid_beaker saves every session its request accessed: satchel saves what changed,
    # without waiting for save(), and keeps no record of a session that holds nothing.
    translated.pop("explicit_save", None)
    translated.pop("save_empty", None)
    for key, value in settings.items():
        if key.endswith("cookie_on_exception"):
            flag = _coerce(value, "bool") if isinstance(value, str) else value
            translated["save_on_exception"] = bool(flag)
    return translated


def _coerce(value: str, kind: str) -> Any:
    text = value.strip()
    if "None" in kind and text.lower() in ("", "none"):
        return None
    if "bool" in kind and text.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        return text.lower() in ("true", "yes", "on", "1")
    if "float" in kind or "int" in kind:
        try:
            return int(text)
        except ValueError:
            try:
                return float(text)
            except ValueError:
                return text  # Settings names the option in its error
    return text


def session_factory_from_settings(settings: Mapping[str, Any]) -> SatchelSessionFactory:
    """pyramid_beaker's function of the same name: a session factory from the settings."""
    return SatchelSessionFactory(**settings_options(settings))


def includeme(config: Configurator) -> None:
    """``config.include("satchel.integrations.pyramid")``: a session factory from the
    ``satchel.*`` settings (``satchel.store = redis://...``, ``satchel.idle_timeout = 3600``),
    or from pyramid_beaker's ``session.*`` settings; a store outage answers 503."""
    config.set_session_factory(session_factory_from_settings(config.get_settings()))
    config.add_view(unavailable_view, context=StoreUnavailable)
