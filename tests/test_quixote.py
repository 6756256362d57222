"""satchel as Quixote's session manager, with the real Quixote from PyPI.

One application (login, a visit counter kept as a custom session attribute, a page that raises,
logout) runs over the memory, file, SQLite, Redis and PostgreSQL stores, through Quixote's WSGI
adapter in this process and behind a real HTTP server on loopback.  The other tests pin what a
Quixote developer relies on: ``has_info()`` decides what is kept, unstorable attributes fail
loudly, form tokens and CSRF tokens persist, login rotates the id, Quixote's cookie config is
honoured, and the manager's mapping interface works.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import quixote
from quixote import get_field, get_session, get_session_manager, get_user
from quixote.directory import Directory
from quixote.errors import AccessError

import satchel
from satchel.integrations.quixote import Session, SessionManager

from .quixote_util import HTTPClient, WSGIClient, publishing, serving, wsgi_client
from .servers import LOOPBACK, free_port
from .servers.postgres import PostgresServer
from .servers.redis import RedisServer, running_server

COOKIE = "QX_session"  # Quixote's default session_cookie_name


class CounterSession(Session):
    """The application's session class: a custom attribute with a default."""

    def __init__(self, id: str | None) -> None:
        super().__init__(id)
        self.visits = 0


class Root(Directory):  # type: ignore[misc]
    _q_exports = ["", "login", "count", "boom", "logout", "whoami", "token", "check",
                  "secret", "forget", "bad"]

    def _q_index(self) -> str:
        session = get_session()
        return f"user={get_user()} visits={session.visits}"

    def login(self) -> str:
        get_session().set_user(get_field("name"))  # the login call: it rotates the id
        return f"welcome {get_user()}"

    def count(self) -> str:
        session = get_session()
        session.visits += 1
        return f"visits={session.visits}"

    def boom(self) -> str:
        get_session().visits += 100
        raise RuntimeError("this page fails after changing its session")

    def logout(self) -> str:
        get_session_manager().expire_session()
        return "goodbye"

    def whoami(self) -> str:
        return f"id={get_session().id}"

    def token(self) -> str:
        return get_session().get_csrf_token()  # type: ignore[no-any-return]

    def check(self) -> str:
        return f"valid={get_session().valid_csrf_token()}"

    def secret(self) -> str:
        if get_user() is None:
            raise AccessError("log in first")
        return "the secret"

    def forget(self) -> str:
        get_session().set_user(None)
        return "forgotten"

    def bad(self) -> str:
        get_session().handle = open  # a function: no codec can store it
        return "unreachable"


# -- the same flow over every store, in process and over HTTP ----------------------------------


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with running_server() as srv:
        yield srv


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[PostgresServer]:
    with PostgresServer(log_statements=False) as srv:
        yield srv


STORES = ["memory", "file", "sqlite", "redis", "postgres"]


def store_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if kind == "memory":
        return "memory://"
    if kind == "file":
        return f"file://{tmp_path}/sessions"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/sessions.db"
    if kind == "redis":
        redis: RedisServer = request.getfixturevalue("redis_server")
        redis.flush()
        return redis.url
    postgres: PostgresServer = request.getfixturevalue("postgres_server")
    return f"{postgres.url}?table=qx_{uuid.uuid4().hex[:12]}"


