"""PostgresStore: sessions in one PostgreSQL table, merged per key inside a ``jsonb`` column.

Schema (created on first use, once per store, and by :meth:`PostgresStore.setup`)::

    CREATE TABLE IF NOT EXISTS satchel_sessions (
        id       text PRIMARY KEY,
        data     jsonb NOT NULL DEFAULT '{}',   -- key -> encoded value, as a JSON string
        created  double precision NOT NULL,     -- seconds since the epoch
        accessed double precision NOT NULL,
        expires  double precision NOT NULL,
        user_id  text
    );
    CREATE INDEX IF NOT EXISTS satchel_sessions_expires_idx ON satchel_sessions (expires);
    CREATE INDEX IF NOT EXISTS satchel_sessions_user_idx ON satchel_sessions (user_id)
        WHERE user_id IS NOT NULL;

Times are ``double precision`` epoch seconds because that is what the store contract speaks:
they round-trip exactly (``timestamptz`` keeps microseconds and would need converting both
ways), do not depend on the connection's time zone, and compare against an indexed column with
a plain float parameter.  ``to_timestamp(expires)`` shows them to a human.

Each operation is one statement on an autocommit connection, so one round trip: a load is one
``SELECT``; a save is one ``UPDATE ... SET data = (data - deleted) || set`` (or an
``INSERT ... ON CONFLICT DO UPDATE`` when it may create), so two requests writing different
keys of one session both survive.  A blind write (``update``) is the same ``UPDATE`` without
the metadata it does not know: it sets ``accessed``, caps ``expires`` with
``LEAST(expires, created + lifetime)`` against the stored ``created``, and matches only a live
row, so a request that only writes its session costs one round trip.  Purge is ``DELETE ...
WHERE expires <= now`` on the expiry index: it costs what it deletes.

Connections come from a psycopg_pool ``ConnectionPool`` built per process (safe after
``fork()``).  Connect and statement times are bounded; an outage raises ``StoreUnavailable``
(``StoreTimeout`` when it is a timeout), at once when the server refuses connections.  A
connection found dead after a server restart is dropped and the operation retried on another:
every operation here is idempotent, so a retry cannot apply a change twice.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import SplitResult, parse_qsl, quote, urlencode

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from ..errors import (
    ConfigurationError,
    SatchelError,
    StoreMisconfigured,
    StoreTimeout,
    StoreUnavailable,
)
from ..record import Changes, SessionMeta, SessionRecord, stored_record
from ._faults import misconfigured, unavailable
from ._watchdog import Watchdog
from .base import BaseStore, now_or
from .pool import PerProcess

__all__ = ["PostgresStore", "from_url"]

T = TypeVar("T")
Conn = psycopg.Connection[Any]

_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}\Z")
# Advisory lock key for concurrent first-use DDL (CREATE TABLE IF NOT EXISTS races otherwise).
_DDL_LOCK = 0x5A7C4E1


class PostgresStore(BaseStore):
    """Sessions in PostgreSQL.

    Args:
        conninfo: a libpq connection string or ``postgresql://`` URL.
        table: the table's name (letters, digits, underscores).
        min_size, max_size: the pool's bounds, per process.
        connect_timeout: seconds to wait for a connection (libpq rounds up, minimum 2).
        timeout: seconds an operation may wait for the server: its ``statement_timeout``,
            the TCP user timeout (an unreachable server is noticed), and a client-side
            deadline at which the connection is shut (a server or pooler that accepts but
            never answers; see :mod:`satchel.stores._watchdog`).
        pool_timeout: seconds to wait for a free connection; default ``connect_timeout``.
        prepare_threshold: executions after which psycopg prepares a statement server-side
            (None: never).
        create: False never creates the table (for tools that read a store): a missing one
            is a ``StoreMisconfigured`` naming it.
    """

    thread_safe = True
    multiprocess_safe = True
    native_expiry = False

    def __init__(self, conninfo: str = "", *, table: str = "satchel_sessions",
                 min_size: int = 1, max_size: int = 10, connect_timeout: float = 2.0,
                 timeout: float = 5.0, pool_timeout: float | None = None,
                 prepare_threshold: int | None = 5, create: bool = True) -> None:
        if not _TABLE.match(table):
            raise ConfigurationError("PostgresStore: table must be letters, digits, underscores")
        if not (isinstance(min_size, int) and isinstance(max_size, int)
                and 0 <= min_size <= max_size and max_size >= 1):
            raise ConfigurationError("PostgresStore: need 0 <= min_size <= max_size, max_size >= 1")
        if connect_timeout <= 0 or timeout <= 0:
            raise ConfigurationError("PostgresStore: timeouts must be positive")
        self.table = table
        self.min_size, self.max_size = min_size, max_size
        self.connect_timeout, self.timeout = connect_timeout, timeout
        self.pool_timeout = connect_timeout if pool_timeout is None else pool_timeout
        self._conninfo = conninfo
        try:
            params = psycopg.conninfo.conninfo_to_dict(conninfo)
        except psycopg.ProgrammingError:
            # Not chained: the driver's message may quote the string, password and all.
            raise ConfigurationError("PostgresStore: the connection string is malformed") from None
        # Where, for messages: as libpq resolves it (the URL, then PGHOST/PGPORT, then defaults).
        host = params.get("host") or os.environ.get("PGHOST") or "localhost"
        self._where = f"{host}:{params.get('port') or os.environ.get('PGPORT') or 5432}"
        self._password = str(params.get("password") or "")
        options = f"{params.get('options') or ''} -c statement_timeout={int(timeout * 1000)}"
        self._kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": max(2, math.ceil(connect_timeout)),
            "options": options.strip(),
            "tcp_user_timeout": int(timeout * 1000),
            "application_name": params.get("application_name") or "satchel",
            "prepare_threshold": prepare_threshold,
        }
        self._pool = PerProcess(self._build_pool)
        self._ready = not create  # True: the table is not created on first use
        self._suspect = True  # until an operation succeeds, the server may be down: see _run
        self._sql = _statements(table)

    # -- the contract --------------------------------------------------------------------------

    def load(self, sid: str) -> SessionRecord | None:
        row = self._run(lambda c: c.execute(self._sql["load"], (sid, time.time())).fetchone())
        if row is None:
            return None
        data, created, accessed, expires, user = row
        # jsonb may hold any JSON (an array, say), and a double may be NaN.
        return stored_record(data, created, accessed, expires, user, "PostgresStore")

    def save(self, sid: str, changes: Changes, meta: SessionMeta) -> bool:
        deletes = bool(changes.deleted) and not changes.cleared
        kind = "cleared" if changes.cleared else "merge_del" if deletes else "merge"
        sql = self._sql[("upsert_" if changes.create else "update_") + kind]
        params = {
            "id": sid, "set": Jsonb(changes.set), "del": sorted(changes.deleted),
            "created": meta.created, "accessed": meta.accessed, "expires": meta.expires,
            "user": meta.user, "now": meta.accessed,  # the caller's now judges expiry
        }
        return self._run(lambda c: c.execute(sql, params).rowcount > 0)

    def update(self, sid: str, changes: Changes, accessed: float, expires: float,
               lifetime: float | None) -> bool:
        # One UPDATE that merges, keeps created and user, and caps expiry at created + lifetime.
        deletes = bool(changes.deleted) and not changes.cleared
        kind = "cleared" if changes.cleared else "merge_del" if deletes else "merge"
        sql = self._sql[("blind_" if lifetime is None else "blind_capped_") + kind]
        params = {
            "id": sid, "set": Jsonb(changes.set), "del": sorted(changes.deleted),
            "accessed": accessed, "expires": expires, "lifetime": lifetime, "now": accessed,
        }
        return self._run(lambda c: c.execute(sql, params).rowcount > 0)

    def touch(self, sid: str, accessed: float, expires: float) -> bool:
        params = (accessed, expires, sid, accessed)
        return self._run(lambda c: c.execute(self._sql["touch"], params).rowcount > 0)

    def move(self, old: str, new: str, changes: Changes, meta: SessionMeta) -> bool:
        """One ``UPDATE`` of the row's id, data and times: a concurrent write to ``old`` waits
        for the row's lock and then finds no row of that id."""
        kind = "cleared" if changes.cleared else "merge_del" if changes.deleted else "merge"
        params = {
            "id": old, "new": new, "set": Jsonb(changes.set), "del": sorted(changes.deleted),
            "created": meta.created, "accessed": meta.accessed, "expires": meta.expires,
            "user": meta.user, "now": meta.accessed,
        }
        sql = self._sql["move_" + kind]
        return self._run(lambda c: c.execute(sql, params).rowcount > 0)

    def delete(self, sid: str) -> bool:
        return self._run(lambda c: c.execute(self._sql["delete"], (sid,)).rowcount > 0)

    def exists(self, sid: str) -> bool:
        params = (sid, time.time())
        return self._run(lambda c: c.execute(self._sql["exists"], params).fetchone() is not None)

    def purge(self, now: float | None = None) -> int:
        moment = now_or(now)
        return self._run(lambda c: c.execute(self._sql["purge"], (moment,)).rowcount)

    def count(self) -> int:
        row = self._run(lambda c: c.execute(self._sql["count"], (time.time(),)).fetchone())
        return int(row[0]) if row else 0

    def ids(self) -> Iterator[str]:
        rows = self._run(lambda c: c.execute(self._sql["ids"], (time.time(),)).fetchall())
        return iter([row[0] for row in rows])

    def user_sessions(self, user: str) -> list[str]:
        params = (user, time.time())
        rows = self._run(lambda c: c.execute(self._sql["user"], params).fetchall())
        return [row[0] for row in rows]

    def delete_user(self, user: str) -> int:
        params = (user, time.time())
        return self._run(lambda c: c.execute(self._sql["delete_user"], params).rowcount)

    def setup(self) -> None:
        """Create the table and its indexes if they are missing (idempotent)."""
        self._ready = False
        self._run(lambda c: None)

    def close(self) -> None:
        self._pool.close(lambda pool: pool.close(timeout=self.timeout))

    def __repr__(self) -> str:
        return f"<PostgresStore {self._where} table={self.table}>"

    # -- plumbing ------------------------------------------------------------------------------

    def _build_pool(self) -> ConnectionPool[Conn]:
        pool: ConnectionPool[Conn] = ConnectionPool(
            self._conninfo, kwargs=self._kwargs, min_size=self.min_size, max_size=self.max_size,
            timeout=self.pool_timeout, name=f"satchel-{self.table}", open=False,
            # Give up a reconnection quickly: the next request that needs a connection starts a
            # new attempt, so service resumes as soon as the server is back, not after a backoff.
            reconnect_timeout=self.connect_timeout,
        )
        pool.open(wait=False)
        return pool

    def _run(self, operation: Callable[[Conn], T]) -> T:
        """Run ``operation`` on a pooled connection; translate outages into satchel's errors.

        A waiter for a pooled connection is never told that the pool's attempts to connect
        fail: it waits ``pool_timeout`` out.  So once the server looks down (a connection it
        dropped, no connection in time), each operation first makes one connection of its own,
        until an operation succeeds: a server that refuses connections fails the request at
        once, and one that is back serves it.
        """
        dropped: psycopg.OperationalError | None = None
        for _ in range(self.max_size + 1):
            try:
                if self._suspect:
                    psycopg.connect(self._conninfo, **self._kwargs).close()
                # Built after that first connection, so settings the server refuses are one
                # error, not also a pool retrying them in the background.
                pool = self._pool.get()
                with pool.connection(timeout=self.pool_timeout) as conn:
                    # The server bounds a statement it runs (statement_timeout); a server that
                    # never answers is bounded here, by shutting the socket at the deadline.
                    # The deadline leaves the server's own cancel time to arrive: it keeps the
                    # connection, where a shut socket costs the pool a new one.
                    watch = _WATCHDOG.arm(conn.fileno(), self.timeout + _CANCEL_GRACE)
                    try:
                        if not self._ready:
                            conn.execute(self._sql["setup"], prepare=False)
                            self._ready = True
                        result = operation(conn)
                    except psycopg.OperationalError as exc:
                        if _WATCHDOG.disarm(watch):
                            raise _Silent from exc
                        if conn.closed and not isinstance(exc, psycopg.errors.QueryCanceled):
                            # A connection the server dropped (a restart, or an outage): try
                            # another one.
                            dropped = exc
                            self._suspect = True
                            raise _Retry from exc
                        raise
                    finally:
                        _WATCHDOG.disarm(watch)
                if self._suspect:
                    self._suspect = False
                return result
            except _Retry:
                continue
            except _Silent as exc:
                raise StoreTimeout(
                    f"PostgreSQL at {self._where}: no answer within {self.timeout:g} s"
                ) from exc.__cause__
            except PoolTimeout as exc:
                self._suspect = True
                raise StoreTimeout(
                    f"PostgreSQL at {self._where}: no connection within {self.pool_timeout:g} s"
                ) from exc
            except psycopg.errors.QueryCanceled as exc:
                raise StoreTimeout(
                    f"PostgreSQL at {self._where}: statement exceeded {self.timeout:g} s"
                ) from exc
            except (psycopg.OperationalError, psycopg.InterfaceError,
                    psycopg.errors.InsufficientPrivilege, psycopg.errors.UndefinedTable) as exc:
                raise self._fault(exc) from exc
        raise StoreUnavailable(
            f"PostgreSQL at {self._where}: every connection failed"
        ) from dropped

    def _fault(self, exc: psycopg.Error) -> SatchelError:
        """A setting the server or libpq refuses (``StoreMisconfigured``), or an outage;
        either way in libpq's words, which never quote the password (masked all the same)."""
        where = f"PostgreSQL at {self._where}"
        secrets = (self._password,)
        state = exc.sqlstate or ""
        if state == "42P01":  # undefined table: only when it is not created on first use
            return StoreMisconfigured(
                f"{where}: no store: table {self.table!r} does not exist "
                "(satchel setup URL, or store.setup(), creates it)")
        if _REFUSED.search(str(exc)) or state[:2] in ("28", "3D") or state == "42501":
            return misconfigured(where, exc, secrets)
        return unavailable(where, exc, secrets)


