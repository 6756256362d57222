"""Pyramid: request.session is a satchel session (WebTest functional tests), over SQLite, Redis
and cookie stores."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import webtest
from pyramid.config import Configurator
from pyramid.csrf import check_csrf_token
from pyramid.interfaces import ISession, ISessionFactory
from pyramid.request import Request
from pyramid.response import Response

from satchel.integrations.pyramid import PyramidSession, SatchelSessionFactory

from . import framework_stores
from .framework_stores import SECRET

store_url = framework_stores.store_url
redis_server = framework_stores.redis_server


def views(config: Configurator) -> None:
    def route(name: str, view: Any, **kw: Any) -> None:
        config.add_route(name, "/" + name)
        config.add_view(view, route_name=name, **kw)

    def count(request: Request) -> Response:
        request.session["n"] = request.session.get("n", 0) + 1
        return Response(str(request.session["n"]))

    def nothing(request: Request) -> Response:
        return Response("no session")

    def state(request: Request) -> dict[str, Any]:
        s = request.session
        return {"new": s.new, "created": s.created, "n": s.get("n")}

    def flash(request: Request) -> Response:
        request.session.flash("saved")
        request.session.flash("saved", allow_duplicate=False)
        request.session.flash("careful", "warn")
        return Response("ok")

    def flashes(request: Request) -> dict[str, Any]:
        s = request.session
        return {"peek": s.peek_flash(), "pop": s.pop_flash(), "warn": s.pop_flash("warn"),
                "after": s.peek_flash()}

    def token(request: Request) -> Response:
        return Response(request.session.get_csrf_token())

    def new_token(request: Request) -> Response:
        return Response(request.session.new_csrf_token())

    def post(request: Request) -> Response:
        check_csrf_token(request)
        return Response("posted")

    def invalidate(request: Request) -> Response:
        request.session.invalidate()
        return Response("gone")

    def mutate(request: Request) -> Response:
        request.session.setdefault("cart", []).append("apple")
        request.session.changed()
        return Response(str(len(request.session["cart"])))

    def boom(request: Request) -> Response:
        request.session["lost"] = True
        raise ValueError("boom")

    def failed(exc: Exception, request: Request) -> Response:
        return Response("failed", status=500)

    def sid(request: Request) -> Response:
        return Response(request.session.id)

    route("count", count)
    route("nothing", nothing)
    route("state", state, renderer="json")
    route("flash", flash)
    route("flashes", flashes, renderer="json")
    route("token", token)
    route("new_token", new_token)
    route("post", post)
    route("invalidate", invalidate)
    route("mutate", mutate)
    route("boom", boom)
    route("sid", sid)
    config.add_view(failed, context=ValueError)


@pytest.fixture
def factory(store_url: str) -> Iterator[SatchelSessionFactory]:
    f = SatchelSessionFactory(store_url, secret=SECRET)
    yield f
    f.close()


@pytest.fixture
def app(factory: SatchelSessionFactory) -> webtest.TestApp:
    with Configurator() as config:
        config.set_session_factory(factory)
        views(config)
        return webtest.TestApp(config.make_wsgi_app())


def test_session_factory_and_session_provide_pyramids_interfaces(
        factory: SatchelSessionFactory) -> None:
    assert ISessionFactory.providedBy(factory)
    assert ISession.implementedBy(PyramidSession)


def test_session_persists(app: webtest.TestApp) -> None:
    first = app.get("/count")
    cookie = first.headers["Set-Cookie"]
    assert cookie.startswith("satchel=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert first.headers["Vary"] == "Cookie"
    assert [app.get("/count").text for _ in range(2)] == ["2", "3"]


def test_untouched_request_has_no_cookie(app: webtest.TestApp) -> None:
    resp = app.get("/nothing")
    assert "Set-Cookie" not in resp.headers and "Vary" not in resp.headers


def test_new_and_created(app: webtest.TestApp) -> None:
    first = app.get("/state").json
    assert first["new"] is True
    app.get("/count")
    second = app.get("/state").json
    assert second["new"] is False and second["n"] == 1 and second["created"] <= first["created"] + 5


def test_flash_queues(app: webtest.TestApp) -> None:
    app.get("/flash")
    assert app.get("/flashes").json == {"peek": ["saved"], "pop": ["saved"], "warn": ["careful"],
                                        "after": []}


def test_csrf(app: webtest.TestApp) -> None:
    token = app.get("/token").text
    assert app.get("/token").text == token
    app.post("/post", {"csrf_token": token})
    app.post("/post", {"csrf_token": "wrong"}, status=400)
    fresh = app.get("/new_token").text
    assert fresh != token
    app.post("/post", {"csrf_token": token}, status=400)
    app.post("/post", {"csrf_token": fresh})


def test_invalidate(app: webtest.TestApp) -> None:
    app.get("/count")
    resp = app.get("/invalidate")
    assert "Max-Age=0" in resp.headers["Set-Cookie"]
    assert app.get("/count").text == "1"


def test_in_place_change_is_saved(app: webtest.TestApp) -> None:
    assert [app.get("/mutate").text for _ in range(2)] == ["1", "2"]


def test_exception_view_saves_nothing(app: webtest.TestApp) -> None:
    app.get("/count")
    resp = app.get("/boom", status=500)
    assert "Set-Cookie" not in resp.headers
    assert app.get("/count").text == "2"


def test_include_reads_satchel_settings(tmp_path: Any, apps: list[webtest.TestApp]) -> None:
    settings = {"satchel.store": f"sqlite:///{tmp_path / 'p.db'}",
                "satchel.cookie_name": "pyr", "satchel.idle_timeout": "600",
                "satchel.persistent": "true", "satchel.cookie_secure": "none"}
    app = included_app(settings, apps)
    resp = app.get("/count")
    assert "pyr=" in resp.headers["Set-Cookie"] and "Max-Age=600" in resp.headers["Set-Cookie"]
    assert app.get("/count").text == "2"
    assert (tmp_path / "p.db").exists()


@pytest.fixture
def apps() -> Iterator[list[webtest.TestApp]]:
    """Applications made by include; their session factories' stores are closed after."""
    made: list[webtest.TestApp] = []
    yield made
    for app in made:
        app.app.registry.queryUtility(ISessionFactory).close()


