"""satchel: persistent sessions for Python web applications.

>>> import satchel
>>> store = satchel.open_store("memory://")
>>> app = satchel.SessionMiddleware(lambda environ, start_response: [], store=store)
"""

from __future__ import annotations

from .codec import Codec, CodecError, JSONCodec, PickleCodec
from .config import Settings
from .engine import SessionEngine
from .errors import (
    ConfigurationError,
    SatchelError,
    SessionConflict,
    SessionTooLarge,
    StoreMisconfigured,
    StoreTimeout,
    StoreUnavailable,
)
from .events import Event
from .ids import is_valid_id, new_id
from .keys import Secret
from .logs import install as _install_logging
from .manager import Action, CookieOp, Decision, SessionManager
from .record import Changes, SessionMeta, SessionRecord
from .session import Session
from .stores import BaseStore, MemoryStore, Store, open_store, register_scheme
from .transport import CookieTransport, HeaderTransport, QueryTransport
from .wsgi import SessionMiddleware

__version__ = "0.1.0"

_install_logging()

__all__ = [
    "Action",
    "BaseStore",
    "Changes",
    "Codec",
    "CodecError",
    "ConfigurationError",
    "CookieOp",
    "CookieStore",
    "CookieTransport",
    "Decision",
    "Event",
    "FileStore",
    "HeaderTransport",
    "JSONCodec",
    "MemcachedStore",
    "MemoryStore",
    "MySQLStore",
    "PickleCodec",
    "PostgresStore",
    "QueryTransport",
    "RedisStore",
    "SQLiteStore",
    "SatchelError",
    "Secret",
    "Session",
    "SessionConflict",
    "SessionEngine",
    "SessionManager",
    "SessionMeta",
    "SessionMiddleware",
    "SessionRecord",
    "SessionTooLarge",
    "Settings",
    "Store",
    "StoreMisconfigured",
    "StoreTimeout",
    "StoreUnavailable",
    "is_valid_id",
    "new_id",
    "open_store",
    "register_scheme",
]


_LAZY = {
    "FileStore": "satchel.stores.file",
    "SQLiteStore": "satchel.stores.sqlite",
    "RedisStore": "satchel.stores.redis",
    "PostgresStore": "satchel.stores.postgres",
    "MySQLStore": "satchel.stores.mysql",
    "MemcachedStore": "satchel.stores.memcached",
    "CookieStore": "satchel.stores.cookie",
}


def __getattr__(name: str) -> object:
    # Stores beyond memory are imported on first use: ``import satchel`` stays light, and a
    # server store's client library is needed only by those who use that store.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'satchel' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