# What libpq and the server say (connection failures carry no SQLSTATE) when the settings are
# wrong rather than the server down: authentication, role, database, options, TLS, privileges.
_REFUSED = re.compile(
    r"authentication failed|no password supplied|password is required"
    r"|role \S+ does not exist|database \S+ does not exist|is not permitted to log in"
    r"|pg_hba\.conf|permission denied|must be (?:superuser|owner)"
    r"|invalid \w+ value|invalid connection option|invalid port number|invalid integer value"
    r"|unrecognized configuration parameter|SSL was required|SSL is not supported"
    r"|certificate|sslmode value"
)


class _Retry(Exception):
    """Internal: the server dropped the connection; run the (idempotent) operation again."""


# Seconds past ``timeout`` before the watchdog shuts a connection the server may still answer.
_CANCEL_GRACE = 0.2


class _Silent(Exception):
    """Internal: the server did not answer in time; the watchdog shut the connection."""


#: bounds every operation's wait for the server, in every store of this process
_WATCHDOG = Watchdog()


def _statements(table: str) -> dict[str, str]:
    t = f'"{table}"'
    upsert = (
        f"INSERT INTO {t} AS s (id, data, created, accessed, expires, user_id) "
        "VALUES (%(id)s, %(set)s, %(created)s, %(accessed)s, %(expires)s, %(user)s) "
        "ON CONFLICT (id) DO UPDATE SET data = {data}, created = EXCLUDED.created, "
        "accessed = EXCLUDED.accessed, expires = EXCLUDED.expires, user_id = EXCLUDED.user_id"
    )
    # An expired row is treated as absent: creating over it starts from nothing.
    fresh = "CASE WHEN s.expires <= %(now)s THEN EXCLUDED.data ELSE {merged} END"
    update = (
        f"UPDATE {t} SET data = {{data}}, created = %(created)s, accessed = %(accessed)s, "
        "expires = %(expires)s, user_id = %(user)s WHERE id = %(id)s AND expires > %(now)s"
    )
    merges = {
        "cleared": "%(set)s",
        "merge": "data || %(set)s",
        "merge_del": "(data - %(del)s::text[]) || %(set)s",
    }
    # A blind write: the stored created and user stay; expiry is capped by the stored created.
    blind = (
        f"UPDATE {t} SET data = {{data}}, accessed = %(accessed)s, expires = {{expires}} "
        "WHERE id = %(id)s AND expires > %(now)s"
    )
    capped = "LEAST(%(expires)s, created + %(lifetime)s)"
    blinds = {
        f"blind_{prefix}{kind}": blind.format(data=merged, expires=cap)
        for kind, merged in merges.items()
        for prefix, cap in (("", "%(expires)s"), ("capped_", capped))
    }
    return {
        **blinds,
        "setup": (
            f"SELECT pg_advisory_xact_lock({_DDL_LOCK}); "
            f"CREATE TABLE IF NOT EXISTS {t} (id text PRIMARY KEY, "
            "data jsonb NOT NULL DEFAULT '{}', created double precision NOT NULL, "
            "accessed double precision NOT NULL, expires double precision NOT NULL, "
            "user_id text); "
            f'CREATE INDEX IF NOT EXISTS "{table}_expires_idx" ON {t} (expires); '
            f'CREATE INDEX IF NOT EXISTS "{table}_user_idx" ON {t} (user_id) '
            "WHERE user_id IS NOT NULL"
        ),
        "load": f"SELECT data, created, accessed, expires, user_id FROM {t} "
                "WHERE id = %s AND expires > %s",
        "upsert_cleared": upsert.format(data="EXCLUDED.data"),
        "upsert_merge": upsert.format(data=fresh.format(merged="s.data || EXCLUDED.data")),
        "upsert_merge_del": upsert.format(
            data=fresh.format(merged="(s.data - %(del)s::text[]) || EXCLUDED.data")),
        **{f"update_{kind}": update.format(data=merged) for kind, merged in merges.items()},
        **{f"move_{kind}": update.replace("SET ", "SET id = %(new)s, ", 1).format(data=merged)
           for kind, merged in merges.items()},
        "touch": f"UPDATE {t} SET accessed = %s, expires = %s WHERE id = %s AND expires > %s",
        "delete": f"DELETE FROM {t} WHERE id = %s",
        "exists": f"SELECT 1 FROM {t} WHERE id = %s AND expires > %s",
        "purge": f"DELETE FROM {t} WHERE expires <= %s",
        "count": f"SELECT count(*) FROM {t} WHERE expires > %s",
        "ids": f"SELECT id FROM {t} WHERE expires > %s",
        "user": f"SELECT id FROM {t} WHERE user_id = %s AND expires > %s",
        "delete_user": f"DELETE FROM {t} WHERE user_id = %s AND expires > %s",
    }


