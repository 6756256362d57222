"""CookieStore: the whole session sealed into the client's cookie.

The rule that lives here: a cookie value is opened only when this application sealed it, with one
of its keys, and it is still alive; anything else (tampered, truncated, garbage, too long, sealed
with an unknown key or in another format) reads as no session, with a warning on the
``satchel.security`` logger that never quotes the value.

Token (base64url, no padding)::

    version (1 byte) | key hint (4 bytes) | nonce (12 bytes) | ciphertext + tag (16 bytes)   AEAD
    version (1 byte) | key hint (4 bytes) | payload | HMAC-SHA256 (32 bytes)                 signed

The version byte names the format and the algorithm, so a store never accepts a token of another
mode (no downgrade from encrypted to signed).  The key hint, derived from each key apart from the
key itself, picks the key to try: the first secret seals, every secret opens, and a token sealed
with a key we do not hold is refused before any decryption.  The version and hint are associated
data, authenticated with the rest.

The payload (the session's id, times, user, revocation generation and values) is laid out and
read back by :mod:`satchel.stores._cookie_payload`.  Nothing is compressed: compressing
attacker-chosen values next to secret ones would leak through the token's length.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from typing import Any, Protocol
from urllib.parse import SplitResult

from ..errors import ConfigurationError, SessionTooLarge
from ..keys import Secret, SecretLike
from ..record import Changes, Ended, SessionMeta, SessionRecord
from ._cookie_payload import build_payload, parse_payload
from .base import BaseStore, Store, is_client_side, url_options

__all__ = ["COOKIE_LIMIT", "CookieStore", "Revocations", "StoreRevocations", "from_url"]

security_log = logging.getLogger("satchel.security")
log = logging.getLogger("satchel")

#: RFC 6265 section 6.1: browsers keep cookies of at least 4096 bytes (name, value, attributes).
COOKIE_LIMIT = 4096
#: version byte per mode; a store opens only its own.
MODES = {"aes-gcm": 1, "chacha20-poly1305": 2, "signed": 3}
_HINT = 4
_NONCE = 12  # 96 bits, random per seal: 2**-32 collision odds after ~2**32 seals of one key
_TAG = 16
_MAC = 32
_B64URL_VALUE = {c: i for i, c in enumerate(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")}
# base64url -> standard base64 for the C codec; "+", "/" and "=" are not base64url, so they
# become "!", which the strict decoder refuses like every other character outside the alphabet.
_FROM_B64URL = bytes.maketrans(b"-_+/=", b"+/!!!")
_TO_B64URL = bytes.maketrans(b"+/", b"-_")
_PADDING = (b"", b"", b"==", b"=")  # by the length of the unpadded value modulo 4 (1 never)
if sys.version_info >= (3, 11):
    _b64decode = functools.partial(binascii.a2b_base64, strict_mode=True)
else:  # pragma: no cover - Python 3.10: no strict mode, so the alphabet is matched first
    _STANDARD_B64 = re.compile(rb"[A-Za-z0-9+/]*={0,2}")

    def _b64decode(data: bytes) -> bytes:
        if _STANDARD_B64.fullmatch(data) is None:
            raise binascii.Error("not base64")
        return binascii.a2b_base64(data)

#: how long a revocation generation is kept; it outlives any cookie that could still be replayed.
REVOCATION_TTL = 10 * 365 * 86400.0


class Revocations(Protocol):
    """Per-user generation numbers, and the sessions of a user that were logged out.

    A cookie sealed under an older generation is refused (log out everywhere); so is any
    cookie of a session that was logged out (a logout wins over a write still in flight).
    """

    def generation(self, user: str) -> int:
        """The user's current generation (0 for a user never revoked)."""

    def revoke(self, user: str) -> int:
        """Bump the user's generation, so every cookie sealed before dies; return the new one."""

    def refuses(self, user: str, sid: str, generation: int) -> bool:
        """True when a cookie of session ``sid``, sealed for ``user`` under ``generation``,
        must be refused.  One lookup: it runs on every request of a session with a user."""

    def refusal(self, user: str, sid: str, generation: int) -> str | None:
        """Why such a cookie is refused: ``"revoked"`` (the user was logged out everywhere),
        ``"logged_out"`` (this session was), or None when it is not.  One lookup too."""

    def end(self, user: str, sid: str, until: float) -> None:
        """Refuse every cookie of session ``sid`` of ``user`` from now on, until ``until``."""


