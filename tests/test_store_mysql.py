"""MySQLStore against the store contract and a private MariaDB server.

Beyond the contract: statements counted from the server's general query log, fork safety with
a real ``os.fork()``, the pool, the schema (idempotent set-up, purge on the expiry index,
case-sensitive ids), timeouts, and URL parsing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pymysql
import pytest

import satchel
from satchel import Changes
from satchel.ids import new_id
from satchel.stores.mysql import MySQLStore
from satchel.stores.pool import ConnectionPool, PoolExhausted

from .contract import HOUR, check_reads_as_absent, meta, put
from .servers.mysql import DATABASE, PASSWORD, USER, MariaDBServer
from .sql_util import (
    URL_OPTIONS,
    SQLStoreContract,
    check_fork_child_builds_its_own_pool,
    check_middleware_round_trips,
    check_one_statement_per_operation,
    check_row_lock_times_out,
    check_url_options,
)

TABLE = "satchel_sessions"


@pytest.fixture(scope="module")
def server() -> Iterator[MariaDBServer]:
    with MariaDBServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def admin(server: MariaDBServer) -> Iterator[Any]:
    with satchel.open_store(server.url) as store:
        store.setup()  # type: ignore[attr-defined]
    conn = server.root()
    conn.select_db(DATABASE)
    yield conn
    conn.close()


def sql(admin: Any, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
    with admin.cursor() as cur:
        cur.execute(statement, params)
        return list(cur.fetchall())


@pytest.fixture
def fresh(admin: Any) -> None:
    sql(admin, f"TRUNCATE TABLE {TABLE}")


@pytest.fixture
def store(server: MariaDBServer, fresh: None) -> Iterator[MySQLStore]:
    store = satchel.open_store(server.url + "?max_size=6")
    assert isinstance(store, MySQLStore)
    with store:
        yield store


class TestMySQLStore(SQLStoreContract):
    """The contract on this module's ``server`` and ``store``."""


# -- round trips -----------------------------------------------------------------------------


def test_one_statement_per_operation(server: MariaDBServer, fresh: None) -> None:
    with satchel.open_store(server.url + "?max_size=1") as store:
        sid = new_id()
        put(store, sid, {"a": "1"})
        check_one_statement_per_operation(server, store, sid)


def test_middleware_round_trips(server: MariaDBServer, fresh: None) -> None:
    with satchel.open_store(server.url + "?max_size=1") as store:
        store.setup()  # type: ignore[attr-defined]
        check_middleware_round_trips(server, store)


# -- fork safety and the pool ----------------------------------------------------------------


def _thread_id(store: MySQLStore) -> int:
    return int(store._run("SELECT CONNECTION_ID()", ())[0][0])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_fork_child_builds_its_own_pool(server: MariaDBServer, fresh: None) -> None:
    with satchel.open_store(server.url + "?max_size=1") as store:
        assert isinstance(store, MySQLStore)
        check_fork_child_builds_its_own_pool(store, lambda: _thread_id(store))


def test_pool_bounds_connections_and_times_out() -> None:
    made: list[int] = []
    pool: ConnectionPool[int] = ConnectionPool(lambda: made.append(len(made)) or len(made),
                                               lambda c: None, min_size=0, max_size=2,
                                               timeout=0.2)
    a, reused_a = pool.acquire()
    b, _ = pool.acquire()
    assert reused_a is False and pool.size == 2
    began = time.monotonic()
    with pytest.raises(PoolExhausted):
        pool.acquire()
    assert 0.15 < time.monotonic() - began < 1
    got: list[tuple[int, bool]] = []
    waiter = threading.Thread(target=lambda: got.append(pool.acquire()))
    waiter.start()
    pool.release(a)
    waiter.join(2)
    assert got == [(a, True)]
    pool.release(b, discard=True)
    assert pool.size == 1 and len(made) == 2
    pool.close()


def test_lost_connections_are_replaced(store: MySQLStore, admin: Any) -> None:
    """Idle connections killed by the server (as by a restart) cost no error."""
    sid = new_id()
    put(store, sid, {"a": "1"})
    victim = _thread_id(store)
    sql(admin, f"KILL {victim}")
    record = store.load(sid)
    assert record is not None and record.data == {"a": "1"}
    assert _thread_id(store) != victim


# -- schema ----------------------------------------------------------------------------------


def test_setup_is_idempotent(server: MariaDBServer, admin: Any) -> None:
    with satchel.open_store(server.url + "?table=other_sessions") as store:
        store.setup()  # type: ignore[attr-defined]
        store.setup()  # type: ignore[attr-defined]
        put(store, new_id(), {"a": "1"})
        assert store.count() == 1
    keys = {row[2] for row in sql(admin, "SHOW INDEX FROM other_sessions")}
    assert keys == {"PRIMARY", "other_sessions_expires_idx", "other_sessions_user_idx"}
    sql(admin, "DROP TABLE other_sessions")