@pytest.mark.parametrize("via", ["wsgi", "http"])
@pytest.mark.parametrize("kind", STORES)
def test_login_counter_failure_logout(kind: str, via: str, request: pytest.FixtureRequest,
                                      tmp_path: Path) -> None:
    manager = SessionManager(store_url(kind, request, tmp_path), session_class=CounterSession)
    store = manager.store
    with publishing(Root(), manager) as publisher, serving_or_not(publisher, via) as client:
        # An anonymous visitor: Quixote's has_info() is false, so nothing is kept or sent.
        r = client.get("/count")
        assert (r.status, r.text) == (200, "visits=1")
        assert r.all("Set-Cookie") == [] and client.cookies == {}
        assert client.get("/count").text == "visits=1"
        assert store.count() == 0

        r = client.post("/login", {"name": "ada"})
        assert r.text == "welcome ada"
        assert "httponly" in r.header("Set-Cookie").lower()  # type: ignore[union-attr]
        sid = client.cookies[COOKIE]
        assert satchel.is_valid_id(sid) and store.exists(sid)
        assert store.user_sessions("ada") == [sid]

        assert client.get("/count").text == "visits=1"
        assert client.get("/count").text == "visits=2"

        # A page that raises saves nothing.
        r = client.get("/boom")
        assert r.status == 500 and r.all("Set-Cookie") == []
        assert client.get("/").text == "user=ada visits=2"
        assert client.get("/secret").text == "the secret"

        r = client.get("/logout")
        assert r.text == "goodbye" and COOKIE not in client.cookies
        revoke = r.header("Set-Cookie")
        assert revoke is not None and "max-age=0" in revoke.lower()
        assert not store.exists(sid) and store.count() == 0

        # The old cookie, replayed, is an anonymous visitor's.
        client.cookies[COOKIE] = sid
        assert client.get("/").text == "user=None visits=0"
        assert client.get("/secret").status == 403
        assert not store.exists(sid)


@pytest.fixture
def memory_app() -> Iterator[tuple[SessionManager, WSGIClient]]:
    manager = SessionManager("memory://", session_class=CounterSession)
    with publishing(Root(), manager) as publisher:
        yield manager, wsgi_client(publisher)


@contextlib.contextmanager
def serving_or_not(publisher: Any, via: str) -> Iterator[WSGIClient | HTTPClient]:
    if via == "http":
        with serving(publisher) as client:
            yield client
    else:
        yield wsgi_client(publisher)


# -- has_info(), attributes, tokens, rotation --------------------------------------------------


def test_a_session_that_loses_its_info_is_deleted_and_its_cookie_revoked(
        memory_app: tuple[SessionManager, WSGIClient]) -> None:
    manager, client = memory_app
    client.post("/login", {"name": "ada"})
    sid = client.cookies[COOKIE]
    r = client.get("/forget")  # set_user(None): has_info() is false again
    assert r.text == "forgotten" and COOKIE not in client.cookies
    assert not manager.store.exists(sid)


def test_an_attribute_the_codec_cannot_store_is_a_type_error_naming_it(
        memory_app: tuple[SessionManager, WSGIClient]) -> None:
    _, client = memory_app
    client.post("/login", {"name": "ada"})
    r = client.get("/bad")
    assert r.status == 500
    errors = publisher_errors()
    assert "TypeError: session attribute 'handle' cannot be stored" in errors
    assert client.get("/").text == "user=ada visits=0"


def publisher_errors() -> str:
    return quixote.get_publisher().logger.errors.getvalue()  # type: ignore[no-any-return]


def test_attributes_keep_their_types_and_class_defaults_are_shadowed(tmp_path: Path) -> None:
    class Cart(Session):
        items: tuple[str, ...] = ()  # a class-level default the instance overrides

    class Shop(Directory):  # type: ignore[misc]
        _q_exports = ["add", "show"]

        def add(self) -> str:
            session = get_session()
            session.set_user("ada")
            session.items = (*session.items, get_field("item"))
            session.prices = {get_field("item"): 1.5}
            return "added"

        def show(self) -> str:
            session = get_session()
            return repr((session.items, session.prices, type(session.items).__name__))

    manager = SessionManager(f"sqlite:///{tmp_path}/s.db", session_class=Cart)
    with publishing(Shop(), manager) as publisher:
        client = wsgi_client(publisher)
        client.post("/add", {"item": "tea"})
        client.post("/add", {"item": "cake"})
        assert client.get("/show").text == repr((("tea", "cake"), {"cake": 1.5}, "tuple"))


