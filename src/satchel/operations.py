"""The operator's commands over a store: list, show, delete, revoke-user, stats.

Everything goes through the store contract (``records``, ``load``, ``delete``,
``delete_user``), so every store that can list its sessions can be operated, and one that
cannot (memcached) says so.  Sessions are named by a fingerprint (the first 12 hex digits of
the SHA-256 of the id) unless the operator asks for full ids with ``--ids``: a terminal, a
ticket or a shell history is no place for a live credential.  ``show`` and ``delete`` take a
full id or a fingerprint.  Session data is shown only with ``show --data``, decoded through
the codec.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .codec import CodecError, JSONCodec
from .errors import ConfigurationError
from .record import SessionRecord
from .stores import Store, open_store

__all__ = ["EXIT_NOT_FOUND", "add_commands", "fingerprint", "open_existing"]

EXIT_OK = 0
EXIT_NOT_FOUND = 1

FINGERPRINT_LENGTH = 12
AGE_BUCKETS = ((3600.0, "<1h"), (86400.0, "1h-1d"), (7 * 86400.0, "1d-7d"),
               (30 * 86400.0, "7d-30d"), (math.inf, ">=30d"))
SIZE_BUCKETS = ((1024, "<1KiB"), (4096, "1-4KiB"), (16384, "4-16KiB"), (65536, "16-64KiB"),
                (math.inf, ">=64KiB"))
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw]?)")
_FINGERPRINT = re.compile(f"[0-9a-f]{{{FINGERPRINT_LENGTH}}}")


def fingerprint(sid: str) -> str:
    """A short name for a session that does not let whoever reads it use the session."""
    return hashlib.sha256(sid.encode()).hexdigest()[:FINGERPRINT_LENGTH]


def add_commands(sub: Any) -> None:
    """Register the commands on the ``satchel`` parser's subparsers."""
    def command(name: str, func: Callable[[argparse.Namespace], int],
                text: str) -> argparse.ArgumentParser:
        cmd: argparse.ArgumentParser = sub.add_parser(
            name, help=text, description=text[0].upper() + text[1:] + ".")
        cmd.add_argument("url", metavar="URL", help="store URL, e.g. sqlite:////var/lib/app.db")
        cmd.add_argument("--json", action="store_true", help="print JSON for scripts")
        cmd.set_defaults(func=func, command=name)
        return cmd

    listing = command("list", _list, "list live sessions, oldest first")
    listing.add_argument("--user", help="only this user's sessions")
    listing.add_argument("--older-than", metavar="AGE", type=_duration,
                         help="only sessions created longer ago than AGE (90s, 30m, 12h, 7d)")
    listing.add_argument("--prefix", default="", help="only ids (or fingerprints) starting so")
    listing.add_argument("--limit", type=_count_arg, default=50, help="at most N (default 50)")
    listing.add_argument("--offset", type=_count_arg, default=0, help="skip the first N")
    listing.add_argument("--ids", action="store_true", help="show full ids, not fingerprints")

    show = command("show", _show, "show one session's metadata (its data with --data)")
    show.add_argument("session", metavar="ID", help="a session id or its fingerprint")
    show.add_argument("--data", action="store_true", help="also show the decoded data")
    show.add_argument("--ids", action="store_true", help="show the full id")

    delete = command("delete", _delete, "delete one session (log it out)")
    delete.add_argument("session", metavar="ID", help="a session id or its fingerprint")

    revoke = command("revoke-user", _revoke_user, "delete every session of a user")
    revoke.add_argument("user", metavar="USER")

    command("stats", _stats, "count live sessions by age, size and user")


# -- commands ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Row:
    sid: str
    record: SessionRecord

    def as_dict(self, now: float, full_id: bool) -> dict[str, Any]:
        rec = self.record
        out: dict[str, Any] = {"fingerprint": fingerprint(self.sid)}
        if full_id:
            out["id"] = self.sid
        out.update(user=rec.user, created=rec.created, accessed=rec.accessed,
                   expires=None if math.isinf(rec.expires) else rec.expires,
                   age=round(now - rec.created, 3), keys=len(rec.data), size=_size(rec))
        return out


