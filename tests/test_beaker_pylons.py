"""The Pylons session patterns of the seed's "Sessions" page, over satchel.compat.beaker.

Plain WebOb applications do what Pylons controllers did with ``pylons.session``: log in and
out with ``clear()`` and ``save()``, remember a language, check a CSRF token, show flash
messages, keep sessions without cookies, and share one session across a ``urlmap`` composite
loaded by PasteDeploy from an ``.ini`` file.  Every pattern runs over memory, file, SQLite,
Redis and cookie sessions, configured with Beaker's option names as an ``.ini`` file gives them.
"""

from __future__ import annotations

import secrets
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from paste.deploy import loadapp
from webob import Request, Response, exc
from webob.dec import wsgify
from webtest import TestApp

from satchel import ConfigurationError
from satchel.compat.beaker.middleware import SessionMiddleware

from . import server_fixtures

server = server_fixtures.redis_server

STORES = ["memory", "file", "sqlite", "redis", "cookie"]
SECRET = "i_wear_two_layers_of_socks"


@pytest.fixture(params=STORES)
def store_options(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """Beaker options for one store, as strings (what an .ini file yields)."""
    kind = request.param
    options = {"beaker.session.key": "my_project_key", "beaker.session.secret": SECRET}
    if kind == "memory":
        options["beaker.session.type"] = "memory"
    elif kind == "file":
        options["beaker.session.type"] = "file"
        options["beaker.session.data_dir"] = str(tmp_path / "sessions")
    elif kind == "sqlite":
        options["beaker.session.type"] = "ext:database"
        options["beaker.session.url"] = f"sqlite:///{tmp_path}/sessions.db"
    elif kind == "redis":
        redis = request.getfixturevalue("server")
        redis.flush()
        options["beaker.session.type"] = "ext:redis"
        options["beaker.session.url"] = redis.url
    else:
        options["beaker.session.type"] = "cookie"
        options["beaker.session.validate_key"] = "a-validate-key-of-some-length"
        options["beaker.session.encrypt_key"] = "an-encrypt-key-of-some-length"
    return options


def _app(handler: Any, options: dict[str, str], **extra: str) -> Iterator[TestApp]:
    mw = SessionMiddleware(handler, {**options, **extra})
    try:
        yield TestApp(mw)
    finally:
        mw.close()


# -- login / logout and flash messages -----------------------------------------------------------

def flash(session: Any, message: str) -> None:
    """webhelpers' Flash: a list of messages in the session, saved."""
    session.setdefault("_flash", []).append(message)
    session.save()


def pop_flashes(session: Any) -> list[str]:
    messages = session.pop("_flash", [])
    if messages:
        session.save()
    return list(messages)


@wsgify
def login_app(request: Request) -> Response:
    session = request.environ["beaker.session"]
    if request.path == "/authenticate":
        if request.POST.get("password") == "secret":
            session["logged_in"] = True
            session["user"] = request.POST["name"]
            session.save()
            flash(session, f"Successfully logged in as {request.POST['name']}")
            raise exc.HTTPFound(location="/")
        flash(session, "Invalid username/password")
        raise exc.HTTPFound(location="/login")
    if request.path == "/logout":
        session.clear()
        session.save()
        raise exc.HTTPFound(location="/")
    if request.path == "/secure":
        if not session.get("logged_in"):
            flash(session, "Please login")
            raise exc.HTTPFound(location="/login")
        return Response(f"secret page for {session['user']}")
    return Response(" | ".join(pop_flashes(session)) or "no messages")


def test_login_logout_and_flash(store_options: dict[str, str]) -> None:
    for app in _app(login_app, store_options):
        res = app.get("/secure")
        assert res.status_int == 302 and res.location.endswith("/login")
        assert app.get("/login").text == "Please login"
        assert app.get("/login").text == "no messages"  # a flash is shown once

        app.post("/authenticate", {"name": "ann", "password": "wrong"})
        assert app.get("/").text == "Invalid username/password"
        assert app.get("/secure").status_int == 302
        app.get("/")  # drop the "Please login" message

        app.post("/authenticate", {"name": "ann", "password": "secret"})
        assert app.get("/").text == "Successfully logged in as ann"
        assert app.get("/secure").text == "secret page for ann"

        app.get("/logout")
        assert app.get("/secure").status_int == 302
        assert app.get("/login").text == "Please login"


# -- the language preference ---------------------------------------------------------------------

@wsgify
def language_app(request: Request) -> Response:
    session = request.environ["beaker.session"]
    if "lang" in request.GET:
        session["lang"] = request.GET["lang"]
        session.save()
    # A controller's __before__: the language follows the session.
    greeting = "Hello"
    if "lang" in session:
        greeting = {"en": "Hello", "fr": "Bonjour", "de": "Hallo"}[session["lang"]]
    return Response(greeting)


def test_language_preference(store_options: dict[str, str]) -> None:
    for app in _app(language_app, store_options):
        assert app.get("/").text == "Hello"
        assert app.get("/?lang=fr").text == "Bonjour"
        assert app.get("/").text == "Bonjour"
        assert app.get("/?lang=de").text == "Hallo"
        assert app.get("/other").text == "Hallo"
        other = TestApp(app.app)  # another browser keeps its own language
        assert other.get("/").text == "Hello"


# -- a CSRF token in the session (Pylons' secure_form) --------------------------------------------

TOKEN_KEY = "_authentication_token"


def authentication_token(session: Any) -> str:
    if TOKEN_KEY not in session:
        session[TOKEN_KEY] = secrets.token_hex(16)
        session.save()
    return str(session[TOKEN_KEY])


@wsgify
def form_app(request: Request) -> Response:
    session = request.environ["beaker.session"]
    if request.method == "POST":
        # Pylons' authenticate_form: the submitted token must be the session's.
        if request.POST.get(TOKEN_KEY) != session.get(TOKEN_KEY):
            raise exc.HTTPForbidden()
        session["balance"] = session.get("balance", 100) - int(request.POST["amount"])
        session.save()
        return Response(f"balance {session['balance']}")
    return Response(authentication_token(session))


def test_csrf_token(store_options: dict[str, str]) -> None:
    for app in _app(form_app, store_options):
        token = app.get("/form").text
        assert app.get("/form").text == token  # stable for the session
        assert app.post("/transfer", {TOKEN_KEY: token, "amount": "30"}).text == "balance 70"
        app.post("/transfer", {TOKEN_KEY: "forged", "amount": "30"}, status=403)
        app.post("/transfer", {"amount": "30"}, status=403)
        # Another client (an attacker's page) has no session with that token.
        attacker = TestApp(app.app)
        attacker.post("/transfer", {TOKEN_KEY: token, "amount": "30"}, status=403)
        assert app.post("/transfer", {TOKEN_KEY: token, "amount": "5"}).text == "balance 65"


# -- sessions without cookies --------------------------------------------------------------------

@wsgify
def cookieless_app(request: Request) -> Response:
    """The seed's recipe, in public API: the application finds the id, satchel the session."""
    sessions = request.environ["beaker.session"]
    wanted = request.GET.get("sid")
    session = sessions.get_by_id(wanted) if wanted else None
    if session is None:
        session = request.environ["beaker.get_session"]()
    session["fred"] = session.get("fred", 0) + 1
    session.save()
    # Only a new session's id needs handing out; a found one keeps its id.
    return Response(f"{session['fred']} {session.id} {'new' if session.is_new else 'old'}")


@wsgify
def cookieless_environ_app(request: Request) -> Response:
    """The environ's own session with use_cookies = false: saved at the end, id kept by the app."""
    session = request.environ["beaker.session"]
    if "sid" in request.GET:
        found = session.get_by_id(request.GET["sid"])
        return Response("gone" if found is None else str(found["fred"]))
    session["fred"] = 42
    session.save()
    return Response(session.id if session.is_new else "not new")


def test_sessions_without_cookies(store_options: dict[str, str]) -> None:
    if store_options["beaker.session.type"] == "cookie":
        # A cookie session lives in the cookie: without cookies there is nothing to keep.
        with pytest.raises(ConfigurationError, match="use_cookies"):
            SessionMiddleware(cookieless_app, store_options, use_cookies="false")
        return
    for app in _app(cookieless_app, store_options, **{"beaker.session.use_cookies": "false"}):
        res = app.get("/")
        assert res.headers.getall("Set-Cookie") == []
        count, sid, state = res.text.split()
        assert (count, state) == ("1", "new")
        for n in (2, 3):
            res = app.get(f"/?sid={sid}")
            assert res.text == f"{n} {sid} old"
            assert res.headers.getall("Set-Cookie") == []
        # An id the application made up is never adopted: a new session with a new id.
        count, other, state = app.get("/?sid=made-up-by-a-client").text.split()
        assert (count, state) == ("1", "new") and other != sid
        # A cookie naming the session is not read either.
        app.set_cookie("my_project_key", sid)
        assert app.get("/").text.split()[0] == "1"
    for app in _app(cookieless_environ_app, store_options,
                    **{"beaker.session.use_cookies": "false"}):
        res = app.get("/")
        assert res.headers.getall("Set-Cookie") == []
        assert app.get(f"/?sid={res.text}").text == "42"


# -- the composite: one session filter, several applications -------------------------------------

def _counter(name: str) -> Any:
    @wsgify
    def app(request: Request) -> Response:
        session = request.environ["beaker.session"]
        seen = session.get("seen", [])
        if request.path_info.startswith("/visit"):
            session["seen"] = [*seen, name]
            session.save()
        return Response(f"{name}: {','.join(session.get('seen', []))}")
    return app


def make_home(global_conf: dict[str, Any], **local: Any) -> Any:
    assert local["full_stack"] == "true"
    return _counter("home")


def make_service_broker(global_conf: dict[str, Any], **local: Any) -> Any:
    return _counter("broker")


def make_proxy(global_conf: dict[str, Any], **local: Any) -> Any:
    return _counter("proxy")


COMPOSITE = """\
    [DEFAULT]
    debug = false

    [filter-app:main]
    use = egg:satchel#session
    next = sessioned
    beaker.session.key = my_project_key
    beaker.session.secret = i_wear_two_layers_of_socks
    beaker.session.timeout = 3600
    beaker.session.auto = false
    beaker.session.httponly = true
    beaker.session.secure = false
    beaker.session.cookie_expires = true
    {store}

    [composite:sessioned]
    use = egg:Paste#urlmap
    / = home
    /servicebroker = servicebroker
    /proxy = cross_domain_proxy

    [app:servicebroker]
    use = call:tests.test_beaker_pylons:make_service_broker

    [app:cross_domain_proxy]
    use = call:tests.test_beaker_pylons:make_proxy

    [app:home]
    use = call:tests.test_beaker_pylons:make_home
    full_stack = true
    cache_dir = %(here)s/data

    [filter-app:alias]
    use = egg:satchel#beaker_session
    next = sessioned
    beaker.session.key = alias_key
    {store}

    [pipeline:piped]
    pipeline = session sessioned

    [filter:session]
    paste.filter_app_factory = satchel.compat.beaker.middleware:session_filter_app_factory
    beaker.session.key = piped_key
    {store}
"""


def _ini(tmp_path: Path, options: dict[str, str]) -> Path:
    store = "\n    ".join(f"{k} = {v}" for k, v in options.items()
                          if k not in ("beaker.session.key", "beaker.session.secret"))
    path = tmp_path / "development.ini"
    path.write_text(textwrap.dedent(COMPOSITE.format(store=store)))
    return path


@pytest.mark.parametrize("name", ["main", "piped", "alias"])
def test_composite_shares_one_session(store_options: dict[str, str], tmp_path: Path,
                                      name: str) -> None:
    ini = _ini(tmp_path, store_options)
    wsgi = loadapp(f"config:{ini}", name=name)
    try:
        assert isinstance(wsgi, SessionMiddleware)
        app = TestApp(wsgi)
        res = app.get("/servicebroker/visit")
        assert res.text == "broker: broker"
        cookie = res.headers["Set-Cookie"]
        key = {"main": "my_project_key", "piped": "piped_key", "alias": "alias_key"}[name]
        assert cookie.startswith(key + "=")
        assert "Path=/;" in cookie and "HttpOnly" in cookie
        assert app.get("/proxy/visit").text == "proxy: broker,proxy"
        assert app.get("/visit").text == "home: broker,proxy,home"
        assert app.get("/servicebroker/").text == "broker: broker,proxy,home"
        assert TestApp(wsgi).get("/proxy/").text == "proxy: "  # another browser
    finally:
        wsgi.close()
