"""``beaker.middleware.SessionMiddleware`` and Beaker's PasteDeploy filter, over satchel.

The middleware translates Beaker's options (:mod:`.options`) into satchel's settings, wraps
the application in satchel's own WSGI middleware, and publishes a Beaker-shaped session object
in the environ.  Loading, saving, cookies and expiry are all satchel's.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ...session import Session as CoreSession
from ...wsgi import Environ, StartResponse, WSGIApp
from ...wsgi import SessionMiddleware as CoreMiddleware
from .options import collect, translate
from .session import Session, SessionObject

__all__ = ["SessionMiddleware", "session_filter_app_factory", "session_filter_factory"]

CORE_KEY = "satchel.session"

# Beaker with a secret sends HMAC-SHA1(secret, id) in hex (40) followed by its uuid4 id (32).
_SIGNED_ID = re.compile(r"[0-9a-f]{72}")


class SessionMiddleware:
    """Beaker's session middleware, with satchel underneath.

    Args:
        wrap_app: the WSGI application.
        config: a configuration shared with other components (a Pylons or PasteDeploy one):
            only its keys prefixed ``beaker.session.`` or ``session.`` are read.
        environ_key: where the session is published (``environ['beaker.session']``).
        **kwargs: session options, prefixed or bare; they win over ``config``.

    Raises:
        ConfigurationError: an option satchel does not support, or a bad value; the message
            names the option.
    """

    def __init__(self, wrap_app: WSGIApp, config: Mapping[str, Any] | None = None,
                 environ_key: str = "beaker.session", **kwargs: Any) -> None:
        self.options = collect(config, kwargs)
        plan = translate(self.options)
        self.app = self.wrap_app = wrap_app
        self.environ_key = environ_key
        self._core_key = CORE_KEY if environ_key != CORE_KEY else CORE_KEY + ".core"
        self._webtest_varname = plan.webtest_varname
        secret = plan.legacy_secret
        self._legacy_secret = None if secret is None else secret.encode("utf-8")
        self._cookie_prefix = plan.settings["cookie_name"] + "="
        settings = plan.settings
        self.cookie_defaults: tuple[str | None, str | None] = (
            settings.get("cookie_domain"), settings.get("cookie_path"))
        self.core = CoreMiddleware(self._inner, environ_key=self._core_key, **settings)
        self.engine = self.core.engine
        self.store = self.core.store

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if self._legacy_secret is not None:
            cookie = environ.get("HTTP_COOKIE")
            if cookie and self._cookie_prefix in cookie:
                environ["HTTP_COOKIE"] = unsign_cookie(cookie, self._cookie_prefix,
                                                       self._legacy_secret)
        return self.core(environ, start_response)

    def _inner(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        session = SessionObject(environ[self._core_key], self)
        environ[self.environ_key] = session
        environ["beaker.get_session"] = self._get_session
        testing = environ.get("paste.testing_variables")
        if self._webtest_varname and testing is not None:
            testing[self._webtest_varname] = session
        return self.app(environ, start_response)

    def _open(self, raw_id: str | None) -> CoreSession:
        engine = self.engine

        def opener(session: CoreSession, raw: str | None, fetch: bool) -> bool:
            return engine.load(session, raw, fetch)

        return engine.session(opener, raw_id)

    def get_by_id(self, id: str) -> Session | None:
        """The stored session with this id, or None when there is none (no new session is
        ever made under an id the caller chose)."""
        core = self._open(id)
        if core.is_new:
            return None
        return Session(core, self.engine, self.cookie_defaults)

    def _get_session(self) -> Session:
        """``environ['beaker.get_session']()``: a new session with no cookie; the application
        keeps its ``id``."""
        return Session(self._open(None), self.engine, self.cookie_defaults)

    def close(self) -> None:
        """Close the store this middleware opened (and stop its purge thread)."""
        self.core.close()


def unsign_cookie(header: str, prefix: str, secret: bytes) -> str:
    """The ``Cookie`` header with a cookie that Beaker signed with ``secret`` replaced by the
    bare old id it carries, so that ``legacy_ids`` finds the session ``satchel migrate`` copied.

    Only a value whose signature verifies is unwrapped; anything else is left for satchel to
    refuse as it refuses every malformed id.
    """
    parts = header.split(";")
    for i, part in enumerate(parts):
        name_value = part.strip()
        if not name_value.startswith(prefix):
            continue
        value = name_value[len(prefix):].strip('"')
        if _SIGNED_ID.fullmatch(value) is None:
            continue
        signature, old_id = value[:40], value[40:]
        expected = hmac.new(secret, old_id.encode("ascii"), hashlib.sha1).hexdigest()
        if hmac.compare_digest(signature, expected):
            parts[i] = f" {prefix}{old_id}" if i else f"{prefix}{old_id}"
    return ";".join(parts)


def session_filter_factory(global_conf: Mapping[str, Any],
                           **local_conf: Any) -> Any:
    """PasteDeploy ``paste.filter_factory``: ``use = egg:satchel#session`` in a ``[filter:]``
    or ``[filter-app:]`` section; options as in Beaker (``beaker.session.key = ...``)."""
    def session_filter(app: WSGIApp) -> SessionMiddleware:
        return SessionMiddleware(app, global_conf, **local_conf)
    return session_filter


def session_filter_app_factory(app: WSGIApp, global_conf: Mapping[str, Any],
                               **local_conf: Any) -> SessionMiddleware:
    """PasteDeploy ``paste.filter_app_factory``: the same filter, given its application."""
    return SessionMiddleware(app, global_conf, **local_conf)