def included_app(settings: dict[str, str], made: list[webtest.TestApp]) -> webtest.TestApp:
    with Configurator(settings=settings) as config:
        config.include("satchel.integrations.pyramid")
        views(config)
        app = webtest.TestApp(config.make_wsgi_app())
    made.append(app)
    return app


def test_pyramid_beaker_settings_switch_with_one_include(
        tmp_path: Any, apps: list[webtest.TestApp]) -> None:
    # An application configured for pyramid_beaker, with only its include changed.
    app = included_app({"session.type": "file", "session.data_dir": str(tmp_path / "sessions"),
                      "session.key": "mysession", "session.secret": SECRET,
                      "session.timeout": "600", "session.cookie_expires": "true",
                      "session.httponly": "true", "session.secure": "false"}, apps)
    resp = app.get("/count")
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith("mysession=") and "HttpOnly" in cookie and "Max-Age" not in cookie
    assert [app.get("/count").text for _ in range(2)] == ["2", "3"]
    assert any((tmp_path / "sessions").rglob("*"))  # kept by the file store in data_dir


def test_pyramid_beaker_redis_and_cookie_types(redis_server: Any,
                                               apps: list[webtest.TestApp]) -> None:
    redis_server.flush()
    address = redis_server.url.split("://", 1)[1]
    redis_app = included_app({"session.type": "ext:redis", "session.url": address,
                              "session.key": "s"}, apps)
    assert [redis_app.get("/count").text for _ in range(2)] == ["1", "2"]
    cookie_app = included_app({"session.type": "cookie", "session.validate_key": SECRET,
                               "beaker.session.key": "c"}, apps)
    assert [cookie_app.get("/count").text for _ in range(2)] == ["1", "2"]
    assert len(cookie_app.cookies["c"]) > 100  # the session itself, sealed


def test_satchel_settings_win_over_beaker_settings(apps: list[webtest.TestApp]) -> None:
    app = included_app({"session.type": "memory", "session.key": "beaker_name",
                        "satchel.cookie_name": "satchel_name"}, apps)
    assert app.get("/count").headers["Set-Cookie"].startswith("satchel_name=")


def test_a_store_outage_answers_503(redis_server: Any, apps: list[webtest.TestApp]) -> None:
    if redis_server.proc is None:
        redis_server.start()
    redis_server.flush()
    settings = {"satchel.store": redis_server.url}
    with Configurator(settings=settings) as config:
        config.include("satchel.integrations.pyramid")
        views(config)

        def only_write(request: Request) -> Response:
            request.session["w"] = 1  # never read: the store is first called by the save
            return Response("written")

        config.add_route("only_write", "/only_write")
        config.add_view(only_write, route_name="only_write")
        app = webtest.TestApp(config.make_wsgi_app())
    apps.append(app)
    try:
        assert app.get("/count").text == "1"
        redis_server.stop()
        for path in ("/count", "/only_write"):  # the read fails; the save fails
            resp = app.get(path, status=503)
            assert resp.headers["Retry-After"] == "5" and "Set-Cookie" not in resp.headers
        assert app.get("/nothing").text == "no session"
    finally:
        redis_server.start()
