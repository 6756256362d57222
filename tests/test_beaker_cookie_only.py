"""Beaker's cookie-only session tests (its tests/test_cookie_only.py), ported case by case
against ``satchel.compat.beaker``: ``type = cookie`` is satchel's sealed cookie sessions.

Left out, each because it inspects Beaker's own wire format or private data:
``test_json_serializer``, ``test_pickle_serializer`` and ``test_custom_serializer`` decode the
cookie with Beaker's ``SignedCookie`` and serializers; ``test_cookie_id`` reads Beaker's private
``_id`` key from the session's repr; ``test_expires`` looks for Beaker's lowercase ``expires=``
attribute (satchel's persistent cookie carries ``Max-Age``, tested below).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from webtest import TestApp

from satchel import ConfigurationError
from satchel.compat.beaker.middleware import SessionMiddleware

SIGNED = {"session.validate_key": "hoobermas", "session.type": "cookie"}
SEALED = {"session.encrypt_key": "666a19cf7f61c64c", **SIGNED}


def counting_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    session = environ["beaker.session"]
    session["value"] = session.get("value", 0) + 1
    if not environ["PATH_INFO"].startswith("/nosave"):
        session.save()
    start_response("200 OK", [("Content-type", "text/plain")])
    return [f"The current value is: {session['value']} and cookie is {session}".encode()]


def _counts(app: TestApp, *expected: int, **kw: Any) -> Any:
    res = None
    for n in expected:
        res = app.get("/", **kw)
        assert f"current value is: {n}" in res, res
    return res


def test_increment() -> None:
    _counts(TestApp(SessionMiddleware(counting_app, **SIGNED)), 1, 2, 3)


def test_increment_with_encryption() -> None:
    _counts(TestApp(SessionMiddleware(counting_app, **SEALED)), 1, 2, 3)


def test_invalid_cookie() -> None:
    # A server-side session; a foreign cookie with an odd name must not disturb it.
    app = TestApp(SessionMiddleware(counting_app, **{"session.validate_key": "hoobermas"}))
    _counts(app, 1)
    app.set_cookie("cb_/zabbix/actionconf.php_parts", "HI")
    _counts(app, 2, 3)


def test_invalid_cookie_cookietype() -> None:
    app = TestApp(SessionMiddleware(counting_app, **SIGNED))
    _counts(app, 1)
    app.set_cookie("cb_/zabbix/actionconf.php_parts", "HI")
    _counts(app, 2, 3)


def test_different_sessions() -> None:
    for options in (SIGNED, SEALED):
        first = TestApp(SessionMiddleware(counting_app, **options))
        second = TestApp(SessionMiddleware(counting_app, **options))
        _counts(first, 1)
        _counts(second, 1, 2, 3, 4)
        _counts(first, 2)


def test_nosave() -> None:
    for options in (SIGNED, SEALED):
        app = TestApp(SessionMiddleware(counting_app, **options))
        res = app.get("/nosave")
        assert "current value is: 1" in res
        assert res.headers.getall("Set-Cookie") == []
        assert "current value is: 1" in app.get("/nosave")
        res = app.get("/")
        assert "current value is: 1" in res
        assert len(res.headers.getall("Set-Cookie")) > 0
        assert "current value is: 2" in app.get("/")


def test_invalidate_with_save_does_not_delete_session() -> None:
    def invalidating_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = environ["beaker.session"]
        session.invalidate()
        session.save()
        start_response("200 OK", [("Content-type", "text/plain")])
        return [f"Cookie is {session}".encode()]

    res = TestApp(SessionMiddleware(invalidating_app, **SEALED)).get("/")
    cookie = res.headers.getall("Set-Cookie")[0]
    assert "expires=" not in cookie
    assert "max-age=0" not in cookie.lower()  # and not revoked in satchel's spelling either


def test_changing_encrypt_key_with_timeout() -> None:
    options = {**SEALED, "session.timeout": 300}
    res = TestApp(SessionMiddleware(counting_app, **options)).get("/")
    assert "The current value is: 1" in res, res
    cookies = res.headers["Set-Cookie"]
    # The same keys read the same session back...
    app = TestApp(SessionMiddleware(counting_app, **options))
    assert "The current value is: 2" in app.get("/", headers={"Cookie": cookies})
    # ... another encrypt_key cannot: a new session, not an error.
    changed = {**options, "session.encrypt_key": "hello-world"}
    app = TestApp(SessionMiddleware(counting_app, **changed))
    assert "The current value is: 1" in app.get("/", headers={"Cookie": cookies})


def test_cookie_properly_expires() -> None:
    options = {**SEALED, "session.timeout": 1}
    app = TestApp(SessionMiddleware(counting_app, **options))
    _counts(app, 1, 2)
    time.sleep(1)  # Beaker's own test waits for its one-second timeout too
    _counts(app, 1)


def test_cookie_attributes_are_preserved() -> None:
    options = {"session.type": "cookie", "session.validate_key": "hoobermas",
               "session.httponly": True, "session.secure": True, "session.samesite": "Strict"}
    cookie = TestApp(SessionMiddleware(counting_app, options)).get("/").headers["Set-Cookie"]
    assert "secure" in cookie.lower()
    assert "httponly" in cookie.lower()
    assert "samesite=strict" in cookie.lower()


def test_cookie_path_properly_set_after_init_and_load() -> None:
    app = TestApp(SessionMiddleware(counting_app, **SIGNED, **{"session.cookie_path": "/app"}))
    assert "path=/app" in app.get("/app").headers["Set-Cookie"].lower()
    assert "path=/app" in app.get("/app").headers["Set-Cookie"].lower()


def test_cookie_path_properly_set_after_delete() -> None:
    def deleting_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["beaker.session"].delete()
        start_response("200 OK", [("Content-type", "text/plain")])
        return [b"deleted"]

    app = TestApp(SessionMiddleware(deleting_app, **SIGNED, **{"session.cookie_path": "/app"}))
    assert "path=/app" in app.get("/app").headers["Set-Cookie"].lower()


# -- satchel's counterparts of the cases left out ----------------------------------------------

def test_expires_gives_a_persistent_cookie() -> None:
    import datetime

    options = {**SIGNED, "session.cookie_expires": datetime.timedelta(days=1)}
    res = TestApp(SessionMiddleware(counting_app, **options)).get("/")
    assert "Max-Age=" in res.headers.getall("Set-Cookie")[0]
    assert "current value is: 1" in res
    # A browser-session cookie by default, as in Beaker.
    res = TestApp(SessionMiddleware(counting_app, **SIGNED)).get("/")
    assert "Max-Age" not in res.headers["Set-Cookie"]


def test_session_id_is_stable_across_requests() -> None:
    def id_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = environ["beaker.session"]
        session["n"] = session.get("n", 0) + 1
        session.save()
        start_response("200 OK", [("Content-type", "text/plain")])
        return [session.id.encode()]

    app = TestApp(SessionMiddleware(id_app, **SEALED))
    assert app.get("/").text == app.get("/").text


def test_json_serializer_round_trips_and_custom_serializers_are_refused() -> None:
    options = {**SIGNED, "data_serializer": "json"}
    _counts(TestApp(SessionMiddleware(counting_app, **options)), 1, 2, 3)

    class Custom:
        def loads(self, data: bytes) -> Any: ...
        def dumps(self, data: Any) -> bytes: ...

    with pytest.raises(ConfigurationError, match="data_serializer"):
        SessionMiddleware(counting_app, **SIGNED, data_serializer=Custom())
