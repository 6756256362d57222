"""Session3's names over satchel: its stores' API, every store running Session3's test
application, and the flaws of the original that are not carried over."""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pymysql
import pytest
from quixote import get_field, get_session
from quixote.directory import Directory

import satchel
from satchel.compat.session3.DictSession import DictSession
from satchel.compat.session3.SessionManager import SessionManager
from satchel.compat.session3.store.DirectorySessionStore import DirectorySessionStore
from satchel.compat.session3.store.MySQLSessionStore import MySQLSessionStore
from satchel.compat.session3.store.PostgresSessionStore import PostgresSessionStore
from satchel.compat.session3.store.SessionStore import SessionStore
from satchel.compat.session3.store.ShelveSessionStore import ShelveSessionStore
from satchel.compat.session3.store.VolatileSessionStore import VolatileSessionStore
from satchel.integrations.quixote import wsgi_app

from .e2e_util import serve_app
from .quixote_util import publishing, wsgi_client
from .servers.mysql import MariaDBServer
from .servers.postgres import PostgresServer
from .test_session3_runner import RunnerRoot, make_request, session_id_of

COOKIE = "QX_session"


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[PostgresServer]:
    with PostgresServer(log_statements=False) as srv:
        yield srv


@pytest.fixture(scope="module")
def mariadb_server() -> Iterator[MariaDBServer]:
    with MariaDBServer() as srv:
        yield srv


def _postgres(request: pytest.FixtureRequest, tmp_path: Path) -> SessionStore:
    server: PostgresServer = request.getfixturevalue("postgres_server")
    conn = psycopg.connect(server.url)  # what Session3's use_psycopg() hands its store
    try:
        return PostgresSessionStore(conn, table=f"s3_{os.getpid()}_{time.monotonic_ns()}")
    finally:
        conn.close()


def _mysql(request: pytest.FixtureRequest, tmp_path: Path) -> SessionStore:
    server: MariaDBServer = request.getfixturevalue("mariadb_server")
    url = urlsplit(server.url)  # a PyMySQL connection, as Session3's use_mysql() passes one
    conn = pymysql.connect(host=url.hostname, port=url.port, user=url.username,
                           password=url.password, database=url.path.lstrip("/"))
    try:
        return MySQLSessionStore(conn, table=f"s3_{os.getpid()}_{time.monotonic_ns()}")
    finally:
        conn.close()


STORES: dict[str, Callable[[pytest.FixtureRequest, Path], SessionStore]] = {
    "directory": lambda request, tmp: DirectorySessionStore(tmp / "sessions", create=True),
    "shelve": lambda request, tmp: ShelveSessionStore(tmp / "sessions.shelf"),
    "volatile": lambda request, tmp: VolatileSessionStore(),
    "postgres": _postgres,
    "mysql": _mysql,
}


@pytest.mark.parametrize("kind", list(STORES))
def test_session3s_application_runs_on_every_store(kind: str, request: pytest.FixtureRequest,
                                                    tmp_path: Path) -> None:
    """run_tests.py's checks, the two that read the session directory done through the store."""
    store = STORES[kind](request, tmp_path)
    store.setup()
    manager = SessionManager(store)
    assert manager.store is store
    with publishing(RunnerRoot(), manager) as publisher, \
            serve_app(wsgi_app(publisher)) as base:

        def req(path: str, **kw: Any) -> dict[str, Any]:
            return make_request(base, path, **kw)

        assert "Not logged in" in req("/")["body"]
        cookie = req("/login", method="POST", data="name=TestUser")["cookies"]
        assert cookie is not None
        assert "TestUser" in req("/", cookies=cookie)["body"]
        assert "Counter: 1" in req("/counter", cookies=cookie)["body"]
        assert "Counter: 2" in req("/counter", cookies=cookie)["body"]
        check = req("/check", cookies=cookie)["body"]
        assert "has_info: TestUser" in check and "counter: 2" in check
        sid = session_id_of(req("/check", cookies=cookie))
        assert store.has_session(sid)
        loaded = store.load_session(sid)
        assert loaded is not None and loaded.user == "TestUser" and loaded.counter == 2
        assert [s for s, _ in store.iter_sessions()] == [sid]

        assert req("/logout", cookies=cookie)["status"] == 200
        assert not store.has_session(sid) and store.load_session(sid) is None

        cookie = req("/login", method="POST", data="name=TokenUser")["cookies"]
        req("/create_token", cookies=cookie)
        assert "has_form_tokens: True" in req("/check_token", cookies=cookie)["body"]

        old = session_id_of(req("/check", cookies=cookie))
        store.delete_session(store.load_session(old))  # removed behind the server's back
        assert "user: None" in req("/check", cookies=cookie)["body"]
        cookie = req("/login", method="POST", data="name=RecoveryTest")["cookies"]
        new = req("/check", cookies=cookie)["body"]
        assert "user: RecoveryTest" in new and session_id_of({"body": new}) != old