_ENDED = "e:"  # data key prefix of a logged-out session in a user's revocation record


class StoreRevocations:
    """Revocation records kept in a server store, one small record per user who has any.

    A record holds the user's generation (``g``) and the ids of their sessions that were
    logged out (``e:<id>``, each with the moment after which none of its cookies can be alive,
    dropped once that has passed).  The record id is a hash of the user name, never built from
    the secret: rotating the secret must not forget who was revoked.  The store must be durable
    (SQLite, PostgreSQL, MySQL, Redis with persistence): a lost record resets the user to
    generation 0 and revives cookies sealed before the first revocation, or before a logout.
    """

    def __init__(self, store: Store) -> None:
        if is_client_side(store):
            raise ConfigurationError("revocation needs a server store, not a client-side one")
        self.store = store

    @staticmethod
    def _id(user: str) -> str:
        digest = hashlib.sha256(b"satchel.revocation\x00" + user.encode("utf-8")).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def generation(self, user: str) -> int:
        record = self.store.load(self._id(user))
        return 0 if record is None else _generation(record.data)

    def refuses(self, user: str, sid: str, generation: int) -> bool:
        return self.refusal(user, sid, generation) is not None

    def refusal(self, user: str, sid: str, generation: int) -> str | None:
        record = self.store.load(self._id(user))
        if record is None:
            return "revoked" if generation != 0 else None
        data = record.data
        if _generation(data) != generation:
            return "revoked"
        return "logged_out" if _ENDED + sid in data else None

    def revoke(self, user: str) -> int:
        generation = max(self.generation(user), 0) + 1
        now = time.time()
        meta = SessionMeta(now, now, now + REVOCATION_TTL)
        self.store.save(self._id(user), Changes(set={"g": str(generation)}), meta)
        return generation

    def end(self, user: str, sid: str, until: float) -> None:
        now = time.time()
        record = self.store.load(self._id(user))
        stale = frozenset() if record is None else frozenset(
            key for key, text in record.data.items()
            if key.startswith(_ENDED) and _until(text) <= now
        )
        meta = SessionMeta(now, now, max(now + REVOCATION_TTL, until))
        self.store.save(self._id(user), Changes(set={_ENDED + sid: repr(float(until))},
                                                deleted=stale), meta)


def _generation(data: dict[str, str]) -> int:
    try:
        return int(data.get("g", "0"))
    except ValueError:
        return -1  # unreadable: matches no cookie, so the user's cookies are refused


