"""CookieStore on its own: sealing, opening, refusing, rotation, size, spill and revocation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import time

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import satchel
from satchel import MemoryStore, SessionMeta, SessionTooLarge
from satchel.errors import ConfigurationError
from satchel.ids import new_id
from satchel.keys import derive_key
from satchel.logs import security_limit
from satchel.stores.base import is_client_side
from satchel.stores.cookie import COOKIE_LIMIT, CookieStore

OLD = "old-secret-0123456789abcdef"
NEW = "new-secret-0123456789abcdef"
OTHER = "other-secret-0123456789abcdef"
MODES = ["aes-gcm", "chacha20-poly1305", "signed"]
NOW = 1_700_000_000.0


def meta(now: float = NOW, ttl: float = 3600, user: str | None = None) -> SessionMeta:
    return SessionMeta(created=now, accessed=now, expires=now + ttl, user=user)


def unb64(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


DATA = {"a": '"x"', "n": "42", "ünï": '"çødé ✓"'}


@pytest.mark.parametrize("mode", MODES)
def test_seal_open_round_trip(mode: str) -> None:
    store = CookieStore(secret=NEW, mode=mode)
    sid = new_id()
    token = store.seal(sid, DATA, meta(user="ana"))
    opened = store.open(token, NOW + 1)
    assert opened is not None
    got_sid, record = opened
    assert got_sid == sid
    assert record.data == DATA
    assert (record.created, record.accessed, record.expires) == (NOW, NOW, NOW + 3600)
    assert record.user == "ana"
    assert is_client_side(store) and not is_client_side(MemoryStore())


def test_nonces_are_random_so_tokens_differ() -> None:
    store = CookieStore(secret=NEW)
    sid = new_id()
    tokens = {store.seal(sid, DATA, meta()) for _ in range(50)}
    assert len(tokens) == 50
    nonces = {unb64(t)[5:17] for t in tokens}
    assert len(nonces) == 50


def test_encrypted_content_is_not_readable_but_signed_is() -> None:
    secret_value = '"the-password-is-swordfish"'
    sealed = unb64(CookieStore(secret=NEW).seal(new_id(), {"k": secret_value}, meta()))
    assert b"swordfish" not in sealed
    signed = unb64(CookieStore(secret=NEW, mode="signed").seal(new_id(), {"k": secret_value},
                                                               meta()))
    assert b"swordfish" in signed  # the documented price of the signed mode


@pytest.mark.parametrize("mode", MODES)
def test_every_bit_flip_is_refused(mode: str, caplog: pytest.LogCaptureFixture,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # Every refusal warns; the log's flood limit (tests/test_logs.py) is lifted to count them.
    monkeypatch.setattr(security_limit, "per_window", 10**6)
    store = CookieStore(secret=NEW, mode=mode)
    raw = unb64(store.seal(new_id(), {"k": "1"}, meta()))
    caplog.set_level(logging.WARNING, logger="satchel.security")
    for position in range(len(raw)):
        for bit in range(8):
            flipped = bytearray(raw)
            flipped[position] ^= 1 << bit
            assert store.open(b64(bytes(flipped)), NOW) is None, (position, bit)
    assert len(caplog.records) == len(raw) * 8


@pytest.mark.parametrize("mode", MODES)
def test_truncated_and_extended_tokens_are_refused(mode: str) -> None:
    store = CookieStore(secret=NEW, mode=mode)
    token = store.seal(new_id(), DATA, meta())
    for cut in range(len(token)):
        assert store.open(token[:cut], NOW) is None
    assert store.open(token + "A", NOW) is None
    assert store.open(token + "AAAA", NOW) is None
    raw = unb64(token)
    assert store.open(b64(raw[:-1]), NOW) is None
    assert store.open(b64(raw + b"\x00"), NOW) is None


def test_text_level_changes_are_refused() -> None:
    store = CookieStore(secret=NEW)
    token = store.seal(new_id(), DATA, meta())
    assert store.open(token, NOW) is not None
    alphabet = "AQgw-_"
    for i in range(len(token)):
        for c in alphabet:
            if c != token[i]:
                # Includes the last character, whose low bits carry no data: still refused.
                assert store.open(token[:i] + c + token[i + 1:], NOW) is None
    assert store.open(token + "=", NOW) is None
    for foreign in "+/= .\x00é":  # the standard alphabet, padding, anything else
        assert store.open(token[:4] + foreign + token[5:], NOW) is None
    # Padding, even correct padding, and whitespace that a lenient decoder would skip.
    unpadded = [store.seal(new_id(), {"k": "x" * n}, meta()) for n in range(3)]
    for short in (t for t in unpadded if len(t) % 4):  # two of any three lengths
        assert store.open(short, NOW) is not None
        assert store.open(short + "=" * (-len(short) % 4), NOW) is None
    for blank in (" ", "\n", "\r\n", "\t\t", "   ", "\n\n\n\n"):
        for i in (0, 7, len(token) // 2, len(token) - 1, len(token)):
            assert store.open(token[:i] + blank + token[i:], NOW) is None, (i, blank)


def test_over_long_value_is_refused_before_any_crypto(caplog: pytest.LogCaptureFixture) -> None:
    store = CookieStore(secret=NEW)
    caplog.set_level(logging.WARNING, logger="satchel.security")
    assert store.open("A" * (COOKIE_LIMIT + 1), NOW) is None
    assert store.open("A" * 10_000_000, NOW) is None
    assert all("over-long" in r.getMessage() for r in caplog.records)


def test_refusal_logs_no_cookie_value(caplog: pytest.LogCaptureFixture) -> None:
    store = CookieStore(secret=NEW)
    token = store.seal(new_id(), DATA, meta())
    bad = token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB")
    caplog.set_level(logging.DEBUG)
    assert store.open(bad, NOW) is None
    security = [r for r in caplog.records if r.name == "satchel.security"]
    assert security and security[0].levelno == logging.WARNING
    for record in caplog.records:
        text = record.getMessage()
        assert bad not in text and bad[:20] not in text and NEW not in text


def test_wrong_secret_is_refused() -> None:
    token = CookieStore(secret=NEW).seal(new_id(), DATA, meta())
    assert CookieStore(secret=OTHER).open(token, NOW) is None


def test_rotation_old_opens_new_seals() -> None:
    old_store = CookieStore(secret=OLD)
    old_token = old_store.seal(new_id(), DATA, meta())
    rotated = CookieStore(secret=[NEW, OLD])
    opened = rotated.open(old_token, NOW)
    assert opened is not None and opened[1].data == DATA
    new_token = rotated.seal(opened[0], opened[1].data, meta())
    # Sealed with the newest key: a store that only knows the old key refuses it.
    assert old_store.open(new_token, NOW) is None
    assert CookieStore(secret=NEW).open(new_token, NOW) is not None
    # Once the old key is retired, its cookies are refused as sealed with an unknown key.
    assert CookieStore(secret=[NEW]).open(old_token, NOW) is None


def test_unknown_key_is_refused_without_trying(caplog: pytest.LogCaptureFixture) -> None:
    token = CookieStore(secret=OTHER).seal(new_id(), DATA, meta())
    caplog.set_level(logging.WARNING, logger="satchel.security")
    assert CookieStore(secret=[NEW, OLD]).open(token, NOW) is None
    assert "unknown key" in caplog.records[0].getMessage()


@pytest.mark.parametrize(("sealer", "opener"), [("signed", "aes-gcm"), ("aes-gcm", "signed"),
                                                ("aes-gcm", "chacha20-poly1305")])
def test_other_modes_are_refused(sealer: str, opener: str) -> None:
    token = CookieStore(secret=NEW, mode=sealer).seal(new_id(), DATA, meta())
    assert CookieStore(secret=NEW, mode=opener).open(token, NOW) is None


def test_signed_token_with_forged_payload_is_refused() -> None:
    store = CookieStore(secret=NEW, mode="signed")
    raw = unb64(store.seal(new_id(), {"role": '"user"'}, meta()))
    forged = raw.replace(b'"user"', b'"root"')
    assert forged != raw
    assert store.open(b64(forged), NOW) is None


def test_expired_cookie_is_refused() -> None:
    store = CookieStore(secret=NEW)
    token = store.seal(new_id(), DATA, meta(ttl=100))
    assert store.open(token, NOW + 99.9) is not None
    assert store.open(token, NOW + 100) is None


def test_size_limit_counts_overhead_and_raises() -> None:
    store = CookieStore(secret=NEW)
    sid = new_id()
    token = store.seal(sid, {"k": '"' + "x" * 2000 + '"'}, meta())
    with pytest.raises(SessionTooLarge) as info:
        store.seal(sid, {"k": '"' + "x" * 2000 + '"'}, meta(), overhead=COOKIE_LIMIT - 10)
    assert info.value.limit == COOKIE_LIMIT
    assert info.value.size == COOKIE_LIMIT - 10 + len(token)
    assert str(info.value.size) in str(info.value) and "4096" in str(info.value)
    assert "x" * 20 not in str(info.value)


def test_spill_keeps_large_sessions_server_side() -> None:
    spill = MemoryStore()  # judges expiry by the real clock
    now = time.time()
    store = CookieStore(secret=NEW, spill=spill)
    sid = new_id()
    big = {"k": '"' + "y" * 10_000 + '"', "small": "1"}
    token = store.seal(sid, big, meta(now), overhead=60)
    assert len(token) + 60 <= COOKIE_LIMIT
    assert spill.count() == 1
    opened = store.open(token, now)
    assert opened is not None and opened[0] == sid and opened[1].data == big
    assert store.delete(sid) is True
    assert store.open(token, now) is None  # the reference outlives nothing it points at
    small = store.seal(sid, {"k": "1"}, meta(now))
    assert spill.count() == 0 and store.open(small, now) is not None


def test_revocation_generation() -> None:
    rev = MemoryStore()
    store = CookieStore(secret=NEW, revocation=rev)
    ana = store.seal(new_id(), DATA, meta(user="ana"))
    bob = store.seal(new_id(), DATA, meta(user="bob"))
    anon = store.seal(new_id(), DATA, meta())
    assert store.revoke_user("ana") == 1
    assert store.open(ana, NOW) is None
    assert store.open(bob, NOW) is not None
    assert store.open(anon, NOW) is not None
    again = store.seal(new_id(), DATA, meta(user="ana"))
    assert store.open(again, NOW) is not None
    # Rotating the secret does not forget who was revoked.
    rotated = CookieStore(secret=[OTHER, NEW], revocation=rev)
    assert rotated.open(ana, NOW) is None and rotated.open(again, NOW) is not None
    assert store.delete_user("ana") == 0 and store.open(again, NOW) is None


def test_a_logged_out_session_is_refused_until_none_of_its_cookies_can_live() -> None:
    from satchel.stores.cookie import StoreRevocations

    rev = MemoryStore()
    store = CookieStore(secret=NEW, revocation=rev)
    sid, other = new_id(), new_id()
    before = store.seal(sid, DATA, meta(user="ana"))
    mine = store.seal(other, DATA, meta(user="ana"))
    store.end(sid, "ana", time.time() + 3600)
    after = store.seal(sid, DATA, meta(user="ana"))  # resealed by a request in flight
    assert store.open(before, NOW) is None and store.open(after, NOW) is None
    assert store.open(mine, NOW) is not None  # only that session of ana's is over
    # a refusal whose moment has passed is dropped at the next logout of that user
    store.end(new_id(), "ana", time.time() - 1)
    store.end(new_id(), "ana", time.time() + 60)
    record = rev.load(StoreRevocations._id("ana"))
    assert record is not None
    assert sum(k.startswith("e:") for k in record.data) == 2 and f"e:{sid}" in record.data
    # without a revocation store a logout drops nothing it cannot: no error, no refusal
    plain = CookieStore(secret=NEW)
    token = plain.seal(sid, DATA, meta(user="ana"))
    plain.end(sid, "ana", time.time() + 60)
    assert plain.open(token, NOW) is not None


def test_revoke_without_revocation_store_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        CookieStore(secret=NEW).revoke_user("ana")


def test_keys_are_rfc5869_hkdf() -> None:
    # Secret.derive is HKDF-SHA256 with salt b"satchel": the same bytes as cryptography's HKDF.
    for length in (4, 32, 64):
        expected = HKDF(algorithm=hashes.SHA256(), length=length, salt=b"satchel",
                        info=b"satchel.cookie.aes-gcm").derive(NEW.encode())
        assert derive_key(NEW.encode(), "satchel.cookie.aes-gcm", length) == expected


def test_open_store_url_options() -> None:
    store = satchel.open_store("cookie://?mode=signed&limit=3000", secret=NEW)
    assert isinstance(store, CookieStore) and store.mode == "signed" and store.limit == 3000
    with satchel.open_store("cookie://?spill=memory%3A%2F%2F", secret=NEW) as spilled:
        assert isinstance(spilled, CookieStore)
        now = time.time()
        token = spilled.seal(new_id(), {"k": '"' + "z" * 5000 + '"'}, meta(now))
        assert spilled.open(token, now) is not None


@pytest.mark.parametrize("url", ["cookie://host", "cookie:///path", "cookie://?secret=abc",
                                 "cookie://?mode=rot13", "cookie://?limit=x",
                                 "cookie://?limit=10", "cookie://?bogus=1",
                                 "cookie://?spill=cookie%3A%2F%2F"])
def test_open_store_rejects_bad_urls(url: str) -> None:
    with pytest.raises(ConfigurationError):
        satchel.open_store(url, secret=NEW)


def test_secret_is_required_and_never_shown() -> None:
    with pytest.raises(ConfigurationError):
        CookieStore()
    with pytest.raises(ConfigurationError):
        CookieStore(secret="short")
    assert NEW not in repr(CookieStore(secret=NEW))


def test_server_store_surface_is_inert() -> None:
    store = CookieStore(secret=NEW)
    sid = new_id()
    assert store.load(sid) is None and store.exists(sid) is False
    assert store.touch(sid, NOW, NOW + 1) is False and store.delete(sid) is False
    assert store.count() == 0 and list(store.ids()) == [] and store.purge() == 0
    with pytest.raises(NotImplementedError):
        store.save(sid, satchel.Changes(set={}), meta())


def test_largest_session_that_fits_in_one_cookie() -> None:
    store = CookieStore(secret=NEW)
    # "satchel=; Path=/; HttpOnly; SameSite=Lax": the default cookie's name and attributes.
    overhead = len("satchel=; Path=/; HttpOnly; SameSite=Lax")
    now = time.time()
    low, high = 0, COOKIE_LIMIT
    while low < high:
        mid = (low + high + 1) // 2
        try:
            store.seal(new_id(), {"v": json.dumps("x" * mid)}, meta(now), overhead)
        except SessionTooLarge:
            high = mid - 1
        else:
            low = mid
    assert low >= 2800  # most of the 4096 bytes carry data


# -- random input never raises and never yields data --------------------------------------------

_STORE = CookieStore(secret=NEW)
_SIGNED = CookieStore(secret=NEW, mode="signed")
_HEADERS = [unb64(s.seal(new_id(), {}, meta()))[:5] for s in (_STORE, _SIGNED)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300).map(b64),
    st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
    st.tuples(st.sampled_from(_HEADERS), st.binary(max_size=300)).map(lambda p: b64(p[0] + p[1])),
))
def test_random_values_never_open(value: str) -> None:
    logging.getLogger("satchel.security").disabled = True
    try:
        assert _STORE.open(value, NOW) is None
        assert _SIGNED.open(value, NOW) is None
    finally:
        logging.getLogger("satchel.security").disabled = False


# -- the payload: a JSON head, then the keys and values as they are --------------------------------

SID = new_id()
HEAD = f'["{SID}",1700000000000,1700000000000,1700003600000,'


def by_hand(payload: str | bytes, mode: str = "signed") -> str:
    """A token sealed outside the store: authentic, whatever its payload says."""
    plain = payload.encode() if isinstance(payload, str) else payload
    header = bytes([{"aes-gcm": 1, "signed": 3}[mode]])
    header += derive_key(NEW.encode(), "satchel.cookie.key-hint", 4)
    key = derive_key(NEW.encode(), f"satchel.cookie.{mode}")
    if mode == "signed":
        return b64(header + plain + hmac.new(key, header + plain, hashlib.sha256).digest())
    nonce = os.urandom(12)
    return b64(header + nonce + AESGCM(key).encrypt(nonce, plain, header))


def signed_payload(store: CookieStore, data: dict[str, str], user: str | None) -> bytes:
    """The plaintext of a signed-mode token: between the 5-byte header and the 32-byte MAC."""
    return unb64(store.seal(SID, data, meta(user=user)))[5:-32]


def test_values_travel_unescaped_after_the_head() -> None:
    store = CookieStore(secret=NEW, mode="signed")
    cart = json.dumps([{"sku": "A1", "note": 'say "hi" \\o/'}, "çødé ✓"], ensure_ascii=False)
    payload = signed_payload(store, {"cart": cart, "n": "1"}, "ana")
    assert payload == f'{HEAD}"ana",2,0]\x00cart\x00{cart}\x00n\x001'.encode()


@pytest.mark.parametrize("mode", MODES)
def test_keys_and_values_holding_nul_round_trip(mode: str) -> None:
    store = CookieStore(secret=NEW, mode=mode)
    data = {"a\x00b": '"x"', "c": "\x00", "": "", "\x00": "\x00\x00"}
    opened = store.open(store.seal(SID, data, meta(user="u\x00v")), NOW)
    assert opened is not None
    assert opened[1].data == data and opened[1].user == "u\x00v"
    if mode == "signed":  # the data went into the head, where JSON escapes every NUL
        assert b"\x00" not in signed_payload(store, data, None)


@pytest.mark.parametrize(("payload", "data"), [
    (HEAD + 'null,1,0]\x00k\x00"v"', {"k": '"v"'}),
    (HEAD + "null,0,0]", {}),
    (HEAD + 'null,2,0]\x00a\x00\x00\x00', {"a": "", "": ""}),
    # The layout of earlier releases: the values as a JSON object in the head.
    (HEAD + 'null,{"k":"\\"v\\"","\\u0000":""},0]', {"k": '"v"', "\x00": ""}),
])
@pytest.mark.parametrize("mode", ["aes-gcm", "signed"])
def test_payloads_sealed_elsewhere_open(payload: str, data: dict[str, str], mode: str) -> None:
    opened = CookieStore(secret=NEW, mode=mode).open(by_hand(payload, mode), NOW)
    assert opened is not None
    assert opened[0] == SID and opened[1].data == data
    assert (opened[1].created, opened[1].expires) == (NOW, NOW + 3600)


@pytest.mark.parametrize("payload", [
    HEAD + "null,2,0]\x00k\x00v",  # fewer pairs than announced
    HEAD + "null,0,0]\x00k\x00v",  # more
    HEAD + "null,1,0]\x00k",  # a key without its value
    HEAD + "null,1,0]\x00k\x00v\x00",
    HEAD + "null,-1,0]",
    HEAD + "null,true,0]\x00k\x00v",
    HEAD + "null,1.0,0]\x00k\x00v",
    HEAD + 'null,"1",0]\x00k\x00v',
    HEAD + "null,2,0]\x00k\x00v\x00k\x00w",  # a key twice
    HEAD + "null,null,0]\x00k\x00v",  # spilled, yet values follow
    HEAD + 'null,{"k":"v"},0]\x00k\x00v',
    HEAD + 'null,{"k":1},0]',
    HEAD + 'null,["k","v"],0]',
    HEAD + "null,1,0] \x00k\x00v",  # anything around the head
    " " + HEAD + "null,1,0]\x00k\x00v",
    HEAD + "null,1,0]x\x00k\x00v",
    HEAD + "null,1,0,0]\x00k\x00v",
    HEAD + 'null,0,"0"]',
    HEAD + "5,0,0]",
    HEAD.replace("1700000000000,", "1700000000000.0,", 1) + "null,0,0]",
    HEAD.replace(SID, SID[:-1]) + "null,0,0]",
    '{"k":"v"}', "", "\x00", "[]",
    HEAD.encode() + b'null,1,0]\x00k\x00\xff',  # not UTF-8
])
def test_authentic_but_malformed_payloads_are_refused(
    payload: str | bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="satchel.security")
    assert CookieStore(secret=NEW, mode="signed").open(by_hand(payload), NOW) is None
    assert [r.getMessage() for r in caplog.records] == [
        "refused a session cookie: authentic but unreadable payload"
    ]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.text(max_size=12), st.text(max_size=40), max_size=8),
       st.one_of(st.none(), st.text(max_size=12)))
def test_any_keys_and_values_round_trip(data: dict[str, str], user: str | None) -> None:
    for store in (_STORE, _SIGNED):
        opened = store.open(store.seal(SID, data, meta(user=user)), NOW)
        assert opened is not None
        assert opened[0] == SID and opened[1].data == data and opened[1].user == user


def test_ended_says_why_a_cookie_session_died() -> None:
    from typing import Any
    from urllib.parse import parse_qsl

    from satchel import SessionMiddleware

    from .wsgi_util import call

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = environ["satchel.session"]
        query = dict(parse_qsl(environ["QUERY_STRING"]))
        if "user" in query:
            session.login(query["user"])
        if "out" in query:
            session.logout()
        start_response("200 OK", [])
        return [f"{session.user}|{session.is_new}|{session.ended}".encode()]

    clock = [time.time()]
    store = CookieStore(secret=NEW, revocation=MemoryStore())
    mw = SessionMiddleware(app, store=store, clock=lambda: clock[0], idle_timeout=600,
                           absolute_timeout=1000)

    def login(user: str) -> str:
        return call(mw, query=f"user={user}").cookies["satchel"]

    def ended(token: str) -> str:
        return call(mw, cookie=f"satchel={token}").body.decode()

    token = login("ann")
    assert ended(token) == "ann|False|None"
    clock[0] += 601
    assert ended(token) == "None|True|idle"  # the sealed times tell
    clock[0] += 400
    assert ended(token) == "None|True|absolute"
    token = login("ann")
    assert call(mw, cookie=f"satchel={token}", query="out=1").cookies["satchel"] == ""
    assert ended(token) == "None|True|logged_out"  # the old cookie, replayed
    token = login("bob")
    store.revoke_user("bob")
    assert ended(token) == "None|True|revoked"