def test_store_capabilities_are_the_satchel_stores(tmp_path: Path) -> None:
    directory = DirectorySessionStore(tmp_path / "d", create=True)
    assert directory.is_multiprocess_safe and directory.is_thread_safe
    volatile = VolatileSessionStore()
    assert volatile.is_thread_safe and not volatile.is_multiprocess_safe
    shelve = ShelveSessionStore(tmp_path / "s.db")
    assert shelve.is_multiprocess_safe and shelve.is_thread_safe
    shelve.close()


def test_directory_store_is_created_only_when_asked(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="does not exist"):
        DirectorySessionStore(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError, match="is not a directory"):
        DirectorySessionStore(tmp_path / "file")
    store = DirectorySessionStore(tmp_path / "made", create=True)
    assert (tmp_path / "made").is_dir() and store.directory == str(tmp_path / "made")


@pytest.fixture
def directory_app(tmp_path: Path) -> Iterator[tuple[DirectorySessionStore, Any]]:
    store = DirectorySessionStore(tmp_path / "sessions", create=True)
    with publishing(RunnerRoot(), SessionManager(store)) as publisher:
        yield store, wsgi_client(publisher)


def test_delete_old_sessions_returns_what_session3_returns(
        directory_app: tuple[DirectorySessionStore, Any], tmp_path: Path) -> None:
    store, client = directory_app
    for name in ("ada", "bob"):
        client.cookies.clear()
        client.post("/login", {"name": name})
    assert store.delete_old_sessions(60) == (0, 2)
    time.sleep(0.01)
    assert store.delete_old_sessions(0) == (2, 0)
    assert os.listdir(store.directory) == []
    # The other stores returned nothing from it in Session3; they delete all the same.
    volatile = VolatileSessionStore()
    with publishing(RunnerRoot(), SessionManager(volatile)) as publisher:
        wsgi_client(publisher).post("/login", {"name": "ada"})
        assert volatile.backend.count() == 1
        time.sleep(0.01)
        assert volatile.delete_old_sessions(0) is None
        assert volatile.backend.count() == 0


def test_a_client_id_never_becomes_a_path(directory_app: tuple[DirectorySessionStore, Any],
                                          tmp_path: Path) -> None:
    store, client = directory_app
    (tmp_path / "victim").write_text("keep me")
    for evil in ("../victim", "..%2Fvictim", "/etc/passwd", "a" * 300):
        client.cookies[COOKIE] = evil
        client.post("/login", {"name": "ada"})
        assert client.cookies[COOKIE] != evil
    assert (tmp_path / "victim").read_text() == "keep me"
    assert store.load_session("../victim") is None and not store.has_session("../victim")
    with pytest.raises(ValueError, match="not a session id"):
        store._make_filename("../victim")


def test_nothing_is_unpickled(directory_app: tuple[DirectorySessionStore, Any],
                              tmp_path: Path) -> None:
    store, client = directory_app
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple[Any, ...]:
            return (open, (str(marker), "w"))

    sid = satchel.new_id()
    Path(store.directory, sid).write_bytes(pickle.dumps(Exploit()))  # a Session3-era file
    assert store.load_session(sid) is None
    client.cookies[COOKIE] = sid
    assert "Not logged in" in client.get("/").text
    assert not marker.exists()


