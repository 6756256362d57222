"""Stores and :func:`open_store`, which builds one from a URL.

Each scheme maps to a factory in the module that owns it, imported only when that scheme is
used, so the optional client libraries (redis-py, psycopg, ...) are needed only by their users.
A missing library is a ``ConfigurationError`` naming the extra that installs it, for every
scheme alike.
"""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from ..errors import ConfigurationError
from .base import BaseStore, Store
from .memory import MemoryStore

__all__ = ["BaseStore", "MemoryStore", "Store", "masked_url", "missing_library",
           "open_store", "register_scheme"]

# scheme -> "module:function"; the function takes (parsed_url, **options) and returns a Store.
_SCHEMES: dict[str, str] = {
    "memory": "satchel.stores.memory:from_url",
    "file": "satchel.stores.file:from_url",
    "sqlite": "satchel.stores.sqlite:from_url",
    "redis": "satchel.stores.redis:from_url",
    "rediss": "satchel.stores.redis:from_url",
    "redis+cluster": "satchel.stores.redis:from_url",
    "postgresql": "satchel.stores.postgres:from_url",
    "postgres": "satchel.stores.postgres:from_url",
    "mysql": "satchel.stores.mysql:from_url",
    "mariadb": "satchel.stores.mysql:from_url",
    "memcached": "satchel.stores.memcached:from_url",
    "cookie": "satchel.stores.cookie:from_url",
}


# scheme -> the pip install argument that brings its client library.
_INSTALL: dict[str, str] = {
    "redis": "satchel[redis]", "rediss": "satchel[redis]", "redis+cluster": "satchel[redis]",
    "postgresql": "satchel[postgres]", "postgres": "satchel[postgres]",
    "mysql": "satchel[mysql]", "mariadb": "satchel[mysql]",
    "memcached": "satchel[memcached]",
    "cookie": "satchel[crypto]",
}

# Schemes whose stores take the application's secret (the middleware's ``secret=``).
_TAKES_SECRET: set[str] = {"cookie"}

# Schemes whose stores make their storage on first use (a directory, a file, a table), and so
# take ``create=False`` to open only one that exists.
_CREATES: set[str] = {"file", "sqlite", "postgresql", "postgres", "mysql", "mariadb"}


def register_scheme(scheme: str, factory: str, *, takes_secret: bool = False,
                    install: str | None = None, creates: bool = False) -> None:
    """Map a URL scheme to ``"module:function"`` (for third-party stores).

    ``takes_secret``: the factory accepts ``secret=``, and a middleware built with a store URL
    of this scheme hands it its own secret.  ``install``: what to ``pip install`` when the
    factory's module cannot import its client library (named in the error).  ``creates``:
    the store makes its storage on first use and its factory accepts ``create=False``.
    """
    _SCHEMES[scheme.lower()] = factory
    if takes_secret:
        _TAKES_SECRET.add(scheme.lower())
    if install:
        _INSTALL[scheme.lower()] = install
    if creates:
        _CREATES.add(scheme.lower())


def takes_secret(url: str) -> bool:
    """True when the store behind ``url`` is built with the application's secret."""
    return urlsplit(url).scheme.lower() in _TAKES_SECRET


def open_store(url: str, *, create: bool = True, **options: Any) -> Store:
    """Build a store from a URL.

    ``memory://``, ``file:///abs/dir``, ``sqlite:///relative.db``, ``sqlite:////abs.db``,
    ``redis://host:6379/0``, ``postgresql://...``, ``mysql://...``, ``memcached://host:port``,
    ``cookie://``.  Query parameters and ``options`` become the store's keyword arguments.
    ``create=False`` opens only a store that exists, for tools that read one: a missing
    directory, database file or table raises instead of being made empty (stores with nothing
    to create ignore it).

    Raises:
        ValueError: (``ConfigurationError``) for a malformed URL, an unknown scheme, a store
            whose client library is not installed (the message names the extra), or, with
            ``create=False``, a store that does not exist.
    """
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError(
            f"store URL {url!r} is not a URL; expected one of: {_accepted()}"
        )
    try:
        parsed = urlsplit(url)
    except ValueError as exc:
        message = f"store URL is malformed ({exc}); expected one of: {_accepted()}"
        raise ConfigurationError(message) from None
    target = _SCHEMES.get(parsed.scheme.lower())
    if target is None:
        raise ConfigurationError(
            f"store URL scheme {parsed.scheme!r} is unknown; accepted schemes: {_accepted()}"
        )
    if not create and parsed.scheme.lower() in _CREATES:
        options["create"] = False
    module_name, _, func_name = target.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), func_name)
        store: Store = factory(parsed, **options)
    except ModuleNotFoundError as exc:
        if not exc.name or exc.name.partition(".")[0] == module_name.partition(".")[0]:
            raise  # a module of the store's own package: a bug or a broken install
        raise missing_library(parsed.scheme, exc.name) from exc
    return store


def missing_library(scheme: str, module: str) -> ConfigurationError:
    """The error for a store whose client library ``module`` cannot be imported."""
    scheme = scheme.lower()
    install = _INSTALL.get(scheme)
    how = f": pip install '{install}'" if install else ""
    return ConfigurationError(
        f"{scheme}:// stores need the {module.partition('.')[0]!r} package, "
        f"which is not installed{how}"
    )


def masked_url(url: str) -> str:
    """``url`` with its password masked, for anything a person may read (a repr, a log line).

    Masks the password of the user part (``user:***@host``) and of any query parameter whose
    name holds ``password`` (libpq's ``?password=``, ``sslpassword=``).
    """
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "(malformed URL)"
    netloc, query = parts.netloc, parts.query
    if password is not None:
        netloc = f"{parts.username or ''}:***@{netloc.rpartition('@')[2]}"
    if "password" in query.lower():
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if "password" in k.lower() else v) for k, v in pairs],
                          safe="*")
    # Put together by hand: urlunsplit would rewrite sqlite:////abs.db as sqlite://abs.db.
    shown = f"{parts.scheme}://{netloc}{parts.path}"
    if query:
        shown += "?" + query
    if parts.fragment:
        shown += "#" + parts.fragment
    return shown


def _accepted() -> str:
    return ", ".join(f"{s}://" for s in _SCHEMES)