_OPTIONS = {
    "table": str, "min_size": int, "max_size": int, "connect_timeout": float,
    "timeout": float, "pool_timeout": float,
}


def from_url(parsed: SplitResult, **options: Any) -> PostgresStore:
    """Any URL libpq accepts, e.g. ``postgresql://user:password@host:5432/db?sslmode=require``,
    ``postgresql:///db`` (the local socket), ``postgresql:///db?host=/var/run/postgresql``,
    ``postgresql://%2Fvar%2Frun%2Fpostgresql/db``, ``postgres://h1:5432,h2:5432/db``, or
    ``postgresql://`` (libpq's defaults and ``PG*`` environment variables).

    satchel's own options (``table``, ``min_size``, ``max_size``, ``connect_timeout``,
    ``timeout``, ``pool_timeout``) are taken from the query; the rest of the URL goes to libpq
    as it was written (``urlunsplit`` would drop the ``//`` of an empty host).
    """
    try:
        pairs = parse_qsl(parsed.query, keep_blank_values=True, strict_parsing=bool(parsed.query))
    except ValueError:
        raise ConfigurationError("postgresql://: the query string is malformed") from None
    rest = []
    for name, value in pairs:
        convert = _OPTIONS.get(name)
        if convert is None:
            rest.append((name, value))
            continue
        try:
            options.setdefault(name, convert(value))
        except ValueError:
            raise ConfigurationError(f"postgresql://: {name} must be a number") from None
    conninfo = f"postgresql://{parsed.netloc}{parsed.path}"
    if rest:
        # libpq decodes %XX but not "+": spaces (options=-c a=b) must stay %20.
        conninfo += "?" + urlencode(rest, quote_via=quote)
    return PostgresStore(conninfo, **options)
