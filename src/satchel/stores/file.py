"""FileStore: one append-only file per session, merged under a lock (POSIX only).

Layout: ``<directory>/<first two characters of the id>/<id>``; the directory and its shards are
0700, session files 0600.  A session file is a log of checksummed records whose last complete
one is the session (the format is in :mod:`satchel.stores._filelog`).

Why append rather than rewrite-and-rename: on ext4 (the common case) renaming over an existing
file makes the kernel flush the new file's data, and creating a file allocates an inode; each
costs 100-500 us, where appending to an open file costs a few.  Appends are as safe: a writer
that dies mid-append leaves an incomplete last record, which fails its length or CRC check, so
readers see the previous record; the next writer cuts it off.  Once a file grows past
``max(256 KiB, 4 records)`` the writer compacts it: it writes the latest record alone to
``.<id>.tmp`` and renames that over the file.  New files are made the same way, so nobody ever
sees a half-made file.

Writers hold an exclusive ``flock`` on the session's file, waiting at most ``lock_timeout``
seconds; a save reads what is on disk now, applies its changes and appends.  A blind write
(``update``) is the same locked read-merge-append, keeping the stored ``created`` and user: a
request that only writes its session opens its file once.  Creating a file and purging also
hold the shard's ``.lock``, which orders creators of one id.  Readers never lock.  Every write
sets the file's mtime to the record's expiry, so purge finds its candidates with a ``stat``
instead of a read.

With ``flat=True`` the session files sit directly in the directory (Session3's layout, which
admin scripts count and clean), and creators and purge lock the directory itself instead of a
``.lock`` file: between writes the directory holds session files and nothing else.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import stat
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import SplitResult, unquote

from ..errors import (
    ConfigurationError,
    SatchelError,
    StoreMisconfigured,
    StoreTimeout,
    StoreUnavailable,
)
from ..ids import is_valid_id
from ..record import Changes, SessionMeta, SessionRecord, security_log
from ._faults import PERMISSION_ERRNOS, misconfigured, reason, unavailable
from ._filelog import (
    MAGIC,
    Unreadable,
    encode_data,
    frame,
    head,
    latest,
    parse_data,
    parse_meta,
    read_latest,
    write_all,
)
from .base import BaseStore, now_or, url_options

__all__ = ["FileStore", "from_url"]

log = logging.getLogger("satchel")

_COMPACT_BYTES = 262144
_LOCK_NAME = ".lock"
_TMP_SUFFIX = ".tmp"
_SHARD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_READ_FLAGS = os.O_RDONLY | _O_CLOEXEC | _O_NOFOLLOW
_RDWR_FLAGS = os.O_RDWR | _O_CLOEXEC | _O_NOFOLLOW
_TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_CLOEXEC | _O_NOFOLLOW
_LOCK_FLAGS = os.O_RDWR | os.O_CREAT | _O_CLOEXEC | _O_NOFOLLOW
_MAX_TIME_NS = 4_000_000_000 * 10**9  # keeps utime in range; a clamped mtime only purges earlier


class FileStore(BaseStore):
    """Sessions as files in a local directory, safe across threads and processes.

    Load, save, touch and delete cost one file each.  ``purge``, ``ids``, ``count`` and
    ``user_sessions`` scan the directory (purge by ``stat``, reading only the files whose mtime
    says they expired).  Ids are the file names, so on a case-insensitive filesystem two ids
    that differ only in case would share a file: with 256-bit random ids that never happens by
    chance, and nobody can aim at an id they do not know.

    Args:
        directory: where sessions are kept; created (0700) if missing.
        lock_timeout: the longest a writer waits for another writer of the same shard before
            raising :class:`StoreTimeout`.
        fsync: flush each write to disk before returning.  Without it a record survives the
            death of the process but may be lost (never torn: records are checksummed) in a
            power failure; with it, it survives that too, at the cost of a disk flush
            (milliseconds) per write.
        create: False opens only an existing directory (for tools that read a store: a wrong
            path must not leave an empty store behind); otherwise a
            :class:`ConfigurationError`.
        flat: keep every session file directly in ``directory`` instead of in shards (for a
            few thousand sessions; a directory of millions of files is slow to scan).
    """

    thread_safe = True
    multiprocess_safe = True
    native_expiry = False

    def __init__(
        self, directory: str | os.PathLike[str], *, lock_timeout: float = 5.0, fsync: bool = False,
        create: bool = True, flat: bool = False,
    ) -> None:
        if (
            isinstance(lock_timeout, bool) or not isinstance(lock_timeout, (int, float))
            or not 0 < lock_timeout < math.inf
        ):
            raise ConfigurationError("FileStore: lock_timeout must be a positive number of seconds")
        self.directory = os.path.abspath(os.fspath(directory))
        self.lock_timeout = float(lock_timeout)
        self.fsync = bool(fsync)
        self.flat = bool(flat)
        if not create and not os.path.isdir(self.directory):
            # Tools that read a store must not leave an empty one behind a wrong path.
            raise ConfigurationError(
                f"FileStore: no store at {self.directory!r}: no such directory")
        where = f"FileStore directory {self.directory!r}"
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            mode = os.stat(self.directory).st_mode
        except OSError as exc:
            if exc.errno in PERMISSION_ERRNOS:
                raise misconfigured(where, exc) from exc
            raise unavailable(where, exc) from exc
        if not stat.S_ISDIR(mode):
            raise ConfigurationError(f"FileStore: {self.directory!r} is not a directory")
        if not os.access(self.directory, os.R_OK | os.W_OK | os.X_OK):
            # Found now, not as a 503 on the first login.
            raise StoreMisconfigured(
                f"{where} refuses satchel's settings: this process (uid {os.geteuid()}) "
                "may not write there")
        if mode & 0o077:
            log.warning(
                "FileStore directory %s is accessible to other users (mode %o); use 0700",
                self.directory, stat.S_IMODE(mode),
            )

    # -- the contract ----------------------------------------------------------------------

    def load(self, sid: str) -> SessionRecord | None:
        try:
            fd = os.open(self._paths(sid)[1], _READ_FLAGS)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._error("read", exc) from exc
        try:
            payload = latest(fd, os.fstat(fd).st_size)[0]
            created, accessed, expires, user, start = parse_meta(payload)
            if expires <= time.time():
                return None
            return SessionRecord(parse_data(payload, start), created, accessed, expires, user)
        except Unreadable as exc:
            self._unreadable(exc)
            return None
        except OSError as exc:
            raise self._error("read", exc) from exc
        finally:
            os.close(fd)

    def save(self, sid: str, changes: Changes, meta: SessionMeta) -> bool:
        shard, path = self._paths(sid)
        deadline = time.monotonic() + self.lock_timeout
        fd, size = self._open_locked(path, deadline)
        if fd < 0:
            if not changes.create:
                return False
            try:
                return self._create(shard, sid, changes, meta, deadline)
            except OSError as exc:  # a full disk, most likely
                raise self._error("write", exc) from exc
        try:
            body: bytes | None = None
            end = 0
            try:
                payload, end, size = latest(fd, size)
                _, _, expires, _, start = parse_meta(payload)
                if expires > meta.accessed:  # live by the caller's clock
                    body = _merge(changes, payload, start)
            except Unreadable as exc:
                self._unreadable(exc)
            if body is None:
                if not changes.create:
                    return False
                body, end = encode_data(changes.set), 0  # nothing live to keep: start afresh
            payload = head(meta.created, meta.accessed, meta.expires, meta.user) + body
            self._store(shard, sid, fd, end, size, payload, meta)
            return True
        except OSError as exc:
            raise self._error("write", exc) from exc
        finally:
            os.close(fd)

    def update(self, sid: str, changes: Changes, accessed: float, expires: float,
               lifetime: float | None) -> bool:
        return self._amend(sid, accessed, expires, lifetime,
                           lambda payload, start: _merge(changes, payload, start))

    def touch(self, sid: str, accessed: float, expires: float) -> bool:
        # The data goes into the new record as the bytes it was, never decoded.
        return self._amend(sid, accessed, expires, None, lambda payload, start: payload[start:])

    def delete(self, sid: str) -> bool:
        path = self._paths(sid)[1]
        fd = self._open_locked(path, time.monotonic() + self.lock_timeout)[0]
        if fd < 0:
            return False
        try:
            os.unlink(path)
            return True
        except OSError as exc:
            raise self._error("delete", exc) from exc
        finally:
            os.close(fd)

    def move(self, old: str, new: str, changes: Changes, meta: SessionMeta) -> bool:
        """Under the old file's lock: write the changed session as the new file, then unlink
        the old one.  A writer waiting for the old file's lock then finds no file."""
        path = self._paths(old)[1]
        shard = self._paths(new)[0]
        deadline = time.monotonic() + self.lock_timeout
        fd, size = self._open_locked(path, deadline)
        if fd < 0:
            return False
        try:
            try:
                payload, _, _ = latest(fd, size)
                _, _, expires, _, start = parse_meta(payload)
            except Unreadable as exc:
                self._unreadable(exc)
                return False
            if expires <= meta.accessed:
                return False
            body = head(meta.created, meta.accessed, meta.expires, meta.user) + _merge(
                changes, payload, start)
            lock = self._lock_shard(shard, deadline)  # orders the creators of ``new``
            try:
                self._replace(shard, new, MAGIC + frame(body), _times(meta))
            finally:
                os.close(lock)
            os.unlink(path)
            return True
        except OSError as exc:
            raise self._error("write", exc) from exc
        finally:
            os.close(fd)

    def exists(self, sid: str) -> bool:
        return self.load(sid) is not None

    def purge(self, now: float | None = None) -> int:
        """Remove expired records (and temporary files of writers that died); scans.

        A file is a candidate when its mtime (set to its expiry by every write) has passed; its
        record is checked again, under its lock, before it goes.  Unreadable session files whose
        mtime has passed are removed too, and counted.
        """
        moment = now_or(now)
        limit_ns = math.ceil(moment * 1e9) + 1000
        removed = 0
        for shard in self._shards():
            candidates: list[str] = []
            orphans = False
            for entry in _scan(shard):
                name = entry.name
                if is_valid_id(name):
                    try:
                        if entry.stat(follow_symlinks=False).st_mtime_ns <= limit_ns:
                            candidates.append(name)
                    except FileNotFoundError:
                        continue
                elif name.startswith(".") and name.endswith(_TMP_SUFFIX):
                    orphans = True
            if candidates or orphans:
                removed += self._purge_shard(shard, candidates, orphans, moment)
        return removed

    def count(self) -> int:
        """How many live records are kept; scans the directory."""
        return sum(1 for _ in self._live())

    def ids(self) -> Iterator[str]:
        """The ids of live records; scans the directory and reads each file's last record."""
        return (sid for sid, _ in self._live())

    def user_sessions(self, user: str) -> list[str]:
        """The ids of ``user``'s live records; scans the directory."""
        return [sid for sid, owner in self._live() if owner == user]

    def __repr__(self) -> str:
        return f"<FileStore directory={self.directory!r}>"

    # -- internals ---------------------------------------------------------------------------

    def _paths(self, sid: str) -> tuple[str, str]:
        # Ids arrive validated; checking again is cheap and keeps any other string out of a path.
        if not is_valid_id(sid):
            raise ValueError("FileStore: not a session id")
        shard = self.directory if self.flat else f"{self.directory}/{sid[:2]}"
        return shard, f"{shard}/{sid}"

    def _open_locked(self, path: str, deadline: float) -> tuple[int, int]:
        """Open a session file and lock it; (fd, size), or (-1, 0) when there is none.

        The lock is the file's own ``flock``.  A file that was replaced (compacted) or deleted
        while we waited for its lock has no name any more: we try again with what the name
        holds now.
        """
        while True:
            try:
                fd = os.open(path, _RDWR_FLAGS)
            except FileNotFoundError:
                return -1, 0
            except OSError as exc:
                raise self._error("open", exc) from exc
            self._flock(fd, deadline)
            try:
                status = os.fstat(fd)
                if status.st_nlink:
                    return fd, status.st_size
            except OSError as exc:
                os.close(fd)
                raise self._error("lock", exc) from exc
            os.close(fd)

    def _lock_shard(self, shard: str, deadline: float) -> int:
        """Lock the shard's ``.lock`` file, making the shard if needed: creation and purge.

        A flat store locks its directory itself, so that no lock file is left in it.
        """
        if self.flat:
            try:
                fd = os.open(shard, os.O_RDONLY | _O_CLOEXEC | getattr(os, "O_DIRECTORY", 0))
            except OSError as exc:
                raise self._error("lock", exc) from exc
            self._flock(fd, deadline)
            return fd
        lock_path = f"{shard}/{_LOCK_NAME}"
        try:
            try:
                fd = os.open(lock_path, _LOCK_FLAGS, 0o600)
            except FileNotFoundError:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(shard, 0o700)
                fd = os.open(lock_path, _LOCK_FLAGS, 0o600)
        except OSError as exc:
            raise self._error("lock", exc) from exc
        self._flock(fd, deadline)
        return fd

    def _flock(self, fd: int, deadline: float) -> None:
        """Take an exclusive ``flock`` on ``fd`` by ``deadline``, or close it and time out."""
        pause = 0.0005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                # Contended: poll with a growing pause, so a stuck holder costs at most the bound.
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise StoreTimeout(
                        f"FileStore: a session file lock in {self.directory!r} was held for "
                        f"more than {self.lock_timeout} s"
                    ) from None
                time.sleep(pause)
                pause = min(pause * 2, 0.02)
            except OSError as exc:
                os.close(fd)
                raise self._error("lock", exc) from exc

    def _create(
        self, shard: str, sid: str, changes: Changes, meta: SessionMeta, deadline: float
    ) -> bool:
        """Save a session that has no file yet, under the shard lock that orders creators."""
        lock = self._lock_shard(shard, deadline)
        try:
            fd = self._open_locked(f"{shard}/{sid}", deadline)[0]
            if fd >= 0:  # another request made it meanwhile: merge into theirs
                os.close(fd)
                os.close(lock)
                lock = -1
                return self.save(sid, changes, meta)
            body = encode_data(changes.set)
            payload = head(meta.created, meta.accessed, meta.expires, meta.user) + body
            self._replace(shard, sid, MAGIC + frame(payload), _times(meta))
            return True
        finally:
            if lock >= 0:
                os.close(lock)

    def _amend(self, sid: str, accessed: float, expires: float, lifetime: float | None,
               body: Callable[[bytes, int], bytes]) -> bool:
        """One locked read-amend-append of a live session's file, keeping its created time and
        user: ``body(payload, start)`` gives the new record's data from the latest record (its
        data starts at ``start``).  False when there is no live session to amend."""
        shard, path = self._paths(sid)
        fd, size = self._open_locked(path, time.monotonic() + self.lock_timeout)
        if fd < 0:
            return False
        try:
            payload, end, size = latest(fd, size)
            created, _, old_expires, user, start = parse_meta(payload)
            if old_expires <= accessed:  # dead by the caller's clock
                return False
            if lifetime is not None and created + lifetime < expires:
                expires = created + lifetime
            payload = head(created, accessed, expires, user) + body(payload, start)
            self._store(shard, sid, fd, end, size, payload, SessionMeta(created, accessed, expires))
            return True
        except Unreadable as exc:
            self._unreadable(exc)
            return False
        except OSError as exc:
            raise self._error("write", exc) from exc
        finally:
            os.close(fd)

    def _store(
        self, shard: str, sid: str, fd: int, end: int, size: int, payload: bytes,
        meta: SessionMeta,
    ) -> None:
        """Append ``payload`` as a record after ``end`` (lock held), or rewrite the file.

        ``end`` is where the last complete record ends (0: start afresh); bytes past it belong
        to a writer that died, and are cut off first.
        """
        record = frame(payload)
        times = _times(meta)
        if end <= 0 or end + len(record) > max(_COMPACT_BYTES, 4 * len(record)):
            self._replace(shard, sid, MAGIC + record, times)
            return
        if size != end:
            os.ftruncate(fd, end)
        try:
            write_all(fd, record, end)
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, end)
            raise
        os.utime(fd, ns=times)
        if self.fsync:
            os.fsync(fd)

    def _replace(self, shard: str, sid: str, content: bytes, times: tuple[int, int]) -> None:
        """Write a whole new file beside the target and rename it over (lock held)."""
        # Only the holder of the session's lock (for a new file, the shard's) writes this name.
        tmp = f"{shard}/.{sid}{_TMP_SUFFIX}"
        fd = os.open(tmp, _TMP_FLAGS, 0o600)
        try:
            write_all(fd, content, 0)
            os.utime(fd, ns=times)
            if self.fsync:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            _unlink_quietly(tmp)
            raise
        os.close(fd)
        try:
            os.replace(tmp, f"{shard}/{sid}")
        except BaseException:
            _unlink_quietly(tmp)
            raise
        if self.fsync:
            dir_fd = os.open(shard, os.O_RDONLY | _O_CLOEXEC)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def _purge_shard(self, shard: str, candidates: list[str], orphans: bool, moment: float) -> int:
        removed = 0
        deadline = time.monotonic() + self.lock_timeout
        lock = self._lock_shard(shard, deadline)  # no session of this shard is created meanwhile
        try:
            for sid in candidates:
                path = f"{shard}/{sid}"
                fd, size = self._open_locked(path, deadline)
                if fd < 0:
                    continue
                try:
                    try:
                        if parse_meta(latest(fd, size)[0])[2] > moment:
                            continue
                    except Unreadable as exc:
                        self._unreadable(exc)
                    os.unlink(path)  # with the file's lock held: no writer is appending to it
                    removed += 1
                finally:
                    os.close(fd)
            if orphans:
                for entry in _scan(shard):
                    self._remove_orphan(shard, entry.name, deadline)
        except OSError as exc:
            raise self._error("purge", exc) from exc
        finally:
            os.close(lock)
        return removed

    def _remove_orphan(self, shard: str, name: str, deadline: float) -> None:
        """Remove ``.<id>.tmp`` if no writer is using it (shard lock held).

        Only a creator (who holds the shard lock) or a compactor (who holds the session file's
        lock) writes it: holding both, a temporary file found is one a dead writer left.
        """
        sid = name[1:-len(_TMP_SUFFIX)]
        if not (name.startswith(".") and name.endswith(_TMP_SUFFIX) and is_valid_id(sid)):
            return
        fd = self._open_locked(f"{shard}/{sid}", deadline)[0]
        try:
            _unlink_quietly(f"{shard}/{name}")
        finally:
            if fd >= 0:
                os.close(fd)

    def _shards(self) -> list[str]:
        if self.flat:
            return [self.directory]
        try:
            with os.scandir(self.directory) as entries:
                return [
                    e.path for e in entries
                    if len(e.name) == 2 and _SHARD_CHARS.issuperset(e.name)
                    and e.is_dir(follow_symlinks=False)
                ]
        except OSError as exc:
            raise self._error("scan", exc) from exc

    def _live(self) -> Iterator[tuple[str, str | None]]:
        """(id, user) of every live record, scanning the directory."""
        now = time.time()
        for shard in self._shards():
            for entry in _scan(shard):
                sid = entry.name
                if not is_valid_id(sid):
                    continue  # the lock file, temporary files, anything foreign
                try:
                    payload = read_latest(entry.path, _READ_FLAGS)
                    if payload is None:
                        continue
                    _, _, expires, user, _ = parse_meta(payload)
                except Unreadable as exc:
                    self._unreadable(exc)
                    continue
                except OSError as exc:
                    raise self._error("read", exc) from exc
                if expires > now:
                    yield sid, user

    def _unreadable(self, exc: Unreadable) -> None:
        # Neither the id nor any byte of the file goes to the log.
        security_log.warning("FileStore: ignored an unreadable session file in %s (%s)",
                             self.directory, exc)

    def _error(self, action: str, exc: OSError) -> SatchelError:
        """The outage ``exc`` means, to raise ``from exc``: neither names the file, whose
        name is a session id (the OS's error is stripped of it, as it rides along chained).
        A permission the process lacks is a setting to fix, not an outage."""
        exc.filename = exc.filename2 = None
        if exc.errno in PERMISSION_ERRNOS:
            return StoreMisconfigured(
                f"FileStore: cannot {action} in {self.directory!r}: {reason(exc)}")
        return StoreUnavailable(
            f"FileStore: cannot {action} in {self.directory!r}: "
            f"{exc.strerror or type(exc).__name__}"
        )


