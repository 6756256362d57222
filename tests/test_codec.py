"""The codecs: tagged JSON round trips every supported type; pickle only loads what we signed."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from satchel import CodecError, ConfigurationError, JSONCodec, PickleCodec

SECRET = "s" * 32

VALUES: list[Any] = [
    "text", "ünïcødé ✓", "", 0, -7, 2**70, 1.5, float("inf"), True, False, None,
    [1, "a", None], {"a": 1, "b": [1, 2]}, (1, 2, (3, 4)), {1, 2, 3}, frozenset({"x"}),
    b"\x00\xffbytes", dt.datetime(2024, 5, 6, 7, 8, 9, 123456),
    dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    dt.date(2024, 2, 29), dt.time(23, 59, 1), decimal.Decimal("3.14159265358979323846"),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    {"cart": [{"sku": uuid.uuid4(), "qty": decimal.Decimal("2"), "at": dt.date.today()}]},
    {(1, 2): "tuple key", 3: "int key"},
    {" t": "a dict that looks like a tag"}, {" di": {" t": 1}},
    [{" s": [1]}], {"": "empty key"},
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
@pytest.mark.parametrize("codec", [JSONCodec(), PickleCodec(SECRET)], ids=["json", "pickle"])
def test_round_trip_keeps_value_and_type(codec: Any, value: Any) -> None:
    text = codec.encode("k", value)
    assert isinstance(text, str)
    back = codec.decode(text)
    assert back == value
    assert type(back) is type(value)


def test_json_nan_round_trips() -> None:
    codec = JSONCodec()
    back = codec.decode(codec.encode("k", float("nan")))
    assert back != back


def test_json_refuses_unknown_types_naming_the_key() -> None:
    codec = JSONCodec()

    class Thing:
        pass

    with pytest.raises(TypeError, match="'basket'.*Thing"):
        codec.check("basket", Thing())
    with pytest.raises(TypeError, match="'basket'.*Thing"):
        codec.encode("basket", [1, {"x": Thing()}])


def test_json_refuses_circular_values() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(TypeError, match="'loop'"):
        JSONCodec().encode("loop", loop)


@pytest.mark.parametrize("text", ["", "{", '{" b": "not base64!"}', '{" dt": "never"}', "nul"])
def test_json_decode_errors_are_codec_errors(text: str) -> None:
    with pytest.raises(CodecError):
        JSONCodec().decode(text)


def test_pickle_needs_a_secret() -> None:
    with pytest.raises(ConfigurationError, match="secret"):
        PickleCodec(None)


def test_pickle_refuses_unsigned_or_foreign_payloads() -> None:
    import base64
    import pickle

    codec = PickleCodec(SECRET)
    forged = base64.urlsafe_b64encode(b"\x00" * 32 + pickle.dumps({"admin": True})).decode()
    with pytest.raises(CodecError, match="signature"):
        codec.decode(forged)
    other = PickleCodec("o" * 32).encode("k", {"admin": True})
    with pytest.raises(CodecError):
        codec.decode(other)
    with pytest.raises(CodecError):
        codec.decode("%%% not base64 %%%")


def test_pickle_accepts_older_secret_after_rotation() -> None:
    old = PickleCodec("old-secret-0123456789").encode("k", {"v": 1})
    rotated = PickleCodec(["new-secret-0123456789", "old-secret-0123456789"])
    assert rotated.decode(old) == {"v": 1}


def test_pickle_reports_unpicklable_values() -> None:
    with pytest.raises(TypeError, match="'fn'"):
        PickleCodec(SECRET).encode("fn", lambda: None)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.binary()
    | st.floats(allow_nan=False) | st.dates() | st.datetimes() | st.decimals(allow_nan=False)
    | st.uuids(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner)
    | st.tuples(inner, inner) | st.frozensets(st.integers() | st.text()),
    max_leaves=20,
)


@given(json_values)
def test_json_round_trip_property(value: Any) -> None:
    codec = JSONCodec()
    assert codec.decode(codec.encode("k", value)) == value


@given(st.text())
def test_json_decode_never_raises_anything_but_codec_error(text: str) -> None:
    try:
        JSONCodec().decode(text)
    except CodecError:
        pass


@pytest.mark.parametrize("text", ['{" di": []}', '{" di": 5}', '{" m": [[1]]}', '{" s": [[1]]}',
                                  '{" dec": "x"}', '{" u": "zz"}', '{" t": 5}', "[" * 100000,
                                  '{" b": 1}', '{" u": 5}', '{" b": "é"}', '{" dec": [1]}',
                                  '{" di": "ab"}', '{" m": "ab"}', '{" t": "ab"}', '{" s": "ab"}',
                                  '{" dt": 1}', '"\\ud800"', '["\\udfff"]'])
def test_malformed_tags_are_codec_errors(text: str) -> None:
    with pytest.raises(CodecError):
        JSONCodec().decode(text)


def test_json_decode_of_what_is_not_text_is_a_codec_error() -> None:
    for stored in (5, None, b'"text"', ["a"]):
        with pytest.raises(CodecError):
            JSONCodec().decode(stored)  # type: ignore[arg-type]


_TAG_NAMES = [" t", " s", " fs", " b", " dt", " d", " tm", " dec", " u", " m", " di", " x", "a"]
_scalars = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
            | st.sampled_from(["2024-01-01", "12:00", "00000000-0000-0000-0000-000000000000",
                               "AA==", "1.5", "\ud800"]))
_tagged_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(_TAG_NAMES), inner, max_size=1)
    | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=12,
)


@given(_tagged_json)
def test_json_decode_of_tag_shaped_documents_is_a_value_that_stores_again(doc: Any) -> None:
    import json

    codec = JSONCodec()
    try:
        value = codec.decode(json.dumps(doc))
    except CodecError:
        return
    codec.encode("k", value)  # whatever decodes can be stored again, or it must not decode


@given(st.text(st.characters() | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
               | st.sampled_from('"\\[]{} :,u0123456789abcdefABCDEF')))
def test_json_decode_of_any_text_with_surrogates_is_a_value_or_a_codec_error(text: str) -> None:
    try:
        JSONCodec().decode(text)
    except CodecError:
        pass


def test_authentic_pickle_that_cannot_be_loaded_is_a_codec_error() -> None:
    import base64
    import hashlib
    import hmac
    import pickle

    from satchel import Secret

    key = Secret(SECRET).derive("satchel.pickle")[0]
    payload = pickle.dumps(1)[:-3]  # truncated: pickle.loads raises its own errors
    sig = hmac.new(key, payload, hashlib.sha256).digest()
    with pytest.raises(CodecError):
        PickleCodec(SECRET).decode(base64.urlsafe_b64encode(sig + payload).decode())
    with pytest.raises(CodecError):
        PickleCodec(SECRET).decode(5)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["\ud800", "a\udfffb", ["ok", "\ud83d"], {"k": "\udc80"},
                                   {"\ud800": 1}, ("\ud800",)])
def test_json_refuses_lone_surrogates_naming_the_key(value: Any) -> None:
    codec = JSONCodec()
    with pytest.raises(ValueError, match="'cart'.*surrogate"):
        codec.encode("cart", value)
    if type(value) is str:  # the value itself is refused at assignment
        with pytest.raises(ValueError, match="'cart'.*surrogate"):
            codec.check("cart", value)
    assert codec.decode(codec.encode("k", "\U0001f600 ok")) == "\U0001f600 ok"  # a real pair
