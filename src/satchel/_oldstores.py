"""Readers for the sessions that Beaker, Session3 and Pesto left on disk, in a database or in
Redis; used only by ``satchel migrate``.

Those systems kept sessions as pickles, and a pickle can run any code when it is loaded.  So
every pickle here goes through :class:`RestrictedUnpickler`, which builds only the plain types
those systems wrote (dicts, lists, strings, numbers, dates, ...) and the classes an operator
names with ``--allow-class``; anything else is refused, and the session is counted as refused.
Session3's own ``Session`` and ``DictSession`` are rebuilt as inert attribute holders, never by
importing Session3.  Nothing is written or deleted at the source.
"""

from __future__ import annotations

import _compat_pickle
import base64
import binascii
import functools
import importlib
import io
import json
import os
import pickle
import stat
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError, StoreUnavailable

__all__ = ["OldSession", "Refused", "RestrictedUnpickler", "Unreadable", "open_source"]

# What Beaker, Session3 and Pesto wrote: builtin containers and scalars, dates, decimals, UUIDs,
# and the helpers pickle itself uses to rebuild them.
SAFE_GLOBALS: frozenset[tuple[str, str]] = frozenset({
    *(("builtins", name) for name in (
        "dict", "list", "tuple", "set", "frozenset", "str", "bytes", "bytearray", "int",
        "float", "complex", "bool", "object", "slice", "range")),
    *(("datetime", name) for name in ("datetime", "date", "time", "timedelta", "timezone")),
    ("decimal", "Decimal"), ("uuid", "UUID"), ("uuid", "SafeUUID"),
    ("collections", "OrderedDict"), ("copyreg", "_reconstructor"), ("_codecs", "encode"),
})
# Session3's session classes: rebuilt as attribute holders, without importing Session3.
INERT_CLASSES = frozenset({("session3.Session", "Session"),
                           ("session3.DictSession", "DictSession")})


class Refused(Exception):
    """A pickle names something that is not allowed; it was not loaded."""


class Unreadable(Exception):
    """A stored session is damaged, or in a form this command does not read."""


class Inert:
    """Stands in for a session class of an old system: holds the pickled state, runs nothing."""

    state: dict[str, Any] = {}  # replaced, never mutated, by __setstate__

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots)
            state = {**(state[0] or {}), **(state[1] or {})}
        if not isinstance(state, dict):
            raise Unreadable("a session object's state is not a mapping")
        self.state = state


