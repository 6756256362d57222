"""Property tests over everything a client controls: the Cookie header, the query string, an id
header, the id itself, the query-string redirect, stored values, and sealed cookies.

The properties: no input raises anything but satchel's documented errors, and no input yields
data the server did not write.  Each test has a fixed ``max_examples`` and is derandomized, so
the suite's time stays bounded and a failure reproduces.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from satchel import SessionMeta
from satchel.codec import CodecError, JSONCodec, PickleCodec
from satchel.ids import ID_LENGTH, is_valid_id, mint_id, minted_age, new_id
from satchel.manager import SessionManager
from satchel.stores.cookie import CookieStore
from satchel.transport import CookieTransport, HeaderTransport, QueryTransport

from .harness import Harness

# ``SATCHEL_FUZZ_LONG=1``: the long mode, 5,000 examples per property.
EXAMPLES = 5000 if os.environ.get("SATCHEL_FUZZ_LONG") == "1" else 400
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])
NOW = 1_700_000_000.0
SECRET = "fuzz-secret-0123456789abcdef"
ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

# Text that looks like what arrives: header-ish characters, the separators the parsers split on,
# quotes, percent signs, non-ASCII and control characters.
_ALPHABET = st.sampled_from(list(ID_CHARS + ";=,\"' %&+#?/\\\t\r\n\x00\x7fé☃"))
header_text = st.one_of(st.text(max_size=200), st.text(_ALPHABET, max_size=200))
ids = st.binary(min_size=32, max_size=32).map(
    lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii"))
near_ids = st.one_of(
    st.text(st.sampled_from(list(ID_CHARS)), min_size=ID_LENGTH - 2, max_size=ID_LENGTH + 2),
    st.text(_ALPHABET, min_size=ID_LENGTH, max_size=ID_LENGTH),
)


@pytest.fixture(autouse=True)
def _quiet_security_log() -> Iterator[None]:
    """Refusals warn on ``satchel.security`` by design; thousands of them are noise here."""
    logger = logging.getLogger("satchel.security")
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = False


# -- the Cookie header ----------------------------------------------------------------------------

COOKIE = CookieTransport("satchel")


@FUZZ
@given(header_text)
def test_cookie_header_never_raises(raw: str) -> None:
    value = COOKIE.read(raw)
    assert value is None or (isinstance(value, str) and ";" not in value and value in raw)


@FUZZ
@given(header_text, ids, header_text)
def test_cookie_header_finds_our_cookie_among_noise(before: str, sid: str, after: str) -> None:
    """Noise around a well-formed ``satchel=<id>`` never makes the parser return another id
    unless the noise itself held an earlier ``satchel=`` pair."""
    raw = f"{before}; satchel={sid}; {after}"
    value = COOKIE.read(raw)
    assert value is not None
    if "satchel=" not in before:
        assert value == sid


# -- the query string and the id header ----------------------------------------------------------

QUERY = QueryTransport()
HEADER = HeaderTransport()


@FUZZ
@given(header_text)
def test_query_and_header_reads_never_raise(raw: str) -> None:
    for value in (QUERY.read(raw), HEADER.read(raw)):
        assert value is None or isinstance(value, str)


@FUZZ
@given(header_text, ids)
def test_query_read_finds_the_id(noise: str, sid: str) -> None:
    value = QUERY.read(f"satchel_session={sid}&{noise}")
    assert value == sid


# -- id validation ---------------------------------------------------------------------------------

MANAGER = SessionManager(strict=True, mint_key=b"k" * 32)


@FUZZ
@given(st.one_of(header_text, near_ids, ids))
def test_client_id_passes_only_the_exact_shape(raw: str) -> None:
    got = MANAGER.client_id(raw)
    if got is not None:
        assert got == raw and len(got) == ID_LENGTH and set(got) <= set(ID_CHARS)
    assert (got is not None) == is_valid_id(raw)


@FUZZ
@given(st.one_of(near_ids, ids), st.floats(0, 2**33, allow_nan=False))
def test_only_minted_ids_are_recognised(raw: str, now: float) -> None:
    if is_valid_id(raw):
        assert minted_age(raw, b"k" * 32, now) is None  # random ids carry no valid tag


@FUZZ
@given(st.integers(0, ID_LENGTH - 1), st.sampled_from(list(ID_CHARS)))
def test_a_minted_id_changed_anywhere_is_not_recognised(at: int, char: str) -> None:
    key = b"k" * 32
    minted = mint_id(key, NOW)
    changed = minted[:at] + char + minted[at + 1:]
    age = minted_age(changed, key, NOW)
    assert (age is not None) == (changed == minted)


@FUZZ
@given(st.one_of(header_text, near_ids))
def test_any_raw_id_through_the_engine_is_a_fresh_or_empty_session(raw: str) -> None:
    harness = Harness()
    stored = harness.new_session(secret_of_another="theirs")
    session = harness.request(raw)
    if raw != stored:
        assert "secret_of_another" not in session
    harness.finish(session)


# -- the query-string redirect -------------------------------------------------------------------

latin1_paths = st.text(st.characters(max_codepoint=0xFF), max_size=80)


@FUZZ
@given(latin1_paths, latin1_paths, header_text, ids)
def test_redirect_stays_on_this_origin(script: str, path: str, query: str, sid: str) -> None:
    location = QUERY.redirect_location(script, path, query, sid)
    assert location.startswith("/") and not location.startswith(("//", "/\\"))
    assert all(32 < ord(c) < 127 for c in location)  # no space, control or raw non-ASCII
    parts = urlsplit(location)
    assert parts.scheme == "" and parts.netloc == ""
    found = [v for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k == QUERY.param]
    assert found == [sid]


# -- the codecs -----------------------------------------------------------------------------------

JSON = JSONCodec()
PICKLE = PickleCodec(SECRET)
values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20),
              st.binary(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)


def _decodes_or_codec_error(codec: Any, text: str) -> tuple[bool, Any]:
    try:
        return True, codec.decode(text)
    except CodecError:
        return False, None


@FUZZ
@given(st.one_of(header_text, values.map(lambda v: JSON.encode("k", v))))
def test_json_decode_raises_only_codec_error(text: str) -> None:
    _decodes_or_codec_error(JSON, text)


def _mutate(token: str, data: st.DataObject) -> str:
    kind = data.draw(st.sampled_from(["flip", "cut", "insert", "replace"]))
    if not token:
        return token + "A"
    at = data.draw(st.integers(0, len(token) - 1))
    if kind == "cut":
        return token[:at]
    if kind == "insert":
        return token[:at] + data.draw(_ALPHABET) + token[at:]
    if kind == "replace":
        return token[:at] + data.draw(st.sampled_from(list(ID_CHARS))) + token[at + 1:]
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    bit = data.draw(st.integers(0, len(raw) * 8 - 1))
    raw[bit // 8] ^= 1 << (bit % 8)
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode("ascii")


@FUZZ
@given(values, st.data())
def test_mutated_pickle_is_never_unpickled(value: Any, data: st.DataObject) -> None:
    """A signed pickle changed anywhere is refused, or (a mutation the base64 decoder
    ignores) still decodes to exactly the value that was signed."""
    text = PICKLE.encode("k", value)
    ok, got = _decodes_or_codec_error(PICKLE, _mutate(text, data))
    if ok:
        assert got == value


@FUZZ
@given(header_text)
def test_pickle_decode_of_any_text_is_refused(text: str) -> None:
    ok, _ = _decodes_or_codec_error(PICKLE, text)
    assert not ok


# -- cookie sealing -------------------------------------------------------------------------------

STORES = {mode: CookieStore(secret=SECRET, mode=mode)
          for mode in ("aes-gcm", "chacha20-poly1305", "signed")}
OTHER_KEY = CookieStore(secret="another-secret-0123456789abcdef")


def _meta() -> SessionMeta:
    return SessionMeta(created=NOW, accessed=NOW, expires=NOW + 3600, user=None)


@FUZZ
@given(st.sampled_from(sorted(STORES)),
       st.dictionaries(st.text(max_size=10), st.text(max_size=30), max_size=5), ids, st.data())
def test_mutated_cookie_opens_to_nothing_or_to_what_was_sealed(
        mode: str, data_in: dict[str, str], sid: str, data: st.DataObject) -> None:
    store = STORES[mode]
    token = store.seal(sid, data_in, _meta())
    mutated = _mutate(token, data)
    opened = store.open(mutated, NOW + 1)
    if opened is not None:
        assert mutated == token  # one token, one spelling: only the unchanged value opens
        assert opened[0] == sid and opened[1].data == data_in
    for other_mode, other in STORES.items():  # never across modes
        if other_mode != mode:
            assert other.open(mutated, NOW + 1) is None
    assert OTHER_KEY.open(mutated, NOW + 1) is None


@FUZZ
@given(st.sampled_from(sorted(STORES)), st.data())
def test_spliced_cookies_open_to_nothing(mode: str, data: st.DataObject) -> None:
    """Halves of two authentic cookies, joined, are not a cookie."""
    store = STORES[mode]
    first = store.seal(new_id(), {"who": '"first"'}, _meta())
    second = store.seal(new_id(), {"who": '"second"'}, _meta())
    at = data.draw(st.integers(1, min(len(first), len(second)) - 1))
    spliced = first[:at] + second[at:]
    opened = store.open(spliced, NOW + 1)
    assert opened is None or spliced in (first, second)
