"""Settings: every option a front door accepts, checked once, in one place.

Front doors (WSGI, ASGI, the integrations) take ``**options``, build a :class:`Settings` and ask
it for the engine and the transport.  The README's option table is this class's field list.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .codec import Codec, JSONCodec, PickleCodec
from .engine import FAIL_CLOSED, SessionEngine
from .errors import ConfigurationError
from .events import EventHook, Events
from .keys import Secret, SecretLike
from .manager import MINT_WINDOW, SessionManager
from .stores import Store, masked_url, open_store, takes_secret
from .stores.base import is_client_side
from .transport import (
    CookieTransport,
    HeaderTransport,
    NoTransport,
    QueryTransport,
    make_transport,
)

__all__ = ["DEFAULT_STORE_URL", "Settings"]

DEFAULT_STORE_URL = "sqlite:///satchel-sessions.sqlite3"


@dataclass
class Settings:
    """All options; see the README's table for what each one means."""

    store: Store | str | None = None
    secret: SecretLike | None = None
    environ_key: str | Sequence[str] = "satchel.session"
    transport: str = "cookie"
    cookie_name: str = "satchel"
    cookie_path: str | None = None
    cookie_domain: str | None = None
    cookie_secure: bool | None = None
    cookie_httponly: bool = True
    cookie_samesite: str | None = "Lax"
    cookie_partitioned: bool = False
    query_param: str = "satchel_session"
    header_name: str = "X-Session-Id"
    idle_timeout: float | None = 1800
    absolute_timeout: float | None = 86400
    touch_interval: float = 60
    strict: bool = True
    legacy_ids: bool = False
    issue_ids: bool = False
    persistent: bool = False
    pickle: bool = False
    codec: Codec | None = None
    on_unavailable: str = FAIL_CLOSED
    auto_purge_every: float = 0
    auto_purge_olderthan: float | None = None
    explicit_save: bool = False
    save_empty: bool = False
    clock: Callable[[], float] = field(default=time.time, repr=False)
    on_event: EventHook | None = field(default=None, repr=False)

    @classmethod
    def from_options(cls, **options: Any) -> Settings:
        """Build settings; unknown options are a ``ConfigurationError`` naming the known ones."""
        # Pesto's and Beaker's names, so their users can keep their configuration.
        if "persist" in options:
            options["transport"] = options.pop("persist")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigurationError(
                f"unknown option(s) {', '.join(unknown)}; known options: {', '.join(sorted(known))}"
            )
        olderthan = options.get("auto_purge_olderthan")
        if olderthan is not None:
            # Pesto's name for the idle timeout; it must not contradict an explicit one.
            if options.get("idle_timeout", olderthan) != olderthan:
                raise ConfigurationError(
                    "auto_purge_olderthan is the idle timeout under Pesto's name; "
                    "give one of auto_purge_olderthan and idle_timeout"
                )
            options["idle_timeout"] = olderthan
        settings = cls(**options)
        settings._check()
        return settings

    def __repr__(self) -> str:
        # A store URL may hold a password: shown masked, as the command line prints it.
        shown = []
        for f in dataclasses.fields(self):
            if not f.repr:
                continue
            value = getattr(self, f.name)
            text = masked_url(value) if f.name == "store" and isinstance(value, str) else value
            shown.append(f"{f.name}={text!r}")
        return f"Settings({', '.join(shown)})"

    def _check(self) -> None:
        if self.secret is not None:
            self.secret = Secret(self.secret)
        keys = self.environ_keys
        if not keys or not all(isinstance(k, str) and k for k in keys):
            raise ConfigurationError("environ_key must be a non-empty string or a list of them")
        if self.pickle and self.codec is not None:
            raise ConfigurationError("give either pickle=True or codec=..., not both")
        if self.on_event is not None and not callable(self.on_event):
            raise ConfigurationError("on_event must be a callable taking a satchel.events.Event")
        every = self.auto_purge_every
        if not isinstance(every, (int, float)) or isinstance(every, bool) or every < 0:
            raise ConfigurationError("auto_purge_every must be a number of seconds >= 0")

    @property
    def environ_keys(self) -> tuple[str, ...]:
        """Every environ (or scope) name the session is published under."""
        key = self.environ_key
        return (key,) if isinstance(key, str) else tuple(key)

    def make_codec(self) -> Codec:
        if self.codec is not None:
            return self.codec
        if self.pickle:
            return PickleCodec(self.secret)
        return JSONCodec()

    def make_store(self) -> tuple[Store, bool]:
        """The store, and whether satchel opened it (and so must close it)."""
        if self.store is None:
            return open_store(DEFAULT_STORE_URL), True
        if isinstance(self.store, str):
            if self.secret is not None and takes_secret(self.store):
                return open_store(self.store, secret=self.secret), True
            return open_store(self.store), True
        if not isinstance(self.store, Store):
            raise ConfigurationError(
                f"store must be a Store or a store URL, not {type(self.store).__name__}"
            )
        return self.store, False

    def make_engine(self, store: Store) -> SessionEngine:
        if self.transport == "querystring" and is_client_side(store):
            raise ConfigurationError(
                "a client-side store needs the cookie or header transport: "
                "a sealed session cannot travel in links"
            )
        if self.issue_ids and is_client_side(store):
            raise ConfigurationError("issue_ids needs a server-side store: a sealed session "
                                     "is issued when it is saved")
        mint_key = None
        if self.transport == "querystring" or self.issue_ids:
            # The redirect (or issue_ids) hands out an id before anything is stored; strict mode
            # recognises it by this key.  Derived from the secret so every worker process
            # agrees; without a secret each process has its own, and an issued id works in the
            # process that made it.
            secret = self.secret
            mint_key = (Secret(secret).derive("satchel.mint")[0] if secret is not None
                        else os.urandom(32))
        # A redirect's id is followed at once: it is adoptable for seconds.  An id issued to a
        # visitor stands for Pesto's empty session, so it lasts as long as the manager allows
        # (half the shortest lifetime: see SessionManager.adopts).
        mint_window = math.inf if self.issue_ids else MINT_WINDOW
        manager = SessionManager(
            idle_timeout=self.idle_timeout,
            absolute_timeout=self.absolute_timeout,
            touch_interval=self.touch_interval,
            strict=self.strict,
            persistent=self.persistent,
            mint_key=mint_key,
            mint_window=mint_window,
            legacy_ids=self.legacy_ids,
            issue_ids=self.issue_ids,
            explicit_save=self.explicit_save,
            save_empty=self.save_empty,
        )
        return SessionEngine(store, manager, self.make_codec(),
                             on_unavailable=self.on_unavailable, clock=self.clock,
                             events=self.make_events())

    def make_events(self) -> Events | None:
        """The ``on_event`` hook with its fingerprint key: derived from the secret, so every
        worker names a session alike; without a secret, a key of this process's own."""
        if self.on_event is None:
            return None
        secret = self.secret
        key = (Secret(secret).derive("satchel.fingerprint")[0] if secret is not None
               else os.urandom(32))
        return Events(self.on_event, key)

    def make_transport(self) -> CookieTransport | QueryTransport | HeaderTransport | NoTransport:
        return make_transport(
            self.transport,
            cookie_name=self.cookie_name,
            cookie_path=self.cookie_path,
            cookie_domain=self.cookie_domain,
            cookie_secure=self.cookie_secure,
            cookie_httponly=self.cookie_httponly,
            cookie_samesite=self.cookie_samesite,
            cookie_partitioned=self.cookie_partitioned,
            query_param=self.query_param,
            header_name=self.header_name,
        )
