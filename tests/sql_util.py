"""What the PostgreSQL and MySQL/MariaDB tests share: WSGI applications, counted round trips,
fork safety and row-lock timeouts, and the SQL stores' contract.

Each engine's module keeps what is its own (its SQL, how it opens and warms a store, how it
names a connection) and calls these with it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from functools import partial
from typing import Any, TypeVar

import pytest

import satchel
from satchel import Changes, SessionMeta, Store, StoreTimeout
from satchel.ids import new_id

from .contract import HOUR, StoreContract, meta, put
from .servers import DatabaseServer
from .wsgi_util import Response, call

T = TypeVar("T")


# -- a request helper and the applications the SQL tests send requests to ----------------------


def request(app: Callable[..., Iterable[bytes]], cookie: str | None = None,
            path: str = "/") -> Response:
    return call(app, path, cookie=f"satchel={cookie}" if cookie else None)


def cookie_of(response: Response) -> str | None:
    """The session id the response sets, or None (no cookie, or one that deletes it)."""
    return response.cookies.get("satchel") or None


def _reply(start_response: Callable[..., Any], body: bytes) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


def app_untouched(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    return _reply(start_response, b"hello")


def app_reading(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    return _reply(start_response, str(environ["satchel.session"].get("n", 0)).encode())


def app_writing(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    session = environ["satchel.session"]
    session["n"] = session.get("n", 0) + 1
    return _reply(start_response, str(session["n"]).encode())


def app_assigning(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """Only assigns, never reads: the engine writes blindly (``Store.update``)."""
    environ["satchel.session"]["w"] = environ.get("QUERY_STRING") or "assigned"
    return _reply(start_response, b"assigned")


def app_routed(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    apps = {"/read": app_reading, "/write": app_writing, "/assign": app_assigning}
    return apps.get(environ["PATH_INFO"], app_untouched)(environ, start_response)


# -- the contract, and what both SQL stores promise beyond it ----------------------------------


class SQLStoreContract(StoreContract):
    """The store contract for a SQL store on the module's ``server``, shared by other processes."""

    @pytest.fixture
    def store_spec(self, server: DatabaseServer) -> tuple[str, dict[str, Any]]:
        return server.url, {"max_size": 2}

    def test_create_over_an_expired_record_starts_empty(self, store: Store) -> None:
        sid = new_id()
        now = time.time()
        store.save(sid, Changes(set={"old": "1"}), SessionMeta(now - 100, now - 100, now - 1))
        store.save(sid, Changes(set={"new": "2"}), meta(now))
        record = store.load(sid)
        assert record is not None and record.data == {"new": "2"}


# -- URLs -------------------------------------------------------------------------------------

#: what ``check_url_options`` expects a URL to have asked for
URL_OPTIONS = "?max_size=3&min_size=0&timeout=4"


def check_url_options(store: Store, cls: type[T]) -> T:
    """A store opened from a URL with :data:`URL_OPTIONS` is a ``cls`` with those, and works."""
    assert isinstance(store, cls)
    opened: Any = store
    assert (opened.max_size, opened.min_size, opened.timeout) == (3, 0, 4.0)
    put(opened, "k" * 43, {"a": "1"})
    assert opened.exists("k" * 43)
    return store


# -- round trips, counted in the server's statement log ----------------------------------------


# Every shape of a blind write: merge, merge with deletions, replace-all.
UPDATES = (
    Changes(set={"w": "1"}, create=False),
    Changes(set={"w": "2"}, deleted=frozenset({"x"}), create=False),
    Changes(set={"w": "3"}, cleared=True, create=False),
)


def update(store: Store, sid: str, changes: Changes, lifetime: float | None) -> bool:
    now = time.time()
    return store.update(sid, changes, now, now + HOUR, lifetime)


def count_statements(server: DatabaseServer, action: Callable[[], T]) -> tuple[int, T]:
    """How many statements the server logged while ``action`` ran, and what it returned."""
    before = server.log_size()
    result = action()
    return len(server.statements_since(before)), result


