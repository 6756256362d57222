"""SessionMiddleware: headers, deferral, streaming, failures, transports, purge."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import satchel
from satchel import ConfigurationError, MemoryStore, SessionMiddleware

from .wsgi_util import call


def counter_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    session = environ["satchel.session"]
    session["n"] = session.get("n", 0) + 1
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(session["n"]).encode()]


def idle_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"no session here"]


def reader_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [])
    return [repr(environ["satchel.session"].get("n")).encode()]


def mw(app: Any = counter_app, **options: Any) -> SessionMiddleware:
    return SessionMiddleware(app, store=MemoryStore(), **options)


def test_counter_survives_requests_with_the_cookie() -> None:
    app = mw()
    first = call(app)
    assert first.body == b"1"
    cookie = first.header("Set-Cookie")
    assert cookie is not None
    sid = first.cookies["satchel"]
    assert satchel.is_valid_id(sid)
    second = call(app, cookie=f"satchel={sid}")
    assert second.body == b"2"
    assert second.header("Set-Cookie") is None  # nothing new to tell the browser
    assert second.header("Vary") == "Cookie"


def test_default_cookie_attributes() -> None:
    cookie = call(mw()).header("Set-Cookie")
    assert cookie is not None
    parts = [p.strip() for p in cookie.split(";")]
    assert "HttpOnly" in parts and "SameSite=Lax" in parts and "Path=/" in parts
    assert "Secure" not in parts
    assert not any(p.startswith(("Max-Age", "Expires", "Domain")) for p in parts)


def test_secure_on_https_and_path_from_script_name() -> None:
    cookie = call(mw(), scheme="https", script_name="/my app").header("Set-Cookie")
    assert cookie is not None
    assert "; Secure" in cookie and "Path=/my%20app;" in cookie


def test_configured_cookie_attributes() -> None:
    app = mw(cookie_name="sid", cookie_domain="example.com", cookie_path="/x",
             cookie_secure=True, cookie_samesite="strict", persistent=True, idle_timeout=600)
    cookie = call(app).header("Set-Cookie")
    assert cookie is not None
    assert cookie.startswith("sid=")
    for part in ("Domain=example.com", "Path=/x", "Secure", "SameSite=Strict", "Max-Age=600"):
        assert part in cookie


@pytest.mark.parametrize(("options", "match"), [
    ({"cookie_name": "bad name"}, "cookie_name"),
    ({"cookie_samesite": "sometimes"}, "cookie_samesite"),
    ({"cookie_name": "__Host-s", "cookie_domain": "example.com"}, "__Host-"),
    ({"cookie_samesite": "None", "cookie_secure": False}, "Secure"),
    ({"transport": "carrier-pigeon"}, "transport"),
    ({"idle_timeout": -1}, "idle_timeout"),
    ({"idle_timeout": None, "absolute_timeout": None}, "expire"),
    ({"colour": "blue"}, "unknown option"),
    ({"pickle": True}, "secret"),
    ({"auto_purge_olderthan": 10, "idle_timeout": 20}, "auto_purge_olderthan"),
    ({"environ_key": []}, "environ_key"),
    ({"on_unavailable": "shrug"}, "on_unavailable"),
])
def test_bad_options_are_configuration_errors(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        mw(**options)


def test_host_prefix_forces_secure_root_path() -> None:
    cookie = call(mw(cookie_name="__Host-s")).header("Set-Cookie")
    assert cookie is not None and "Secure" in cookie and "Path=/;" in cookie


def test_untouched_request_gets_nothing_added_and_same_body_object() -> None:
    body = [b"no session here"]

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return body

    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen["headers"] = headers
        return lambda data: None

    from .wsgi_util import environ

    result = mw(app)(environ(cookie="satchel=" + "a" * 43), start_response)
    assert result is body
    assert seen["headers"] == [("Content-Type", "text/plain")]


def test_reading_session_adds_vary_without_cookie() -> None:
    resp = call(mw(reader_app))
    assert resp.header("Vary") == "Cookie" and resp.header("Set-Cookie") is None


def test_session_changed_after_start_response_still_gets_its_cookie() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        environ["satchel.session"]["late"] = True
        return [b"ok"]

    app_mw = mw(app)
    resp = call(app_mw)
    assert "satchel" in resp.cookies
    assert app_mw.store.load(resp.cookies["satchel"]) is not None


def test_generator_app_that_starts_lazily() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        environ["satchel.session"]["g"] = 1
        start_response("200 OK", [])
        yield b"a"
        yield b"b"

    app_mw = mw(app)
    resp = call(app_mw)
    assert resp.body == b"ab" and "satchel" in resp.cookies
    assert app_mw.store.load(resp.cookies["satchel"]) is not None


def test_change_while_streaming_is_saved_when_body_completes() -> None:
    app_mw: SessionMiddleware

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        session = environ["satchel.session"]
        session["n"] = 1
        start_response("200 OK", [])
        yield b"first"
        session["streamed"] = "yes"
        yield b"second"

    app_mw = mw(app)
    resp = call(app_mw)
    record = app_mw.store.load(resp.cookies["satchel"])
    assert record is not None and set(record.data) == {"n", "streamed"}


def test_error_while_streaming_saves_no_late_changes() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        session = environ["satchel.session"]
        session["n"] = 1
        start_response("200 OK", [])
        yield b"first"
        session["late"] = "no"
        raise RuntimeError("boom")

    app_mw = mw(app)
    with pytest.raises(RuntimeError):
        call(app_mw)
    (sid,) = list(app_mw.store.ids())
    record = app_mw.store.load(sid)
    assert record is not None and set(record.data) == {"n"}


def test_app_close_is_called() -> None:
    closed = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield b"x"

        def close(self) -> None:
            closed.append(True)

    def app(environ: dict[str, Any], start_response: Any) -> Body:
        environ["satchel.session"]["k"] = 1
        start_response("200 OK", [])
        return Body()

    resp = call(mw(app))
    assert closed == [True] and resp.closed


def test_exception_saves_nothing_and_propagates() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["satchel.session"]["x"] = 1
        raise ValueError("app bug")

    app_mw = mw(app)
    with pytest.raises(ValueError, match="app bug"):
        call(app_mw)
    assert app_mw.store.count() == 0


def test_error_response_with_exc_info_saves_nothing() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["satchel.session"]["x"] = 1
        try:
            raise KeyError("handled")
        except KeyError:
            import sys

            start_response("500 Internal Server Error", [], sys.exc_info())
        return [b"error page"]

    app_mw = mw(app)
    resp = call(app_mw)
    assert resp.code == 500 and resp.header("Set-Cookie") is None
    assert app_mw.store.count() == 0


def test_legacy_write_callable() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["satchel.session"]["w"] = 1
        write = start_response("200 OK", [])
        write(b"written ")
        return [b"returned"]

    app_mw = mw(app)
    resp = call(app_mw)
    assert resp.body == b"written returned" and "satchel" in resp.cookies


def test_session_published_under_several_names() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        assert environ["pesto.session"] is environ["beaker.session"]
        environ["pesto.session"]["x"] = 1
        start_response("200 OK", [])
        return [b""]

    app_mw = mw(app, environ_key=["pesto.session", "beaker.session"])
    assert "satchel" in call(app_mw).cookies


def test_cookie_header_with_other_cookies_and_quotes() -> None:
    app = mw()
    sid = call(app).cookies["satchel"]
    resp = call(app, cookie=f'theme=dark; satchel="{sid}"; lang=en')
    assert resp.body == b"2"


def test_forged_cookie_gets_fresh_session() -> None:
    resp = call(mw(), cookie="satchel=../../etc/passwd")
    assert resp.body == b"1" and resp.cookies["satchel"] != "../../etc/passwd"


def test_querystring_transport_redirects_get_without_id() -> None:
    app = mw(transport="querystring", query_param="sid")
    resp = call(app, "/page", query="a=1", script_name="/app")
    assert resp.code == 302
    location = resp.header("Location")
    assert location is not None and location.startswith("/app/page?a=1&sid=")
    sid = location.rsplit("=", 1)[1]
    assert satchel.is_valid_id(sid)
    assert call(app, "/page", method="POST").code == 200  # only GETs are redirected


def test_querystring_transport_reads_id_and_sets_no_cookie() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = environ["satchel.session"]
        session["n"] = session.get("n", 0) + 1
        start_response("200 OK", [])
        return [f"{session['n']} {session.id}".encode()]

    app_mw = mw(app, persist="querystring")
    first = call(app_mw, query="satchel_session=" + "x" * 43)
    n, sid = first.body.decode().split()
    assert n == "1" and first.header("Set-Cookie") is None
    second = call(app_mw, query=f"satchel_session={sid}")
    assert second.body.decode() == f"2 {sid}"


def test_header_transport() -> None:
    app = mw(transport="header", header_name="X-Session")
    first = call(app)
    sid = first.header("X-Session")
    assert sid and first.header("Set-Cookie") is None and first.header("Vary") == "X-Session"
    assert call(app, headers={"X-Session": sid}).body == b"2"


def test_persistent_cookie_refreshes_max_age_on_touch() -> None:
    clock = [time.time()]
    app = mw(reader_app, persistent=True, idle_timeout=600, touch_interval=60,
             clock=lambda: clock[0])
    counter = SessionMiddleware(counter_app, store=app.store, persistent=True, idle_timeout=600)
    sid = call(counter).cookies["satchel"]
    clock[0] += 120
    resp = call(app, cookie=f"satchel={sid}")
    cookie = resp.header("Set-Cookie")
    assert cookie is not None and "Max-Age=600" in cookie


def test_logout_revokes_cookie() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = environ["satchel.session"]
        if environ["PATH_INFO"] == "/logout":
            session.invalidate()
        else:
            session["user"] = "ana"
        start_response("200 OK", [])
        return [b""]

    app_mw = mw(app)
    sid = call(app_mw).cookies["satchel"]
    resp = call(app_mw, "/logout", cookie=f"satchel={sid}")
    cookie = resp.header("Set-Cookie")
    assert cookie is not None and "Max-Age=0" in cookie and resp.cookies["satchel"] == ""
    assert app_mw.store.load(sid) is None


def test_background_purge_thread_runs_and_stops() -> None:
    store = MemoryStore()
    app = SessionMiddleware(counter_app, store=store, auto_purge_every=0.05,
                            idle_timeout=0.2, absolute_timeout=None)
    try:
        call(app)
        assert store.count() == 1
        assert app.purger is not None and app.purger.running
        deadline = time.monotonic() + 5
        while len(store._records) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(store._records) == 0  # removed by the thread, not just read as expired
    finally:
        app.close()
    assert not app.purger.running
    assert not any(t.name == "satchel-purge" and t.is_alive() for t in threading.enumerate())


def test_run_once_purges_after_each_request_without_thread() -> None:
    store = MemoryStore()
    app = SessionMiddleware(counter_app, store=store, auto_purge_every=60,
                            idle_timeout=0.1, absolute_timeout=None)
    call(app, run_once=True)
    time.sleep(0.15)
    call(app, run_once=True)
    assert app.purger is not None and not app.purger.running and app.purger.runs == 2
    assert len(store._records) == 1  # the first (expired) one was purged
    app.close()


def test_pesto_auto_purge_olderthan_sets_idle_timeout() -> None:
    app = mw(auto_purge_olderthan=123)
    assert app.engine.manager.idle_timeout == 123


def test_store_url_and_default_store(tmp_path: Any, monkeypatch: Any) -> None:
    app = SessionMiddleware(counter_app, store="memory://")
    assert isinstance(app.store, MemoryStore)
    app.close()


def test_querystring_redirect_id_becomes_the_session_id() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = environ["satchel.session"]
        session["n"] = session.get("n", 0) + 1
        start_response("200 OK", [])
        return [f"{session['n']} {session.id}".encode()]

    app_mw = mw(app, transport="querystring", secret="q" * 32)
    location = call(app_mw).header("Location")
    assert location is not None
    query = location.split("?", 1)[1]
    minted = query.rsplit("=", 1)[1]
    assert call(app_mw, query=query).body.decode() == f"1 {minted}"
    assert call(app_mw, query=query).body.decode() == f"2 {minted}"
    # a second worker with the same secret recognises the id as well
    other = SessionMiddleware(app, store=app_mw.store, transport="querystring", secret="q" * 32)
    assert call(other, query=query).body.decode() == f"3 {minted}"


def test_generator_change_between_start_response_and_first_chunk_gets_cookie() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        environ["satchel.session"]["late"] = 1
        yield b"body"

    app_mw = mw(app)
    resp = call(app_mw)
    assert "satchel" in resp.cookies
    assert app_mw.store.load(resp.cookies["satchel"]) is not None


def test_iterator_that_changes_session_before_its_first_chunk_gets_cookie() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])

        def body() -> Iterator[bytes]:
            environ["satchel.session"]["inside"] = 1
            yield b"x"

        return body()

    app_mw = mw(app)
    resp = call(app_mw)
    assert "satchel" in resp.cookies
    record = app_mw.store.load(resp.cookies["satchel"])
    assert record is not None and set(record.data) == {"inside"}


def test_settings_repr_masks_the_store_password() -> None:
    # The URL is not opened: repr must not leak what the middleware was configured with.
    settings = satchel.config.Settings.from_options(
        store="postgresql://app:s3cret@db.example:5432/app?password=s3cret2", secret="k" * 32)
    shown = repr(settings)
    assert "s3cret" not in shown and "k" * 32 not in shown
    assert "postgresql://app:***@db.example:5432/app?password=***" in shown
    assert "cookie_name='satchel'" in shown


# -- the redirect and the cookie path hold what the request sent, encoded once ----------------


def _same_origin(location: str) -> bool:
    from urllib.parse import urljoin, urlsplit

    base = "http://127.0.0.1/app/page"
    # browsers read a backslash as a slash in http(s) URLs: judge the worst reading too
    return all(urlsplit(urljoin(base, loc)).netloc == "127.0.0.1"
               for loc in (location, location.replace("\\", "/")))


@pytest.mark.parametrize("path", [
    "//evil.example/phish", "///evil.example", "/\\evil.example", "\\\\evil.example",
    "/\\/evil.example", "//evil.example/%2F", "/\t/evil.example", "//evil.example:80@x/",
    "/%2F%2Fevil.example", "evil.example", "http://evil.example/", "//",
])
@pytest.mark.parametrize("script_name", ["", "/", "//"])
def test_querystring_redirect_never_leaves_the_origin(path: str, script_name: str) -> None:
    app = mw(transport="querystring")
    location = call(app, path, script_name=script_name).header("Location")
    assert location is not None
    assert location.startswith("/") and not location.startswith(("//", "/\\"))
    assert "\\" not in location and "\t" not in location
    assert _same_origin(location)


def test_querystring_redirect_keeps_an_ordinary_path() -> None:
    app = mw(transport="querystring")
    location = call(app, "/a b/c;d=e", script_name="/caf\xc3\xa9", query="x=1").header("Location")
    assert location is not None
    assert location.startswith("/caf%C3%A9/a%20b/c%3Bd%3De?x=1&satchel_session=")


@pytest.mark.parametrize(("script_name", "path"), [
    ("/app;Domain=example.com", "/app%3BDomain%3Dexample.com"),
    ("/a b,c", "/a%20b%2Cc"),
    ("/caf\xc3\xa9", "/caf%C3%A9"),  # /café, as WSGI gives it: UTF-8 bytes read as latin-1
    ("/x\x01\x7f\"y", "/x%01%7F%22y"),
    ("/50%", "/50%25"),
    ("/a:b@c!$&'()*+-._~", "/a:b@c!$&'()*+-._~"),
])
def test_cookie_path_from_script_name_is_one_encoded_path_value(script_name: str,
                                                               path: str) -> None:
    cookie = call(mw(), script_name=script_name).header("Set-Cookie")
    assert cookie is not None
    attributes = [p.strip() for p in cookie.split(";")][1:]
    assert f"Path={path}" in attributes
    assert not any(a.startswith("Domain") for a in attributes)


@pytest.mark.parametrize("name", ["__host-s", "__HOST-s", "__Host-s"])
def test_host_prefix_is_matched_without_regard_to_case(name: str) -> None:
    with pytest.raises(ConfigurationError, match="__Host-"):
        mw(cookie_name=name, cookie_domain="example.com")
    cookie = call(mw(cookie_name=name), script_name="/app").header("Set-Cookie")
    assert cookie is not None and "; Secure" in cookie and "Path=/;" in cookie


@pytest.mark.parametrize("name", ["__secure-s", "__SECURE-s"])
def test_secure_prefix_is_matched_without_regard_to_case(name: str) -> None:
    with pytest.raises(ConfigurationError, match="__Secure-"):
        mw(cookie_name=name, cookie_secure=False)
    cookie = call(mw(cookie_name=name)).header("Set-Cookie")
    assert cookie is not None and "; Secure" in cookie


@pytest.mark.parametrize("path", ["/a;b", "/a\nb", "/a\x00b", "/a\x7fb", "relative"])
def test_configured_cookie_path_refuses_what_is_no_path_value(path: str) -> None:
    with pytest.raises(ConfigurationError, match="cookie_path"):
        mw(cookie_path=path)


def test_partitioned_needs_secure() -> None:
    with pytest.raises(ConfigurationError, match="Secure"):
        mw(cookie_partitioned=True, cookie_secure=False)
    cookie = call(mw(cookie_partitioned=True, cookie_name="__Host-s"), scheme="https")
    parts = [p.strip() for p in (cookie.header("Set-Cookie") or "").split(";")]
    assert {"Partitioned", "Secure", "Path=/"} <= set(parts)


def test_private_cache_control_rule() -> None:
    from satchel.transport import private_cache_control

    assert private_cache_control(None) == "private"
    assert private_cache_control("no-store") is None
    assert private_cache_control("Private, max-age=5") is None
    assert private_cache_control("public, s-maxage=60, max-age=30") == "private, max-age=30"
    # "no-store" inside another word is not the directive.
    assert private_cache_control("x-no-stored") == "private, x-no-stored"


def test_a_cookieless_response_gains_no_cache_control() -> None:
    assert call(mw(idle_app)).all("Cache-Control") == []
    assert call(mw(), headers={"X-Session-Id": ""}).all("Cache-Control") == ["private"]
    header = mw(transport="header")
    assert call(header).all("Cache-Control") == ["private"]  # the id travels in a header
