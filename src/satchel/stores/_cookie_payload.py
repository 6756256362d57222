"""The cookie payload: how a session is laid out as the text a cookie seals, and read back.

The rule that lives here: an authentic payload is used only when it has exactly the shape this
module builds; any other shape reads as no session.  Sealing, keys and revocation are
:mod:`satchel.stores.cookie`'s.

The payload is UTF-8 text: a compact JSON head, then the session's keys and encoded values,
each preceded by a NUL::

    ["<id>",<created>,<accessed>,<expires>,<user or null>,<data>,<generation>] NUL k1 NUL v1 ...

Times are integer milliseconds (short, and of steady length); the generation is the user's
revocation generation.  ``<data>`` is the number of key/value pairs that follow; or null when
the values were spilled to a server store; or, when some key or value itself holds a NUL, the
values as a JSON object inside the head (JSON escapes NUL, so the head never holds one).  The
values travel as they are, not as JSON strings inside JSON: no escaping to do or undo, and no
bytes lost to it.
"""

from __future__ import annotations

import json
from itertools import chain
from json.scanner import make_scanner

from ..ids import is_valid_id
from ..record import SessionMeta

__all__ = ["Fields", "build_payload", "parse_payload"]

_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_encode_str = json.encoder.encode_basestring  # str -> JSON string, in C
_flatten = chain.from_iterable
# The scanner behind json.loads, called directly: the head is compact JSON with nothing around
# it, so the encoding detection and whitespace skipping of json.loads have nothing to do.
_scan_json = make_scanner(json.JSONDecoder())  # type: ignore[arg-type]  # (typeshed: any context)

#: id, created, accessed, expires, user, data (None: spilled), revocation generation
Fields = tuple[str, float, float, float, str | None, dict[str, str] | None, int]


def build_payload(sid: str, data: dict[str, str] | None, meta: SessionMeta,
                  generation: int) -> bytes:
    """The payload to seal for a session; ``data`` None for one whose values were spilled."""
    user = meta.user
    # The head, less its data field and closing bracket: every part of it is JSON already.
    head = (f"[{_encode_str(sid)},{round(meta.created * 1000)},"
            f"{round(meta.accessed * 1000)},{round(meta.expires * 1000)},"
            f"{'null' if user is None else _encode_str(user)},")
    if data is None:
        return f"{head}null,{generation}]".encode()
    pairs = len(data)
    payload = "\x00".join(chain((f"{head}{pairs},{generation}]",), _flatten(data.items())))
    if payload.count("\x00") != 2 * pairs:  # a key or value holds a NUL: data in the head
        payload = f"{head}{_encode_json(data)},{generation}]"
    return payload.encode("utf-8")


_STR = {str}


def parse_payload(plaintext: bytes) -> Fields | None:
    """The payload's fields, checked for shape; None when they are not what we seal."""
    try:
        parts = plaintext.decode("utf-8").split("\x00")
        rest = iter(parts)
        head = next(rest)
        fields, end = _scan_json(head, 0)
    except (ValueError, StopIteration, RecursionError):
        return None
    if end != len(head) or type(fields) is not list or len(fields) != 7:
        return None
    sid, created, accessed, expires, user, data, generation = fields
    if not is_valid_id(sid) or type(generation) is not int:
        return None
    if not (type(created) is int and type(accessed) is int and type(expires) is int):
        return None
    if user is not None and type(user) is not str:
        return None
    if type(data) is int:  # that many key/value pairs follow the head
        if len(parts) != 2 * data + 1:  # also refuses a negative count
            return None
        data = dict(zip(rest, rest, strict=False))  # pairs of one iterator
        if len(data) != len(parts) // 2:  # a key twice
            return None
    elif len(parts) != 1 or not (  # null (spilled) or an object of texts: nothing follows
        data is None or (type(data) is dict and set(map(type, data.values())) <= _STR)
    ):
        return None
    return sid, created / 1000, accessed / 1000, expires / 1000, user, data, generation
