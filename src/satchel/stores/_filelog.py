"""The session file's format: checksummed records appended after a magic line.

A file is ``MAGIC`` followed by records, each framed as (length, CRC-32, payload, length); the
trailing length lets a reader find the last record from the end of the file.  A payload holds
the times as three doubles, the user (length and UTF-8), then the data as JSON (encoded text per
key).  The last complete record is the session: a writer that died mid-append leaves an
incomplete last record, which fails its length or CRC check, so readers see the one before.

Only the format lives here (no locking, no paths): :mod:`satchel.stores.file` decides when to
read, append and compact.
"""

from __future__ import annotations

import json
import os
import struct
import zlib

__all__ = [
    "MAGIC", "Unreadable", "encode_data", "frame", "head", "latest", "parse_data",
    "parse_meta", "read_latest", "write_all",
]

MAGIC = b"satchel-session 1\n"
_HEAD = struct.Struct(">II")  # payload length, CRC-32 of the payload
_TRAIL = struct.Struct(">I")  # payload length again, to find the last record from the end
_OVERHEAD = _HEAD.size + _TRAIL.size
_META = struct.Struct(">dddI")  # created, accessed, expires, length of the user's UTF-8
_NO_USER = 0xFFFFFFFF
_TAIL = 4096  # bytes read from the end of a file; a larger last record takes a second read
_CRC_SEED = 0x5A7C4E1  # so that a run of zero bytes (a hole, a lost block) is never a record
_dumps = json.JSONEncoder(separators=(",", ":")).encode
_decode_json = json.JSONDecoder().raw_decode
_pack_head = _HEAD.pack
_pack_trail = _TRAIL.pack
_crc32 = zlib.crc32


class Unreadable(Exception):
    """A session file without a complete record; it reads as absent."""


def frame(payload: bytes) -> bytes:
    """``payload`` framed as a record, ready to append."""
    n = len(payload)
    return b"".join((_pack_head(n, _crc32(payload, _CRC_SEED)), payload, _pack_trail(n)))


def head(created: float, accessed: float, expires: float, user: str | None) -> bytes:
    """A record's payload up to its data."""
    if user is None:
        return _META.pack(created, accessed, expires, _NO_USER)
    name = user.encode()
    return _META.pack(created, accessed, expires, len(name)) + name


def encode_data(data: dict[str, str]) -> bytes:
    """The data part of a payload."""
    return _dumps(data).encode()


def latest(fd: int, size: int) -> tuple[bytes, int, int]:
    """The payload of the file's last complete record, the offset where it ends, the file size.

    Usually one small read of the file's tail (two when the last record is larger than it).
    When the file does not end in a complete record (a writer is appending, or died while
    appending), walks the records from the start.
    """
    take = min(size, _TAIL)
    tail = os.pread(fd, take, size - take)
    if len(tail) == take and take >= _OVERHEAD:
        (n,) = _TRAIL.unpack_from(tail, take - _TRAIL.size)
        start = size - _OVERHEAD - n  # where the last record begins, if the file ends in one
        if n and start >= len(MAGIC):
            if start >= size - take:
                raw, at = tail, start - (size - take)
            else:
                raw, at = os.pread(fd, _OVERHEAD + n, start), 0
            if len(raw) - at == _OVERHEAD + n:
                length, crc = _HEAD.unpack_from(raw, at)
                payload = raw[at + _HEAD.size: at + _HEAD.size + n]
                if (length == n and _crc32(payload, _CRC_SEED) == crc
                        and (take < size or tail.startswith(MAGIC))):
                    return payload, size, size
    return _walk(tail if take == size and len(tail) == size else os.pread(fd, size, 0))


def _walk(raw: bytes) -> tuple[bytes, int, int]:
    if not raw.startswith(MAGIC):
        raise Unreadable("empty" if not raw else "not a session file")
    size = len(raw)
    pos = len(MAGIC)
    found: tuple[bytes, int] | None = None
    while pos + _OVERHEAD <= size:
        n, crc = _HEAD.unpack_from(raw, pos)
        end = pos + _OVERHEAD + n
        if end > size:
            break
        payload = raw[pos + _HEAD.size: end - _TRAIL.size]
        if (not n or _TRAIL.unpack_from(raw, end - _TRAIL.size)[0] != n
                or _crc32(payload, _CRC_SEED) != crc):
            break
        found = payload, end
        pos = end
    if found is None:
        raise Unreadable("no complete record")
    return found[0], found[1], size


def read_latest(path: str, flags: int) -> bytes | None:
    """The last complete record's payload of the file at ``path``; None if there is no file."""
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    try:
        return latest(fd, os.fstat(fd).st_size)[0]
    finally:
        os.close(fd)


def parse_meta(payload: bytes) -> tuple[float, float, float, str | None, int]:
    """created, accessed, expires, user, and where the data starts."""
    try:
        created, accessed, expires, length = _META.unpack_from(payload)
        if created != created or accessed != accessed or expires != expires:
            raise Unreadable("malformed record")  # NaN: compares false, would never expire
        if length == _NO_USER:
            return created, accessed, expires, None, _META.size
        end = _META.size + length
        if end > len(payload):
            raise Unreadable("malformed record")
        return created, accessed, expires, payload[_META.size:end].decode(), end
    except (struct.error, UnicodeDecodeError):
        raise Unreadable("malformed record") from None


def parse_data(payload: bytes, start: int, *, strict: bool = True) -> dict[str, str]:
    """The record's data; ``strict`` also checks every value is text (a write, which only
    merges and writes back, skips that)."""
    try:
        text = payload[start:].decode()
        data, end = _decode_json(text)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError included
        raise Unreadable("malformed data") from None
    if end != len(text) or type(data) is not dict or (
        strict and not all(type(v) is str for v in data.values())
    ):
        raise Unreadable("malformed data")
    return data


def write_all(fd: int, content: bytes, offset: int) -> None:
    """Write all of ``content`` at ``offset`` (``pwrite`` may write less than asked)."""
    written = os.pwrite(fd, content, offset)
    if written == len(content):
        return
    view = memoryview(content)[written:]
    offset += written
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written
