"""Session ids: how they are made and how a client-supplied one is checked.

An id is 32 bytes from ``secrets`` (256 bits) in URL-safe base64 without padding: 43 characters
of ``[A-Za-z0-9_-]``.  Every id that arrives from a client passes :func:`is_valid_id` before any
store, file path or key sees it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

__all__ = [
    "ID_LENGTH",
    "LEGACY_KEY",
    "is_legacy_id",
    "is_valid_id",
    "legacy_id",
    "mint_id",
    "minted_age",
    "new_id",
]

ID_BYTES = 32
ID_LENGTH = 43  # len(base64url(32 bytes)) without padding
_ID_RE = re.compile(r"[A-Za-z0-9_-]{43}")
_match = _ID_RE.fullmatch
# Ids of the systems satchel migrates from: Session3's 64 bits (16 hex digits, or 11 base64url
# characters on Quixote 3), Beaker's uuid4 (32), Pesto's SHA-1 or SHA-256 digests (40, 64).
_LEGACY_RE = re.compile(r"[0-9a-f]{16}|[0-9a-f]{32}|[0-9a-f]{40}|[0-9a-f]{64}|[A-Za-z0-9_-]{11}")
# The data key that marks a session copied by ``satchel migrate`` under :func:`legacy_id`:
# such a session is reachable only through its old id, and only until it is rotated.
LEGACY_KEY = "_satchel_legacy"


def new_id() -> str:
    """Return a fresh, unguessable session id."""
    return secrets.token_urlsafe(ID_BYTES)


# A minted id: a 4-byte stamp (seconds, modulo 2**32), 20 random bytes (160 bits) and an
# 8-byte HMAC-SHA256 tag over both, with a context string that no other use of the key shares.
_MINT_CONTEXT = b"satchel.mint.v2\x00"
_STAMP = 4
_NONCE = 20
_WRAP = 1 << 32
# 32 bytes fill 43 base64 characters but for the last one's two low bits, which must be zero:
# the one spelling mint_id writes.  Any other last character is another spelling of the same
# bytes and is refused, so a minted id is accepted in exactly one form.
_CANONICAL_LAST = frozenset("AEIMQUYcgkosw048")


def mint_id(key: bytes, now: float) -> str:
    """A fresh id that carries proof it was issued by the holder of ``key`` at ``now``.

    In the same 43-character shape as every other id.  Used where an id must be handed out
    before anything is stored (the query-string transport's redirect), so that strict mode can
    recognise it, briefly (:func:`minted_age`).
    """
    body = (int(now) % _WRAP).to_bytes(_STAMP, "big") + secrets.token_bytes(_NONCE)
    tag = hmac.new(key, _MINT_CONTEXT + body, hashlib.sha256).digest()[:8]
    return base64.urlsafe_b64encode(body + tag).decode("ascii").rstrip("=")


def minted_age(value: str, key: bytes, now: float) -> float | None:
    """Seconds since :func:`mint_id` made ``value`` with ``key`` (negative if minted by a clock
    ahead of ``now``), or None when it did not make it, or not in this exact spelling.

    ``value`` must be valid by format (:func:`is_valid_id`).
    """
    if value[-1] not in _CANONICAL_LAST:
        return None
    raw = base64.urlsafe_b64decode(value + "=")
    body = raw[: _STAMP + _NONCE]
    expected = hmac.new(key, _MINT_CONTEXT + body, hashlib.sha256).digest()[:8]
    if not hmac.compare_digest(raw[_STAMP + _NONCE :], expected):
        return None
    # The stamp wraps every 136 years: read the difference as the nearest signed one.
    age = (int(now) - int.from_bytes(body[:_STAMP], "big")) % _WRAP
    return float(age - _WRAP if age >= _WRAP // 2 else age)


def is_valid_id(value: object) -> bool:
    """True when ``value`` has the exact shape of an id satchel issues."""
    return type(value) is str and len(value) == ID_LENGTH and _match(value) is not None


def is_legacy_id(value: object) -> bool:
    """True when ``value`` has the shape of an id Beaker, Session3 or Pesto issued."""
    return type(value) is str and _LEGACY_RE.fullmatch(value) is not None


def legacy_id(old: str) -> str:
    """The satchel-shaped id a migrated session is kept under: a hash of its old id.

    Deterministic, so the middleware finds the session from the old cookie alone; the
    session also carries :data:`LEGACY_KEY`, so arriving with this id directly finds nothing.
    """
    digest = hashlib.sha256(b"satchel.legacy\0" + old.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")
