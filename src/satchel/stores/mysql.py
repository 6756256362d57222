"""MySQLStore: sessions in one MySQL or MariaDB table, merged per key inside a JSON column.

Schema (created on first use, once per store, and by :meth:`MySQLStore.setup`)::

    CREATE TABLE IF NOT EXISTS satchel_sessions (
        id       VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
        data     JSON NOT NULL,                 -- key -> encoded value, as a JSON string
        created  DOUBLE NOT NULL,               -- seconds since the epoch
        accessed DOUBLE NOT NULL,
        expires  DOUBLE NOT NULL,
        user_id  VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
        INDEX satchel_sessions_expires_idx (expires),
        INDEX satchel_sessions_user_idx (user_id)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4

Ids are compared byte for byte (``ascii_bin``): the default collations ignore case, and two ids
differing only in case are different sessions.  On MariaDB ``JSON`` is ``LONGTEXT`` with a
``JSON_VALID`` check; the statements below use only functions both servers share.

A save is one statement, one round trip, atomic under InnoDB's row lock: ``data =
JSON_MERGE_PATCH(data, patch)`` where the patch (RFC 7396) holds the keys set and a ``null``
for each key deleted, so no JSON path is ever built from a key.  With ``create`` it is an
``INSERT ... ON DUPLICATE KEY UPDATE`` (whose ``data`` assignment comes first, so it still sees
the old ``expires`` and starts afresh over an expired row); without, a plain ``UPDATE`` that
matches only a live row (the connection reports *matched* rows, ``CLIENT.FOUND_ROWS``).  A
blind write (``update``) is such an ``UPDATE`` that sets only ``accessed`` and ``expires =
LEAST(expires, created + lifetime)`` beside the data, keeping the stored ``created`` and user:
a request that only writes its session costs one statement.

Connections (PyMySQL, autocommit) come from a small pool built per process, safe after
``fork()``.  Connect, read and write times are bounded; an outage raises ``StoreUnavailable``
(``StoreTimeout`` for a timeout).  After a server restart the idle connections are all dead:
the first failure on a reused one drops them and the operation is retried once on a fresh
connection (every operation here is idempotent).
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import SplitResult, unquote

import pymysql  # type: ignore[import-untyped]
from pymysql.constants import CLIENT  # type: ignore[import-untyped]

from ..errors import ConfigurationError, SatchelError, StoreMisconfigured, StoreTimeout
from ..record import Changes, SessionMeta, SessionRecord, stored_record, unreadable
from ._faults import misconfigured, unavailable
from .base import BaseStore, now_or, url_options
from .pool import ConnectionPool, PerProcess, PoolExhausted

__all__ = ["MySQLStore", "from_url"]

T = TypeVar("T")

_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}\Z")
_LOST = frozenset({2006, 2013, 2055})  # server gone away, lost connection, lost (SSL)
_DEADLOCK = 1213
_LOCK_WAIT = 1205
_NO_TABLE = 1146
# Errors that mean the settings are wrong, not the server down: access denied (1045, 1698 for
# unix_socket authentication), no such database or no right to it (1044, 1049), a command or
# table denied (1142, 1143, 1227), an authentication method the client lacks (1251, 1524, 2059).
_REFUSED = frozenset({1044, 1045, 1049, 1142, 1143, 1227, 1251, 1524, 1698, 2059})


class MySQLStore(BaseStore):
    """Sessions in MySQL (5.7.22+, 8.x) or MariaDB (10.2.25+).

    Args:
        host, port, user, password, database: where to connect; or ``unix_socket``.
        table: the table's name (letters, digits, underscores).
        min_size, max_size: the pool's bounds, per process.
        connect_timeout: seconds to wait for a connection.
        timeout: seconds to wait for the server's answer (read and write timeouts; also the
            session's ``innodb_lock_wait_timeout``, rounded up).
        pool_timeout: seconds to wait for a free pooled connection; default ``connect_timeout``.
        connect_args: further keyword arguments for ``pymysql.connect`` (``ssl``, ...).
        create: False never creates the table (for tools that read a store): a missing one
            is a ``StoreMisconfigured`` naming it.
    """

    thread_safe = True
    multiprocess_safe = True
    native_expiry = False

    def __init__(self, host: str = "localhost", port: int = 3306, user: str = "root",
                 password: str = "", database: str = "satchel", *,
                 unix_socket: str | None = None, table: str = "satchel_sessions",
                 min_size: int = 1, max_size: int = 10, connect_timeout: float = 2.0,
                 timeout: float = 5.0, pool_timeout: float | None = None,
                 connect_args: dict[str, Any] | None = None, create: bool = True) -> None:
        if not _TABLE.match(table):
            raise ConfigurationError("MySQLStore: table must be letters, digits, underscores")
        if not (isinstance(min_size, int) and isinstance(max_size, int)
                and 0 <= min_size <= max_size and max_size >= 1):
            raise ConfigurationError("MySQLStore: need 0 <= min_size <= max_size, max_size >= 1")
        if connect_timeout <= 0 or timeout <= 0:
            raise ConfigurationError("MySQLStore: timeouts must be positive")
        self.table = table
        self.min_size, self.max_size = min_size, max_size
        self.connect_timeout, self.timeout = connect_timeout, timeout
        self.pool_timeout = connect_timeout if pool_timeout is None else pool_timeout
        self._where = unix_socket or f"{host}:{port}"
        self._connect_kwargs: dict[str, Any] = {
            "host": host, "port": port, "user": user, "password": password,
            "database": database, "unix_socket": unix_socket, "charset": "utf8mb4",
            "autocommit": True, "client_flag": CLIENT.FOUND_ROWS,
            "connect_timeout": connect_timeout, "read_timeout": timeout,
            "write_timeout": timeout,
            "init_command": f"SET SESSION innodb_lock_wait_timeout = {max(1, math.ceil(timeout))}",
            **(connect_args or {}),
        }
        self._pool = PerProcess(self._build_pool)
        self._ready = not create  # True: the table is not created on first use
        self._sql = _statements(table)

    # -- the contract --------------------------------------------------------------------------

    def load(self, sid: str) -> SessionRecord | None:
        rows = self._run(self._sql["load"], (sid, time.time()))
        if not rows:
            return None
        data, created, accessed, expires, user = rows[0]
        try:
            decoded = json.loads(data)
        except ValueError:  # MariaDB's JSON is text under a check that a table may lack
            unreadable("MySQLStore")
            return None
        return stored_record(decoded, created, accessed, expires, user, "MySQLStore")

    def save(self, sid: str, changes: Changes, meta: SessionMeta) -> bool:
        times = (meta.created, meta.accessed, _finite(meta.expires), meta.user)
        values = _dumps(changes.set)
        if changes.cleared:
            kind, patch = "cleared", None
        elif changes.deleted:
            kind, patch = "patch", _patch(changes)
        else:
            kind, patch = "merge", None
        now = meta.accessed  # the caller's now: a record that expired by it is dead
        if changes.create:
            params: tuple[Any, ...] = (sid, values, *times, now)
            if patch is not None:
                params += (patch,)
            self._run(self._sql["upsert_" + kind], params)
            return True
        body = (patch if patch is not None else values,)
        params = (*body, *times, sid, now)
        return int(self._run(self._sql["update_" + kind], params, rowcount=True)) > 0

    def update(self, sid: str, changes: Changes, accessed: float, expires: float,
               lifetime: float | None) -> bool:
        # One UPDATE that merges, keeps created and user, and caps expiry at created + lifetime.
        if changes.cleared:
            kind, body = "cleared", _dumps(changes.set)
        else:
            kind, body = "merge", _patch(changes)
        params: tuple[Any, ...]
        if lifetime is None:
            sql = self._sql["blind_" + kind]
            params = (body, accessed, _finite(expires), sid, accessed)
        else:
            sql = self._sql["blind_capped_" + kind]
            params = (body, accessed, _finite(expires), lifetime, sid, accessed)
        return int(self._run(sql, params, rowcount=True)) > 0

    def touch(self, sid: str, accessed: float, expires: float) -> bool:
        params = (accessed, _finite(expires), sid, accessed)
        return int(self._run(self._sql["touch"], params, rowcount=True)) > 0

    def move(self, old: str, new: str, changes: Changes, meta: SessionMeta) -> bool:
        """One ``UPDATE`` of the row's id, data and times: a concurrent write to ``old`` waits
        for the row's lock and then finds no row of that id."""
        if changes.cleared:
            kind, body = "cleared", _dumps(changes.set)
        else:
            kind, body = "merge", _patch(changes)
        params = (new, body, meta.created, meta.accessed, _finite(meta.expires), meta.user, old,
                  meta.accessed)
        return int(self._run(self._sql["move_" + kind], params, rowcount=True)) > 0

    def delete(self, sid: str) -> bool:
        return int(self._run(self._sql["delete"], (sid,), rowcount=True)) > 0

    def exists(self, sid: str) -> bool:
        return bool(self._run(self._sql["exists"], (sid, time.time())))

    def purge(self, now: float | None = None) -> int:
        return int(self._run(self._sql["purge"], (now_or(now),), rowcount=True))

    def count(self) -> int:
        rows = self._run(self._sql["count"], (time.time(),))
        return int(rows[0][0]) if rows else 0

    def ids(self) -> Iterator[str]:
        return iter([row[0] for row in self._run(self._sql["ids"], (time.time(),))])

    def user_sessions(self, user: str) -> list[str]:
        return [row[0] for row in self._run(self._sql["user"], (user, time.time()))]

    def delete_user(self, user: str) -> int:
        return int(self._run(self._sql["delete_user"], (user, time.time()), rowcount=True))

    def setup(self) -> None:
        """Create the table and its indexes if they are missing (idempotent)."""
        self._ready = False
        self._run(None, ())

    def close(self) -> None:
        self._pool.close(lambda pool: pool.close())

    def __repr__(self) -> str:
        return f"<MySQLStore {self._where} table={self.table}>"

    # -- plumbing ------------------------------------------------------------------------------

    def _build_pool(self) -> ConnectionPool[Any]:
        return ConnectionPool(self._connect, _close_quietly, min_size=self.min_size,
                              max_size=self.max_size, timeout=self.pool_timeout)

    def _connect(self) -> Any:
        return pymysql.connect(**self._connect_kwargs)

    def _run(self, sql: str | None, params: tuple[Any, ...], *, rowcount: bool = False) -> Any:
        """Execute one statement; return its rows (or its row count).

        Retries once on a fresh connection when a reused one turns out dead, and up to twice
        when InnoDB picks the statement as a deadlock victim (it was rolled back whole).
        """
        pool: ConnectionPool[Any] = self._pool.get()
        retries = {"lost": 1, "deadlock": 2}
        while True:
            try:
                conn, reused = pool.acquire()
            except PoolExhausted as exc:
                raise StoreTimeout(f"MySQL at {self._where}: {exc}") from exc
            except (pymysql.Error, OSError) as exc:
                raise self._unavailable(exc) from exc
            try:
                with conn.cursor() as cur:
                    if not self._ready:
                        cur.execute(self._sql["setup"])
                        self._ready = True
                    if sql is None:
                        result: Any = None
                    else:
                        count = cur.execute(sql, params)
                        result = count if rowcount else cur.fetchall()
            except (pymysql.OperationalError, pymysql.InterfaceError) as exc:
                pool.release(conn, discard=not conn.open)
                code = exc.args[0] if exc.args else 0
                if code == _DEADLOCK and retries["deadlock"]:
                    retries["deadlock"] -= 1
                    continue
                if reused and retries["lost"] and not _timed_out(exc) and (
                        code in _LOST or isinstance(exc, pymysql.InterfaceError)):
                    retries["lost"] -= 1
                    pool.discard_idle()  # they were opened to the same, now gone, server
                    continue
                raise self._unavailable(exc) from exc
            except pymysql.ProgrammingError as exc:
                pool.release(conn, discard=not conn.open)
                if exc.args and exc.args[0] == _NO_TABLE:  # only when not created on first use
                    raise StoreMisconfigured(
                        f"MySQL at {self._where}: no store: table {self.table!r} does not exist "
                        "(satchel setup URL, or store.setup(), creates it)") from exc
                raise
            except BaseException:
                pool.release(conn, discard=not conn.open)
                raise
            pool.release(conn)
            return result

    def _unavailable(self, exc: BaseException) -> SatchelError:
        """A timeout, a setting the server refuses (``StoreMisconfigured``), or an outage;
        the last two in the server's words (which never quote the password; masked anyway)."""
        code = exc.args[0] if exc.args else 0
        if _timed_out(exc) or code == _LOCK_WAIT:
            return StoreTimeout(f"MySQL at {self._where}: no answer within the timeout")
        where, secrets = f"MySQL at {self._where}", (self._connect_kwargs.get("password"),)
        if code in _REFUSED or not isinstance(exc, pymysql.Error):
            # Not a pymysql.Error: a local file the connection needs (ssl_ca, ...) is missing.
            return misconfigured(where, exc, secrets)
        return unavailable(where, exc, secrets)