def test_form_tokens_and_the_csrf_token_survive_between_requests(
        memory_app: tuple[SessionManager, WSGIClient]) -> None:
    manager, client = memory_app
    token = client.get("/token").text  # an anonymous session with a CSRF token has info
    assert COOKIE in client.cookies
    assert client.get("/token").text == token
    assert client.post("/check", {"csrf_token": token}).text == "valid=True"
    assert client.post("/check", {"csrf_token": "forged"}).text == "valid=False"
    assert client.get(f"/check?csrf_token={token}").text == "valid=False"  # GET never counts

    sid = client.cookies[COOKIE]
    session = manager.get(sid)
    assert session is not None
    assert session._csrf_token == token and session.has_info()


def test_login_rotates_the_id_and_keeps_the_session(
        memory_app: tuple[SessionManager, WSGIClient]) -> None:
    manager, client = memory_app
    before = client.get("/token").text  # kept before login (it holds a CSRF token)
    planted = client.cookies[COOKIE]
    client.post("/login", {"name": "ada"})
    after = client.cookies[COOKIE]
    assert after != planted
    assert not manager.store.exists(planted) and manager.store.exists(after)
    assert client.get("/whoami").text == f"id={after}"
    assert client.get("/token").text != before  # the CSRF token is renewed at login too
    client.post("/login", {"name": "ada"})  # the same user again: no new id
    assert client.cookies[COOKIE] == after


def test_a_user_that_is_not_a_string_is_kept_through_the_codec() -> None:
    class Ids(Directory):  # type: ignore[misc]
        _q_exports = ["login", "me"]

        def login(self) -> str:
            get_session().set_user(42)
            return "ok"

        def me(self) -> str:
            return repr(get_user())

    manager = SessionManager("memory://")
    with publishing(Ids(), manager) as publisher:
        client = wsgi_client(publisher)
        client.get("/login")
        assert client.get("/me").text == "42"
        assert manager.store.user_sessions("42") == []  # only a str user is indexed


# -- cookies -------------------------------------------------------------------------------------


def test_the_cookie_has_satchels_secure_defaults() -> None:
    manager = SessionManager("memory://")
    with publishing(Root(), manager) as publisher:
        header = wsgi_client(publisher).post("/login", {"name": "ada"}).header("Set-Cookie")
        assert header is not None
        parts = [p.strip().lower() for p in header.split(";")]
        assert parts[0].startswith(f"{COOKIE.lower()}=")
        assert {"path=/", "httponly", "samesite=lax"} <= set(parts)
        assert "secure" not in parts and not any(p.startswith("max-age") for p in parts)

        https = wsgi_client(publisher, https=True)
        header = https.post("/login", {"name": "ada"}).header("Set-Cookie")
        assert header is not None and "secure" in header.lower().split("; ")


def test_quixotes_cookie_config_is_honoured_and_samesite_added() -> None:
    manager = SessionManager("memory://", CounterSession, cookie_samesite="Strict", persistent=True,
                             idle_timeout=600)
    with publishing(Root(), manager, session_cookie_name="sid",
                    session_cookie_domain="example.test", session_cookie_path="/app/",
                    session_cookie_secure=True, session_cookie_httponly=True) as publisher:
        client = wsgi_client(publisher)
        r = client.post("/login", {"name": "ada"})
        header = r.header("Set-Cookie")
        assert header is not None
        parts = {p.strip().lower() for p in header.split(";")}
        assert {"path=/app/", "domain=example.test", "secure", "httponly",
                "samesite=strict", "max-age=600"} <= parts
        assert "sid" in client.cookies
        assert client.get("/").text == "user=ada visits=0"
        assert r.header("Vary") == "Cookie"


def test_cookie_options_that_belong_to_quixotes_config_are_refused() -> None:
    with pytest.raises(satchel.ConfigurationError, match="session_cookie_name"):
        SessionManager("memory://", cookie_name="other")
    with pytest.raises(satchel.ConfigurationError, match="transport"):
        SessionManager("memory://", transport="querystring")


