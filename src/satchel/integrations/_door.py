"""Door: the few steps every framework integration shares with the WSGI front door.

A framework that owns the request and response (Flask, Pyramid, Bottle plug-ins) still speaks
WSGI underneath: the id is read from the WSGI environ exactly as the middleware reads it, and the
end of the request becomes a list of response headers the framework adds in its own way.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ..config import Settings
from ..errors import ConfigurationError
from ..keys import SecretLike
from ..manager import Decision
from ..session import Session
from ..stores import Store

__all__ = ["Door", "SessionView"]


class Door:
    """A store, an engine and a transport built once from satchel's options.

    Args:
        store: a store, a store URL, or None for the embedded SQLite default.
        secret: needed for ``pickle=True`` and cookie sessions.
        **options: the options of ``SessionMiddleware`` (the README's table).

    Raises:
        ConfigurationError: an unknown or bad option, or the query-string transport (which
            needs the middleware's redirect; a framework integration has no place for it).
    """

    def __init__(self, store: Store | str | None = None, secret: SecretLike | None = None,
                 **options: Any) -> None:
        settings = Settings.from_options(store=store, secret=secret, **options)
        if settings.transport == "querystring":
            raise ConfigurationError(
                "framework integrations carry the id in a cookie or a header; for the "
                "query-string transport wrap the WSGI application in SessionMiddleware"
            )
        self.settings = settings
        self.store, self._owns_store = settings.make_store()
        self.engine = settings.make_engine(self.store)
        self.transport = settings.make_transport()
        if self.transport.source == "cookie":
            self._source = "HTTP_COOKIE"
        else:
            self._source = "HTTP_" + self.transport.header_name.upper().replace("-", "_")

    def open(self, environ: Mapping[str, Any]) -> Session:
        """A lazy session for the request whose WSGI environ this is (no I/O until touched)."""
        return self.engine.session(self._open, environ)

    def _open(self, session: Session, environ: Mapping[str, Any], fetch: bool) -> bool:
        return self.engine.load(session, self.transport.read(environ.get(self._source)), fetch)

    def finish(self, session: Session, environ: Mapping[str, Any], *,
               failed: bool = False) -> list[tuple[str, str]]:
        """Carry out the end of the request; return the headers to add to the response.

        Safe to call more than once: each call sends only what changed since the last.
        Raises ``StoreUnavailable`` when the store cannot be reached (fail closed).
        """
        if failed or not session.touched:
            return []
        transport = self.transport
        https = environ.get("wsgi.url_scheme") == "https"
        script_name = environ.get("SCRIPT_NAME", "")
        overhead = None
        if self.engine.sealer is not None:
            def overhead(decision: Decision) -> int:
                return transport.overhead(decision, https=https, script_name=script_name)

        decision = self.engine.commit(session, overhead=overhead)
        return transport.render(decision, https=https, script_name=script_name)

    def close(self) -> None:
        """Close the store if this door opened it (from a URL)."""
        if self._owns_store:
            self.store.close()


class SessionView:
    """A framework's session object over a satchel session: the mapping, delegated.

    Frameworks wrap satchel's session in their own class (Flask's ``SessionMixin``, Pyramid's
    ``ISession``) only to add their attributes; the mapping and satchel's own API (``id``,
    ``user``, ``rotate()``, ``set_expiry()``, ...) pass straight through.
    """

    def __init__(self, session: Session) -> None:
        self.satchel = session

    def __getitem__(self, key: str) -> Any:
        return self.satchel[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.satchel[key] = value

    def __delitem__(self, key: str) -> None:
        del self.satchel[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.satchel)

    def __len__(self) -> int:
        return len(self.satchel)

    def __contains__(self, key: object) -> bool:
        return key in self.satchel

    def get(self, key: str, default: Any = None) -> Any:
        return self.satchel.get(key, default)

    def clear(self) -> None:
        self.satchel.clear()

    def __getattr__(self, name: str) -> Any:
        # Only reached for names the wrapper lacks: satchel's own session API.
        return getattr(self.satchel, name)