def test_ids_are_256_bit_and_rotated_at_login(
        directory_app: tuple[DirectorySessionStore, Any]) -> None:
    store, client = directory_app
    client.get("/create_token")  # no user: Session3 keeps nothing
    assert COOKIE not in client.cookies
    client.post("/login", {"name": "ada"})
    first = client.cookies[COOKIE]
    assert satchel.is_valid_id(first)  # 43 characters of base64: 256 bits (Session3: 64)
    client.post("/login", {"name": "bob"})  # a different user on the same browser
    second = client.cookies[COOKIE]
    assert second != first and not store.has_session(first) and store.has_session(second)


class Basket(Directory):  # type: ignore[misc]
    _q_exports = ["add", "show"]

    def add(self) -> str:
        session = get_session()
        session.set_user("ada")
        session[get_field("item")] = session.get(get_field("item"), 0) + 1
        return "ok"

    def show(self) -> str:
        return repr(sorted(get_session().items()))


def test_dict_session_keeps_its_items(tmp_path: Path) -> None:
    store = DirectorySessionStore(tmp_path / "sessions", create=True)
    with publishing(Basket(), SessionManager(store, session_class=DictSession)) as publisher:
        client = wsgi_client(publisher)
        client.post("/add", {"item": "tea"})
        client.post("/add", {"item": "tea"})
        client.post("/add", {"item": "cake"})
        assert client.get("/show").text == repr([("cake", 1), ("tea", 2)])
        (sid,) = os.listdir(store.directory)
        assert store.load_session(sid).data == {"tea": 2, "cake": 1}


def test_sessions_migrated_from_session3_keep_their_browsers_logged_in(tmp_path: Path) -> None:
    """The switch without logging anyone out: Session3's own store writes a session,
    ``satchel migrate`` copies it, and the browser's old cookie finds it once (then rotated)."""
    from session3.Session import Session as RealSession3Session
    from session3.store.DirectorySessionStore import DirectorySessionStore as RealStore

    from satchel.cli import main as satchel_main

    old_dir, new_dir = tmp_path / "old", tmp_path / "new"
    old = RealSession3Session.__new__(RealSession3Session)  # as Session3 builds it in a request
    now = time.time()
    old.__dict__.update(id="0123456789abcdef", user="ada", _remote_address="127.0.0.1",
                        _creation_time=now - 60, _access_time=now - 30, _form_tokens=[],
                        counter=5)
    RealStore(str(old_dir), create=True).save_session(old)  # a pickle, as Session3 wrote it

    assert satchel_main(["migrate", "--from", f"session3-dir:{old_dir}",
                         "--to", f"file://{new_dir}?flat=true", "--no-progress"]) == 0

    store = DirectorySessionStore(new_dir)
    with publishing(RunnerRoot(), SessionManager(store, legacy_ids=True)) as publisher:
        client = wsgi_client(publisher)
        client.cookies[COOKIE] = "0123456789abcdef"
        check = client.get("/check").text
        assert "user: ada" in check and "counter: 5" in check
        new_id = client.cookies[COOKIE]
        assert satchel.is_valid_id(new_id)  # moved to a satchel id on that request
        assert "Counter: 6" in client.get("/counter").text
        assert "user: ada" in client.get("/check").text
        replay = wsgi_client(publisher, cookies={COOKIE: "0123456789abcdef"})
        assert "user: None" in replay.get("/check").text  # the old id works once only


def test_the_readme_example_runs_as_copied(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from .test_readme import section

    (example,) = section("Moving from Session3")
    monkeypatch.chdir(tmp_path)
    names: dict[str, Any] = {}
    exec(compile(example, "README.md (Moving from Session3)", "exec"), names)
    assert isinstance(names["session_manager"], SessionManager)
    assert names["store"].directory == str(tmp_path / "sessions")
    names["session_manager"].close()
