"""Session ids: how they are made and how a client-supplied one is checked.

An id is 32 bytes from ``secrets`` (256 bits) in URL-safe base64 without padding: 43 characters
of ``[A-Za-z0-9_-]``.  Every id that arrives from a client passes :func:`is_valid_id` before any
store, file path or key sees it.
"""

from __future__ import annotations

import re
import secrets

__all__ = ["ID_LENGTH", "is_valid_id", "new_id"]

ID_BYTES = 32
ID_LENGTH = 43  # len(base64url(32 bytes)) without padding
_ID_RE = re.compile(r"[A-Za-z0-9_-]{43}")
_match = _ID_RE.fullmatch


def new_id() -> str:
    """Return a fresh, unguessable session id."""
    return secrets.token_urlsafe(ID_BYTES)


def is_valid_id(value: object) -> bool:
    """True when ``value`` has the exact shape of an id satchel issues."""
    return type(value) is str and len(value) == ID_LENGTH and _match(value) is not None