def _list(args: argparse.Namespace) -> int:
    now = time.time()
    with open_existing(args.url, args.command) as store:
        rows = [row for row in _rows(store, now) if _matches(row, args, now)]
    rows.sort(key=lambda row: (row.record.created, row.sid))
    page = rows[args.offset:args.offset + args.limit]
    following = args.offset + len(page)
    items = [row.as_dict(now, args.ids) for row in page]
    if args.json:
        _print_json({"total": len(rows), "offset": args.offset, "limit": args.limit,
                     "next_offset": following if following < len(rows) else None,
                     "sessions": items})
        return EXIT_OK
    head = "ID" if args.ids else "FINGERPRINT"
    table = [[item.get("id", item["fingerprint"]), item["user"] or "-",
              _when(item["created"]), _span(item["age"]),
              _span(item["expires"] - now) if item["expires"] is not None else "never",
              str(item["keys"]), str(item["size"])] for item in items]
    _print_table([head, "USER", "CREATED (UTC)", "AGE", "EXPIRES IN", "KEYS", "BYTES"], table)
    shown = f"{args.offset + 1}-{following}" if page else "none"
    print(f"{shown} of {len(rows)}" + (f"; next: --offset {following}"
                                       if following < len(rows) else ""))
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    now = time.time()
    with open_existing(args.url, args.command) as store:
        found = _find(store, args.session)
        if found is None:
            return _not_found(f"no live session {_named(args.session)}")
        item = found.as_dict(now, args.ids)
        if args.data:
            item["data"] = _decoded(found.record)
    if args.json:
        _print_json(item)
        return EXIT_OK
    for key, value in item.items():
        if key == "data":
            continue
        if key in ("created", "accessed", "expires") and value is not None:
            value = _when(value)
        elif key == "age":
            value = _span(value)
        print(f"{key + ':':13}{'-' if value is None else value}")
    if args.data:
        print("data:")
        for key, value in sorted(item["data"].items()):
            print(f"  {key} = {value!r}")
    return EXIT_OK


def _delete(args: argparse.Namespace) -> int:
    with open_existing(args.url, args.command) as store:
        found = _find(store, args.session)
        if found is None or not store.delete(found.sid):
            return _not_found(f"no live session {_named(args.session)}")
        name = fingerprint(found.sid)
    if args.json:
        _print_json({"deleted": 1, "fingerprint": name})
    else:
        print(f"deleted session {name}")
    return EXIT_OK


def _revoke_user(args: argparse.Namespace) -> int:
    with open_existing(args.url, args.command) as store:
        removed = _delete_user(store, args.user)
    if args.json:
        _print_json({"user": args.user, "deleted": removed})
    else:
        print(f"deleted {removed} session{'' if removed == 1 else 's'} of {args.user!r}")
    return EXIT_OK if removed else EXIT_NOT_FOUND


def _stats(args: argparse.Namespace) -> int:
    now = time.time()
    ages: Counter[str] = Counter({label: 0 for _, label in AGE_BUCKETS})
    sizes: Counter[str] = Counter({label: 0 for _, label in SIZE_BUCKETS})
    users: Counter[str] = Counter()
    total = anonymous = total_bytes = 0
    with open_existing(args.url, args.command) as store:
        for row in _rows(store, now):
            total += 1
            size = _size(row.record)
            total_bytes += size
            ages[_bucket(AGE_BUCKETS, now - row.record.created)] += 1
            sizes[_bucket(SIZE_BUCKETS, size)] += 1
            if row.record.user is None:
                anonymous += 1
            else:
                users[row.record.user] += 1
    result = {"count": total, "bytes": total_bytes, "by_age": dict(ages),
              "by_size": dict(sizes), "anonymous": anonymous, "users": len(users),
              "sessions_per_user": dict(users.most_common())}
    if args.json:
        _print_json(result)
        return EXIT_OK
    print(f"sessions: {total} ({total_bytes} bytes of data); users: {len(users)}; "
          f"anonymous sessions: {anonymous}")
    _print_table(["AGE", "SESSIONS"], [[k, str(v)] for k, v in ages.items()])
    _print_table(["SIZE", "SESSIONS"], [[k, str(v)] for k, v in sizes.items()])
    if users:
        _print_table(["USER", "SESSIONS"], [[k, str(v)] for k, v in users.most_common(20)])
    return EXIT_OK


