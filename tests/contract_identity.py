"""The identity part of the store contract, through the WSGI front door: cookies that no shared
cache keeps, login and logout, and why a session ended.  :class:`StoreContract` inherits it, so
every store runs it against its real server."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl

import satchel

from .wsgi_util import Response, call


def _identity_routes(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """``/write`` counts; ``/login?user=u`` logs in; ``/become?user=u`` only sets ``user``;
    ``/logout``; ``/whoami`` reads; ``/cache?cc=...`` answers with the application's own
    Cache-Control after writing."""
    session = environ["satchel.session"]
    path = environ["PATH_INFO"]
    query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
    headers = [("Content-Type", "text/plain")]
    if path == "/write":
        session["n"] = session.get("n", 0) + 1
    elif path == "/login":
        session.login(query["user"])
    elif path == "/become":
        session.user = query["user"]
    elif path == "/logout":
        session.logout()
    elif path == "/cache":
        session["n"] = session.get("n", 0) + 1
        headers.append(("Cache-Control", query["cc"]))
    body = f"{session.user}|{session.get('n')}|{session.is_new}|{session.ended}"
    start_response("200 OK", headers)
    return [body.encode()]


def _get(mw: Any, path: str, sid: str | None = None, query: str = "",
         scheme: str = "http") -> Response:
    return call(mw, path, cookie=None if sid is None else f"satchel={sid}", query=query,
                scheme=scheme)


class IdentityContract:
    """Cookies, login/logout and ``session.ended`` over one store (the ``store`` fixture)."""

    # -- cookies -------------------------------------------------------------------------------

    def test_a_response_that_sets_or_revokes_the_cookie_is_private(self, store: Any) -> None:
        mw = satchel.SessionMiddleware(_identity_routes, store=store)
        first = _get(mw, "/write")
        sid = first.cookies["satchel"]
        assert first.all("Cache-Control") == ["private"]
        again = _get(mw, "/write", sid)
        assert again.header("Set-Cookie") is None  # no cookie: nothing to keep from caches
        assert again.all("Cache-Control") == []
        out = _get(mw, "/logout", sid)
        assert out.header("Set-Cookie") is not None and "Max-Age=0" in out.header("Set-Cookie")
        assert out.all("Cache-Control") == ["private"]

    def test_the_applications_cache_control_is_kept_or_made_private(self, store: Any) -> None:
        mw = satchel.SessionMiddleware(_identity_routes, store=store)
        for own, sent in (("no-store", "no-store"), ("private, max-age=60", "private, max-age=60"),
                          ("public, max-age=600", "private, max-age=600"),
                          ("no-cache", "private, no-cache")):
            response = _get(mw, "/cache", query=f"cc={own}")
            assert response.header("Set-Cookie") is not None
            assert response.all("Cache-Control") == [sent], own

    def test_partitioned_cookie(self, store: Any) -> None:
        mw = satchel.SessionMiddleware(_identity_routes, store=store, cookie_partitioned=True)
        cookie = _get(mw, "/write").header("Set-Cookie")
        assert cookie is not None
        parts = [p.strip() for p in cookie.split(";")]
        assert "Partitioned" in parts and "Secure" in parts  # Secure even over http
        plain = satchel.SessionMiddleware(_identity_routes, store=store)
        assert "Partitioned" not in (_get(plain, "/write").header("Set-Cookie") or "")

    # -- login and logout ------------------------------------------------------------------------

    def test_login_rotates_keeps_data_and_records_the_time(self, store: Any) -> None:
        mw = satchel.SessionMiddleware(_identity_routes, store=store)
        sid = _get(mw, "/write").cookies["satchel"]
        login = _get(mw, "/login", sid, "user=alice")
        new = login.cookies["satchel"]
        assert new != sid and satchel.is_valid_id(new)
        assert login.body.decode().startswith("alice|1|")
        assert store.load(sid) is None  # the planted id is worthless now
        record = store.load(new)
        assert record is not None and record.user == "alice"
        assert new in store.user_sessions("alice")
        assert satchel.session.LOGIN_KEY in record.data
        assert _get(mw, "/whoami", new).body.decode().startswith("alice|1|False")
        # The old id finds nothing, whatever it tries.
        assert _get(mw, "/whoami", sid).body.decode().startswith("None|None|True")

    def test_changing_the_user_rotates_once(self, store: Any) -> None:
        mw = satchel.SessionMiddleware(_identity_routes, store=store)
        sid = _get(mw, "/write").cookies["satchel"]
        as_bob = _get(mw, "/become", sid, "user=bob")
        bob_sid = as_bob.cookies["satchel"]
        assert bob_sid != sid and len(as_bob.all("Set-Cookie")) == 1
        assert store.load(sid) is None
        same = _get(mw, "/become", bob_sid, "user=bob")
        assert same.header("Set-Cookie") is None  # the same user: nothing to defend against
        as_carol = _get(mw, "/become", bob_sid, "user=carol")
        carol_sid = as_carol.cookies["satchel"]
        assert carol_sid not in (sid, bob_sid)
        record = store.load(carol_sid)
        assert record is not None and record.user == "carol"
        assert store.load(bob_sid) is None

    def test_logout_ends_the_session(self, store: Any) -> None:
        mw = satchel.SessionMiddleware(_identity_routes, store=store)
        sid = _get(mw, "/login", None, "user=dave").cookies["satchel"]
        assert store.load(sid) is not None
        out = _get(mw, "/logout", sid)
        assert out.cookies["satchel"] == ""
        assert store.load(sid) is None
        assert sid not in store.user_sessions("dave")

    # -- why a session ended ---------------------------------------------------------------------

    def test_ended_says_idle_or_absolute_for_a_record_the_store_still_returns(
            self, store: Any) -> None:
        # The middleware's clock runs ahead of the store's: the store still returns the record
        # (as after a write-only request, shortened timeouts or clock skew), and the policy
        # judges it dead from the record's own times.
        clock = [time.time()]
        mw = satchel.SessionMiddleware(_identity_routes, store=store, clock=lambda: clock[0],
                                       idle_timeout=600, absolute_timeout=1000)
        sid = _get(mw, "/write").cookies["satchel"]
        assert _get(mw, "/whoami", sid).body.decode().endswith("|1|False|None")  # alive
        clock[0] += 601
        idle = _get(mw, "/whoami", sid)
        assert idle.body.decode() == "None|None|True|idle"
        busy = _get(mw, "/write").cookies["satchel"]
        clock[0] += 500
        assert _get(mw, "/write", busy).body.decode().endswith("|None")  # still alive at 500
        clock[0] += 501
        assert _get(mw, "/whoami", busy).body.decode() == "None|None|True|absolute"
        assert _get(mw, "/whoami").body.decode().endswith("|None")  # no session named: None
