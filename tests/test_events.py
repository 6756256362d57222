"""Session events: each path that emits one, what it carries and what it never carries."""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any

import pytest

from satchel import MemoryStore, SessionMiddleware
from satchel.events import Event, Events

from .harness import Harness
from .wsgi_util import call

KEY = b"k" * 32


def fp(sid: str) -> str:
    return hmac.new(KEY, sid.encode(), hashlib.sha256).hexdigest()[:16]


def harness(**policy: Any) -> tuple[Harness, list[Event]]:
    seen: list[Event] = []
    h = Harness(**policy)
    h.engine.events = Events(seen.append, KEY)
    return h, seen


def test_created_loaded_saved_rotated_invalidated() -> None:
    h, seen = harness()
    s = h.request()
    s["n"] = 1
    s.user = "ana"
    sid = h.finish(s).sid
    assert sid is not None
    assert seen == [Event("created", fp(sid), "ana")]

    seen.clear()
    s = h.request(sid)
    s["n"] += 1  # read, then written
    h.finish(s)
    assert seen == [Event("loaded", fp(sid), "ana"), Event("saved", fp(sid), "ana")]

    seen.clear()
    s = h.request(sid)
    s.rotate()
    new = h.finish(s).sid
    assert new is not None and new != sid
    assert seen == [Event("loaded", fp(sid), "ana"), Event("rotated", fp(new), "ana", "rotate")]

    seen.clear()
    s = h.request(new)
    s.invalidate()
    h.finish(s)
    assert seen == [Event("loaded", fp(new), "ana"),
                    Event("invalidated", fp(new), "ana", "invalidate")]
    for event in seen:
        assert sid not in repr(event) and new not in repr(event)


def test_blind_write_is_saved_and_an_emptied_session_ends() -> None:
    h, seen = harness()
    sid = h.new_session(n=1)
    seen.clear()
    s = h.engine.session(lambda ses, raw, fetch: h.engine.load(ses, raw, False), sid)
    s["m"] = 2  # written without reading: an UPDATE
    h.finish(s)
    assert seen == [Event("saved", fp(sid), None, "blind_write")]
    assert h.store.load(sid) is not None and "m" in h.store.load(sid).data

    seen.clear()
    s = h.request(sid)
    del s["n"], s["m"]
    h.finish(s)
    assert seen == [Event("loaded", fp(sid), None), Event("invalidated", fp(sid), None, "emptied")]


@pytest.mark.parametrize(("idle", "absolute", "advance", "reason"), [
    (60, 3600, 61, "idle_timeout"),
    (3600, 100, 101, "absolute_timeout"),
])
def test_found_dead_on_load_is_expired(idle: float, absolute: float, advance: float,
                                       reason: str) -> None:
    # The store keeps records an hour; the policy (shorter) finds them dead first.
    h, seen = harness(idle_timeout=idle, absolute_timeout=absolute)
    store = h.store
    sid = h.new_session(n=1)
    record = store.load(sid)
    assert record is not None
    record.expires += 10_000  # as a store configured for a longer lifetime would keep it
    seen.clear()
    h.clock.advance(advance)
    s = h.request(sid)
    assert "n" not in s
    h.finish(s)
    assert seen == [Event("expired", fp(sid), None, reason)]


def test_a_hook_that_raises_is_logged_and_the_request_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    def broken(event: Event) -> None:
        raise RuntimeError("audit log is full")

    h = Harness()
    h.engine.events = Events(broken, KEY)
    with caplog.at_level(logging.ERROR, logger="satchel"):
        sid = h.new_session(n=1)
        s = h.request(sid)
        assert s["n"] == 1
    assert h.store.load(sid) is not None
    failures = [r for r in caplog.records if r.name == "satchel"]
    assert [r.getMessage() for r in failures] == [
        "on_event hook failed on a 'created' event; the request goes on",
        "on_event hook failed on a 'loaded' event; the request goes on"]
    assert all(sid not in r.getMessage() for r in failures)


def test_middleware_on_event_with_a_secret_names_sessions_alike_in_every_worker() -> None:
    store = MemoryStore()
    seen: list[Event] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = environ["satchel.session"]
        session["visits"] = session.get("visits", 0) + 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    secret = "s" * 32
    one = SessionMiddleware(app, store=store, secret=secret, on_event=seen.append)
    two = SessionMiddleware(app, store=store, secret=secret, on_event=seen.append)
    first = call(one)
    cookie = f"satchel={first.cookies['satchel']}"
    call(two, cookie=cookie)
    kinds = [e.kind for e in seen]
    assert kinds == ["created", "loaded", "saved"]
    assert len({e.fingerprint for e in seen}) == 1
    assert first.cookies["satchel"] not in repr(seen)


def test_on_event_must_be_callable() -> None:
    from satchel import ConfigurationError

    with pytest.raises(ConfigurationError, match="on_event"):
        SessionMiddleware(lambda e, s: [], store=MemoryStore(), on_event="print")


def test_cookie_sessions_emit_from_the_same_path() -> None:
    from satchel.stores.cookie import CookieStore

    seen: list[Event] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = environ["satchel.session"]
        if environ["PATH_INFO"] == "/logout":
            session.invalidate()
        else:
            session["visits"] = session.get("visits", 0) + 1
            session.user = "ana"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    secret = "c" * 32
    middleware = SessionMiddleware(app, store=CookieStore(secret=secret), secret=secret,
                                   on_event=seen.append)
    first = call(middleware)
    cookie = f"satchel={first.cookies['satchel']}"
    call(middleware, cookie=cookie)
    call(middleware, "/logout", cookie=cookie)
    assert [(e.kind, e.user) for e in seen] == [
        ("created", "ana"), ("loaded", "ana"), ("saved", "ana"), ("loaded", "ana"),
        ("invalidated", "ana")]
    assert len({e.fingerprint for e in seen}) == 1
