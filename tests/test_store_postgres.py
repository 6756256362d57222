"""PostgresStore against the store contract and a private PostgreSQL server.

Beyond the contract: round trips counted from the server's statement log and from libpq's
protocol trace, fork safety with a real ``os.fork()``, the schema (idempotent set-up, purge on
the expiry index), timeouts, and URL parsing.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.pq import Trace

import satchel
from satchel import Changes, SessionMeta, StoreTimeout
from satchel.ids import new_id
from satchel.stores.postgres import PostgresStore

from .contract import HOUR, StoreContract, meta, put
from .servers.postgres import PostgresServer
from .test_outage_sql import (
    app_assigning,
    app_reading,
    app_untouched,
    app_writing,
    cookie_of,
    request,
)

TABLE = "satchel_sessions"


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    with PostgresServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def admin(server: PostgresServer) -> Iterator[psycopg.Connection[Any]]:
    with PostgresStore(server.url) as store:
        store.setup()
    with psycopg.connect(server.url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def fresh(admin: psycopg.Connection[Any]) -> None:
    admin.execute(f"TRUNCATE {TABLE}")


@pytest.fixture
def store(server: PostgresServer, fresh: None) -> Iterator[PostgresStore]:
    with PostgresStore(server.url, max_size=6) as store:
        yield store


class TestPostgresStore(StoreContract):
    @pytest.fixture
    def store_spec(self, server: PostgresServer) -> tuple[str, dict[str, Any]]:
        return server.url, {"max_size": 2}


# -- round trips -----------------------------------------------------------------------------


def _warm(store: PostgresStore, sid: str) -> None:
    """Run every statement shape past psycopg's prepare threshold, so counts are steady-state."""
    for _ in range(6):
        store.load(sid)
        store.save(sid, Changes(set={"w": "1"}, create=False), meta())
        store.save(sid, Changes(set={"w": "1"}, deleted=frozenset({"x"}), create=False), meta())
        store.save(sid, Changes(set={"w": "1"}, create=True), meta())
        store.touch(sid, time.time(), time.time() + HOUR)
        for lifetime in (None, HOUR):
            for changes in _UPDATES:
                _update(store, sid, changes, lifetime)


# Every shape of a blind write: merge, merge with deletions, replace-all.
_UPDATES = (
    Changes(set={"w": "1"}, create=False),
    Changes(set={"w": "1"}, deleted=frozenset({"x"}), create=False),
    Changes(set={"w": "1"}, cleared=True, create=False),
)


def _update(store: PostgresStore, sid: str, changes: Changes, lifetime: float | None) -> bool:
    now = time.time()
    return store.update(sid, changes, now, now + HOUR, lifetime)


def test_one_statement_per_operation(server: PostgresServer, fresh: None) -> None:
    with PostgresStore(server.url, min_size=1, max_size=1) as store:
        sid = new_id()
        put(store, sid, {"a": "1"})
        _warm(store, sid)
        counts = {}
        ops = {
            "load": lambda: store.load(sid),
            "save": lambda: store.save(sid, Changes(set={"b": "2"}, deleted=frozenset({"a"}),
                                                    create=False), meta()),
            "save_create": lambda: store.save(new_id(), Changes(set={"b": "2"}), meta()),
            "touch": lambda: store.touch(sid, time.time(), time.time() + HOUR),
            "purge": lambda: store.purge(),
            "update_absent": lambda: _update(store, new_id(), _UPDATES[0], HOUR),
            **{f"update_{i}_{lifetime}": (
                lambda c=changes, life=lifetime: _update(store, sid, c, life))
               for i, changes in enumerate(_UPDATES) for lifetime in (None, HOUR)},
        }
        for name, op in ops.items():
            before = server.log_size()
            op()
            counts[name] = len(server.statements_since(before))
        assert counts == dict.fromkeys(ops, 1)