def test_a_malformed_or_planted_cookie_is_never_adopted(
        memory_app: tuple[SessionManager, WSGIClient]) -> None:
    manager, client = memory_app
    client.cookies[COOKIE] = "../../etc/passwd"
    assert client.get("/").text == "user=None visits=0"
    planted = satchel.new_id()
    client.cookies[COOKIE] = planted
    client.post("/login", {"name": "ada"})
    assert client.cookies[COOKIE] != planted
    assert not manager.store.exists(planted)


# -- the manager as Quixote's mapping of sessions -----------------------------------------------


def test_the_manager_lists_gets_and_deletes_sessions(
        memory_app: tuple[SessionManager, WSGIClient]) -> None:
    manager, client = memory_app
    sids = []
    for name in ("ada", "bob"):
        client.cookies.clear()
        client.post("/login", {"name": name})
        client.get("/count")
        sids.append(client.cookies[COOKIE])
    assert len(manager) == 2 and sorted(manager.keys()) == sorted(sids)
    assert sorted(s.user for s in manager) == ["ada", "bob"]
    assert sorted(sid for sid, _ in manager.items()) == sorted(sids)
    ada = manager.get(sids[0])
    assert ada is not None and ada.user == "ada" and ada.visits == 1 and ada.id == sids[0]
    assert sids[0] in manager and "nonsense" not in manager
    assert manager.get("nonsense") is None and manager.get(satchel.new_id(), "x") == "x"
    ada.visits = 10
    manager[sids[0]] = ada  # an admin tool saves a change
    assert manager[sids[0]].visits == 10
    del manager[sids[0]]
    assert len(manager) == 1 and manager.get(sids[0]) is None
    with pytest.raises(KeyError):
        del manager[sids[0]]
    client.cookies[COOKIE] = sids[0]
    assert client.get("/").text == "user=None visits=0"


def test_a_store_that_cannot_be_reached_is_a_503() -> None:
    manager = SessionManager(f"redis://{LOOPBACK}:{free_port()}/0", session_class=CounterSession)
    with publishing(Root(), manager) as publisher:
        client = wsgi_client(publisher)
        assert client.get("/").text == "user=None visits=0"  # no cookie: no store call
        client.cookies[COOKIE] = satchel.new_id()
        r = client.get("/")
        assert r.status == 503 and r.all("Set-Cookie") == []


def test_a_session_stored_without_quixotes_bookkeeping_loads(
        memory_app: tuple[SessionManager, WSGIClient]) -> None:
    # As `satchel migrate` or the WSGI middleware store one: only the application's keys.
    manager, client = memory_app
    sid = satchel.new_id()
    now = time.time()
    manager.store.save(sid, satchel.Changes(set={"visits": "7"}, create=True),
                       satchel.SessionMeta(now, now, now + 600, "ada"))
    client.cookies[COOKIE] = sid
    assert client.get("/").text == "user=ada visits=7"
    assert client.get("/count").text == "visits=8"
    assert client.get("/token").text  # Quixote's CSRF token on top of it
    assert client.cookies[COOKIE] == sid
    stored = manager.get(sid)
    assert stored is not None and stored.visits == 8 and stored._form_tokens == []
    token = stored.create_form_token()  # appended in place to the default queue
    manager[sid] = stored
    again = manager.get(sid)
    assert again is not None and again.has_form_token(token)


def test_the_readme_example_runs_as_copied(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from .test_readme import section

    (example,) = section("Quixote")
    monkeypatch.chdir(tmp_path)
    quixote.cleanup()
    names: dict[str, Any] = {"__name__": "readme_quixote"}
    exec(compile(example, "README.md (Quixote)", "exec"), names)
    try:
        client = WSGIClient(names["application"])
        assert client.get("/").text == "Hello stranger, visit 1"
        assert client.get("/login?name=ada").text == "logged in"
        assert client.get("/").text == "Hello ada, visit 1"  # anonymous visits were not kept
        assert client.get("/").text == "Hello ada, visit 2"
        assert client.get("/logout").text == "logged out" and client.cookies == {}
        assert (tmp_path / "sessions.db").exists()
    finally:
        names["manager"].close()
        quixote.cleanup()