def _until(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0  # unreadable: dropped at the next write


class CookieStore(BaseStore):
    """Sessions sealed into the client's cookie: no server state unless asked for.

    Args:
        secret: the key, or keys newest first: the first seals, all open, so a secret is
            rotated without logging anyone out.  Given here, once, because the keys are derived
            when the store is built, never per request (``Secret.derive``: RFC 5869 HKDF-SHA256
            in the standard library, so the signed mode needs no extra package).
        mode: ``"aes-gcm"`` (default) or ``"chacha20-poly1305"``: authenticated encryption from
            ``cryptography`` (``pip install 'satchel[crypto]'``); the client can neither read nor
            change its session.  ``"signed"``: HMAC-SHA256 from the standard library; the client
            cannot change its session but CAN READ EVERYTHING IN IT (it is only base64 JSON), so
            use it only for data the user may see.
        spill: a server store that keeps sessions too large for a cookie; the cookie then
            carries a sealed reference.  Without it a too-large session raises
            ``SessionTooLarge``: a cookie the browser would drop is never sent.
        revocation: a server store (or a :class:`Revocations`) holding per-user generations;
            :meth:`revoke_user` logs a user out everywhere.  It costs one lookup per request of
            a session that has a user.
        limit: the most bytes a Set-Cookie header may take (value, name and attributes).
    """

    client_side = True
    thread_safe = True
    multiprocess_safe = True
    native_expiry = True  # a dead cookie is refused on sight; nothing to purge here

    def __init__(self, secret: SecretLike | None = None, *, mode: str = "aes-gcm",
                 spill: Store | str | None = None,
                 revocation: Store | Revocations | str | None = None,
                 limit: int = COOKIE_LIMIT) -> None:
        if secret is None:
            raise ConfigurationError(
                "CookieStore needs secret=... (or a list of secrets, newest first) to seal sessions"
            )
        if mode not in MODES:
            raise ConfigurationError(f"CookieStore: mode must be one of {sorted(MODES)}")
        if type(limit) is not int or limit < 256:
            raise ConfigurationError("CookieStore: limit must be an integer of at least 256 bytes")
        keys = Secret(secret)
        self.mode = mode
        self.limit = limit
        self._version = MODES[mode]
        self._hints = keys.derive("satchel.cookie.key-hint", _HINT)
        derived = keys.derive(f"satchel.cookie.{mode}")
        self._aeads, self._invalid = _aeads(mode, derived)
        self._macs = derived
        self._header = bytes([self._version]) + self._hints[0]
        self._min_raw = 1 + _HINT + (_NONCE + _TAG if self._aeads else _MAC)
        self._owned: list[Store] = []
        self._spill = self._server_store(spill, "spill")
        self._revocation: Revocations | None
        if revocation is None or isinstance(revocation, (str, Store)):
            kept = self._server_store(revocation, "revocation")
            self._revocation = None if kept is None else StoreRevocations(kept)
        else:
            self._revocation = revocation
        # Sealing and opening are CPU work; only a server store behind it may wait on I/O.
        self.blocking = any(getattr(kept, "blocking", True) for kept in (
            self._spill, getattr(self._revocation, "store", self._revocation)) if kept is not None)

    def _server_store(self, store: Store | str | None, what: str) -> Store | None:
        if store is None:
            return None
        if isinstance(store, str):
            from . import open_store

            store = open_store(store)
            self._owned.append(store)
        if not isinstance(store, Store) or is_client_side(store):
            raise ConfigurationError(f"CookieStore: {what} must be a server store or its URL")
        return store

    # -- the client-side contract --------------------------------------------------------------

    def open(self, token: str, now: float,
             why: bool = False) -> tuple[str, SessionRecord] | Ended | None:
        """The id and record sealed in ``token``, or None (see the module docstring).

        With ``why``, a token this store sealed whose session is dead gives an :class:`Ended`
        saying why (expired, with its times; revoked; logged out) instead of None: the token
        itself holds the answer, so no extra lookup is made.

        Raises:
            StoreUnavailable: the spill or revocation store cannot answer.
        """
        plaintext = self._unseal(token)
        if plaintext is None:
            return None
        fields = parse_payload(plaintext)
        if fields is None:
            security_log.warning("refused a session cookie: authentic but unreadable payload")
            return None
        sid, created, accessed, expires, user, data, generation = fields
        if now >= expires:
            log.debug("a session cookie past its expiry was presented; starting a new session")
            return Ended("expired", SessionRecord({}, created, accessed, expires, user)) if why \
                else None
        revoked = self._revocation
        if user is not None and revoked is not None:
            reason = revoked.refusal(user, sid, generation)
            if reason is not None:
                security_log.info("refused a session cookie of a user revoked or logged out")
                return Ended(reason) if why else None
        if data is None:
            spilled = self._spill.load(sid) if self._spill is not None else None
            if spilled is None:
                log.info("a session cookie refers to spilled data that is gone; starting anew")
                return None
            data = spilled.data
        return sid, SessionRecord(data, created, accessed, expires, user)

    def seal(self, sid: str, data: dict[str, str], meta: SessionMeta, overhead: int = 0) -> str:
        """The cookie value carrying the whole session (``overhead``: see ``ClientSideStore``).

        Raises:
            SessionTooLarge: the Set-Cookie header would exceed ``limit`` and there is no spill
                store (or even the spilled reference does not fit).
            StoreUnavailable: the spill or revocation store cannot answer.
        """
        user = meta.user
        revocation = self._revocation
        generation = revocation.generation(user) if user is not None and revocation else 0
        token = self._seal(build_payload(sid, data, meta, generation))
        size = overhead + len(token)
        if size <= self.limit:
            return token
        if self._spill is not None:
            self._spill.save(sid, Changes(set=data, cleared=True), meta)
            token = self._seal(build_payload(sid, None, meta, generation))
            if overhead + len(token) <= self.limit:
                return token
            size = overhead + len(token)
        raise SessionTooLarge(
            f"session too large for a cookie: its Set-Cookie header would take {size} bytes, "
            f"over the limit of {self.limit}; keep less in the session, or give CookieStore a "
            "spill=<server store> for large sessions",
            size, self.limit,
        )

    def revoke_user(self, user: str) -> int:
        """Log ``user`` out everywhere: every cookie sealed for them so far is refused.

        Returns the user's new generation.  Raises ``ConfigurationError`` without a revocation
        store: a cookie session cannot otherwise be recalled before it expires.
        """
        if self._revocation is None:
            raise ConfigurationError(
                "CookieStore: revoking a user's cookies needs revocation=<server store>"
            )
        return self._revocation.revoke(user)

    # -- sealing -----------------------------------------------------------------------------

    def _seal(self, plaintext: bytes) -> str:
        header = self._header
        if self._aeads:
            nonce = os.urandom(_NONCE)
            raw = b"".join((header, nonce, self._aeads[0].encrypt(nonce, plaintext, header)))
        else:
            raw = header + plaintext
            raw += hmac.new(self._macs[0], raw, hashlib.sha256).digest()
        encoded = binascii.b2a_base64(raw, newline=False).translate(_TO_B64URL)
        return encoded.rstrip(b"=").decode("ascii")

    def _unseal(self, token: str) -> bytes | None:
        # The length is capped before anything else is done with the value.
        if type(token) is not str or len(token) > self.limit:
            return _refuse("over-long or not text")
        tail = len(token) % 4
        if tail == 1:
            return _refuse("not base64url")
        # The alphabet check is the strict decoder's: one pass, and any character outside
        # base64url (padding included) refuses the value before any crypto is spent on it.
        try:
            raw = _b64decode(token.encode("ascii").translate(_FROM_B64URL) + _PADDING[tail])
        except (UnicodeEncodeError, binascii.Error):
            return _refuse("not base64url")
        # One token, one spelling: the bits of a last character beyond the data must be zero.
        if tail and _B64URL_VALUE[token[-1]] & (0x0F if tail == 2 else 0x03):
            return _refuse("not canonical base64url")
        if len(raw) < self._min_raw:
            return _refuse("truncated")
        if raw[0] != self._version:
            return _refuse("another format or mode")
        hint = raw[1 : 1 + _HINT]
        tried = False
        for index, known in enumerate(self._hints):
            if known != hint:
                continue
            tried = True
            plaintext = self._open_with(index, raw)
            if plaintext is not None:
                return plaintext
        return _refuse("failed authentication" if tried else "sealed with an unknown key")

    def _open_with(self, index: int, raw: bytes) -> bytes | None:
        start = 1 + _HINT
        if self._aeads:
            try:
                plaintext: bytes = self._aeads[index].decrypt(
                    raw[start : start + _NONCE], raw[start + _NONCE :], raw[:start]
                )
            except self._invalid:
                return None
            return plaintext
        signed = raw[:-_MAC]  # header and payload
        expected = hmac.new(self._macs[index], signed, hashlib.sha256).digest()
        return signed[start:] if hmac.compare_digest(raw[-_MAC:], expected) else None

    # -- the server-store surface: only the spill store keeps anything by id ------------------

    def load(self, sid: str) -> SessionRecord | None:
        """None: sessions are opened from the client's value, not loaded by id."""
        return None

    def save(self, sid: str, changes: Changes, meta: SessionMeta) -> bool:
        raise NotImplementedError("CookieStore seals whole sessions: the engine calls seal()")

    def touch(self, sid: str, accessed: float, expires: float) -> bool:
        return False

    def delete(self, sid: str) -> bool:
        """Drop a discarded session's spilled data, if any (its cookie is revoked by the caller)."""
        return self._spill.delete(sid) if self._spill is not None else False

    def end(self, sid: str, user: str, until: float) -> None:
        """A logout: drop the session's spilled data and, with ``revocation=``, refuse its
        cookies from now on, so that a write still in flight cannot undo the logout.

        Without a revocation store this is ``delete``: the logout replaces the cookie in the
        browser that logged out, and a response still in flight may set the session's cookie
        again (see the README's cookie sessions).
        """
        self.delete(sid)
        if self._revocation is not None:
            self._revocation.end(user, sid, until)

    def exists(self, sid: str) -> bool:
        return False

    def purge(self, now: float | None = None) -> int:
        """Purge the spill store; cookies themselves die on their own."""
        return self._spill.purge(now) if self._spill is not None else 0

    def ids(self) -> Iterator[str]:
        return iter(())

    def count(self) -> int:
        return 0

    def user_sessions(self, user: str) -> list[str]:
        return []

    def delete_user(self, user: str) -> int:
        """Log ``user`` out everywhere (:meth:`revoke_user`); returns 0: cookies are not counted."""
        self.revoke_user(user)
        return 0

    def close(self) -> None:
        for store in self._owned:
            store.close()
        self._owned = []

    def __repr__(self) -> str:
        return f"<CookieStore mode={self.mode} keys={len(self._hints)} limit={self.limit}>"


def _refuse(reason: str) -> bytes | None:
    """Log why a cookie was refused (never the cookie itself); always None."""
    security_log.warning("refused a session cookie: %s", reason)
    return None


class _NeverRaised(Exception):
    """Stands for cryptography's InvalidTag in the signed mode, which has no AEAD to raise it."""


def _aeads(mode: str, keys: tuple[bytes, ...]) -> tuple[tuple[Any, ...], type[Exception]]:
    """One AEAD object per key, built once (none in the signed mode), and the error it raises."""
    if mode == "signed":
        return (), _NeverRaised
    try:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
    except ImportError:
        raise ConfigurationError(
            f"CookieStore mode {mode!r} needs the 'cryptography' package "
            "(pip install 'satchel[crypto]'); mode='signed' needs nothing but lets clients "
            "read their session"
        ) from None
    cipher = AESGCM if mode == "aes-gcm" else ChaCha20Poly1305
    return tuple(cipher(key) for key in keys), InvalidTag


def from_url(parsed: SplitResult, **options: Any) -> CookieStore:
    """``cookie://?mode=signed&limit=4096&spill=<url>&revocation=<url>`` (URLs percent-encoded).

    The secret is never read from the URL (URLs end up in logs): pass ``secret=...``.
    """
    if parsed.netloc or parsed.path not in ("", "/"):
        raise ConfigurationError("cookie:// takes no host or path (use cookie://?mode=...)")
    query = url_options(parsed)
    if "secret" in query:
        raise ConfigurationError("cookie://: never put the secret in the URL; pass secret=...")
    for name in ("mode", "spill", "revocation"):
        if name in query:
            options.setdefault(name, query.pop(name))
    if "limit" in query:
        try:
            options.setdefault("limit", int(query.pop("limit")))
        except ValueError:
            raise ConfigurationError("cookie://: limit must be an integer") from None
    if query:
        raise ConfigurationError(f"cookie://: unknown option(s) {sorted(query)}")
    return CookieStore(**options)
