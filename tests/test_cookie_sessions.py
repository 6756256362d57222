"""Cookie sessions through SessionMiddleware: full request cycles with a CookieStore."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import logging
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from satchel import MemoryStore, Session, SessionMiddleware, SessionTooLarge
from satchel.errors import ConfigurationError
from satchel.ids import is_valid_id
from satchel.stores.cookie import COOKIE_LIMIT, CookieStore

SECRET = "cookie-secret-0123456789abcdef"
OLD_SECRET = "older-secret-0123456789abcdef"
T0 = 1_800_000_000.0

Handler = Callable[[Session], Any]


class Clock:
    """The time source the middleware reads (``clock=``), moved by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    environ["test.out"].append(environ["test.handler"](environ["satchel.session"]))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


class Browser:
    """Keeps the cookie the way a browser does and runs one handler per request."""

    def __init__(self, mw: SessionMiddleware, *, https: bool = False, script_name: str = "",
                 header: str | None = None) -> None:
        self.mw = mw
        self.cookie: str | None = None
        self.https = https
        self.script_name = script_name
        self.header = header
        self.set_cookie: str | None = None

    def __call__(self, handler: Handler, cookie: str | None = None) -> Any:
        out: list[Any] = []
        env: dict[str, Any] = {
            "REQUEST_METHOD": "GET", "PATH_INFO": "/", "SCRIPT_NAME": self.script_name,
            "wsgi.url_scheme": "https" if self.https else "http",
            "test.handler": handler, "test.out": out,
        }
        value = self.cookie if cookie is None else cookie
        if value is not None:
            if self.header:
                env["HTTP_" + self.header.upper().replace("-", "_")] = value
            else:
                env["HTTP_COOKIE"] = f"other=1; satchel={value}"
        got: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc: Any = None) -> Any:
            got["headers"] = headers
            return lambda data: None

        b"".join(self.mw(env, start_response))
        self.set_cookie = None
        for name, val in got["headers"]:
            if self.header and name == self.header:
                self.cookie = val or None
                self.set_cookie = val
            elif name == "Set-Cookie":
                self.set_cookie = val
                first = val.split(";", 1)[0].split("=", 1)[1]
                self.cookie = None if "Max-Age=0" in val else first
        return out[0]


def middleware(store: CookieStore | None = None, **options: Any) -> SessionMiddleware:
    return SessionMiddleware(_app, store=store or CookieStore(secret=SECRET), **options)


def setter(**values: Any) -> Handler:
    def handler(session: Session) -> None:
        for key, value in values.items():
            session[key] = value
    return handler


def snapshot(session: Session) -> dict[str, Any]:
    return dict(session)


# -- round trips -------------------------------------------------------------------------------

CODEC_VALUES: dict[str, Any] = {
    "aware": dt.datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=dt.timezone.utc),
    "naive": dt.datetime(1999, 12, 31, 12, 0),
    "date": dt.date(2000, 1, 1),
    "time": dt.time(13, 14, 15),
    "bytes": bytes(range(256)),
    "set": {1, 2, 3},
    "frozenset": frozenset({"a", "b"}),
    "tuple": (1, "two", (3.5, None)),
    "decimal": decimal.Decimal("3.14159265358979323846264338327950288"),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "nested": {"list": [{"t": (1, {2, 3})}, b"\x00\xff"], "tuple_key_map": {(1, 2): "x"},
               " t": "looks like a tag", "dec": [decimal.Decimal("-0.5")]},
    "text": "çødé ✓ \"quoted\" ; = , \\",
    "big_int": 2**80,
    "none": None,
}


@pytest.mark.parametrize("mode", ["aes-gcm", "chacha20-poly1305", "signed"])
def test_every_codec_type_round_trips(mode: str) -> None:
    browser = Browser(middleware(CookieStore(secret=SECRET, mode=mode)))
    browser(setter(**CODEC_VALUES))
    assert browser.cookie is not None and not is_valid_id(browser.cookie)
    got = browser(snapshot)
    assert got == CODEC_VALUES
    assert {k: type(v) for k, v in got.items()} == {k: type(v) for k, v in CODEC_VALUES.items()}


