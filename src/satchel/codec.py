"""Values <-> text: how one session value is stored.

Each session key is encoded on its own, so a store can keep keys apart (a Redis hash field, a
SQL row) and a save sends only the keys that changed.

:class:`JSONCodec` (the default) is plain JSON with tags for the types JSON lacks.  A tag is a
one-key object whose key starts with a space (``{" dt": "2024-01-01T00:00:00"}``), a shape that
ordinary data escapes with ``" di"``.  :class:`PickleCodec` stores any picklable object, and only
ever unpickles text that carries a valid HMAC-SHA256 made with the application's secret.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import decimal
import hashlib
import hmac
import json
import pickle
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from .errors import ConfigurationError
from .keys import Secret, SecretLike

__all__ = ["Codec", "CodecError", "JSONCodec", "PickleCodec"]


class CodecError(ValueError):
    """Stored text could not be decoded (corrupt, or signed with an unknown key)."""


class Codec(Protocol):
    """Turns one session value into text and back."""

    name: str

    def check(self, key: str, value: Any) -> None:
        """Cheap check at assignment: ``TypeError`` naming ``key`` for a never-storable value."""

    def encode(self, key: str, value: Any) -> str:
        """Encode ``value``; raise ``TypeError`` naming ``key`` if it cannot be represented."""

    def decode(self, text: str) -> Any:
        """Decode text made by :meth:`encode`; raise :class:`CodecError` if it is not valid."""


# -- JSON with tags ----------------------------------------------------------------------------

_JSON_DIRECT = frozenset({str, int, float, bool, type(None)})
_encode_str: Callable[[str], str] = json.encoder.encode_basestring
_SUPPORTED_TYPES = frozenset(
    {str, int, float, bool, type(None), list, dict, tuple, set, frozenset, bytes,
     _dt.datetime, _dt.date, _dt.time, decimal.Decimal, uuid.UUID}
)
_SUPPORTED_NAMES = (
    "str, int, float, bool, None, list, dict, tuple, set, frozenset, bytes, "
    "datetime, date, time, Decimal, UUID"
)


class _Unsupported(TypeError):
    def __init__(self, value: object) -> None:
        super().__init__(type(value).__name__)


def _tag(value: Any) -> Any:
    """Return a JSON-ready structure for ``value``; tagged where JSON would lose the type."""
    cls = type(value)
    if cls in _JSON_DIRECT:
        return value
    if cls is list:
        return [_tag(v) for v in value]
    if cls is dict:
        if all(type(k) is str for k in value):
            out = {k: _tag(v) for k, v in value.items()}
            if len(out) == 1:
                ((only, inner),) = out.items()
                if only in _TAGS:
                    # Escape a dict that looks like a tag; decoding runs innermost-first, so
                    # the key goes in a list where it cannot be read as a tag itself.
                    return {" di": [only, inner]}
            return out
        return {" m": [[_tag(k), _tag(v)] for k, v in value.items()]}
    if cls is tuple:
        return {" t": [_tag(v) for v in value]}
    if cls is set:
        return {" s": [_tag(v) for v in value]}
    if cls is frozenset:
        return {" fs": [_tag(v) for v in value]}
    if cls is bytes:
        return {" b": base64.b64encode(value).decode("ascii")}
    if cls is _dt.datetime:
        return {" dt": value.isoformat()}
    if cls is _dt.date:
        return {" d": value.isoformat()}
    if cls is _dt.time:
        return {" tm": value.isoformat()}
    if cls is decimal.Decimal:
        return {" dec": str(value)}
    if cls is uuid.UUID:
        return {" u": str(value)}
    raise _Unsupported(value)


def _untag_pairs(pairs: list[list[Any]]) -> dict[Any, Any]:
    # Inner tags are decoded first (object_hook runs innermost-out), so tuple keys are tuples.
    return {k: v for k, v in pairs}


_TAGS: dict[str, Callable[[Any], Any]] = {
    " t": tuple,
    " s": set,
    " fs": frozenset,
    " b": lambda v: base64.b64decode(v.encode("ascii"), validate=True),
    " dt": _dt.datetime.fromisoformat,
    " d": _dt.date.fromisoformat,
    " tm": _dt.time.fromisoformat,
    " dec": decimal.Decimal,
    " u": uuid.UUID,
    " m": _untag_pairs,
    " di": lambda v: {v[0]: v[1]},
}


def _object_hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        for key, val in obj.items():
            if key[:1] == " ":
                untag = _TAGS.get(key)
                if untag is not None:
                    return untag(val)
    return obj


class JSONCodec:
    """JSON with tagged types; the safe default: decoding never runs code."""

    name = "json"

    def __init__(self) -> None:
        self._dumps = json.JSONEncoder(
            ensure_ascii=False, separators=(",", ":"), allow_nan=True, check_circular=True
        ).encode
        self._loads = json.JSONDecoder(object_hook=_object_hook).decode

    def check(self, key: str, value: Any) -> None:
        if type(value) not in _SUPPORTED_TYPES:
            raise TypeError(_type_message(key, value))

    def encode(self, key: str, value: Any) -> str:
        cls = type(value)
        if cls is str:  # the common case, straight to the C string encoder
            return _encode_str(value)
        try:
            if cls is int or cls is bool or value is None:
                return self._dumps(value)
            return self._dumps(_tag(value))
        except _Unsupported as exc:
            raise TypeError(_type_message(key, value, inner=str(exc))) from None
        except (ValueError, RecursionError) as exc:
            message = f"session key {key!r}: value cannot be encoded as JSON ({exc})"
            raise TypeError(message) from None

    def decode(self, text: str) -> Any:
        # A JSON string with no escapes is its own content between the quotes.
        if text[:1] == '"' and len(text) > 1 and text[-1] == '"' and "\\" not in text:
            inner = text[1:-1]
            if '"' not in inner:
                return inner
        try:
            return self._loads(text)
        except (ValueError, TypeError, LookupError, ArithmeticError, RecursionError) as exc:
            message = f"stored value is not valid tagged JSON: {type(exc).__name__}"
            raise CodecError(message) from None


def _type_message(key: str, value: object, inner: str | None = None) -> str:
    what = f"a value containing {inner}" if inner and inner != type(value).__name__ else (
        f"a value of type {type(value).__name__}"
    )
    return (
        f"session key {key!r}: {what} cannot be stored by the JSON codec "
        f"(it stores {_SUPPORTED_NAMES}); convert it, or enable pickle=True"
    )


# -- signed pickle ------------------------------------------------------------------------------

_SIG_BYTES = 32


class PickleCodec:
    """Pickle, signed with HMAC-SHA256 so that only text this application wrote is unpickled."""

    name = "pickle"

    def __init__(self, secret: SecretLike | None) -> None:
        if secret is None:
            raise ConfigurationError(
                "pickle=True needs a secret: pickled sessions are signed so that loading one "
                "never runs attacker-supplied data"
            )
        self._keys = Secret(secret).derive("satchel.pickle")

    def check(self, key: str, value: Any) -> None:
        return None

    def encode(self, key: str, value: Any) -> str:
        try:
            payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise TypeError(f"session key {key!r}: value cannot be pickled ({exc})") from None
        sig = hmac.new(self._keys[0], payload, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(sig + payload).decode("ascii")

    def decode(self, text: str) -> Any:
        try:
            raw = base64.urlsafe_b64decode(text.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise CodecError("stored value is not signed pickle text") from None
        sig, payload = raw[:_SIG_BYTES], raw[_SIG_BYTES:]
        for key in self._keys:
            if hmac.compare_digest(sig, hmac.new(key, payload, hashlib.sha256).digest()):
                return pickle.loads(payload)  # noqa: S301 - authenticated above
        raise CodecError("stored pickle has no valid signature; refusing to unpickle it")
