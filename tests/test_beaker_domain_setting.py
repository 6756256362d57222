"""Beaker's cookie-domain tests (its tests/test_domain_setting.py and
tests/test_cookie_domain_only.py), ported case by case against ``satchel.compat.beaker``.

Left out: test_cookie_domain_only.py's ``test_increment``, whose third request expects a
domain set in an earlier request to come back by itself; Beaker keeps it as a private
``_domain`` key inside the session data.  satchel's ``session.domain`` applies to the response
of the request that sets it (tested here).
"""

from __future__ import annotations

from typing import Any

import pytest
from webtest import TestApp

from satchel.compat.beaker.middleware import SessionMiddleware


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def domain_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Counts; the ``domain`` environ entry, when given, becomes the cookie's domain."""
    session = environ["beaker.session"]
    if environ.get("domain"):
        session.domain = environ["domain"]
    session["value"] = session.get("value", 0) + 1
    if not environ["PATH_INFO"].startswith("/nosave"):
        session.save()
    start_response("200 OK", [("Content-type", "text/plain")])
    return [f"The current value is: {session['value']}, session is {session}".encode()]


SERVER = {"session.data_dir": "./cache", "session.secret": "blah"}


def test_same_domain() -> None:
    app = TestApp(SessionMiddleware(domain_app, **SERVER,
                                    **{"session.cookie_domain": ".hoop.com"}))
    res = app.get("/", extra_environ={"HTTP_HOST": "subdomain.hoop.com"})
    assert "current value is: 1" in res
    assert "Domain=.hoop.com" in res.headers["Set-Cookie"]
    res = app.get("/", extra_environ={"HTTP_HOST": "another.hoop.com"})
    assert "current value is: 2" in res
    assert res.headers.getall("Set-Cookie") == []
    res = app.get("/", extra_environ={"HTTP_HOST": "more.subdomain.hoop.com"})
    assert "current value is: 3" in res


def test_different_domain() -> None:
    app = TestApp(SessionMiddleware(domain_app, **SERVER))
    app.get("/", extra_environ={"domain": ".hoop.com", "HTTP_HOST": "www.hoop.com"})
    res = app.get("/", extra_environ={"domain": ".hoop.co.uk", "HTTP_HOST": "www.hoop.com"})
    assert "Domain=.hoop.co.uk" in res.headers["Set-Cookie"]
    assert "current value is: 2" in res
    res = app.get("/", extra_environ={"domain": ".hoop.co.uk", "HTTP_HOST": "www.test.com"})
    assert "current value is: 1" in res


def test_cookie_attributes_are_preserved() -> None:
    options = {"session.type": "memory", "session.httponly": True, "session.secure": True,
               "session.cookie_path": "/app", "session.cookie_domain": "localhost"}
    app = TestApp(SessionMiddleware(domain_app, **options))
    res = app.get("/app", extra_environ={"HTTP_COOKIE": "beaker.session.id=oldsessid",
                                         "domain": ".hoop.com"})
    cookie = res.headers["Set-Cookie"].lower()
    for attribute in ("domain=.hoop.com", "path=/app", "secure", "httponly", "samesite=lax"):
        assert attribute in cookie


def test_cookie_session_domain_on_the_request_that_sets_it() -> None:
    # The first two requests of Beaker's cookie-only test_increment.
    app = TestApp(SessionMiddleware(domain_app, **{"session.validate_key": "hoobermas",
                                                   "session.type": "cookie"}))
    assert "current value is: 1" in app.get("/")
    res = app.get("/", extra_environ={"domain": ".hoop.com", "HTTP_HOST": "www.hoop.com"})
    assert "current value is: 1" in res
    assert "Domain=.hoop.com" in res.headers["Set-Cookie"]
