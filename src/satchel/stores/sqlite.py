"""SQLiteStore: the embedded default, one SQLite file shared by threads and processes.

Two tables: ``satchel_session`` (one row per session: times and user, indexed on expiry and
user) and ``satchel_value`` (one row per key, clustered by session), so a save writes only the
keys that changed and a load is one query.  The database runs in WAL mode (readers never wait
for the writer) with ``synchronous=NORMAL`` (a commit survives the death of the process; the
last commits may be lost in a power failure, never corrupted).  Every save is one short
``BEGIN IMMEDIATE`` transaction that applies its changes against the rows stored now; so is a
blind write (``update``), whose first statement moves the times of a live row only (capping
expiry at its stored ``created + lifetime``) and decides whether anything is written.

Connections come from a small pool: a request borrows one and returns it, so threads never share
a connection at once, and a thread-per-request server does not open one per request.  The pool
remembers the pid that filled it; a forked child never touches its parent's connections (SQLite
forbids carrying one across ``fork``) and opens its own.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import SplitResult, quote, unquote

from ..errors import ConfigurationError, SatchelError, StoreTimeout, StoreUnavailable
from ..record import Changes, SessionMeta, SessionRecord, security_log, stored_record
from ._faults import PERMISSION_ERRNOS, misconfigured, unavailable
from .base import BaseStore, now_or, url_options

__all__ = ["SQLiteStore", "from_url"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS satchel_session (
    id TEXT PRIMARY KEY NOT NULL,
    created REAL NOT NULL,
    accessed REAL NOT NULL,
    expires REAL NOT NULL,
    user TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS satchel_session_expires ON satchel_session (expires);
CREATE INDEX IF NOT EXISTS satchel_session_user ON satchel_session (user) WHERE user IS NOT NULL;
CREATE TABLE IF NOT EXISTS satchel_value (
    session_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (session_id, key)
) WITHOUT ROWID;
PRAGMA user_version = 1;
"""

LOAD = (
    "SELECT s.created, s.accessed, s.expires, s.user, v.key, v.value FROM satchel_session s"
    " LEFT JOIN satchel_value v ON v.session_id = s.id WHERE s.id = ? AND s.expires > ?"
)
UPDATE_LIVE = (
    "UPDATE satchel_session SET created = ?, accessed = ?, expires = ?, user = ?"
    " WHERE id = ? AND expires > ?"
)
INSERT = (
    "INSERT OR REPLACE INTO satchel_session (created, accessed, expires, user, id)"
    " VALUES (?, ?, ?, ?, ?)"
)
UPSERT_VALUE = (
    "INSERT INTO satchel_value (session_id, key, value) VALUES (?, ?, ?)"
    " ON CONFLICT (session_id, key) DO UPDATE SET value = excluded.value"
)
MOVE = (
    "UPDATE satchel_session SET id = ?, created = ?, accessed = ?, expires = ?, user = ?"
    " WHERE id = ? AND expires > ?"
)
MOVE_VALUES = "UPDATE satchel_value SET session_id = ? WHERE session_id = ?"
DELETE_VALUE = "DELETE FROM satchel_value WHERE session_id = ? AND key = ?"
DELETE_VALUES = "DELETE FROM satchel_value WHERE session_id = ?"
DELETE_SESSION = "DELETE FROM satchel_session WHERE id = ?"
TOUCH_CAPPED = (
    "UPDATE satchel_session SET accessed = ?, expires = min(?, created + ?)"
    " WHERE id = ? AND expires > ?"
)
TOUCH = "UPDATE satchel_session SET accessed = ?, expires = ? WHERE id = ? AND expires > ?"
EXISTS = "SELECT 1 FROM satchel_session WHERE id = ? AND expires > ?"
EXPIRED = "SELECT id FROM satchel_session WHERE expires <= ? LIMIT ?"
LIVE_IDS = "SELECT id FROM satchel_session WHERE expires > ?"
COUNT = "SELECT count(*) FROM satchel_session WHERE expires > ?"
USER_IDS = "SELECT id FROM satchel_session WHERE user = ? AND expires > ?"

_PURGE_BATCH = 500  # rows per purge transaction, so a big purge never holds the writer long
_BUSY = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED (primary result codes)
_REFUSED = (3, 8, 23, 26)  # SQLITE_PERM, SQLITE_READONLY, SQLITE_AUTH, SQLITE_NOTADB

# Connections a forked child found in its pool.  They belong to the parent: closing them here
# could release or checkpoint what the parent still holds, so the child only keeps them alive.
_INHERITED: list[sqlite3.Connection] = []


