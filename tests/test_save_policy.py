"""The core's save options: explicit_save, save_empty, revert, per-response cookie attributes,
and the transport that carries no id."""

from __future__ import annotations

from typing import Any

import pytest

from satchel import Action, ConfigurationError, CookieOp, MemoryStore, SessionMiddleware

from .harness import Harness
from .wsgi_util import call


@pytest.fixture
def explicit() -> Harness:
    return Harness(explicit_save=True)


def test_explicit_save_drops_changes_without_save(explicit: Harness) -> None:
    sid = explicit.new_session_saved(a=1)
    s = explicit.request(sid)
    s["a"] = 2
    s["b"] = 3
    d = explicit.finish(s)
    assert d.action is not Action.SAVE
    assert explicit.store.load(sid).data.keys() == {"a"}
    assert explicit.request(sid)["a"] == 1


def test_explicit_save_writes_after_save(explicit: Harness) -> None:
    sid = explicit.new_session_saved(a=1)
    s = explicit.request(sid)
    s["a"] += 1
    s.save()
    s["late"] = "x"  # Beaker saves the whole session as it is at the end of the request
    assert explicit.finish(s).action is Action.SAVE
    again = explicit.request(sid)
    assert again["a"] == 2 and again["late"] == "x"


def test_explicit_save_new_session_without_save_gets_no_cookie(explicit: Harness) -> None:
    s = explicit.request()
    s["a"] = 1
    assert s.id  # an id may be read before anything is stored
    d = explicit.finish(s)
    assert d.action is Action.NOTHING and d.cookie is CookieOp.KEEP
    assert explicit.store.count() == 0


def test_explicit_save_blind_write_is_dropped(explicit: Harness) -> None:
    sid = explicit.new_session_saved(a=1)
    s = explicit.request(sid)
    s["a"] = 5  # never read: a blind write
    assert explicit.finish(s).action is Action.NOTHING
    assert explicit.request(sid)["a"] == 1


def test_explicit_save_still_touches_and_keeps_clear_unsaved(explicit: Harness) -> None:
    sid = explicit.new_session_saved(a=1)
    explicit.clock.advance(120)
    s = explicit.request(sid)
    s.clear()
    assert explicit.finish(s).action is Action.TOUCH
    assert explicit.request(sid)["a"] == 1


def test_explicit_save_rotate_needs_no_save(explicit: Harness) -> None:
    sid = explicit.new_session_saved(a=1)
    s = explicit.request(sid)
    s.rotate()
    d = explicit.finish(s)
    assert d.action is Action.SAVE and d.sid != sid
    assert explicit.store.load(sid) is None
    assert explicit.request(d.sid)["a"] == 1


def test_explicit_save_invalidate_deletes_without_save(explicit: Harness) -> None:
    sid = explicit.new_session_saved(a=1)
    s = explicit.request(sid)
    s.invalidate()
    d = explicit.finish(s)
    assert d.cookie is CookieOp.REVOKE
    assert explicit.store.load(sid) is None


def test_save_empty_stores_a_new_empty_session() -> None:
    h = Harness(save_empty=True)
    s = h.request()
    assert s.get("a") is None
    d = h.finish(s)
    assert d.action is Action.SAVE and d.cookie is CookieOp.SET
    record = h.store.load(d.sid)
    assert record is not None and record.data == {}


def test_without_save_empty_an_empty_session_is_not_stored() -> None:
    h = Harness()
    s = h.request()
    assert s.get("a") is None
    assert h.finish(s).action is Action.NOTHING


def test_save_empty_keeps_an_emptied_session() -> None:
    h = Harness(save_empty=True, explicit_save=True)
    sid = h.new_session_saved(user="ann")
    s = h.request(sid)
    s.clear()
    s.save()
    d = h.finish(s)
    assert d.action is Action.SAVE and d.sid == sid
    record = h.store.load(sid)
    assert record is not None and record.data == {}


def test_save_empty_does_not_revive_an_invalidated_session() -> None:
    h = Harness(save_empty=True)
    sid = h.new_session_saved(a=1)
    s = h.request(sid)
    s.invalidate()
    d = h.finish(s)
    assert d.cookie is CookieOp.REVOKE and h.store.count() == 0
    # ... unless the application saves after invalidating: a fresh, empty session.
    s = h.request(sid)
    s.invalidate()
    s.save()
    d = h.finish(s)
    assert d.action is Action.SAVE and d.sid != sid and h.store.count() == 1


def test_revert_restores_loaded_values() -> None:
    h = Harness()
    sid = h.new_session_saved(a=1, cart=[1])
    s = h.request(sid)
    s["a"] = 2
    s["cart"].append(2)
    del s["a"]
    s["b"] = 1
    s.revert()
    assert dict(s) == {"a": 1, "cart": [1]}
    assert h.finish(s).action is not Action.SAVE
    assert dict(h.request(sid)) == {"a": 1, "cart": [1]}


def test_revert_after_rotate_keeps_the_data_under_the_new_id() -> None:
    h = Harness()
    sid = h.new_session_saved(a=1)
    s = h.request(sid)
    s.rotate()
    s["a"] = 9
    s.revert()
    d = h.finish(s)
    assert d.action is Action.SAVE and d.sid != sid
    assert dict(h.request(d.sid)) == {"a": 1}


def _domain_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    session = environ["satchel.session"]
    session["n"] = session.get("n", 0) + 1
    if "d=" in environ["QUERY_STRING"]:
        session.cookie_domain = environ["QUERY_STRING"].split("d=")[1]
        session.cookie_path = "/shop"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def test_cookie_attributes_per_response() -> None:
    app = SessionMiddleware(_domain_app, store=MemoryStore(), cookie_domain="example.com")
    first = call(app)
    assert "Domain=example.com" in first.header("Set-Cookie")
    cookie = "satchel=" + first.cookies["satchel"]
    # An existing session's cookie is sent again when this response picks other attributes.
    second = call(app, cookie=cookie, query="d=shop.example.com")
    set_cookie = second.header("Set-Cookie")
    assert "Domain=shop.example.com" in set_cookie and "Path=/shop" in set_cookie
    assert "Domain=example.com;" not in set_cookie
    # ... and only that response: the next one keeps the configured attributes (no cookie).
    assert call(app, cookie=cookie).header("Set-Cookie") is None


def test_cookie_attributes_are_checked() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = environ["satchel.session"]
        session["a"] = 1
        session.cookie_domain = "evil.com; Secure=no"
        start_response("200 OK", [])
        return [b""]

    with pytest.raises(ConfigurationError, match="cookie_domain"):
        call(SessionMiddleware(app, store=MemoryStore()))


def test_no_transport_reads_and_sends_no_id() -> None:
    store = MemoryStore()
    seen: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = environ["satchel.session"]
        session["a"] = 1
        seen.append(session.id)
        start_response("200 OK", [])
        return [b""]

    mw = SessionMiddleware(app, store=store, transport="none")
    resp = call(mw)
    assert resp.header("Set-Cookie") is None
    assert store.load(seen[0]) is not None
    # A cookie naming that session is not read: the application carries ids itself.
    call(mw, cookie=f"satchel={seen[0]}")
    assert seen[1] != seen[0]
