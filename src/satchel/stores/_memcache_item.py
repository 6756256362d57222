"""memcached item formats: the bytes a session item and a per-user index item hold.

The rule that lives here: an item that does not parse reads as absent (a session) or empty (an
index), logged without its key or contents, never as an error: whoever reaches memcached can
write anything.  When to read and write items is :mod:`satchel.stores.memcached`'s.
"""

from __future__ import annotations

import json
import logging
import struct
from typing import NoReturn

from ..record import SessionRecord

__all__ = ["decode_index", "decode_item", "encode_index", "encode_item"]

log = logging.getLogger("satchel")

#: an item's head: the format mark (1), then created, accessed and expires as little-endian
#: IEEE doubles (read back exactly, with no float parsing)
_HEAD = struct.Struct("<Bddd")
_NUL = "\x00"


def encode_item(data: dict[str, str], created: float, accessed: float, expires: float,
                user: str | None) -> bytes:
    """A session item: the head (:data:`_HEAD`), then UTF-8 fields separated by NUL.

    ``head user NUL key NUL value NUL key NUL value...``, the user being ``-`` for none or
    ``+`` and the name.  Unpacking the head and splitting the rest reads a record in half the
    time ``json.loads`` takes.  A key, value or user holding a NUL itself is written as a JSON
    object instead (the format items had before), which :func:`decode_item` also reads.
    """
    fields = ["-" if user is None else "+" + user]
    for key, value in data.items():
        fields += (key, value)
    text = _NUL.join(fields)
    if text.count(_NUL) == len(fields) - 1:
        return _HEAD.pack(1, created, accessed, expires) + text.encode()
    record = {"d": data, "c": created, "a": accessed, "e": expires, "u": user}
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


def decode_item(raw: bytes | None) -> SessionRecord | None:
    """The record an item holds; None for no item, and for an item that does not parse."""
    if raw is None:
        return None
    try:
        mark, created, accessed, expires = _HEAD.unpack_from(raw)
        if mark != 1:
            if raw[:1] == b"{":
                return _decode_json(raw)
            _corrupt()
        fields = raw[_HEAD.size:].decode().split(_NUL)
        if not len(fields) & 1:  # the user, then key, value, key, value...
            _corrupt()
        pairs = iter(fields)
        who = next(pairs)
        user = None if who == "-" else who[1:] if who[:1] == "+" else _corrupt()
        data = dict(zip(pairs, pairs, strict=False))  # even by the count checked above
        return SessionRecord(data, created, accessed, expires, user)
    # UnicodeDecodeError is a ValueError; struct.error: shorter than a head
    except (ValueError, TypeError, KeyError, IndexError, struct.error):
        log.warning("memcached session item unreadable; treated as absent")
        return None


def _corrupt() -> NoReturn:
    raise ValueError("not a session item")


def _decode_json(raw: bytes) -> SessionRecord:
    fields = json.loads(raw)
    data, user = fields["d"], fields["u"]
    if not isinstance(data, dict) or not all(type(v) is str for v in data.values()) \
            or not (user is None or type(user) is str):
        raise TypeError("not a session item")
    return SessionRecord(data, float(fields["c"]), float(fields["a"]), float(fields["e"]), user)


def encode_index(entries: dict[str, float]) -> bytes:
    """A user's index: a JSON object of session id -> the unix time its entry was added."""
    return json.dumps(entries, separators=(",", ":")).encode()


def decode_index(raw: bytes) -> dict[str, float]:
    """A user's index; an unreadable one is empty (it is rewritten whole on the next login)."""
    try:
        entries = json.loads(raw)
        if isinstance(entries, dict) and all(
                type(sid) is str and isinstance(added, (int, float))
                for sid, added in entries.items()):
            return entries
    except ValueError:
        pass
    log.warning("memcached user index unreadable; treated as empty")
    return {}