@functools.cache
def _inert(kind: str) -> type[Inert]:
    return type(kind, (Inert,), {})


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds only :data:`SAFE_GLOBALS` and the classes allowed by name."""

    def __init__(self, data: bytes, allowed: frozenset[str] = frozenset(), *,
                 encoding: str = "ASCII") -> None:
        super().__init__(io.BytesIO(data), encoding=encoding)
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        # Python 2's names for the same things (__builtin__, copy_reg), as pickle maps them.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        else:
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in SAFE_GLOBALS:
            return super().find_class(module, name)
        if (module, name) in INERT_CLASSES:
            return _inert(name)
        if f"{module}.{name}" in self._allowed:
            return getattr(importlib.import_module(module), name)
        raise Refused(f"{module}.{name}")


def restricted_loads(data: bytes, allowed: frozenset[str], *, python2: bool = False) -> Any:
    """Load a pickle through :class:`RestrictedUnpickler`.

    ``python2``: the pickle was written by Python 2 (Pesto): its byte strings are read as bytes
    and then decoded as UTF-8 where they are text, the one reading that keeps both text and
    ``datetime`` values intact.
    """
    try:
        value = RestrictedUnpickler(data, allowed, encoding="bytes" if python2 else "ASCII").load()
    except Refused:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, UnicodeDecodeError, ImportError) as exc:
        raise Unreadable(f"not a readable pickle ({type(exc).__name__})") from None
    return _text(value) if python2 else value


def _text(value: Any) -> Any:
    """Python 2's ``str`` values, read as bytes, back to text where they are UTF-8."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    if isinstance(value, dict):
        return {_text(k): _text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_text(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_text(v) for v in value)
    if isinstance(value, (set, frozenset)):
        return type(value)(_text(v) for v in value)
    return value


@dataclass
class OldSession:
    """One session as an old system kept it."""

    old_id: str
    data: dict[str, Any]
    created: float
    accessed: float
    user: str | None = None


class Source:
    """Where old sessions are read from: the candidates' ids, then each session by id."""

    label = "source"

    def ids(self) -> list[str]:
        raise NotImplementedError

    def read(self, old_id: str) -> OldSession | None:
        """The session, or None when it vanished; raises Refused or Unreadable."""
        raise NotImplementedError

    def close(self) -> None:
        return None


# -- Beaker 1.14 ---------------------------------------------------------------------------------


def _beaker_session(old_id: str, blob: Any, allowed: frozenset[str]) -> OldSession:
    """A Beaker namespace (``{'session': b64(serialized dict)}``) to an :class:`OldSession`."""
    if not isinstance(blob, dict) or "session" not in blob:
        raise Unreadable("not a Beaker session namespace")
    payload = blob["session"]
    if isinstance(payload, str):
        payload = payload.encode("ascii", "replace")
    if not isinstance(payload, bytes):
        raise Unreadable("a Beaker session value of an unknown kind")
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise Unreadable("an encrypted Beaker session (encrypt_key) cannot be read") from None
    data: Any
    if raw[:1] == b"\x80":
        data = restricted_loads(raw, allowed)
    else:
        try:
            data = json.loads(zlib.decompress(raw).decode("utf-8"))  # data_serializer = json
        except (zlib.error, ValueError, UnicodeDecodeError):
            raise Unreadable("an encrypted or unknown Beaker session payload") from None
    if not isinstance(data, dict):
        raise Unreadable("a Beaker session that is not a mapping")
    created = data.pop("_creation_time", None)
    accessed = data.pop("_accessed_time", None)
    data.pop("_expires", None)
    if not isinstance(created, (int, float)) or not isinstance(accessed, (int, float)):
        raise Unreadable("a Beaker session without its times")
    return OldSession(old_id, data, float(created), float(accessed))


class BeakerFiles(Source):
    """``beaker-file:DIR``: Beaker's ``data_dir`` (sessions in ``container_file/*/*/ID.cache``)."""

    label = "beaker-file"

    def __init__(self, directory: str, allowed: frozenset[str]) -> None:
        self.root = os.path.join(directory, "container_file")
        if not os.path.isdir(self.root):
            raise ConfigurationError(f"beaker-file: {self.root!r} is not a directory "
                                     "(give Beaker's data_dir)")
        self.allowed = allowed
        self._paths: dict[str, str] = {}

    def ids(self) -> list[str]:
        for directory, _, files in os.walk(self.root):
            for name in files:
                if name.endswith(".cache"):
                    self._paths[name[: -len(".cache")]] = os.path.join(directory, name)
        return sorted(self._paths)

    def read(self, old_id: str) -> OldSession | None:
        data = _read_file(self._paths[old_id])
        if data is None:
            return None
        return _beaker_session(old_id, restricted_loads(data, self.allowed), self.allowed)


class BeakerDatabase(Source):
    """``beaker-database:SQLALCHEMY_URL``: Beaker's ``beaker_cache`` table, read with SQL."""

    label = "beaker-database"

    def __init__(self, url: str, allowed: frozenset[str], table: str = "beaker_cache") -> None:
        try:
            import sqlalchemy as sa
        except ImportError as exc:
            raise ConfigurationError("beaker-database needs SQLAlchemy "
                                     "(pip install SQLAlchemy)") from exc
        if not table.replace("_", "").isalnum():
            raise ConfigurationError("beaker-database: the table name must be a plain name")
        self.allowed = allowed
        self._sa = sa
        self._engine = sa.create_engine(url)
        # The data column is a PickleType: read its bytes raw, never through SQLAlchemy's loads.
        self._query = sa.text(f"SELECT data FROM {table} WHERE namespace = :id")
        self._list = sa.text(f"SELECT namespace FROM {table}")

    def ids(self) -> list[str]:
        try:
            with self._engine.connect() as conn:
                return sorted(str(row[0]) for row in conn.execute(self._list))
        except self._sa.exc.SQLAlchemyError as exc:
            raise StoreUnavailable(f"beaker-database: cannot list sessions ({type(exc).__name__})"
                                   ) from None

    def read(self, old_id: str) -> OldSession | None:
        try:
            with self._engine.connect() as conn:
                row = conn.execute(self._query, {"id": old_id}).first()
        except self._sa.exc.SQLAlchemyError as exc:
            raise StoreUnavailable(f"beaker-database: cannot read ({type(exc).__name__})"
                                   ) from None
        if row is None:
            return None
        blob = restricted_loads(bytes(row[0]), self.allowed)
        return _beaker_session(old_id, blob, self.allowed)

    def close(self) -> None:
        self._engine.dispose()


class BeakerRedis(Source):
    """``beaker-redis:URL``: Beaker's ``beaker_cache:ID:session`` keys (``ext:redis``)."""

    label = "beaker-redis"

    def __init__(self, url: str, allowed: frozenset[str]) -> None:
        try:
            import redis
        except ImportError as exc:
            raise ConfigurationError("beaker-redis needs redis-py "
                                     "(pip install 'satchel[redis]')") from exc
        self.allowed = allowed
        self._errors = (redis.RedisError,)
        self._client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)

    def ids(self) -> list[str]:
        found = []
        try:
            for key in self._client.scan_iter(match="beaker_cache:*:session", count=500):
                name = key.decode("utf-8", "replace")
                found.append(name[len("beaker_cache:"): -len(":session")])
        except self._errors as exc:
            raise StoreUnavailable(f"beaker-redis: cannot list sessions ({type(exc).__name__})"
                                   ) from None
        return sorted(found)

    def read(self, old_id: str) -> OldSession | None:
        try:
            value = self._client.get(f"beaker_cache:{old_id}:session")
        except self._errors as exc:
            raise StoreUnavailable(f"beaker-redis: cannot read ({type(exc).__name__})") from None
        if not isinstance(value, bytes):
            return None
        payload = restricted_loads(value, self.allowed)
        return _beaker_session(old_id, {"session": payload}, self.allowed)

    def close(self) -> None:
        self._client.close()