def test_session_id_user_and_times_travel_in_the_cookie() -> None:
    clock = Clock()
    browser = Browser(middleware(clock=clock))

    def login(session: Session) -> str:
        session["n"] = 1
        session.user = "ana"
        return session.id

    sid = browser(login)
    assert is_valid_id(sid)
    clock.now += 5
    got = browser(lambda s: (s.id, s.user, s.created, s.is_new, s["n"]))
    assert got == (sid, "ana", T0, False, 1)


def test_changes_accumulate_and_delete() -> None:
    browser = Browser(middleware())
    browser(setter(a=1, b=2))
    browser(setter(c=3))
    browser(lambda s: s.__delitem__("a"))
    browser(lambda s: s["b"].__class__)  # a read alone changes nothing
    assert browser(snapshot) == {"b": 2, "c": 3}


def test_in_place_mutation_is_sealed() -> None:
    browser = Browser(middleware())
    browser(setter(cart=[]))
    browser(lambda s: s["cart"].append("apple"))
    assert browser(snapshot) == {"cart": ["apple"]}


def test_rotate_keeps_data_and_changes_id() -> None:
    browser = Browser(middleware())
    sid = browser(lambda s: (s.__setitem__("k", "v"), s.id)[1])

    def rotate(session: Session) -> str:
        session.rotate()
        return session.id

    new = browser(rotate)
    assert new != sid and browser(lambda s: (s.id, dict(s))) == (new, {"k": "v"})


def test_invalidate_revokes_the_cookie() -> None:
    browser = Browser(middleware())
    browser(setter(k="v"))
    browser(lambda s: s.invalidate())
    assert browser.set_cookie is not None and "Max-Age=0" in browser.set_cookie
    assert browser.cookie is None
    assert browser(snapshot) == {}


# -- refusing what we did not seal ---------------------------------------------------------------

def test_tampered_cookie_reads_as_new_session(caplog: pytest.LogCaptureFixture) -> None:
    browser = Browser(middleware())
    browser(setter(role="user"))
    token = browser.cookie
    assert token is not None
    tampered = token[:10] + ("B" if token[10] != "B" else "C") + token[11:]
    caplog.set_level(logging.WARNING, logger="satchel.security")
    assert browser(lambda s: (dict(s), s.is_new), cookie=tampered) == ({}, True)
    assert caplog.records and all(tampered not in r.getMessage() for r in caplog.records)
    assert browser(lambda s: dict(s), cookie=token[:40]) == {}


def test_wrong_secret_and_rotation() -> None:
    old = Browser(middleware(CookieStore(secret=OLD_SECRET)))
    old(setter(k="kept"))
    old_cookie = old.cookie
    assert old_cookie is not None
    # Another application's secret: refused.
    assert Browser(middleware())(snapshot, cookie=old_cookie) == {}
    # Rotation: the new secret seals, the old one still opens: nobody is logged out.
    rotated = Browser(middleware(CookieStore(secret=[SECRET, OLD_SECRET])))
    rotated.cookie = old_cookie
    rotated(setter(more=1))
    assert rotated.cookie != old_cookie
    assert rotated(snapshot) == {"k": "kept", "more": 1}
    # The cookie it sealed is under the new key: the old-only deployment cannot open it.
    assert old(snapshot, cookie=rotated.cookie) == {}


# -- expiry and replay -----------------------------------------------------------------------

def test_replayed_cookie_past_idle_timeout_is_refused() -> None:
    clock = Clock()
    browser = Browser(middleware(clock=clock, idle_timeout=100, absolute_timeout=1000,
                                 touch_interval=10))
    browser(setter(k=1))
    first = browser.cookie
    clock.now = T0 + 50
    assert browser(lambda s: s["k"]) == 1  # a read after touch_interval: re-sealed, re-sent
    assert browser.set_cookie is not None and browser.cookie != first
    clock.now = T0 + 55
    browser(lambda s: s["k"])
    assert browser.set_cookie is None  # within touch_interval: nothing to send
    clock.now = T0 + 120
    assert browser(snapshot, cookie=first) == {}  # the replayed first cookie: idle too long
    assert browser(snapshot) == {"k": 1}  # the touched one is alive (last access at +50)