# -- helpers -------------------------------------------------------------------------------------


def open_existing(url: str, verb: str) -> Store:
    """The store at ``url`` for a command that works on the sessions already there.

    Such a command never creates a store (a mistyped path or a cron job run in the wrong
    directory would count or purge an empty one forever, and leave it behind), and refuses a
    store that lives inside one process: from here it is always empty.
    """
    store = open_store(url, create=False)
    if not store.multiprocess_safe:
        store.close()
        scheme = url.partition("://")[0]
        raise ConfigurationError(
            f"{scheme}:// sessions live inside the process that made them; this command's "
            f"store would always be empty, so {verb} means nothing here: give the URL of the "
            "store your application uses")
    return store


def _rows(store: Store, now: float) -> Iterator[_Row]:
    records = getattr(store, "records", None)
    pairs: Iterator[tuple[str, SessionRecord | None]] = (
        records() if callable(records)  # a Store that does not derive from BaseStore has none
        else ((sid, store.load(sid)) for sid in store.ids()))
    for sid, record in pairs:
        if record is not None and record.expires > now:
            yield _Row(sid, record)


def _matches(row: _Row, args: argparse.Namespace, now: float) -> bool:
    if args.user is not None and row.record.user != args.user:
        return False
    if args.older_than is not None and now - row.record.created <= args.older_than:
        return False
    return (not args.prefix or row.sid.startswith(args.prefix)
            or fingerprint(row.sid).startswith(args.prefix))


def _find(store: Store, name: str) -> _Row | None:
    """The live session named by a full id or a fingerprint (fingerprints need a listing)."""
    if _FINGERPRINT.fullmatch(name) is None:
        record = store.load(name)
        return None if record is None else _Row(name, record)
    hits = [row for row in _rows(store, time.time()) if fingerprint(row.sid) == name]
    if len(hits) > 1:  # 48 bits: not in any real store, but never act on the wrong one
        raise ConfigurationError(f"fingerprint {name} names {len(hits)} sessions: give the id")
    return hits[0] if hits else None


def _delete_user(store: Store, user: str) -> int:
    delete_user = getattr(store, "delete_user", None)
    if callable(delete_user):
        return int(delete_user(user))
    return sum(1 for sid in store.user_sessions(user) if store.delete(sid))


def _decoded(record: SessionRecord) -> dict[str, Any]:
    codec = JSONCodec()
    out: dict[str, Any] = {}
    for key, text in record.data.items():
        try:
            out[key] = codec.decode(text)
        except CodecError as exc:
            out[key] = f"<undecodable: {exc}>"
    return out


def _size(record: SessionRecord) -> int:
    return sum(len(k.encode()) + len(v.encode()) for k, v in record.data.items())


def _bucket(buckets: tuple[tuple[float, str], ...], value: float) -> str:
    return next(label for bound, label in buckets if value < bound)


def _named(name: str) -> str:
    return name if _FINGERPRINT.fullmatch(name) else fingerprint(name) + " (fingerprint)"


def _not_found(message: str) -> int:
    print(f"satchel: {message}", file=sys.stderr)
    return EXIT_NOT_FOUND


def _duration(text: str) -> float:
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90s, 30m, 12h or 7d")
    return float(match[1]) * _UNITS[match[2] or "s"]


def _count_arg(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    return int(text)


def _when(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _span(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _print_table(head: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(cell) for cell in column) for column in zip(head, *rows, strict=False)]
    for line in (head, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
              .rstrip())


def _print_json(value: Any) -> None:
    print(json.dumps(value, default=repr, sort_keys=True))