# -- Session3 and Pesto --------------------------------------------------------------------------


class Session3Directory(Source):
    """``session3-dir:DIR``: Session3's ``DirectorySessionStore``, one pickled session per file."""

    label = "session3-dir"

    def __init__(self, directory: str, allowed: frozenset[str]) -> None:
        if not os.path.isdir(directory):
            raise ConfigurationError(f"session3-dir: {directory!r} is not a directory")
        self.directory = directory
        self.allowed = allowed

    def ids(self) -> list[str]:
        return sorted(_plain_files(self.directory))

    def read(self, old_id: str) -> OldSession | None:
        data = _read_file(os.path.join(self.directory, old_id))
        if data is None:
            return None
        obj = restricted_loads(data, self.allowed)
        state = obj.state if isinstance(obj, Inert) else getattr(obj, "__dict__", None)
        if not isinstance(state, dict):
            raise Unreadable("not a Session3 session object")
        state = dict(state)
        created = state.pop("_creation_time", None)
        accessed = state.pop("_access_time", None)
        if not isinstance(created, (int, float)) or not isinstance(accessed, (int, float)):
            raise Unreadable("a Session3 session without its times")
        user = state.pop("user", None)
        state.pop("id", None)
        values: dict[str, Any] = {}
        if type(obj).__name__ == "DictSession" and isinstance(state.get("data"), dict):
            values.update(state.pop("data"))
        # Custom attributes are kept; Session3's private ones (_remote_address, _form_tokens)
        # belong to its own bookkeeping.
        values.update({k: v for k, v in state.items() if not k.startswith("_")})
        if user is not None and not isinstance(user, str):
            values.setdefault("user", user)  # not a name to index: kept as a value
            user = None
        return OldSession(old_id, values, float(created), float(accessed), user)


class PestoFiles(Source):
    """``pesto-file:DIR``: Pesto's ``FileSessionManager(DIR)``, pickled dicts at
    ``DIR/_pesto_sessions/ab/ID``, written by Python 2; the file's mtime is its access time."""

    label = "pesto-file"

    def __init__(self, directory: str, allowed: frozenset[str]) -> None:
        root = os.path.join(directory, "_pesto_sessions")
        if not os.path.isdir(root):
            raise ConfigurationError(f"pesto-file: {root!r} is not a directory "
                                     "(give the directory FileSessionManager was given)")
        self.root = root
        self.allowed = allowed
        self._paths: dict[str, str] = {}

    def ids(self) -> list[str]:
        for shard in sorted(os.listdir(self.root)):
            directory = os.path.join(self.root, shard)
            if len(shard) == 2 and os.path.isdir(directory):
                for name in _plain_files(directory):
                    if name[:2] == shard:
                        self._paths[name] = os.path.join(directory, name)
        return sorted(self._paths)

    def read(self, old_id: str) -> OldSession | None:
        path = self._paths[old_id]
        try:
            mtime = os.stat(path, follow_symlinks=False).st_mtime
        except FileNotFoundError:
            return None
        data = _read_file(path)
        if data is None:
            return None
        value = restricted_loads(data, self.allowed, python2=True)
        if not isinstance(value, dict):
            raise Unreadable("a Pesto session that is not a mapping")
        return OldSession(old_id, value, mtime, mtime)


def _plain_files(directory: str) -> Iterator[str]:
    with os.scandir(directory) as entries:
        for entry in entries:
            if not entry.name.startswith(".") and entry.is_file(follow_symlinks=False):
                yield entry.name


def _read_file(path: str) -> bytes | None:
    """A regular file's bytes (never through a symlink), or None when it is gone."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise Unreadable(f"cannot open ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise Unreadable("not a regular file")
        return handle.read()


SOURCES: dict[str, Callable[[str, frozenset[str]], Source]] = {
    "beaker-file": BeakerFiles,
    "beaker-database": BeakerDatabase,
    "beaker-redis": BeakerRedis,
    "session3-dir": Session3Directory,
    "pesto-file": PestoFiles,
}


def open_source(spec: str, allowed: Iterable[str] = ()) -> Source:
    """The source named by ``KIND:WHERE`` (see :data:`SOURCES`)."""
    kind, sep, where = spec.partition(":")
    factory = SOURCES.get(kind)
    if not sep or factory is None or not where:
        kinds = ", ".join(f"{k}:..." for k in (*SOURCES, "satchel"))
        raise ConfigurationError(f"--from {spec!r}: expected one of {kinds}")
    return factory(where, frozenset(allowed))