def check_one_statement_per_operation(server: DatabaseServer, store: Store, sid: str) -> None:
    """Every operation, whatever the shape of its changes, is one statement.

    ``sid`` holds ``{"a": "1"}``; ``store`` has one connection, so nothing else is logged.
    """
    ops: dict[str, Callable[[], object]] = {
        "load": lambda: store.load(sid),
        "save": lambda: store.save(sid, Changes(set={"b": "2"}, deleted=frozenset({"a"}),
                                                create=False), meta()),
        "save_create": lambda: store.save(new_id(), Changes(set={"b": "2"}), meta()),
        "save_create_existing": lambda: store.save(
            sid, Changes(set={"c": "3"}, deleted=frozenset({"b"})), meta()),
        "touch": lambda: store.touch(sid, time.time(), time.time() + HOUR),
        "purge": lambda: store.purge(),
        "update_absent": partial(update, store, new_id(), UPDATES[0], HOUR),
        **{f"update_{i}_{lifetime}": partial(update, store, sid, changes, lifetime)
           for i, changes in enumerate(UPDATES) for lifetime in (None, HOUR)},
    }
    counts = {name: count_statements(server, op)[0] for name, op in ops.items()}
    assert counts == dict.fromkeys(ops, 1)
    record = store.load(sid)
    assert record is not None and record.data == {"w": "3"}  # the last update cleared


def check_middleware_round_trips(server: DatabaseServer, store: Store,
                                 warm_ups: int = 0) -> None:
    """Statements per request: none untouched, one to read or write blindly, two to change.

    ``warm_ups``: how often a request is repeated before it is counted, to take the driver's
    statements past its prepare threshold.
    """

    def statements(app: Callable[..., Iterable[bytes]],
                   cookie: str | None = None) -> tuple[int, Response]:
        mw = satchel.SessionMiddleware(app, store=store, touch_interval=3600)
        return count_statements(server, lambda: request(mw, cookie))

    untouched, response = statements(app_untouched)
    assert untouched == 0 and response.status.startswith("200")
    written, response = statements(app_writing)
    cookie = cookie_of(response)
    assert written == 1 and cookie  # a new session: one upsert, nothing to load
    for _ in range(warm_ups):
        statements(app_reading, cookie)
    read, response = statements(app_reading, cookie)
    assert read == 1 and response.body == b"1"
    written, _ = statements(app_writing, cookie)
    assert written == 2  # load, then one merging UPDATE
    for _ in range(warm_ups):
        statements(app_assigning, cookie)
    assigned, response = statements(app_assigning, cookie)
    assert assigned == 1 and response.status.startswith("200")  # one UPDATE, nothing loaded
    untouched, _ = statements(app_untouched, cookie)
    assert untouched == 0
    record = store.load(cookie)
    assert record is not None and set(record.data) == {"n", "w"}


# -- fork safety and timeouts ------------------------------------------------------------------


def check_fork_child_builds_its_own_pool(store: Store, connection_id: Callable[[], int]) -> None:
    """A forked child opens its own connection and closes only that; the parent's survives.

    ``connection_id`` names the server-side connection the store uses (thread or backend id).
    """
    sid = new_id()
    put(store, sid, {"parent": '"1"'})
    parent_conn = connection_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: must never touch the parent's connection
        code = 1
        try:
            os.close(read)
            child_conn = connection_id()
            store.save(sid, Changes(set={"child": '"2"'}, create=False), meta())
            record = store.load(sid)
            ok = record is not None and record.data.get("parent") == '"1"'
            os.write(write, f"{child_conn}\n".encode())
            store.close()  # closes the child's pool only
            code = 0 if ok and child_conn != parent_conn else 2
        finally:
            os._exit(code)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        child_conn = int(pipe.read().strip() or 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert child_conn not in (0, parent_conn)
    assert connection_id() == parent_conn  # the parent's connection is untouched
    record = store.load(sid)
    assert record is not None and record.data == {"parent": '"1"', "child": '"2"'}


def check_row_lock_times_out(store: Store,
                             lock_row: Callable[[str], AbstractContextManager[object]],
                             bound: float, cause: type[BaseException]) -> None:
    """A save blocked by another connection's row lock raises StoreTimeout within ``bound``.

    ``lock_row(sid)`` holds the row's lock from another connection while it is entered; the
    timeout is chained from the driver's ``cause``, and the same store saves once it is released.
    """
    sid = new_id()
    put(store, sid, {"a": "1"})
    with lock_row(sid):
        began = time.monotonic()
        with pytest.raises(StoreTimeout) as caught:
            store.save(sid, Changes(set={"b": "2"}, create=False), meta())
        assert time.monotonic() - began < bound
        assert isinstance(caught.value.__cause__, cause)
    assert store.save(sid, Changes(set={"b": "2"}, create=False), meta()) is True