def test_one_protocol_round_trip_per_operation(server: PostgresServer, fresh: None) -> None:
    """libpq's trace: every round trip ends with the server's ReadyForQuery."""
    with PostgresStore(server.url, min_size=1, max_size=1) as store:
        sid = new_id()
        put(store, sid, {"a": "1"})
        _warm(store, sid)
        pool = store._pool.get()
        with tempfile.TemporaryFile() as trace:
            with pool.connection() as conn:
                conn.pgconn.trace(trace.fileno())
                conn.pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS)
            try:
                store.load(sid)
                store.save(sid, Changes(set={"b": "2"}, deleted=frozenset({"a"}),
                                        create=False), meta())
                store.touch(sid, time.time(), time.time() + HOUR)
                assert _update(store, sid, _UPDATES[1], HOUR) is True
            finally:
                with pool.connection() as conn:
                    conn.pgconn.untrace()
            trace.seek(0)
            lines = trace.read().decode().splitlines()
        assert sum("ReadyForQuery" in line for line in lines) == 4
        assert sum("\tSync" in line for line in lines) == 4


def test_middleware_round_trips(server: PostgresServer, fresh: None) -> None:
    with PostgresStore(server.url, min_size=1, max_size=1) as store:
        sid = new_id()
        put(store, sid, {"a": "1"})
        _warm(store, sid)

        def statements(app: Any, cookie: str | None = None) -> tuple[int, Any]:
            mw = satchel.SessionMiddleware(app, store=store, touch_interval=3600)
            before = server.log_size()
            response = request(mw, cookie)
            return len(server.statements_since(before)), response

        untouched, response = statements(app_untouched)
        assert untouched == 0 and response[0].startswith("200")
        written, response = statements(app_writing)
        cookie = cookie_of(response)
        assert written == 1 and cookie  # a new session: one upsert, nothing to load
        for _ in range(6):  # past the prepare threshold of the load statement
            statements(app_reading, cookie)
        read, response = statements(app_reading, cookie)
        assert read == 1 and response[2] == b"1"
        written, _ = statements(app_writing, cookie)
        assert written == 2  # load, then one merging UPDATE
        for _ in range(6):  # past the prepare threshold of the blind UPDATE
            statements(app_assigning, cookie)
        assigned, response = statements(app_assigning, cookie)
        assert assigned == 1 and response[0].startswith("200")  # one UPDATE, nothing loaded
        untouched, _ = statements(app_untouched, cookie)
        assert untouched == 0
        record = store.load(cookie)
        assert record is not None and set(record.data) == {"n", "w"}


# -- fork safety -----------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_fork_child_builds_its_own_pool(server: PostgresServer, fresh: None) -> None:
    with PostgresStore(server.url, min_size=1, max_size=1) as store:
        _fork_and_check(store)