# -- helpers -----------------------------------------------------------------------------------


def _merge(changes: Changes, payload: bytes, start: int) -> bytes:
    """The data part of a new record: ``changes`` applied to the data of ``payload``."""
    if changes.cleared:
        return encode_data(changes.set)  # nothing stored survives: no need to decode it
    data = parse_data(payload, start, strict=False)
    for key in changes.deleted:
        data.pop(key, None)
    data.update(changes.set)
    return encode_data(data)


def _times(meta: SessionMeta) -> tuple[int, int]:
    """(atime, mtime) in ns for a session file: the mtime is its expiry, the hint purge reads."""
    return (min(max(int(meta.accessed * 1e9), 0), _MAX_TIME_NS),
            min(max(int(meta.expires * 1e9), 0), _MAX_TIME_NS))


def _scan(shard: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(shard) as entries:
            return list(entries)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StoreUnavailable(f"FileStore: cannot scan a shard: {exc.strerror}") from exc


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


_BOOLS = {"1": True, "true": True, "yes": True, "on": True,
          "0": False, "false": False, "no": False, "off": False}


def from_url(parsed: SplitResult, **options: Any) -> FileStore:
    """``file:///absolute/dir`` (or ``file://localhost/absolute/dir``), with optional
    ``?lock_timeout=SECONDS&fsync=true&flat=true``."""
    form = "file:///absolute/directory"
    if parsed.netloc not in ("", "localhost"):
        raise ConfigurationError(
            f"file:// URL names host {parsed.netloc!r}; sessions are kept on this machine: "
            f"use {form}"
        )
    path = unquote(parsed.path)
    if not path.startswith("/") or path.strip("/") == "":
        raise ConfigurationError(f"file:// URL needs an absolute directory, not /: use {form}")
    if parsed.fragment:
        raise ConfigurationError(f"file:// URL takes no #fragment: use {form}")
    query = url_options(parsed)
    if "lock_timeout" in query:
        try:
            options.setdefault("lock_timeout", float(query.pop("lock_timeout")))
        except ValueError:
            raise ConfigurationError("file://: lock_timeout must be a number of seconds") from None
    for name in ("fsync", "flat"):
        if name in query:
            flag = _BOOLS.get(query.pop(name).lower())
            if flag is None:
                raise ConfigurationError(f"file://: {name} must be true or false")
            options.setdefault(name, flag)
    if query:
        raise ConfigurationError(f"file://: unknown option(s) {sorted(query)}")
    return FileStore(path, **options)