def test_absolute_lifetime_ends_even_a_busy_session() -> None:
    clock = Clock()
    browser = Browser(middleware(clock=clock, idle_timeout=100, absolute_timeout=300,
                                 touch_interval=10))
    browser(setter(k=1))
    for step in range(1, 4):
        clock.now = T0 + step * 90
        assert browser(lambda s: s.get("k")) == 1
    clock.now = T0 + 300
    assert browser(lambda s: (dict(s), s.is_new)) == ({}, True)


def test_persistent_cookie_max_age_follows_expiry() -> None:
    clock = Clock()
    browser = Browser(middleware(clock=clock, persistent=True, idle_timeout=600,
                                 absolute_timeout=None))
    browser(setter(k=1))
    assert browser.set_cookie is not None and "Max-Age=600" in browser.set_cookie


# -- size ------------------------------------------------------------------------------------

def _largest_fitting(browser_factory: Callable[[], Browser]) -> int:
    low, high = 0, COOKIE_LIMIT
    while low < high:
        mid = (low + high + 1) // 2
        try:
            browser_factory()(setter(v="x" * mid))
        except SessionTooLarge:
            high = mid - 1
        else:
            low = mid
    return low


@pytest.mark.parametrize(("https", "script_name", "options"), [
    (False, "", {}),
    (True, "/a/rather/long/mount/point/for/this/application", {"persistent": True,
                                                               "cookie_domain": "example.com"}),
])
def test_whole_set_cookie_header_fits_4096(https: bool, script_name: str,
                                            options: dict[str, Any]) -> None:
    mw = middleware(clock=Clock(), **options)
    largest = _largest_fitting(lambda: Browser(mw, https=https, script_name=script_name))
    assert largest > 2500
    browser = Browser(mw, https=https, script_name=script_name)
    browser(setter(v="x" * largest))
    assert browser.set_cookie is not None
    assert len(browser.set_cookie.encode()) <= COOKIE_LIMIT
    assert len(browser.set_cookie.encode()) > COOKIE_LIMIT - 8  # measured, not guessed
    assert browser(lambda s: len(s["v"])) == largest
    with pytest.raises(SessionTooLarge) as info:
        Browser(mw, https=https, script_name=script_name)(setter(v="x" * (largest + 3)))
    assert info.value.limit == COOKIE_LIMIT and info.value.size > COOKIE_LIMIT
    assert str(info.value.size) in str(info.value)


def test_spill_keeps_large_session_in_a_server_store() -> None:
    spill = MemoryStore()
    browser = Browser(middleware(CookieStore(secret=SECRET, spill=spill)))
    big = "y" * 20_000
    browser(setter(big=big, small=1))
    assert browser.set_cookie is not None and len(browser.set_cookie) <= COOKIE_LIMIT
    assert spill.count() == 1
    assert browser(snapshot) == {"big": big, "small": 1}
    browser(lambda s: s.invalidate())
    assert spill.count() == 0


# -- revocation ------------------------------------------------------------------------------

def test_revoke_user_logs_them_out_everywhere() -> None:
    store = CookieStore(secret=SECRET, revocation=MemoryStore())
    mw = middleware(store)

    def login(user: str) -> Handler:
        def handler(session: Session) -> None:
            session["who"] = user
            session.user = user
        return handler

    phone, laptop, other = Browser(mw), Browser(mw), Browser(mw)
    phone(login("ana"))
    laptop(login("ana"))
    other(login("bob"))
    store.revoke_user("ana")
    assert phone(snapshot) == {} and laptop(snapshot) == {}
    assert other(snapshot) == {"who": "bob"}
    phone(login("ana"))  # logging in again after the revocation works
    assert phone(snapshot) == {"who": "ana"}


def _logout_during_a_slow_write(mw: SessionMiddleware) -> tuple[Browser, Browser]:
    """ana logs in on a phone and a laptop; on the phone a slow request writes while a logout
    from the same phone completes; the slow request's Set-Cookie arrives last."""
    def login(session: Session) -> None:
        session["who"] = "ana"
        session.user = "ana"

    phone, laptop = Browser(mw), Browser(mw)
    phone(login)
    laptop(login)

    def slow_write(session: Session) -> None:
        session["cart"] = [1]
        phone(lambda s: s.invalidate())  # the logout lands while this request runs
        assert phone.cookie is None  # the logout's response revoked the cookie ...

    phone(slow_write)
    assert phone.cookie is not None  # ... and the slow response set the session's cookie again
    return phone, laptop