def _fork_and_check(store: PostgresStore) -> None:
    sid = new_id()
    put(store, sid, {"parent": '"1"'})
    backend = store._run(lambda c: c.info.backend_pid)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: must never touch the parent's connection
        code = 1
        try:
            os.close(read)
            child_backend = store._run(lambda c: c.info.backend_pid)
            store.save(sid, Changes(set={"child": '"2"'}, create=False), meta())
            record = store.load(sid)
            ok = record is not None and record.data.get("parent") == '"1"'
            os.write(write, f"{child_backend}\n".encode())
            store.close()
            code = 0 if ok and child_backend != backend else 2
        finally:
            os._exit(code)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        child_backend = int(pipe.read().strip() or 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert child_backend not in (0, backend)
    # The parent's connection survived the child's use and close of the store.
    assert store._run(lambda c: c.info.backend_pid) == backend
    record = store.load(sid)
    assert record is not None and record.data == {"parent": '"1"', "child": '"2"'}


# -- schema ----------------------------------------------------------------------------------


def test_setup_is_idempotent_and_creates_indexes(server: PostgresServer,
                                                 admin: psycopg.Connection[Any]) -> None:
    with PostgresStore(server.url, table="other_sessions") as store:
        store.setup()
        store.setup()
        put(store, new_id(), {"a": "1"})
        assert store.count() == 1
    rows = admin.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'other_sessions'")
    defs = " | ".join(row[0] for row in rows)
    assert "(expires)" in defs and "(user_id)" in defs and "(id)" in defs
    columns = dict(admin.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'other_sessions'").fetchall())
    assert columns == {"id": "text", "data": "jsonb", "created": "double precision",
                       "accessed": "double precision", "expires": "double precision",
                       "user_id": "text"}
    admin.execute("DROP TABLE other_sessions")


def test_first_use_creates_the_table(server: PostgresServer,
                                     admin: psycopg.Connection[Any]) -> None:
    with PostgresStore(server.url, table="lazy_sessions") as store:
        assert store.load(new_id()) is None
    assert admin.execute("SELECT to_regclass('lazy_sessions')").fetchone() == ("lazy_sessions",)
    admin.execute("DROP TABLE lazy_sessions")


def test_purge_uses_the_expires_index(store: PostgresStore,
                                      admin: psycopg.Connection[Any]) -> None:
    now = time.time()
    store.setup()
    admin.execute(
        f"INSERT INTO {TABLE} (id, created, accessed, expires) "
        "SELECT 'k' || g, %s, %s, %s + g FROM generate_series(1, 5000) g", (now, now, now))
    admin.execute(f"ANALYZE {TABLE}")
    plan = "\n".join(row[0] for row in admin.execute(
        f"EXPLAIN DELETE FROM {TABLE} WHERE expires <= %s", (now + 10,)))
    assert f"{TABLE}_expires_idx" in plan
    assert store.purge(now + 10) == 10
    plan = "\n".join(row[0] for row in admin.execute(
        f"EXPLAIN SELECT id FROM {TABLE} WHERE user_id = %s AND expires > %s", ("ana", now)))
    assert f"{TABLE}_user_idx" in plan


def test_values_are_json_strings_in_jsonb(store: PostgresStore,
                                          admin: psycopg.Connection[Any]) -> None:
    sid = new_id()
    put(store, sid, {"n": "[1, 2]", "s": '"x"'})
    row = admin.execute(f"SELECT data->>'n', jsonb_typeof(data->'n') FROM {TABLE} WHERE id = %s",
                        (sid,)).fetchone()
    assert row == ("[1, 2]", "string")


def test_create_over_an_expired_record_starts_empty(store: PostgresStore) -> None:
    sid = new_id()
    now = time.time()
    store.save(sid, Changes(set={"old": "1"}), SessionMeta(now - 100, now - 100, now - 1))
    store.save(sid, Changes(set={"new": "2"}), meta(now))
    record = store.load(sid)
    assert record is not None and record.data == {"new": "2"}


# -- timeouts --------------------------------------------------------------------------------


def test_statement_timeout_raises_store_timeout(server: PostgresServer,
                                                admin: psycopg.Connection[Any],
                                                fresh: None) -> None:
    with PostgresStore(server.url, timeout=0.3) as store:
        sid = new_id()
        put(store, sid, {"a": "1"})
        with psycopg.connect(server.url) as locker:  # holds the row lock in a transaction
            locker.execute(f"SELECT 1 FROM {TABLE} WHERE id = %s FOR UPDATE", (sid,))
            began = time.monotonic()
            with pytest.raises(StoreTimeout) as caught:
                store.save(sid, Changes(set={"b": "2"}, create=False), meta())
            assert time.monotonic() - began < 2
            assert isinstance(caught.value.__cause__, psycopg.errors.QueryCanceled)
        assert store.save(sid, Changes(set={"b": "2"}, create=False), meta()) is True


# -- URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_open_store_url(server: PostgresServer, fresh: None, scheme: str) -> None:
    url = server.url.replace("postgresql", scheme, 1)
    url += "?max_size=3&min_size=0&timeout=4&connect_timeout=3&application_name=t"
    store = satchel.open_store(url)
    try:
        assert isinstance(store, PostgresStore)
        assert (store.max_size, store.min_size, store.timeout) == (3, 0, 4.0)
        put(store, "k" * 43, {"a": "1"})
        assert store.exists("k" * 43)
        assert store._run(lambda c: c.info.parameter_status("application_name")) == "t"
    finally:
        store.close()


def test_repr_hides_password() -> None:
    store = PostgresStore("postgresql://u:hunter2@127.0.0.1:1/db")
    assert "hunter2" not in repr(store) and "127.0.0.1:1" in repr(store)


@pytest.mark.parametrize("url", [
    "postgresql://",
    "postgresql://h/db?max_size=x",
    "postgresql://h/db?table=bad-name",
    "postgresql://h/db?min_size=5&max_size=2",
    "postgresql://u:pw@h/db?sslmode=x&bogus_libpq_option=1",
])
def test_bad_urls(url: str) -> None:
    with pytest.raises(ValueError):
        satchel.open_store(url)
