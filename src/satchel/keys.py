"""Secrets: one or several keys, newest first, never shown in a repr or a log.

Every place that takes a secret accepts a string, bytes, or a list of them.  The first key signs
or seals; all of them verify or open, so a secret can be rotated without logging anyone out.
Keys for different purposes are derived from the configured secret (HKDF-style, HMAC-SHA256)
so that the pickle signature key is never the cookie encryption key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Union

from .errors import ConfigurationError

__all__ = ["Secret", "SecretLike", "derive_key"]

SecretLike = Union[str, bytes, Sequence[str | bytes], "Secret"]

MIN_SECRET_BYTES = 16


def derive_key(secret: bytes, purpose: str, length: int = 32) -> bytes:
    """HKDF (RFC 5869) with SHA-256, salt ``b"satchel"``, ``purpose`` as info."""
    prk = hmac.new(b"satchel", secret, hashlib.sha256).digest()
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        block = hmac.new(prk, block + purpose.encode() + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


class Secret:
    """One or more secret keys; the first is current, the others are still accepted."""

    __slots__ = ("_derived", "_keys")
    _keys: tuple[bytes, ...]
    _derived: dict[tuple[str, int], tuple[bytes, ...]]

    def __init__(self, value: SecretLike) -> None:
        if isinstance(value, Secret):
            keys: tuple[bytes, ...] = value._keys
        elif isinstance(value, (str, bytes)):
            keys = (_as_bytes(value),)
        else:
            keys = tuple(_as_bytes(v) for v in value)
        if not keys:
            raise ConfigurationError("secret: give at least one key")
        for key in keys:
            if len(key) < MIN_SECRET_BYTES:
                raise ConfigurationError(
                    f"secret: each key must be at least {MIN_SECRET_BYTES} bytes long "
                    "(use secrets.token_urlsafe(32) to make one)"
                )
        self._keys = keys
        self._derived = {}

    @property
    def keys(self) -> tuple[bytes, ...]:
        """All keys, newest first."""
        return self._keys

    def derive(self, purpose: str, length: int = 32) -> tuple[bytes, ...]:
        """Purpose-bound keys, one per configured key, newest first; computed once."""
        cache_key = (purpose, length)
        found = self._derived.get(cache_key)
        if found is None:
            found = tuple(derive_key(k, purpose, length) for k in self._keys)
            self._derived[cache_key] = found
        return found

    def __repr__(self) -> str:
        return f"Secret(<{len(self._keys)} key(s) hidden>)"

    __str__ = __repr__


def _as_bytes(value: str | bytes) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes):
        return value
    raise ConfigurationError(f"secret: expected str or bytes, got {type(value).__name__}")