class SQLiteStore(BaseStore):
    """Sessions in an SQLite database file, safe across threads, processes and ``fork``.

    Args:
        path: the database file; it and its parent directory are created if missing (0600 and
            0700).  ``":memory:"`` is refused: each connection would see its own empty
            database; use ``MemoryStore`` for that.
        timeout: the longest a statement waits for another process's write lock before raising
            :class:`StoreTimeout`.
        pool_size: idle connections kept for reuse; more are opened under load and closed when
            returned.
        create: False opens only an existing satchel database (for tools that read one:
            a wrong path must not leave an empty database behind); otherwise a
            :class:`ConfigurationError`.
    """

    thread_safe = True
    multiprocess_safe = True
    native_expiry = False

    def __init__(
        self, path: str | os.PathLike[str], *, timeout: float = 5.0, pool_size: int = 4,
        create: bool = True,
    ) -> None:
        raw = os.fspath(path)
        if not isinstance(raw, str) or raw in ("", ":memory:") or raw.startswith("file:"):
            raise ConfigurationError(
                "SQLiteStore needs a database file path (':memory:' is not shared between "
                "connections; use MemoryStore)"
            )
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not (
            0 < timeout < math.inf
        ):
            raise ConfigurationError("SQLiteStore: timeout must be a positive number of seconds")
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise ConfigurationError("SQLiteStore: pool_size must be a positive integer")
        self.path = os.path.abspath(raw)
        self.timeout = float(timeout)
        self.pool_size = pool_size
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False
        if create:
            self._create()
        else:
            self._check_exists()

    # -- the contract ----------------------------------------------------------------------

    def load(self, sid: str) -> SessionRecord | None:
        conn = self._acquire()
        try:
            try:
                rows = conn.execute(LOAD, (sid, time.time())).fetchall()
            except sqlite3.OperationalError as exc:
                if "decode" not in str(exc):
                    raise
                rows = _load_bytes(conn, sid)  # text that is not UTF-8: no error's message
        except sqlite3.Error as exc:
            raise self._failed(conn, exc) from exc
        self._release(conn)
        if not rows:
            return None
        created, accessed, expires, user = rows[0][:4]
        data = {row[4]: row[5] for row in rows if row[4] is not None}
        # SQLite keeps any type in any column: a time may be text ('x' sorts after numbers).
        return stored_record(data, created, accessed, expires, user, "SQLiteStore")

    def save(self, sid: str, changes: Changes, meta: SessionMeta) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            fresh = conn.execute(
                UPDATE_LIVE,
                (meta.created, meta.accessed, meta.expires, meta.user, sid, meta.accessed),
            ).rowcount == 0
            if fresh:  # absent, or expired: either way, not a live session
                if not changes.create:
                    return False
                conn.execute(DELETE_VALUES, (sid,))  # an expired record's keys do not carry over
                conn.execute(INSERT, (meta.created, meta.accessed, meta.expires, meta.user, sid))
            _apply(conn, sid, changes, fresh)
            return True

        return self._transaction(work)

    def update(self, sid: str, changes: Changes, accessed: float, expires: float,
               lifetime: float | None) -> bool:
        # The times move only on a live row, then its values change.
        params: tuple[Any, ...]
        if lifetime is None:
            sql, params = TOUCH, (accessed, expires, sid, accessed)
        else:
            sql, params = TOUCH_CAPPED, (accessed, expires, lifetime, sid, accessed)

        def work(conn: sqlite3.Connection) -> bool:
            if conn.execute(sql, params).rowcount == 0:
                return False
            _apply(conn, sid, changes)
            return True

        return self._transaction(work)

    def touch(self, sid: str, accessed: float, expires: float) -> bool:
        return self._write(TOUCH, (accessed, expires, sid, accessed)) > 0

    def move(self, old: str, new: str, changes: Changes, meta: SessionMeta) -> bool:
        """One write transaction renames the session's rows, then applies ``changes``."""

        def work(conn: sqlite3.Connection) -> bool:
            if conn.execute(MOVE, (new, meta.created, meta.accessed, meta.expires, meta.user,
                                   old, meta.accessed)).rowcount == 0:
                return False
            conn.execute(MOVE_VALUES, (new, old))
            _apply(conn, new, changes)
            return True

        return self._transaction(work)

    def delete(self, sid: str) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            conn.execute(DELETE_VALUES, (sid,))
            return bool(conn.execute(DELETE_SESSION, (sid,)).rowcount > 0)

        return self._transaction(work)

    def exists(self, sid: str) -> bool:
        return bool(self._query(EXISTS, (sid, time.time())))

    def purge(self, now: float | None = None) -> int:
        """Remove expired records in batches, found through the expiry index; return how many."""
        moment = now_or(now)
        removed = 0
        while True:  # one short transaction per batch: writers never wait long
            batch: list[Any] = []

            def work(conn: sqlite3.Connection, batch: list[Any] = batch) -> bool:
                batch.extend(conn.execute(EXPIRED, (moment, _PURGE_BATCH)).fetchall())
                conn.executemany(DELETE_VALUES, batch)
                conn.executemany(DELETE_SESSION, batch)
                return True

            self._transaction(work)
            removed += len(batch)
            if len(batch) < _PURGE_BATCH:
                return removed

    def count(self) -> int:
        return int(self._query(COUNT, (time.time(),))[0][0])

    def ids(self) -> Iterator[str]:
        return iter([row[0] for row in self._query(LIVE_IDS, (time.time(),))])

    def user_sessions(self, user: str) -> list[str]:
        return [row[0] for row in self._query(USER_IDS, (user, time.time()))]

    def close(self) -> None:
        """Close the pooled connections of this process; connections out on loan close on return."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        if self._pid == os.getpid():
            for conn in idle:
                conn.close()
        else:
            _INHERITED.extend(idle)

    def __repr__(self) -> str:
        return f"<SQLiteStore path={self.path!r}>"

    # -- connections ---------------------------------------------------------------------------

    def _create(self) -> None:
        """Create the file (0600), WAL mode and the schema; leave no connection open.

        Nothing stays open so that a server that forks after building its application hands
        its workers no connection.
        """
        directory = os.path.dirname(self.path)
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            if not os.path.exists(self.path):
                # SQLite gives its -wal and -shm files the database file's permissions.
                os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        except OSError as exc:
            where = f"SQLiteStore at {self.path!r}"
            if isinstance(exc, FileExistsError):  # a file where its directory should be
                not_a_directory = NotADirectoryError(errno.ENOTDIR, "Not a directory")
                raise misconfigured(where, not_a_directory) from exc
            if exc.errno in PERMISSION_ERRNOS:
                raise misconfigured(where, exc) from exc
            raise unavailable(where, exc) from exc
        conn = self._connect()
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            if conn.execute("PRAGMA user_version").fetchone()[0] < 1:
                # One transaction, so processes starting together create the schema once.
                conn.executescript("BEGIN IMMEDIATE;" + SCHEMA + "COMMIT;")
        except sqlite3.Error as exc:
            raise self._failed(conn, exc) from exc
        finally:
            conn.close()

    def _check_exists(self) -> None:
        """Refuse a path that holds no satchel database, creating nothing."""
        if not os.path.isfile(self.path):
            raise ConfigurationError(f"SQLiteStore: no store at {self.path!r}: no such file")
        try:
            # mode=rw: opening must not create the file (a plain connect would).
            uri = "file:" + quote(self.path) + "?mode=rw"
            with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=self.timeout)) as conn:
                found = conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'satchel_session'"
                ).fetchone()
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc):
                found = None
            else:
                raise _error(exc, self.path) from exc
        if found is None:
            raise ConfigurationError(
                f"SQLiteStore: no store at {self.path!r}: the file holds no satchel sessions")

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            raise _error(exc, self.path) from exc
        return conn

    def _acquire(self) -> sqlite3.Connection:
        if self._pid != os.getpid():
            self._after_fork()
        if self._closed:
            raise StoreUnavailable("SQLiteStore is closed")
        try:
            return self._idle.pop()  # list.pop is atomic: no lock needed to borrow
        except IndexError:
            return self._connect()

    def _release(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self.pool_size and self._pid == os.getpid():
                self._idle.append(conn)
                return
        self._discard(conn)

    def _discard(self, conn: sqlite3.Connection) -> None:
        if self._pid == os.getpid():
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        else:
            _INHERITED.append(conn)

    def _after_fork(self) -> None:
        # The lock may have been held by a parent's thread at the fork: make a new one.
        self._lock = threading.Lock()
        _INHERITED.extend(self._idle)
        self._idle = []
        self._pid = os.getpid()

    def _failed(self, conn: sqlite3.Connection, exc: sqlite3.Error) -> SatchelError:
        """Roll back, drop the connection, and translate the error."""
        with contextlib.suppress(sqlite3.Error):
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        self._discard(conn)
        return _error(exc, self.path)

    def _transaction(self, work: Callable[[sqlite3.Connection], bool]) -> bool:
        """Run ``work`` in one short write transaction (``BEGIN IMMEDIATE``) on a pooled
        connection: committed when it returns True, rolled back (nothing written) when False.
        Any failure rolls back and drops the connection."""
        conn = self._acquire()
        try:
            conn.execute("BEGIN IMMEDIATE")
            done = work(conn)
            conn.execute("COMMIT" if done else "ROLLBACK")
        except sqlite3.Error as exc:
            raise self._failed(conn, exc) from exc
        except BaseException:
            self._discard(conn)
            raise
        self._release(conn)
        return done

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        conn = self._acquire()
        try:
            rows = conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._failed(conn, exc) from exc
        self._release(conn)
        return rows

    def _write(self, sql: str, params: tuple[Any, ...]) -> int:
        conn = self._acquire()
        try:
            count = conn.execute(sql, params).rowcount
        except sqlite3.Error as exc:
            raise self._failed(conn, exc) from exc
        self._release(conn)
        return int(count)


def _load_bytes(conn: sqlite3.Connection, sid: str) -> list[Any]:
    """LOAD's rows read with text as bytes, keeping what is UTF-8: a key or value that is
    not drops its row alone, a user that is not stays bytes (so the session reads as absent).

    SQLite stores whatever bytes it is given as text; Python's decoding error would quote them.
    """
    conn.text_factory = bytes
    try:
        raw = conn.execute(LOAD, (sid, time.time())).fetchall()
    finally:
        conn.text_factory = str
    rows = []
    for created, accessed, expires, user, key, value in raw:
        if isinstance(user, bytes):
            with contextlib.suppress(UnicodeDecodeError):
                user = user.decode()
        try:
            if key is not None:
                key, value = key.decode(), value.decode()
        except (UnicodeDecodeError, AttributeError):
            security_log.warning("SQLiteStore: dropped a stored value that is not UTF-8 text")
            key = value = None
        rows.append((created, accessed, expires, user, key, value))
    return rows


def _apply(conn: sqlite3.Connection, sid: str, changes: Changes, fresh: bool = False) -> None:
    """Write ``changes`` to a session's value rows, inside its transaction.

    ``fresh``: the session has no rows yet, so there is nothing to clear or delete.
    """
    if not fresh:
        if changes.cleared:
            conn.execute(DELETE_VALUES, (sid,))
        elif changes.deleted:
            conn.executemany(DELETE_VALUE, [(sid, key) for key in changes.deleted])
    if changes.set:
        conn.executemany(UPSERT_VALUE, [(sid, k, v) for k, v in changes.set.items()])


def _error(exc: sqlite3.Error, path: str) -> SatchelError:
    """``database is locked`` beyond the busy timeout is a timeout; a file this process may
    not write, or one that is no database, a setting to fix; anything else, unavailable."""
    code = getattr(exc, "sqlite_errorcode", None)
    if (code is not None and code & 0xFF in _BUSY) or "locked" in str(exc):
        return StoreTimeout(f"SQLiteStore: {path!r} stayed locked past the timeout ({exc})")
    if code is not None and code & 0xFF in _REFUSED:
        return misconfigured(f"SQLiteStore at {path!r}", exc)
    return StoreUnavailable(f"SQLiteStore: {path!r}: {exc}")


def from_url(parsed: SplitResult, **options: Any) -> SQLiteStore:
    """``sqlite:///relative/path.db`` (from the working directory) or ``sqlite:////abs/path.db``,
    as in SQLAlchemy, with optional ``?timeout=SECONDS&pool_size=N``."""
    forms = "sqlite:///relative/path.db or sqlite:////absolute/path.db"
    if parsed.netloc:
        raise ConfigurationError(f"sqlite:// URL names host {parsed.netloc!r}; use {forms}")
    if parsed.fragment:
        raise ConfigurationError(f"sqlite:// URL takes no #fragment; use {forms}")
    path = unquote(parsed.path)
    if not path.startswith("/") or path in ("/", "//"):
        raise ConfigurationError(f"sqlite:// URL has no database path; use {forms}")
    path = path[1:]  # "/rel.db" -> "rel.db"; "//abs.db" -> "/abs.db"
    if path == ":memory:":
        raise ConfigurationError(
            "sqlite:///:memory: is not supported (each connection would see its own empty "
            "database); use memory://"
        )
    if path.endswith("/"):
        raise ConfigurationError(f"sqlite:// URL names a directory, not a file; use {forms}")
    query = url_options(parsed)
    for name, kind in (("timeout", float), ("pool_size", int)):
        if name in query:
            try:
                options.setdefault(name, kind(query.pop(name)))
            except ValueError:
                raise ConfigurationError(f"sqlite://: {name} must be a number") from None
    if query:
        raise ConfigurationError(f"sqlite://: unknown option(s) {sorted(query)}")
    return SQLiteStore(path, **options)
