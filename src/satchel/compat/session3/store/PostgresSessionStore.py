"""Session3's ``PostgresSessionStore`` over satchel's ``PostgresStore`` (Session3's was never
finished; this one works).

It takes what Session3 took, a psycopg connection, and connects its own pool with that
connection's parameters (the connection itself is left to its owner); or a store URL or
conninfo string; or a satchel store.  Sessions go in satchel's table (``satchel_sessions``
unless ``table`` is given), merged per key, never pickled.
"""

from __future__ import annotations

from typing import Any

from ....stores import Store, open_store
from .SessionStore import SessionStore

__all__ = ["PostgresSessionStore"]


class PostgresSessionStore(SessionStore):
    """Store sessions in a PostgreSQL table.

    Args:
        conn: a psycopg connection, a ``postgresql://`` URL or conninfo string, or a
            ``PostgresStore``.
        table: the table name (a new table: Session3's ``sessions`` table has another shape).
    """

    def __init__(self, conn: Any, table: str | None = None) -> None:
        options: dict[str, Any] = {} if table is None else {"table": table}
        if isinstance(conn, Store):
            backend = conn
        else:
            from ....stores.postgres import PostgresStore

            if isinstance(conn, str):
                if conn.startswith(("postgresql://", "postgres://")):
                    backend = open_store(conn, **options)
                else:
                    backend = PostgresStore(conn, **options)
            else:
                backend = PostgresStore(_conninfo(conn), **options)
        self.table = getattr(backend, "table", table)
        super().__init__(backend)


def _conninfo(conn: Any) -> str:
    """The parameters of a psycopg connection, password included, as a conninfo string."""
    from psycopg.conninfo import make_conninfo

    info = conn.info
    password = getattr(info, "password", None)
    return make_conninfo(info.dsn, **({"password": password} if password else {}))
