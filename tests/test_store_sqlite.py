"""SQLiteStore against the store contract, plus its schema, WAL, indexes, fork safety and URLs."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import satchel
from satchel import Changes, SessionMeta, SQLiteStore
from satchel.ids import new_id
from satchel.stores import sqlite as sqlite_module

from .contract import StoreContract, check_reads_as_absent, meta, put


class TestSQLiteStore(StoreContract):
    @pytest.fixture
    def db_path(self, tmp_path: Path) -> Path:
        return tmp_path / "sessions.db"

    @pytest.fixture
    def store(self, db_path: Path) -> Iterator[SQLiteStore]:
        with SQLiteStore(db_path) as store:
            yield store

    @pytest.fixture
    def store_spec(self, db_path: Path) -> tuple[str, dict[str, Any]]:
        return f"sqlite:///{db_path}", {}  # four slashes: an absolute path


def _raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def test_schema_file_and_directory_created_on_first_use(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "s.db"
    store = SQLiteStore(path)
    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with _raw(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert {"satchel_session", "satchel_value"} <= tables
    assert {"satchel_session_expires", "satchel_session_user"} <= indexes
    sid = new_id()
    put(store, sid, {"k": "1"})
    store.close()
    again = SQLiteStore(path)  # opening an existing database keeps its data
    record = again.load(sid)
    assert record is not None and record.data == {"k": "1"}
    again.close()


def test_wal_mode_is_on(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    put(store, new_id(), {"k": "1"})
    with _raw(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert Path(f"{path}-wal").exists()
    store.close()


def _plan(path: Path, sql: str, params: tuple[Any, ...]) -> str:
    with _raw(path) as conn:
        return " | ".join(str(row[-1]) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))


def test_queries_use_their_indexes(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    now = time.time()
    for i in range(50):
        put(store, new_id(), {"k": "1"}, now=now, ttl=10 + i, user=f"u{i % 5}")
    plan = _plan(path, sqlite_module.EXPIRED, (now, 500))
    assert "USING COVERING INDEX satchel_session_expires (expires<?)" in plan
    assert "SCAN" not in plan
    user_plan = _plan(path, sqlite_module.USER_IDS, ("u1", now))
    assert "INDEX satchel_session_user" in user_plan and "SCAN" not in user_plan
    load_plan = _plan(path, sqlite_module.LOAD, (new_id(), now))
    assert "SCAN" not in load_plan and "PRIMARY KEY" in load_plan
    assert store.purge(now + 30) == 21  # ttl 10..30
    store.close()


def test_save_touches_only_changed_keys(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    sid = new_id()
    put(store, sid, {"a": "1", "b": "2", "c": "3"})
    with _raw(path) as conn:
        # A trigger records the keys a save rewrites.
        conn.execute("CREATE TABLE writes (key TEXT)")
        conn.execute("CREATE TRIGGER w AFTER UPDATE ON satchel_value "
                     "BEGIN INSERT INTO writes VALUES (new.key); END")
    store.save(sid, Changes(set={"b": "20"}, create=False), meta())
    with _raw(path) as conn:
        assert [r[0] for r in conn.execute("SELECT key FROM writes")] == ["b"]
    store.close()


def test_update_is_one_transaction_that_reads_nothing(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db", pool_size=1)
    sid = new_id()
    now = time.time()
    put(store, sid, {"a": "1", "b": "2", "c": "3"}, now=now - 10, user="ana")
    conn = store._acquire()
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    store._release(conn)
    changes = Changes(set={"b": "20"}, deleted=frozenset({"c"}), create=False)
    assert store.update(sid, changes, now, now + 60, 30.0) is True
    assert statements[0] == "BEGIN IMMEDIATE" and statements[-1] == "COMMIT"
    assert not any(s.lstrip().upper().startswith("SELECT") for s in statements)
    assert sum(s.startswith("UPDATE satchel_session") for s in statements) == 1
    statements.clear()
    assert store.update(new_id(), changes, now, now + 60, 30.0) is False
    assert statements[0] == "BEGIN IMMEDIATE" and statements[-1] == "ROLLBACK"
    assert len(statements) == 3  # begin, the update that matched nothing, rollback
    record = store.load(sid)
    assert record is not None and record.data == {"a": "1", "b": "20"} and record.user == "ana"
    assert record.expires == pytest.approx(now - 10 + 30)  # capped at created + lifetime
    store.close()


def test_a_held_write_lock_times_out(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path, timeout=0.3)
    sid = new_id()
    put(store, sid, {"k": "1"})
    holder = _raw(path)
    holder.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        with pytest.raises(satchel.StoreTimeout, match="locked"):
            store.save(sid, Changes(set={"k": "2"}, create=False), meta())
        assert 0.25 <= time.monotonic() - started < 3.0
        now = time.time()
        with pytest.raises(satchel.StoreTimeout, match="locked"):
            store.update(sid, Changes(set={"k": "2"}, create=False), now, now + 60, None)
        record = store.load(sid)  # WAL: readers do not wait for the writer
        assert record is not None and record.data == {"k": "1"}
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.save(sid, Changes(set={"k": "3"}, create=False), meta()) is True
    store.close()


def test_not_a_database_is_misconfigured(tmp_path: Path) -> None:
    # A path to the wrong file is a setting to fix, not an outage to wait out.
    path = tmp_path / "s.db"
    path.write_bytes(b"this is not an sqlite database" * 100)
    with pytest.raises(satchel.StoreMisconfigured, match="file is not a database"):
        SQLiteStore(path)


def test_fork_child_opens_its_own_connection(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    parent_sid, child_sid = new_id(), new_id()
    put(store, parent_sid, {"who": '"parent"'})
    parents = list(store._idle)
    assert parents  # the parent holds a pooled connection across the fork
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads, on 3.12+
        pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            put(store, child_sid, {"who": '"child"'})
            record = store.load(parent_sid)
            ok = record is not None and record.data == {"who": '"parent"'}
            fresh = all(c is not p for c in store._idle for p in parents)
            kept = all(any(p is k for k in sqlite_module._INHERITED) for p in parents)
            code = 0 if ok and fresh and kept else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    record = store.load(child_sid)
    assert record is not None and record.data == {"who": '"child"'}
    store.save(parent_sid, Changes(set={"again": "1"}, create=False), meta())
    record = store.load(parent_sid)
    assert record is not None and record.data == {"who": '"parent"', "again": "1"}
    assert store._idle and store._idle[0] is parents[0]  # the parent kept its own connection
    store.close()


def test_close_makes_the_store_unusable(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    put(store, new_id(), {"k": "1"})
    store.close()
    assert store._idle == []
    with pytest.raises(satchel.StoreUnavailable, match="closed"):
        store.load(new_id())


def test_expired_record_is_recreated_without_its_old_keys(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    sid = new_id()
    now = time.time()
    store.save(sid, Changes(set={"old": "1"}), SessionMeta(now - 100, now - 100, now - 1))
    assert store.save(sid, Changes(set={"x": "1"}, create=False), meta()) is False
    assert store.save(sid, Changes(set={"new": "1"}), meta()) is True
    record = store.load(sid)
    assert record is not None and record.data == {"new": "1"}
    store.close()


def test_purge_in_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_module, "_PURGE_BATCH", 7)
    store = SQLiteStore(tmp_path / "s.db")
    now = time.time()
    for _ in range(30):
        put(store, new_id(), {"a": "1", "b": "2"}, now=now, ttl=5)
    keep = new_id()
    put(store, keep, {"a": "1"}, now=now, ttl=3600)
    assert store.purge(now + 10) == 30
    assert store.count() == 1 and list(store.ids()) == [keep]
    with _raw(tmp_path / "s.db") as conn:
        assert conn.execute("SELECT count(*) FROM satchel_value").fetchone()[0] == 1
    store.close()


# -- URLs ------------------------------------------------------------------------------------


def test_relative_url_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = satchel.open_store("sqlite:///data/sessions.db?timeout=0.5&pool_size=2")
    assert isinstance(store, SQLiteStore)
    assert store.path == str(tmp_path / "data" / "sessions.db")
    assert store.timeout == 0.5 and store.pool_size == 2
    assert (tmp_path / "data" / "sessions.db").is_file()
    store.close()


def test_absolute_url(tmp_path: Path) -> None:
    store = satchel.open_store(f"sqlite:///{tmp_path}/a%20b.db")
    assert isinstance(store, SQLiteStore) and store.path == str(tmp_path / "a b.db")
    store.close()


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///",
        "sqlite:////",
        "sqlite://host/x.db",
        "sqlite:///:memory:",
        "sqlite:///dir/",
        "sqlite:///x.db?timeout=soon",
        "sqlite:///x.db?pool_size=many",
        "sqlite:///x.db?colour=blue",
        "sqlite:///x.db#frag",
    ],
)
def test_bad_sqlite_urls(url: str) -> None:
    with pytest.raises(satchel.ConfigurationError, match="sqlite"):
        satchel.open_store(url)


@pytest.mark.parametrize("kwargs", [{"timeout": 0}, {"timeout": "1"}, {"pool_size": 0}])
def test_bad_options(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    with pytest.raises(satchel.ConfigurationError):
        SQLiteStore(tmp_path / "s.db", **kwargs)


def test_memory_path_is_refused() -> None:
    with pytest.raises(satchel.ConfigurationError, match="MemoryStore"):
        SQLiteStore(":memory:")


@pytest.mark.parametrize(("column", "value"), [("expires", "x"), ("created", "soon"),
                                           ("accessed", b"\x00"), ("user", b"\xff")])
def test_unreadable_metadata_reads_as_absent(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                             column: str, value: Any) -> None:
    path = tmp_path / "s.db"
    with SQLiteStore(path) as store:
        sid = new_id()
        put(store, sid, {"a": '"1"'})
        with _raw(path) as raw:  # SQLite keeps any type in any column
            raw.execute(f"UPDATE satchel_session SET {column} = ? WHERE id = ?", (value, sid))
        check_reads_as_absent(store, sid, caplog)


def test_text_that_is_not_utf8_drops_its_value_alone(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "s.db"
    with SQLiteStore(path) as store:
        sid, other = new_id(), new_id()
        put(store, sid, {"a": '"1"', "b": '"2"'})
        put(store, other, {"a": '"1"'})
        with _raw(path) as raw:  # SQLite keeps any bytes as text
            raw.execute("UPDATE satchel_value SET value = CAST(X'22FF22' AS TEXT)"
                        " WHERE session_id = ? AND key = 'b'", (sid,))
            raw.execute("UPDATE satchel_session SET user = CAST(X'FF' AS TEXT) WHERE id = ?",
                        (other,))
        with caplog.at_level(logging.WARNING, logger="satchel.security"):
            record = store.load(sid)
        assert record is not None and record.data == {"a": '"1"'}
        assert "not UTF-8" in caplog.text and sid not in caplog.text
        check_reads_as_absent(store, other, caplog)  # a user that is not text
