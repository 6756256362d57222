"""Per-session lifetime: ``session.set_expiry`` and ``session.expires_at`` ("remember me")."""

from __future__ import annotations

import math
from typing import Any

import pytest

from satchel import Action, CookieOp, SessionMiddleware, SQLiteStore

from .harness import Harness
from .wsgi_util import call

DAY = 86400


@pytest.fixture(params=["memory", "sqlite"])
def h(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    if request.param == "memory":
        yield Harness(idle_timeout=1800, absolute_timeout=30 * DAY)
        return
    with SQLiteStore(str(tmp_path / "s.db")) as store:
        yield Harness(store, idle_timeout=1800, absolute_timeout=30 * DAY)


def test_remember_me_outlives_the_idle_timeout_with_a_persistent_cookie(h: Harness) -> None:
    s = h.request()
    s["user"] = "ann"
    s.set_expiry(14 * DAY)
    decision = h.finish(s)
    assert decision.cookie is CookieOp.SET and decision.max_age == 14 * DAY
    assert decision.meta is not None and decision.meta.expires == h.clock.now + 14 * DAY
    sid = decision.sid
    h.clock.advance(10 * DAY)  # far past the 30-minute idle timeout
    s = h.request(sid)
    assert s["user"] == "ann" and s.expiry == 14 * DAY
    decision = h.finish(s)
    # A read slides the lifetime and re-sends the persistent cookie with its new Max-Age.
    assert decision.action is Action.TOUCH and decision.max_age == 14 * DAY
    h.clock.advance(14 * DAY + 1)
    assert "user" not in h.request(sid)


def test_absolute_lifetime_still_caps_a_per_session_lifetime(h: Harness) -> None:
    s = h.request()
    s["a"] = 1
    s.set_expiry(60 * DAY)
    decision = h.finish(s)
    assert decision.meta is not None and decision.meta.expires == h.clock.now + 30 * DAY
    assert decision.max_age == 30 * DAY


def test_zero_is_a_browser_session_cookie_under_the_idle_timeout(h: Harness) -> None:
    s = h.request()
    s["a"] = 1
    s.set_expiry(14 * DAY)
    sid = h.finish(s).sid
    s = h.request(sid)
    s.set_expiry(0)
    decision = h.finish(s)
    # The cookie is re-sent without Max-Age: it stops surviving browser restarts.
    assert decision.cookie is CookieOp.SET and decision.max_age is None
    assert decision.meta is not None and decision.meta.expires == h.clock.now + 1800
    h.clock.advance(1801)
    assert "a" not in h.request(sid)


def test_none_returns_to_the_configured_policy(h: Harness) -> None:
    s = h.request()
    s["a"] = 1
    s.set_expiry(14 * DAY)
    sid = h.finish(s).sid
    s = h.request(sid)
    s.set_expiry(None)
    assert s.expiry is None and "_satchel_expiry" not in s
    decision = h.finish(s)
    assert decision.max_age is None
    assert decision.meta is not None and decision.meta.expires == h.clock.now + 1800


def test_a_shorter_lifetime_than_the_idle_timeout_is_kept(h: Harness) -> None:
    s = h.request()
    s["a"] = 1
    s.set_expiry(60)
    sid = h.finish(s).sid
    h.clock.advance(61)
    assert "a" not in h.request(sid)


def test_expires_at_reports_without_extending(h: Harness) -> None:
    s = h.request()
    s["a"] = 1
    start = h.clock.now
    sid = h.finish(s).sid
    h.clock.advance(10)
    s = h.request(sid)
    assert s.expires_at == start + 1800
    decision = h.finish(s)
    assert decision.action is Action.NOTHING  # reading expires_at wrote nothing
    s = h.request(sid)
    s.set_expiry(DAY)
    assert s.expires_at == start + DAY
    fresh = h.request()
    assert fresh.expires_at == h.clock.now + 1800


@pytest.mark.parametrize("bad", [-1, "10", True, math.inf, math.nan])
def test_set_expiry_refuses_what_is_not_seconds(h: Harness, bad: Any) -> None:
    with pytest.raises(ValueError, match="seconds"):
        h.request().set_expiry(bad)


def test_without_idle_timeout_a_lifetime_still_slides() -> None:
    h = Harness(idle_timeout=None, absolute_timeout=30 * DAY)
    s = h.request()
    s["a"] = 1
    s.set_expiry(DAY)
    decision = h.finish(s)
    assert decision.meta is not None and decision.meta.expires == h.clock.now + DAY


def test_remember_me_through_the_wsgi_middleware(tmp_path: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = environ["satchel.session"]
        if environ["PATH_INFO"] == "/login":
            session["user"] = "ann"
            session.set_expiry(14 * DAY if environ["QUERY_STRING"] == "remember" else 0)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(session.get("user")).encode()]

    mw = SessionMiddleware(app, store=f"sqlite:///{tmp_path / 's.db'}",
                           absolute_timeout=30 * DAY)
    try:
        remembered = call(mw, "/login", query="remember").header("Set-Cookie")
        assert remembered is not None
        assert int(remembered.split("Max-Age=")[1].split(";")[0]) in (14 * DAY - 1, 14 * DAY)
        plain = call(mw, "/login").header("Set-Cookie")
        assert plain is not None and "Max-Age" not in plain
        cookie = remembered.split(";")[0]
        again = call(mw, "/", cookie=cookie)
        assert again.body == b"ann"
    finally:
        mw.close()


def test_a_write_only_request_keeps_a_remembered_session(h: Harness) -> None:
    s = h.request()
    s["a"] = 1
    s.set_expiry(14 * DAY)
    sid = h.finish(s).sid
    h.clock.advance(DAY)
    s = h.request(sid)
    s["b"] = 2  # never read: a blind update, which cannot know the stored lifetime
    decision = h.finish(s)
    assert decision.action is Action.UPDATE and decision.cookie is CookieOp.KEEP
    h.clock.advance(2 * DAY)  # past the 30-minute idle timeout, within the session's own
    again = h.request(sid)
    assert dict(again) == {"a": 1, "b": 2, "_satchel_expiry": 14 * DAY}


def test_a_write_only_request_still_ends_an_idle_session(h: Harness) -> None:
    s = h.request()
    s["a"] = 1
    sid = h.finish(s).sid
    s = h.request(sid)
    s["b"] = 2
    assert h.finish(s).action is Action.UPDATE
    h.clock.advance(1801)  # the idle timeout, judged at the read by the stored access time
    assert "a" not in h.request(sid)
