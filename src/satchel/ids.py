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
    "is_minted_id",
    "is_valid_id",
    "legacy_id",
    "mint_id",
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


def mint_id(key: bytes, now: float) -> str:
    """A fresh id that carries proof it was issued by the holder of ``key`` at ``now``.

    20 random bytes (160 bits), the minting second (4 bytes) and an 8-byte HMAC-SHA256 tag over
    both, in the same 43-character shape as every other id.  Used where an id must be handed
    out before anything is stored (the query-string redirect, ``issue_ids``), so that strict
    mode can still recognise it, for a while: see :func:`is_minted_id`.
    """
    body = secrets.token_bytes(20) + int(max(0.0, min(now, 2**32 - 1))).to_bytes(4, "big")
    tag = hmac.new(key, body, hashlib.sha256).digest()[:8]
    return base64.urlsafe_b64encode(body + tag).decode("ascii").rstrip("=")


def is_minted_id(value: str, key: bytes, now: float, max_age: float | None) -> bool:
    """True when ``value`` (already valid by format) was made by :func:`mint_id` with ``key``,
    at most ``max_age`` seconds before ``now`` (None: any age).

    The age bound keeps a minted id from naming a new session long after it was handed out:
    once the session it named has expired, the id is not revived.
    """
    raw = base64.urlsafe_b64decode(value + "=")
    expected = hmac.new(key, raw[:24], hashlib.sha256).digest()[:8]
    if not hmac.compare_digest(raw[24:], expected):
        return False
    if max_age is None:
        return True
    age = now - int.from_bytes(raw[20:24], "big")
    return -_MINT_SKEW <= age <= max_age


_MINT_SKEW = 300  # seconds: workers' clocks may disagree a little


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
