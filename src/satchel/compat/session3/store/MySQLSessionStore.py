"""Session3's ``MySQLSessionStore`` over satchel's ``MySQLStore`` (Session3's was never
finished; this one works, on MySQL and MariaDB).

It takes a PyMySQL connection (and connects its own pool with the same parameters, leaving
the connection to its owner), a ``mysql://`` URL, or a satchel store.  Sessions go in
satchel's table (``satchel_sessions`` unless ``table`` is given), merged per key in one
statement, never pickled.
"""

from __future__ import annotations

from typing import Any

from ....stores import Store, open_store
from .SessionStore import SessionStore

__all__ = ["MySQLSessionStore"]


class MySQLSessionStore(SessionStore):
    """Store sessions in a MySQL or MariaDB table.

    Args:
        conn: a PyMySQL connection, a ``mysql://`` URL, or a ``MySQLStore``.
        table: the table name (a new table: Session3's ``sessions`` table has another shape).
    """

    def __init__(self, conn: Any, table: str | None = None) -> None:
        options: dict[str, Any] = {} if table is None else {"table": table}
        if isinstance(conn, Store):
            backend = conn
        elif isinstance(conn, str):
            backend = open_store(conn, **options)
        else:
            from ....stores.mysql import MySQLStore

            backend = MySQLStore(**_parameters(conn), **options)
        self.table = getattr(backend, "table", table)
        super().__init__(backend)


def _parameters(conn: Any) -> dict[str, Any]:
    """Host, port, user, password, database and socket of a PyMySQL connection."""
    def text(value: Any) -> Any:
        return value.decode() if isinstance(value, bytes) else value

    params: dict[str, Any] = {
        "host": conn.host, "port": conn.port, "user": text(conn.user),
        "password": text(conn.password) or "", "database": text(conn.db),
    }
    if getattr(conn, "unix_socket", None):
        params["unix_socket"] = conn.unix_socket
    return params
