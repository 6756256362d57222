"""PostgresStore against the store contract and a private PostgreSQL server.

Beyond the contract: round trips counted from the server's statement log and from libpq's
protocol trace, fork safety with a real ``os.fork()``, the schema (idempotent set-up, purge on
the expiry index), timeouts, and URL parsing.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg.pq import Trace

import satchel
from satchel import Changes
from satchel.ids import new_id
from satchel.stores.postgres import PostgresStore

from .contract import HOUR, check_reads_as_absent, meta, put
from .servers.postgres import PostgresServer
from .sql_util import (
    UPDATES,
    URL_OPTIONS,
    SQLStoreContract,
    check_fork_child_builds_its_own_pool,
    check_middleware_round_trips,
    check_one_statement_per_operation,
    check_row_lock_times_out,
    check_url_options,
    update,
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


class TestPostgresStore(SQLStoreContract):
    """The contract on this module's ``server`` and ``store``."""


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
            for changes in UPDATES:
                update(store, sid, changes, lifetime)


@pytest.fixture
def warmed(server: PostgresServer, fresh: None) -> Iterator[tuple[PostgresStore, str]]:
    """A store on one connection, and a session ``{"a": "1"}`` whose statements it has warmed."""
    with PostgresStore(server.url, min_size=1, max_size=1) as store:
        sid = new_id()
        put(store, sid, {"a": "1"})
        _warm(store, sid)
        yield store, sid


def test_one_statement_per_operation(server: PostgresServer,
                                     warmed: tuple[PostgresStore, str]) -> None:
    check_one_statement_per_operation(server, *warmed)


def test_one_protocol_round_trip_per_operation(warmed: tuple[PostgresStore, str]) -> None:
    """libpq's trace: every round trip ends with the server's ReadyForQuery."""
    store, sid = warmed
    pool = store._pool.get()
    with tempfile.TemporaryFile() as trace:
        with pool.connection() as conn:
            conn.pgconn.trace(trace.fileno())
            conn.pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS)
        try:
            store.load(sid)
            store.save(sid, Changes(set={"b": "2"}, deleted=frozenset({"a"}), create=False),
                       meta())
            store.touch(sid, time.time(), time.time() + HOUR)
            assert update(store, sid, UPDATES[1], HOUR) is True
        finally:
            with pool.connection() as conn:
                conn.pgconn.untrace()
        trace.seek(0)
        lines = trace.read().decode().splitlines()
    assert sum("ReadyForQuery" in line for line in lines) == 4
    assert sum("\tSync" in line for line in lines) == 4


def test_middleware_round_trips(server: PostgresServer,
                                warmed: tuple[PostgresStore, str]) -> None:
    store, _ = warmed
    check_middleware_round_trips(server, store, warm_ups=6)  # psycopg prepares after 5


# -- fork safety -----------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_fork_child_builds_its_own_pool(server: PostgresServer, fresh: None) -> None:
    with PostgresStore(server.url, min_size=1, max_size=1) as store:
        check_fork_child_builds_its_own_pool(
            store, lambda: store._run(lambda c: c.info.backend_pid))


# -- schema ----------------------------------------------------------------------------------


def _connections_since(server: PostgresServer, offset: int) -> int:
    time.sleep(0.05)  # logged by the server process: let the lines land
    with open(server.log, "rb") as log:
        log.seek(offset)
        return log.read().count(b"LOG:  connection received:")


def test_own_connections_only_until_an_operation_succeeds(server: PostgresServer,
                                                          fresh: None) -> None:
    """Until an operation succeeds, each one first connects on its own (so that a server that
    refuses connections fails it at once); after that, only the pool connects."""
    offset = server.log_size()
    with PostgresStore(server.url, min_size=1, max_size=2) as store:
        for _ in range(10):
            store.load(new_id())
    # the first operation's own connection, the pool's one, and at most one more the pool may
    # open while its first is on its way; never one per operation
    assert 2 <= _connections_since(server, offset) <= 3


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


# -- timeouts --------------------------------------------------------------------------------


@contextmanager
def _row_locked(server: PostgresServer, sid: str) -> Iterator[None]:
    """Another connection's transaction holds the row's lock until the block ends."""
    with psycopg.connect(server.url) as locker:
        locker.execute(f"SELECT 1 FROM {TABLE} WHERE id = %s FOR UPDATE", (sid,))
        yield


def test_statement_timeout_raises_store_timeout(server: PostgresServer,
                                                admin: psycopg.Connection[Any],
                                                fresh: None) -> None:
    with PostgresStore(server.url, timeout=0.3) as store:
        check_row_lock_times_out(store, lambda sid: _row_locked(server, sid), 2,
                                 psycopg.errors.QueryCanceled)


# -- URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_open_store_url(server: PostgresServer, fresh: None, scheme: str) -> None:
    url = server.url.replace("postgresql", scheme, 1)
    url += URL_OPTIONS + "&connect_timeout=3&application_name=t"
    with satchel.open_store(url) as store:
        opened = check_url_options(store, PostgresStore)
        assert opened._run(lambda c: c.info.parameter_status("application_name")) == "t"


def test_repr_hides_password() -> None:
    store = PostgresStore("postgresql://u:hunter2@127.0.0.1:1/db")
    assert "hunter2" not in repr(store) and "127.0.0.1:1" in repr(store)


@pytest.mark.parametrize("url", [  # a bare postgresql:// is libpq's defaults: test_postgres_urls
    "postgresql://h/db?max_size=x",
    "postgresql://h/db?table=bad-name",
    "postgresql://h/db?min_size=5&max_size=2",
    "postgresql://u:pw@h/db?sslmode=x&bogus_libpq_option=1",
])
def test_bad_urls(url: str) -> None:
    with pytest.raises(ValueError):
        satchel.open_store(url)


@pytest.mark.parametrize("assignment", ["data = '[]'", "data = '\"text\"'", "expires = 'NaN'",
                                        "created = 'NaN'"])
def test_unreadable_metadata_reads_as_absent(store: PostgresStore,
                                             admin: psycopg.Connection[Any],
                                             caplog: pytest.LogCaptureFixture,
                                             assignment: str) -> None:
    sid = new_id()
    put(store, sid, {"a": '"1"'})
    admin.execute(f"UPDATE {TABLE} SET {assignment} WHERE id = %s", (sid,))
    check_reads_as_absent(store, sid, caplog)