def test_with_revocation_a_logout_wins_over_a_write_in_flight() -> None:
    revocation = MemoryStore()
    phone, laptop = _logout_during_a_slow_write(
        middleware(CookieStore(secret=SECRET, revocation=revocation)))
    assert phone(lambda s: (dict(s), s.is_new, s.user)) == ({}, True, None)
    # that one session is over; ana's other sessions are not (revoke_user ends those)
    assert laptop(snapshot) == {"who": "ana"}
    # and a new login on the phone works
    phone(setter(who="ana"))
    assert phone(snapshot) == {"who": "ana"}


def test_without_revocation_a_write_in_flight_can_undo_a_logout() -> None:
    # What the README states: a cookie session's logout replaces the cookie in that browser,
    # and nothing on the server remembers it; a response still in flight sets it again.
    phone, _ = _logout_during_a_slow_write(middleware(CookieStore(secret=SECRET)))
    assert phone(snapshot) == {"who": "ana", "cart": [1]}


# -- transports and configuration --------------------------------------------------------------

def test_header_transport_carries_the_sealed_session() -> None:
    browser = Browser(middleware(transport="header"), header="X-Session-Id")
    browser(setter(k="v"))
    assert browser.cookie is not None and len(browser.cookie) > 43
    assert browser(snapshot) == {"k": "v"}


def test_querystring_transport_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        middleware(transport="querystring")


def test_server_store_still_sends_an_id() -> None:
    browser = Browser(SessionMiddleware(_app, store=MemoryStore()))
    browser(setter(k="v"))
    assert browser.cookie is not None and is_valid_id(browser.cookie)
    assert browser(snapshot) == {"k": "v"}


def test_signed_mode_keeps_integrity_but_content_is_readable() -> None:
    browser = Browser(middleware(CookieStore(secret=SECRET, mode="signed")))
    browser(setter(note="visible-to-the-client"))
    token = browser.cookie
    assert token is not None
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert b"visible-to-the-client" in raw
    forged = raw.replace(b"visible", b"VISIBLE")
    forged_token = base64.urlsafe_b64encode(forged).rstrip(b"=").decode()
    assert browser(snapshot, cookie=forged_token) == {}
    assert browser(snapshot) == {"note": "visible-to-the-client"}


# -- random cookies ----------------------------------------------------------------------------

_MW = middleware()
_COOKIE_CHARS = st.characters(min_codepoint=0x21, max_codepoint=0x7E,
                              blacklist_characters=';,"\\')


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.text(alphabet=_COOKIE_CHARS, max_size=400),
    st.binary(max_size=400).map(lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()),
    st.binary(max_size=80).map(lambda b: b.decode("latin-1")),
))
def test_random_cookie_values_never_raise_and_never_yield_data(value: str) -> None:
    security = logging.getLogger("satchel.security")
    security.disabled = True
    try:
        got = Browser(_MW)(lambda s: (dict(s), s.is_new), cookie=value)
    finally:
        security.disabled = False
    assert got == ({}, True)


def test_cookie_url_takes_the_middleware_secret_list() -> None:
    from .wsgi_util import call

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = environ["satchel.session"]
        session["n"] = session.get("n", 0) + 1
        start_response("200 OK", [])
        return [str(session["n"]).encode()]

    old = SessionMiddleware(app, store="cookie://", secret="old-secret-0123456789")
    token = call(old).cookies["satchel"]
    rotated = SessionMiddleware(
        app, store="cookie://", secret=["new-secret-0123456789", "old-secret-0123456789"])
    resp = call(rotated, cookie=f"satchel={token}")
    assert resp.body == b"2"
    assert resp.cookies["satchel"] != token  # resealed with the newest key
    new_only = SessionMiddleware(app, store="cookie://", secret="new-secret-0123456789")
    assert call(new_only, cookie=f"satchel={resp.cookies['satchel']}").body == b"3"
