"""``satchel migrate``: copy live sessions from Beaker, Session3, Pesto or another satchel store
into a satchel store, so that nobody is logged out by the switch.

A session from an old system is stored under :func:`~satchel.ids.legacy_id` of its old id and
marked with :data:`~satchel.ids.LEGACY_KEY`; an application whose middleware has
``legacy_ids=True`` (and the old cookie's name) finds it from the browser's old cookie once and
rotates it to a fresh satchel id on that request.  A ``satchel:URL`` source is copied as it is,
under the same ids.  The source is only read; a session already in the target is left alone, so
the command can be run again (say, once before and once after the switch).

Exit status: 0 when every live session was copied (or was already there), 1 when any could not
be (refused, unreadable, not storable) or the source failed, 2 for a usage mistake.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from ._oldstores import OldSession, Refused, Source, Unreadable, open_source
from .codec import Codec, JSONCodec, PickleCodec
from .errors import ConfigurationError
from .ids import LEGACY_KEY, is_legacy_id, legacy_id
from .record import Changes, SessionMeta
from .stores import Store, open_store

__all__ = ["add_arguments", "migrate", "run"]

EXIT_OK = 0
EXIT_FAILURE = 1
SECRET_ENV = "SATCHEL_SECRET"  # noqa: S105 - the name of the variable, not a secret


@dataclass
class Report:
    """What a migration did; ``failed`` is what makes the exit status 1."""

    seen: int = 0
    copied: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)

    def lines(self, dry_run: bool) -> list[str]:
        verb = "would copy" if dry_run else "copied"
        out = [f"{verb} {self.copied} of {self.seen} session{'' if self.seen == 1 else 's'}"]
        for title, counts in (("skipped", self.skipped), ("failed", self.failed)):
            if counts:
                parts = ", ".join(f"{n} {why}" for why, n in sorted(counts.items()))
                out.append(f"{title} {sum(counts.values())}: {parts}")
        return out


@dataclass
class Policy:
    """How a copied session's expiry is set, and how its values are stored."""

    idle_timeout: float = 1800
    absolute_timeout: float | None = 86400
    user_key: str | None = None
    codec: Codec = field(default_factory=JSONCodec)

    def expires(self, created: float, accessed: float) -> float:
        idle = accessed + self.idle_timeout
        return idle if self.absolute_timeout is None else min(idle, created +
                                                               self.absolute_timeout)


def migrate(source: Source | Store, target: Store, policy: Policy, *, dry_run: bool = False,
            progress: Callable[[int, int], None] | None = None,
            now: float | None = None) -> Report:
    """Copy every live session of ``source`` into ``target``; nothing at the source changes."""
    moment = time.time() if now is None else now
    report = Report()
    candidates = source.ids() if isinstance(source, Source) else sorted(source.ids())
    total = len(candidates)
    for done, old_id in enumerate(candidates, 1):
        report.seen += 1
        try:
            outcome = _copy_one(source, old_id, target, policy, dry_run, moment)
        except Refused as exc:
            outcome = f"!refused: the pickle names {exc}, which is not allowed (--allow-class)"
        except Unreadable as exc:
            outcome = f"!unreadable: {exc}"
        if outcome == "":
            report.copied += 1
        elif outcome.startswith("!"):
            report.failed[outcome[1:]] += 1
        else:
            report.skipped[outcome] += 1
        if progress is not None:
            progress(done, total)
    return report


def _copy_one(source: Source | Store, old_id: str, target: Store, policy: Policy,
              dry_run: bool, now: float) -> str:
    """Copy one session; '' when copied, else a reason (failures start with '!')."""
    if not isinstance(source, Source):
        record = source.load(old_id)
        if record is None:
            return "expired or gone"
        if target.exists(old_id):
            return "already in the target"
        if not dry_run:
            meta = SessionMeta(record.created, record.accessed, record.expires, record.user)
            target.save(old_id, Changes(dict(record.data), cleared=True), meta)
        return ""
    if not is_legacy_id(old_id):
        return "!id not in Beaker's, Session3's or Pesto's format (an old cookie could not find it)"
    old = source.read(old_id)
    if old is None:
        return "expired or gone"
    expires = policy.expires(old.created, old.accessed)
    if expires <= now:
        return "expired"
    sid = legacy_id(old_id)
    if target.exists(sid):
        return "already in the target"
    encoded, why = _encode(old, policy)
    if why:
        return "!" + why
    user = old.user
    if policy.user_key is not None and isinstance(old.data.get(policy.user_key), str):
        user = old.data[policy.user_key]
    if not dry_run:
        meta = SessionMeta(old.created, old.accessed, expires, user)
        target.save(sid, Changes(encoded, cleared=True), meta)
    return ""


