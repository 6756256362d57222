"""Flask: flask.session is a satchel session (Flask's test client, Flask-Login), over SQLite,
Redis and cookie stores."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import flask
import flask_login
import pytest

import satchel
from satchel.integrations.flask import FlaskSession, Satchel

from . import framework_stores
from .framework_stores import SECRET

store_url = framework_stores.store_url
redis_server = framework_stores.redis_server


class User(flask_login.UserMixin):
    def __init__(self, uid: str) -> None:
        self.id = uid


def make_app(store: Any, *, login: bool = True, **config: Any) -> flask.Flask:
    app = flask.Flask(__name__)
    app.config.update(SECRET_KEY=SECRET, **config)
    Satchel(app, store=store)
    if login:
        # Flask-Login reads the session on every request (its remember-cookie check).
        flask_login.LoginManager(app).user_loader(User)

    @app.route("/count")
    def count() -> str:
        flask.session["n"] = flask.session.get("n", 0) + 1
        return str(flask.session["n"])

    @app.route("/only_write")
    def only_write() -> str:
        flask.session["w"] = 1  # never read: a blind write, no store call before the save
        return "written"

    @app.route("/nothing")
    def nothing() -> str:
        return "no session here"

    @app.route("/state")
    def state() -> dict[str, Any]:
        s = flask.session
        new = s.new
        n = s.get("n")
        return {"accessed": s.accessed, "new": new,
                "modified": s.modified, "permanent": s.permanent, "n": n}

    @app.route("/permanent/<int:on>")
    def permanent(on: int) -> str:
        flask.session["p"] = True
        flask.session.permanent = bool(on)
        return "ok"

    @app.route("/flash")
    def flash() -> flask.Response:
        flask.flash("saved!")
        flask.flash("careful", "warning")
        return flask.redirect("/show")

    @app.route("/show")
    def show() -> dict[str, Any]:
        return {"messages": flask.get_flashed_messages(with_categories=True)}

    @app.route("/login/<uid>")
    def do_login(uid: str) -> str:
        flask_login.login_user(User(uid))
        return "in"

    @app.route("/logout")
    def do_logout() -> str:
        flask_login.logout_user()
        return "out"

    @app.route("/me")
    @flask_login.login_required
    def me() -> str:
        return str(flask_login.current_user.get_id())

    @app.route("/clear")
    def clear() -> str:
        flask.session.clear()
        return "cleared"

    @app.route("/boom")
    def boom() -> tuple[str, int]:
        flask.session["lost"] = True
        return "server error", 500

    @app.route("/sid")
    def sid() -> str:
        return str(flask.session.id)

    return app


@pytest.fixture
def app(store_url: str) -> Iterator[flask.Flask]:
    app = make_app(store_url)
    yield app
    app.extensions["satchel"].close()


def set_cookie(resp: Any) -> str | None:
    values = resp.headers.getlist("Set-Cookie")
    return values[0] if values else None


def test_flask_session_persists_across_requests(app: flask.Flask) -> None:
    client = app.test_client()
    assert [client.get("/count").text for _ in range(3)] == ["1", "2", "3"]
    assert isinstance(app.session_interface.open_session(app, flask.Request({})), FlaskSession)


def test_a_request_that_never_touches_the_session_gets_no_cookie(store_url: str) -> None:
    app = make_app(store_url, login=False)
    try:
        resp = app.test_client().get("/nothing")
        assert set_cookie(resp) is None and "Cookie" not in resp.vary
    finally:
        app.extensions["satchel"].close()


def test_cookie_attributes_follow_flask_config(store_url: str) -> None:
    app = make_app(store_url, SESSION_COOKIE_NAME="sess", SESSION_COOKIE_PATH="/",
                   SESSION_COOKIE_DOMAIN="example.test", SESSION_COOKIE_SECURE=True,
                   SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_HTTPONLY=True)
    try:
        resp = app.test_client().get("/count", base_url="https://example.test")
        cookie = set_cookie(resp)
        assert cookie is not None and cookie.startswith("sess=")
        for part in ("Domain=example.test", "Path=/", "HttpOnly", "SameSite=Strict", "Secure"):
            assert part in cookie
        assert "Max-Age" not in cookie and "Cookie" in resp.vary
    finally:
        app.extensions["satchel"].close()


def test_default_cookie_is_flasks_name_with_satchels_safe_attributes(app: flask.Flask) -> None:
    cookie = set_cookie(app.test_client().get("/count"))
    assert cookie is not None and cookie.startswith("session=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie


def test_new_accessed_modified_keep_flasks_meaning(store_url: str) -> None:
    app = make_app(store_url, login=False)
    try:
        client = app.test_client()
        first = client.get("/state").json
        assert first == {"accessed": True, "new": True,
                         "modified": False, "permanent": False, "n": None}
        client.get("/count")
        second = client.get("/state").json
        assert second["new"] is False and second["n"] == 1 and second["modified"] is False
    finally:
        app.extensions["satchel"].close()


def test_permanent_session_lives_permanent_session_lifetime(store_url: str) -> None:
    app = make_app(store_url, PERMANENT_SESSION_LIFETIME=dt.timedelta(days=7))
    try:
        client = app.test_client()
        cookie = set_cookie(client.get("/permanent/1"))
        assert cookie is not None
        max_age = int(cookie.split("Max-Age=")[1].split(";")[0])
        assert 7 * 86400 - 2 <= max_age <= 7 * 86400
        assert client.get("/state").json["permanent"] is True
        cookie = set_cookie(client.get("/permanent/0"))
        assert cookie is not None and "Max-Age" not in cookie  # a browser-session cookie again
        assert client.get("/state").json["permanent"] is False
    finally:
        app.extensions["satchel"].close()


def test_flash_and_get_flashed_messages(app: flask.Flask) -> None:
    client = app.test_client()
    resp = client.get("/flash", follow_redirects=True)
    assert resp.json == {"messages": [["message", "saved!"], ["warning", "careful"]]}
    assert client.get("/show").json == {"messages": []}


def test_flask_login_rotates_the_id_when_the_user_changes(app: flask.Flask) -> None:
    client = app.test_client()
    client.get("/count")
    planted = client.get("/sid").text  # an id an attacker could have planted before login
    client.get("/login/ann")
    after_login = client.get("/sid").text
    assert after_login != planted
    assert client.get("/me").text == "ann"
    assert client.get("/count").text == "2"  # data kept across the rotation
    # The planted id is worthless now: a client holding it is not logged in.
    attacker = app.test_client()
    attacker.set_cookie("session", planted)
    assert attacker.get("/me").status_code == 401
    client.get("/login/bob")
    assert client.get("/sid").text != after_login and client.get("/me").text == "bob"
    before_logout = client.get("/sid").text
    client.get("/logout")
    assert client.get("/sid").text != before_logout
    assert client.get("/me").status_code == 401


@pytest.mark.parametrize("store_url", ["sqlite", "redis"], indirect=True)
def test_flask_login_user_is_indexed_by_the_store(store_url: str) -> None:
    # (a cookie store keeps nothing server-side, so it has no index of users to test)
    app = make_app(store_url)
    try:
        client = app.test_client()
        client.get("/login/ann")
        store = app.extensions["satchel"].store
        assert store.user_sessions("ann") == [client.get("/sid").text]
        assert store.delete_user("ann") == 1  # log ann out everywhere
        assert client.get("/me").status_code == 401
    finally:
        app.extensions["satchel"].close()


def test_clear_revokes_the_cookie(app: flask.Flask) -> None:
    client = app.test_client()
    client.get("/count")
    cookie = set_cookie(client.get("/clear"))
    assert cookie is not None and "Max-Age=0" in cookie
    assert client.get("/count").text == "1"


def test_a_server_error_saves_nothing(app: flask.Flask) -> None:
    client = app.test_client()
    client.get("/count")
    resp = client.get("/boom")
    assert resp.status_code == 500 and set_cookie(resp) is None
    assert client.get("/state").json["n"] == 1


def test_satchel_session_api_is_reachable(app: flask.Flask) -> None:
    with app.test_request_context("/"):
        flask.session["a"] = 1
        assert isinstance(flask.session.satchel, satchel.Session)
        assert len(flask.session.id) >= 43 and flask.session.csrf_token


def test_init_app_reads_the_store_url_from_config(tmp_path: Any) -> None:
    ext = Satchel()
    app = flask.Flask(__name__)
    app.config["SATCHEL_STORE"] = f"sqlite:///{tmp_path / 'cfg.db'}"

    @app.route("/")
    def index() -> str:
        flask.session["x"] = flask.session.get("x", 0) + 1
        return str(flask.session["x"])

    ext.init_app(app)
    try:
        client = app.test_client()
        assert [client.get("/").text for _ in range(2)] == ["1", "2"]
        assert (tmp_path / "cfg.db").exists()
    finally:
        app.extensions["satchel"].close()


@pytest.mark.parametrize("store_url", ["redis"], indirect=True)
def test_a_store_outage_answers_503(store_url: str, redis_server: Any) -> None:
    app = make_app(store_url, login=False)
    client = app.test_client()
    try:
        assert client.get("/count").text == "1"
        redis_server.stop()
        for path in ("/count", "/only_write"):  # the read fails; the save fails
            resp = client.get(path)
            assert resp.status_code == 503 and resp.headers["Retry-After"] == "5", path
            assert "Set-Cookie" not in resp.headers
        assert client.get("/nothing").text == "no session here"  # untouched: unaffected
    finally:
        redis_server.start()
        app.extensions["satchel"].close()
