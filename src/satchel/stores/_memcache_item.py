"""memcached item formats: the bytes a session item and a per-user index item hold.

A session item is a log of frames.  The first frame is a *base*: the whole session (created,
accessed and expiry times, the user, every key).  Any number of *delta* frames may follow, each
appended by memcached's own ``append`` command: the keys one write set, deleted or cleared, its
access and expiry times, and, when it changed, the user.  Reading applies the frames in order, so
two requests appending to one session both land, in the order memcached received them, without
either one reading first.  A *compaction* folds the log back into one base frame (see
:mod:`satchel.stores.memcached` for when).

The rule that lives here: an item that does not parse reads as absent (a session) or empty (an
index), logged without its key or contents, never as an error: whoever reaches memcached can
write anything.  When to read and write items is :mod:`satchel.stores.memcached`'s.
"""

from __future__ import annotations

import json
import logging
import math
import struct
from collections.abc import Collection
from typing import NamedTuple, NoReturn

from ..record import Changes, SessionRecord, unreadable

__all__ = [
    "Parsed",
    "decode_index",
    "decode_item",
    "encode_base",
    "encode_delta",
    "encode_index",
    "parse_item",
]

log = logging.getLogger("satchel")

#: a frame's head: format mark, flags, body size, number of set pairs, number of deleted keys,
#: then accessed, expires and a third time as little-endian IEEE doubles (read back exactly):
#: ``created`` in a base frame, the absolute ``lifetime`` in a delta (``inf``: none given)
_FRAME = struct.Struct("<BBIIIddd")
_HEAD = _FRAME.size
_MARK = 2
_BASE = 1  # the whole session; only ever the first frame
_CLEARED = 2  # every key stored before this frame is dropped
_USER = 4  # the body's first field is the user (``-`` for none, ``+name``)
_JSON = 8  # the body is a JSON array of the fields (some field holds a NUL)
_NUL = "\x00"


def encode_base(data: dict[str, str], created: float, accessed: float, expires: float,
                user: str | None) -> bytes:
    """A one-frame item holding the whole session."""
    return _frame(_BASE | _USER, user, data, (), accessed, expires, created)


def encode_delta(changes: Changes | None, accessed: float, expires: float,
                 lifetime: float | None = None, *, user: str | None = None,
                 set_user: bool = False) -> bytes:
    """A frame to append: ``changes`` (None: only the times), and the user if ``set_user``.

    ``lifetime`` caps the session's expiry at ``created + lifetime`` when the frame is read: a
    blind update does not know when its session was created.
    """
    flags = _USER if set_user else 0
    third = math.inf if lifetime is None else lifetime
    if changes is None:
        return _frame(flags, user, {}, (), accessed, expires, third)
    if changes.cleared:
        flags |= _CLEARED
    return _frame(flags, user, changes.set, changes.deleted, accessed, expires, third)


def _frame(flags: int, user: str | None, pairs: dict[str, str], deleted: Collection[str],
           accessed: float, expires: float, third: float) -> bytes:
    fields = ["-" if user is None else "+" + user] if flags & _USER else []
    for key, value in pairs.items():
        fields += (key, value)
    fields += deleted
    text = _NUL.join(fields)
    if text.count(_NUL) != max(0, len(fields) - 1):
        flags |= _JSON
        text = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    body = text.encode()
    return _FRAME.pack(_MARK, flags, len(body), len(pairs), len(deleted), accessed,
                       expires, third) + body


class Parsed(NamedTuple):
    """An item read: its record, its number of frames, and its *waste*: the frames beyond the
    first plus the values that later frames replaced, i.e. what folding it would save a read."""

    record: SessionRecord
    frames: int
    waste: int


def parse_item(raw: bytes | None) -> Parsed | None:
    """The record an item holds, and what reading it took; None for no item, and for an item
    that does not parse."""
    if raw is None:
        return None
    try:
        return _parse(raw)
    # UnicodeDecodeError is a ValueError; struct.error: shorter than a head
    except (ValueError, TypeError, KeyError, IndexError, struct.error):
        unreadable("MemcachedStore")
        return None


def decode_item(raw: bytes | None) -> SessionRecord | None:
    """The record an item holds; None for no item, and for an item that does not parse."""
    parsed = parse_item(raw)
    return None if parsed is None else parsed[0]


def _parse(raw: bytes) -> Parsed:
    # Written for speed: a load parses a whole item, and most items are one base frame.
    unpack = _FRAME.unpack_from
    end = len(raw)
    mark, flags, size, n_set, n_del, accessed, expires, created = unpack(raw)
    pos = _HEAD + size
    if mark != _MARK or flags & (_BASE | _USER) != _BASE | _USER or n_del or pos > end:
        _corrupt()
    fields = _json(raw, _HEAD, pos) if flags & _JSON else raw[_HEAD:pos].decode().split(_NUL)
    if len(fields) != 1 + 2 * n_set:
        _corrupt()
    pairs = iter(fields)
    who = next(pairs)
    user = None if who == "-" else who[1:] if who[:1] == "+" else _corrupt()
    data = dict(zip(pairs, pairs, strict=False))  # even by the count checked above
    frames = 1
    pairs = n_set
    limit = math.inf
    while pos < end:
        mark, flags, size, n_set, n_del, written, until, lifetime = unpack(raw, pos)
        if written >= expires:
            # Written at or after the session's end (memcached kept the item a little longer,
            # or the writer's clock is ahead): it, and whatever follows, never revives it.
            break
        accessed, expires = written, until
        start = pos + _HEAD
        pos = start + size
        if mark != _MARK or flags & _BASE or pos > end:
            _corrupt()
        first = 1 if flags & _USER else 0
        count = first + 2 * n_set + n_del
        if flags & _JSON:
            fields = _json(raw, start, pos)
        else:
            fields = raw[start:pos].decode().split(_NUL) if size or count else []
        if len(fields) != count:
            _corrupt()
        if first:
            who = fields[0]
            user = None if who == "-" else who[1:] if who[:1] == "+" else _corrupt()
        if flags & _CLEARED:
            data = {}
        stop = first + 2 * n_set
        for key in fields[stop:]:
            data.pop(key, None)
        values = iter(fields[first:stop])
        data.update(zip(values, values, strict=False))
        pairs += n_set
        if lifetime < limit:
            limit = lifetime
        if created + limit < expires:
            expires = created + limit
        frames += 1
    if created != created or accessed != accessed or expires != expires:
        _corrupt()  # NaN: compares false with every moment, so it would never expire
    record = SessionRecord(data, created, accessed, expires, user)
    return Parsed(record, frames, frames - 1 + pairs - len(data))


def _json(raw: bytes, start: int, stop: int) -> list[str]:
    fields = json.loads(raw[start:stop].decode())
    if not isinstance(fields, list) or not all(type(f) is str for f in fields):
        _corrupt()
    return fields


def _corrupt() -> NoReturn:
    raise ValueError("not a session item")


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