def _encode(old: OldSession, policy: Policy) -> tuple[dict[str, str], str]:
    encoded = {LEGACY_KEY: policy.codec.encode(LEGACY_KEY, True)}
    for key, value in old.data.items():
        if not isinstance(key, str):
            return {}, "a key that is not a string"
        try:
            encoded[key] = policy.codec.encode(key, value)
        except TypeError:
            # The type's name only: session values never reach the output.
            return {}, f"a value of type {type(value).__name__} (use --pickle to keep it)"
    return encoded, ""


# -- the command ---------------------------------------------------------------------------------


def add_arguments(cmd: argparse.ArgumentParser) -> None:
    """The ``satchel migrate`` options."""
    cmd.add_argument("--from", dest="source", required=True, metavar="SOURCE",
                     help="beaker-file:DIR, beaker-database:SQLALCHEMY_URL, beaker-redis:URL, "
                          "session3-dir:DIR, pesto-file:DIR or satchel:STORE_URL")
    cmd.add_argument("--to", dest="target", required=True, metavar="URL",
                     help="the satchel store URL to copy into")
    cmd.add_argument("--dry-run", action="store_true",
                     help="read and check everything, write nothing")
    cmd.add_argument("--allow-class", action="append", default=[], metavar="MODULE.NAME",
                     help="a class of your application that the old pickles may hold "
                          "(imported and built when a session is read); repeatable")
    cmd.add_argument("--idle-timeout", type=float, default=1800, metavar="SECONDS",
                     help="the old sessions' idle timeout: older ones are not copied "
                          "(default: %(default)s)")
    cmd.add_argument("--absolute-timeout", type=float, default=86400, metavar="SECONDS",
                     help="a copied session ends this long after it was created "
                          "(0: never; default: %(default)s)")
    cmd.add_argument("--user-key", metavar="KEY",
                     help="a session key holding the user's name, indexed as the session's user")
    cmd.add_argument("--pickle", action="store_true",
                     help=f"store values as signed pickle (key from ${SECRET_ENV}), as an "
                          "application with pickle=True reads them")
    progress = cmd.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None,
                          help="show a progress bar (default: when stderr is a terminal)")
    progress.add_argument("--no-progress", dest="progress", action="store_false")


def run(args: argparse.Namespace) -> int:
    """Run ``satchel migrate``; print the summary; return the exit status."""
    if args.idle_timeout <= 0 or args.absolute_timeout < 0:
        raise ConfigurationError("--idle-timeout must be > 0 and --absolute-timeout >= 0")
    codec: Codec = JSONCodec()
    if args.pickle:
        secret = os.environ.get(SECRET_ENV)
        if not secret:
            raise ConfigurationError(f"--pickle signs values with the application's secret: "
                                     f"set ${SECRET_ENV}")
        codec = PickleCodec(secret)
    policy = Policy(args.idle_timeout, args.absolute_timeout or None, args.user_key, codec)
    source: Source | Store
    if args.source.startswith("satchel:"):
        source = open_store(args.source[len("satchel:"):])
    else:
        source = open_source(args.source, args.allow_class)
    try:
        with open_store(args.target) as target:
            show = sys.stderr.isatty() if args.progress is None else args.progress
            report = migrate(source, target, policy, dry_run=args.dry_run,
                             progress=_bar(sys.stderr) if show else None)
    finally:
        source.close()
    if show and report.seen:
        print(file=sys.stderr)
    for line in report.lines(args.dry_run):
        print(line)
    return EXIT_FAILURE if report.failed else EXIT_OK


def _bar(stream: IO[str], width: int = 30) -> Callable[[int, int], None]:
    def show(done: int, total: int) -> None:
        filled = width * done // total if total else width
        stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        stream.flush()
    return show
