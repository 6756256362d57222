"""Beaker's black-box counter tests (its tests/test_increment.py), ported case by case.

Beaker 1.14.1's sdist ships no tests, so the cases live here: the same requests through WebTest
and the same assertions, against ``satchel.compat.beaker``.  Like Beaker's, they keep file
sessions in ``./cache`` (here under a temporary working directory).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from webtest import TestApp

from satchel.compat.beaker.middleware import SessionMiddleware

OPTIONS = {"session.data_dir": "./cache", "session.secret": "blah"}


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def _reply(start_response: Any, text: str) -> list[bytes]:
    start_response("200 OK", [("Content-type", "text/plain")])
    return [text.encode("utf-8")]


def reading_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    session = environ["beaker.session"]
    return _reply(start_response, f"The current value is: {session.get('value')}, "
                                  f"session id is {session.id}")


def _count(environ: dict[str, Any], start_response: Any, *, auto: bool) -> list[bytes]:
    session = environ["beaker.session"]
    wanted = environ.get("SESSION_ID")
    if wanted:
        session = session.get_by_id(wanted)
    if not session:
        return _reply(start_response, f"No session id of {wanted} found.")
    if "value" not in session:
        session["value"] = 0
    session["value"] += 1
    nosave = environ["PATH_INFO"].startswith("/nosave")
    if auto and nosave:
        session.revert()
    elif not auto and not nosave:
        session.save()
    shown = session.get("value", 0) if auto else session.get("value")
    return _reply(start_response, f"The current value is: {shown}, session id is {session.id}")


def counting_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Counts, and saves unless the path starts with /nosave."""
    return _count(environ, start_response, auto=False)


def auto_counting_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Counts under ``auto``; /nosave reverts the count instead."""
    return _count(environ, start_response, auto=True)


def test_no_save() -> None:
    app = TestApp(SessionMiddleware(reading_app, **OPTIONS))
    res = app.get("/")
    assert "current value is: None" in res
    assert res.headers.getall("Set-Cookie") == []


@pytest.mark.parametrize(("wsgi", "auto"), [(counting_app, False), (auto_counting_app, True)])
def test_increment(wsgi: Any, auto: bool) -> None:
    app = TestApp(SessionMiddleware(wsgi, auto=auto, **OPTIONS))
    for n in (1, 2, 3):
        assert f"current value is: {n}" in app.get("/")


@pytest.mark.parametrize(("wsgi", "auto"), [(counting_app, False), (auto_counting_app, True)])
def test_different_sessions(wsgi: Any, auto: bool) -> None:
    first = TestApp(SessionMiddleware(wsgi, auto=auto, **OPTIONS))
    second = TestApp(SessionMiddleware(wsgi, auto=auto, **OPTIONS))
    res = first.get("/")
    assert "current value is: 1" in res
    assert "current value is: 1" in second.get("/")
    for _ in range(3):
        res = second.get("/")
    res2 = first.get("/")
    assert "current value is: 2" in res2
    assert "current value is: 4" in res


def test_nosave() -> None:
    app = TestApp(SessionMiddleware(counting_app, **OPTIONS))
    assert "current value is: 1" in app.get("/nosave")
    assert "current value is: 1" in app.get("/nosave")
    assert "current value is: 1" in app.get("/")
    assert "current value is: 2" in app.get("/")


def test_revert() -> None:
    app = TestApp(SessionMiddleware(auto_counting_app, auto=True, **OPTIONS))
    assert "current value is: 0" in app.get("/nosave")
    assert "current value is: 0" in app.get("/nosave")
    res = app.get("/")
    assert "current value is: 1" in res
    assert res.headers.getall("Set-Cookie") == []
    res = app.get("/")
    assert res.headers.getall("Set-Cookie") == []
    assert "current value is: 2" in res
    # Reverting shows the stored value.
    res = app.get("/nosave")
    assert res.headers.getall("Set-Cookie") == []
    assert "current value is: 2" in res


def test_load_session_by_id() -> None:
    app = TestApp(SessionMiddleware(counting_app, **OPTIONS))
    assert "current value is: 1" in app.get("/")
    app.get("/")
    res = app.get("/")
    assert "current value is: 3" in res
    old_id = re.sub(r"^.*?session id is (\S+)$", r"\1", res.body.decode("utf-8"))

    # A new client (no cookies).
    app = TestApp(SessionMiddleware(counting_app, **OPTIONS))
    assert "current value is: 1" in app.get("/")
    # A session that does not exist is not found.
    res = app.get("/", extra_environ={"SESSION_ID": "jil2j34il2j34ilj23"})
    assert "No session id of" in res
    # The first client's session, reached by its id, goes from 3 to 4.
    res = app.get("/", extra_environ={"SESSION_ID": str(old_id)})
    assert "current value is: 4" in res
    # The new client's own session is untouched by that: 2.
    assert "current value is: 2" in app.get("/")