def test_purge_uses_the_expires_index(store: MySQLStore, admin: Any) -> None:
    now = time.time()
    store.setup()
    rows = [(f"k{i}", "{}", now, now, now + i) for i in range(1, 2001)]
    with admin.cursor() as cur:
        cur.executemany(f"INSERT INTO {TABLE} (id, data, created, accessed, expires) "
                        "VALUES (%s, %s, %s, %s, %s)", rows)
    sql(admin, f"ANALYZE TABLE {TABLE}")
    plan = sql(admin, f"EXPLAIN DELETE FROM {TABLE} WHERE expires <= %s", (now + 10,))
    assert plan[0][5] == f"{TABLE}_expires_idx"  # the key column of EXPLAIN
    assert store.purge(now + 10) == 10


def test_ids_are_case_sensitive(store: MySQLStore) -> None:
    lower, upper = "a" * 43, "A" * 43
    put(store, lower, {"v": '"lower"'})
    put(store, upper, {"v": '"upper"'})
    one, two = store.load(lower), store.load(upper)
    assert one is not None and one.data == {"v": '"lower"'}
    assert two is not None and two.data == {"v": '"upper"'}


def test_odd_keys_merge_without_paths(store: MySQLStore) -> None:
    sid = new_id()
    odd = {'a"b': "1", "c.d": "2", "$[0]": "3", "e\\f": "4", "": "5", "ünï ✓ 😀": '"😀"'}
    put(store, sid, odd)
    store.save(sid, Changes(set={"x": "null"}, deleted=frozenset({'a"b', "$[0]"}), create=False),
               meta())
    record = store.load(sid)
    expected = {k: v for k, v in odd.items() if k not in ('a"b', "$[0]")}
    assert record is not None and record.data == {**expected, "x": "null"}


def test_unchanged_update_still_reports_the_row(store: MySQLStore) -> None:
    sid = new_id()
    m = meta()
    store.save(sid, Changes(set={"a": "1"}), m)
    assert store.save(sid, Changes(set={"a": "1"}, create=False), m) is True
    assert store.touch(sid, m.accessed, m.expires) is True


# -- timeouts --------------------------------------------------------------------------------


@contextmanager
def _row_locked(server: MariaDBServer, sid: str) -> Iterator[None]:
    """Another connection's transaction holds the row's lock until the block ends."""
    locker = pymysql.connect(host="127.0.0.1", port=server.port, user=USER, password=PASSWORD,
                             database=DATABASE)
    try:
        with locker.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute(f"SELECT 1 FROM {TABLE} WHERE id = %s FOR UPDATE", (sid,))
        yield
    finally:
        locker.rollback()
        locker.close()


def test_lock_wait_raises_store_timeout(server: MariaDBServer, fresh: None) -> None:
    with MySQLStore("127.0.0.1", server.port, USER, PASSWORD, DATABASE, timeout=1.0) as store:
        check_row_lock_times_out(store, lambda sid: _row_locked(server, sid), 3,
                                 pymysql.err.MySQLError)


# -- URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["mysql", "mariadb"])
def test_open_store_url(server: MariaDBServer, fresh: None, scheme: str) -> None:
    with satchel.open_store(server.url.replace("mysql", scheme, 1) + URL_OPTIONS) as store:
        check_url_options(store, MySQLStore)


def test_repr_hides_password() -> None:
    store = satchel.open_store("mysql://u:hunter2@127.0.0.1:1/db")
    assert "hunter2" not in repr(store) and "127.0.0.1:1" in repr(store)


@pytest.mark.parametrize("url", [
    "mysql:///db",
    "mysql://h/a/b",
    "mysql://h:port/db",
    "mysql://h/db?max_size=x",
    "mysql://h/db?bogus=1",
    "mysql://h/db?table=bad-name",
    "mysql://h/db?min_size=5&max_size=2",
])
def test_bad_urls(url: str) -> None:
    with pytest.raises(ValueError):
        satchel.open_store(url)


def test_update_that_changes_nothing_still_matches(store: MySQLStore) -> None:
    """Matched rows, not changed rows: an update writing what is stored is still a success."""
    sid = new_id()
    now = time.time()
    put(store, sid, {"a": "1"}, now=now)
    assert store.update(sid, Changes(set={"a": "1"}, create=False), now, now + HOUR, None)
    assert store.update(sid, Changes(set={"a": "1"}, create=False), now, now + HOUR, HOUR)


@pytest.mark.parametrize("assignment", ["data = '[]'", "data = '\"text\"'"])
def test_unreadable_data_reads_as_absent(store: MySQLStore, admin: Any,
                                         caplog: pytest.LogCaptureFixture,
                                         assignment: str) -> None:
    sid = new_id()
    put(store, sid, {"a": '"1"'})
    sql(admin, f"UPDATE {TABLE} SET {assignment} WHERE id = %s", (sid,))
    check_reads_as_absent(store, sid, caplog)
