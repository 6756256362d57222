"""``issue_ids``: every visitor gets an id on the first response (Pesto's behaviour), with no
store I/O and nothing stored until the application stores something."""

from __future__ import annotations

from typing import Any

import pytest

import satchel
from satchel.ids import is_valid_id

from .wsgi_util import call


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    session = environ["satchel.session"]
    if environ["PATH_INFO"] == "/store":
        session["n"] = session.get("n", 0) + 1
    elif environ["PATH_INFO"] == "/id":
        return_id = session.id
        start_response("200 OK", [])
        return [return_id.encode()]
    start_response("200 OK", [])
    return [b"ok"]


class CountingStore(satchel.MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.loads = 0

    def load(self, sid: str) -> Any:
        self.loads += 1
        return super().load(sid)


def test_first_response_carries_an_id_and_nothing_is_stored() -> None:
    store = CountingStore()
    mw = satchel.SessionMiddleware(app, store=store, issue_ids=True, secret="s" * 32)
    first = call(mw, "/")
    sid = first.cookies["satchel"]
    assert is_valid_id(sid) and store.count() == 0 and store.loads == 0
    # The id is stable before anything is stored, and is not sent again.
    again = call(mw, "/id", cookie=f"satchel={sid}")
    assert again.body == sid.encode() and "satchel" not in again.cookies
    assert store.count() == 0
    stored = call(mw, "/store", cookie=f"satchel={sid}")
    assert store.exists(sid) and stored.cookies.get("satchel", sid) == sid  # same id kept
    # Another worker with the same secret recognises the id it did not issue.
    other = satchel.SessionMiddleware(app, store=satchel.MemoryStore(), issue_ids=True,
                                      secret="s" * 32)
    assert call(other, "/id", cookie=f"satchel={sid}").body == sid.encode()


def test_an_id_it_did_not_issue_is_replaced() -> None:
    mw = satchel.SessionMiddleware(app, store=satchel.MemoryStore(), issue_ids=True)
    planted = "A" * 43
    response = call(mw, "/id", cookie=f"satchel={planted}")
    issued = response.body.decode()
    assert issued != planted and response.cookies["satchel"] == issued


def test_off_by_default_and_refused_for_sealed_sessions() -> None:
    assert call(satchel.SessionMiddleware(app, store=satchel.MemoryStore()), "/").cookies == {}
    pytest.importorskip("cryptography")
    with pytest.raises(satchel.ConfigurationError, match="server-side store"):
        satchel.SessionMiddleware(app, store="cookie://", secret="k" * 32, issue_ids=True)


def test_an_issued_id_is_not_revived_after_a_session_would_have_expired() -> None:
    from .harness import Clock

    clock = Clock()
    store = satchel.MemoryStore()
    mw = satchel.SessionMiddleware(app, store=store, issue_ids=True, idle_timeout=600,
                                   clock=clock)
    sid = call(mw, "/").cookies["satchel"]
    clock.advance(300)
    assert call(mw, "/id", cookie=f"satchel={sid}").body == sid.encode()
    clock.advance(601)  # past the idle timeout since it was issued: a new id
    later = call(mw, "/id", cookie=f"satchel={sid}")
    assert later.body != sid.encode() and later.cookies["satchel"] == later.body.decode()


def test_an_issued_id_not_yet_stored_is_honoured_for_half_the_shortest_lifetime() -> None:
    now = [1_800_000_000.0]
    mw = satchel.SessionMiddleware(app, store=satchel.MemoryStore(), issue_ids=True,
                                   secret="s" * 32, idle_timeout=600, clock=lambda: now[0])
    sid = call(mw, "/").cookies["satchel"]
    now[0] += 299
    assert call(mw, "/id", cookie=f"satchel={sid}").body == sid.encode()
    now[0] += 2  # past half the idle timeout, and still nothing stored: a new id
    later = call(mw, "/id", cookie=f"satchel={sid}")
    assert later.body != sid.encode() and later.cookies["satchel"] == later.body.decode()