def _timed_out(exc: BaseException) -> bool:
    # PyMySQL wraps the socket's timeout; it is the context of the OperationalError.
    seen = exc.__cause__ or exc.__context__
    return isinstance(seen, TimeoutError)


def _finite(moment: float) -> float:
    """``moment`` as MySQL can keep it: a ``DOUBLE`` has no infinity (and PyMySQL refuses to
    send one), so "never" (``math.inf``: no idle expiry) is the largest double, which every
    comparison and ``LEAST`` treat alike."""
    return sys.float_info.max if moment == math.inf else moment


def _close_quietly(conn: Any) -> None:
    with contextlib.suppress(pymysql.Error):  # already closed by the driver after a failure
        conn.close()


def _dumps(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _patch(changes: Changes) -> str:
    """An RFC 7396 merge patch: the keys set, and null for each key deleted (set wins)."""
    if not changes.deleted:
        return _dumps(changes.set)
    return _dumps({**dict.fromkeys(changes.deleted), **changes.set})


def _statements(table: str) -> dict[str, str]:
    t = f"`{table}`"
    fields = "created = %s, accessed = %s, expires = %s, user_id = %s"
    upsert = (
        f"INSERT INTO {t} (id, data, created, accessed, expires, user_id) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON DUPLICATE KEY UPDATE "
        # Assignments apply left to right: ``data`` must be set while ``expires`` is the old one.
        "data = IF(expires <= %s, VALUES(data), {merged}), created = VALUES(created), "
        "accessed = VALUES(accessed), expires = VALUES(expires), user_id = VALUES(user_id)"
    )
    update = f"UPDATE {t} SET data = {{data}}, {fields} WHERE id = %s AND expires > %s"
    # A blind write: the stored created and user stay; expiry is capped by the stored created
    # (MySQL's LEAST is NULL if any argument is, so an uncapped write has no LEAST at all).
    blind = (f"UPDATE {t} SET data = {{data}}, accessed = %s, expires = {{expires}} "
             "WHERE id = %s AND expires > %s")
    blinds = {
        f"blind_{prefix}{kind}": blind.format(data=merged, expires=cap)
        for kind, merged in (("cleared", "%s"), ("merge", "JSON_MERGE_PATCH(data, %s)"))
        for prefix, cap in (("", "%s"), ("capped_", "LEAST(%s, created + %s)"))
    }
    return {
        **blinds,
        "setup": (
            f"CREATE TABLE IF NOT EXISTS {t} ("
            "id VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY, "
            "data JSON NOT NULL, created DOUBLE NOT NULL, accessed DOUBLE NOT NULL, "
            "expires DOUBLE NOT NULL, "
            "user_id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL, "
            f"INDEX `{table}_expires_idx` (expires), INDEX `{table}_user_idx` (user_id)"
            ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        ),
        "load": f"SELECT data, created, accessed, expires, user_id FROM {t} "
                "WHERE id = %s AND expires > %s",
        "upsert_cleared": upsert.format(merged="VALUES(data)"),
        "upsert_merge": upsert.format(merged="JSON_MERGE_PATCH(data, VALUES(data))"),
        "upsert_patch": upsert.format(merged="JSON_MERGE_PATCH(data, %s)"),
        "update_cleared": update.format(data="%s"),
        "update_merge": update.format(data="JSON_MERGE_PATCH(data, %s)"),
        "update_patch": update.format(data="JSON_MERGE_PATCH(data, %s)"),
        # MySQL assigns left to right: the new id first, then the data merged as stored.
        "move_cleared": (f"UPDATE {t} SET id = %s, data = %s, {fields} "
                         "WHERE id = %s AND expires > %s"),
        "move_merge": (f"UPDATE {t} SET id = %s, data = JSON_MERGE_PATCH(data, %s), {fields} "
                       "WHERE id = %s AND expires > %s"),
        "touch": f"UPDATE {t} SET accessed = %s, expires = %s WHERE id = %s AND expires > %s",
        "delete": f"DELETE FROM {t} WHERE id = %s",
        "exists": f"SELECT 1 FROM {t} WHERE id = %s AND expires > %s",
        "purge": f"DELETE FROM {t} WHERE expires <= %s",
        "count": f"SELECT COUNT(*) FROM {t} WHERE expires > %s",
        "ids": f"SELECT id FROM {t} WHERE expires > %s",
        "user": f"SELECT id FROM {t} WHERE user_id = %s AND expires > %s",
        "delete_user": f"DELETE FROM {t} WHERE user_id = %s AND expires > %s",
    }


_OPTIONS: dict[str, Callable[[str], Any]] = {
    "table": str, "min_size": int, "max_size": int, "connect_timeout": float,
    "timeout": float, "pool_timeout": float, "unix_socket": str,
}
_SSL = ("ssl_ca", "ssl_cert", "ssl_key")


def from_url(parsed: SplitResult, **options: Any) -> MySQLStore:
    """``mysql://user:password@host:3306/db?table=sessions&max_size=20`` (also ``mariadb://``).

    Query options: ``table``, ``min_size``, ``max_size``, ``connect_timeout``, ``timeout``,
    ``pool_timeout``, ``unix_socket``, and ``ssl_ca``/``ssl_cert``/``ssl_key`` for TLS.
    """
    scheme = parsed.scheme.lower()
    database = unquote(parsed.path.lstrip("/"))
    if not (parsed.hostname or "unix_socket" in parsed.query) or "/" in database:
        raise ConfigurationError(f"{scheme}:// needs a host (or unix_socket) and one database")
    try:
        port = parsed.port or 3306
    except ValueError:
        raise ConfigurationError(f"{scheme}://: the port is not a number") from None
    query = url_options(parsed)
    ssl = {name[4:]: query.pop(name) for name in _SSL if name in query}
    for name in list(query):
        convert = _OPTIONS.get(name)
        if convert is None:
            raise ConfigurationError(f"{scheme}://: unknown option {name!r}")
        try:
            options.setdefault(name, convert(query.pop(name)))
        except ValueError:
            raise ConfigurationError(f"{scheme}://: {name} must be a number") from None
    if ssl:
        options.setdefault("connect_args", {}).setdefault("ssl", ssl)
    return MySQLStore(
        parsed.hostname or "localhost", port, unquote(parsed.username or "root"),
        unquote(parsed.password or ""), database or "satchel", **options,
    )
