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
import re
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from .errors import ConfigurationError
from .keys import Secret, SecretLike

__all__ = ["Codec", "CodecError", "JSONCodec", "PickleCodec", "text_problem"]


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
        """Decode text made by :meth:`encode`.

        Raises :class:`CodecError`, and nothing else, for anything else it is given: the
        session drops such a key rather than fail the request.
        """


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored as it is (None when it can).

    Every store keeps text as UTF-8, which has no spelling for a lone surrogate (what
    ``json.loads('"\\ud800"')`` returns): refused here, once, rather than by each store's driver.
    """
    if text.isascii():  # O(1) in CPython: the common case costs nothing
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "it holds a lone surrogate (not valid Unicode text)"
    return None


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


class _BadTag(ValueError):
    """A tag whose payload is not what :func:`_tag` makes."""


def _list(value: Any) -> list[Any]:
    if type(value) is not list:
        raise _BadTag
    return value


def _text(value: Any) -> str:
    if type(value) is not str:
        raise _BadTag
    return value


def _untag_pairs(pairs: Any) -> dict[Any, Any]:
    # Inner tags are decoded first (object_hook runs innermost-out), so tuple keys are tuples.
    out = {}
    for pair in _list(pairs):
        if type(pair) is not list or len(pair) != 2:
            raise _BadTag
        out[pair[0]] = pair[1]
    return out


def _untag_escaped(value: Any) -> dict[str, Any]:
    if type(value) is not list or len(value) != 2 or type(value[0]) is not str:
        raise _BadTag
    return {value[0]: value[1]}


# Each untagger accepts exactly the payload shape _tag makes and raises ValueError or
# TypeError for any other, which decode turns into CodecError.
_TAGS: dict[str, Callable[[Any], Any]] = {
    " t": lambda v: tuple(_list(v)),
    " s": lambda v: set(_list(v)),
    " fs": lambda v: frozenset(_list(v)),
    " b": lambda v: base64.b64decode(_text(v).encode("ascii"), validate=True),
    " dt": lambda v: _dt.datetime.fromisoformat(_text(v)),
    " d": lambda v: _dt.date.fromisoformat(_text(v)),
    " tm": lambda v: _dt.time.fromisoformat(_text(v)),
    " dec": lambda v: decimal.Decimal(_text(v)),
    " u": lambda v: uuid.UUID(_text(v)),
    " m": _untag_pairs,
    " di": _untag_escaped,
}

# A \u escape of a surrogate: our encoder never writes one (it keeps text as it is), so stored
# text holding one came from elsewhere and may decode to a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


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
        cls = type(value)
        if cls not in _SUPPORTED_TYPES:
            raise TypeError(_type_message(key, value))
        if cls is str and not value.isascii():
            _check_text(key, value)

    def encode(self, key: str, value: Any) -> str:
        cls = type(value)
        if cls is str:  # the common case, straight to the C string encoder
            text: str = _encode_str(value)
        else:
            try:
                if cls is int or cls is bool or value is None:
                    return self._dumps(value)
                text = self._dumps(_tag(value))
            except _Unsupported as exc:
                raise TypeError(_type_message(key, value, inner=str(exc))) from None
            except (ValueError, RecursionError) as exc:
                message = f"session key {key!r}: value cannot be encoded as JSON ({exc})"
                raise TypeError(message) from None
        if not text.isascii():
            _check_text(key, text)
        return text

    def decode(self, text: str) -> Any:
        if type(text) is not str:
            raise CodecError(f"stored value is {type(text).__name__}, not text")
        # A JSON string with no escapes is its own content between the quotes.
        if text[:1] == '"' and len(text) > 1 and text[-1] == '"' and "\\" not in text:
            inner = text[1:-1]
            if '"' not in inner:
                return inner
        try:
            value = self._loads(text)
        except (ValueError, TypeError, LookupError, ArithmeticError, RecursionError) as exc:
            message = f"stored value is not valid tagged JSON: {type(exc).__name__}"
            raise CodecError(message) from None
        if "\\u" in text and _SURROGATE_ESCAPE.search(text) is not None:
            # A value that could never be stored again must not be handed out either.
            try:
                self.encode("", value)
            except (TypeError, ValueError):
                raise CodecError("stored value holds text that cannot be stored") from None
        return value


def _check_text(key: str, text: str) -> None:
    problem = text_problem(text)
    if problem is not None:
        raise ValueError(f"session key {key!r}: the value cannot be stored: {problem}")


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
        if type(text) is not str:
            raise CodecError(f"stored value is {type(text).__name__}, not text")
        try:
            raw = base64.urlsafe_b64decode(text.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise CodecError("stored value is not signed pickle text") from None
        sig, payload = raw[:_SIG_BYTES], raw[_SIG_BYTES:]
        for key in self._keys:
            if hmac.compare_digest(sig, hmac.new(key, payload, hashlib.sha256).digest()):
                return _unpickle(payload)
        raise CodecError("stored pickle has no valid signature; refusing to unpickle it")


def _unpickle(payload: bytes) -> Any:
    try:
        return pickle.loads(payload)  # noqa: S301 - authenticated by the caller
    except Exception as exc:
        # Authentic but unloadable (a class renamed or removed since, a truncated write):
        # unpickling can raise anything a class's __setstate__ raises, so every exception is
        # this value's fault, and becomes the codec's one error.
        raise CodecError(f"stored pickle cannot be loaded: {type(exc).__name__}") from None
