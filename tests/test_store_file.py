"""FileStore against the store contract, plus its layout, permissions, locking and crash safety."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import select
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import satchel
from satchel import Changes, FileStore, SessionMeta
from satchel.ids import new_id
from satchel.stores import _filelog
from satchel.stores.file import _COMPACT_BYTES as COMPACT_BYTES

from .contract import StoreContract, check_reads_as_absent, meta, put


class TestFileStore(StoreContract):
    @pytest.fixture
    def session_dir(self, tmp_path: Path) -> Path:
        return tmp_path / "sessions"

    @pytest.fixture
    def store(self, session_dir: Path) -> Iterator[FileStore]:
        with FileStore(session_dir) as store:
            yield store

    @pytest.fixture
    def store_spec(self, session_dir: Path) -> tuple[str, dict[str, Any]]:
        return f"file://{session_dir}", {}


class TestFlatFileStore(TestFileStore):
    """The same contract with every session file directly in the directory (``flat=True``)."""

    @pytest.fixture
    def store(self, session_dir: Path) -> Iterator[FileStore]:
        with FileStore(session_dir, flat=True) as store:
            yield store

    @pytest.fixture
    def store_spec(self, session_dir: Path) -> tuple[str, dict[str, Any]]:
        return f"file://{session_dir}?flat=true", {}


def _start(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE, text=True,
    )


def _wait_for_line(proc: subprocess.Popen[str], expected: str, timeout: float = 20.0) -> None:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"child did not print {expected!r} within {timeout} s"
    assert proc.stdout.readline().strip() == expected


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


# -- layout and permissions ------------------------------------------------------------------


def test_permissions_do_not_depend_on_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        store = FileStore(tmp_path / "a" / "sessions")
        sid = new_id()
        put(store, sid, {"k": "1"})
    finally:
        os.umask(old)
    root = tmp_path / "a" / "sessions"
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE((root / sid[:2]).stat().st_mode) == 0o700
    assert stat.S_IMODE((root / sid[:2] / sid).stat().st_mode) == 0o600
    assert stat.S_IMODE((root / sid[:2] / ".lock").stat().st_mode) == 0o600


def test_sharding_layout(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    sids = [new_id() for _ in range(5)]
    for sid in sids:
        put(store, sid, {"k": "1"})
    for sid in sids:
        assert (tmp_path / sid[:2] / sid).is_file()
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {sid[:2] for sid in sids}
    for shard in names:
        files = {p.name for p in (tmp_path / shard).iterdir()}
        assert files == {".lock"} | {sid for sid in sids if sid[:2] == shard}
    store.delete(sids[0])
    assert not (tmp_path / sids[0][:2] / sids[0]).exists()


def test_flat_layout_leaves_only_session_files(tmp_path: Path) -> None:
    store = FileStore(tmp_path, flat=True)
    sids = [new_id() for _ in range(4)]
    for sid in sids:
        put(store, sid, {"k": "1"})
        assert store.save(sid, Changes(set={"k": "2"}, create=False), meta())  # an append
    store.touch(sids[0], time.time(), time.time() + 60)
    assert {p.name for p in tmp_path.iterdir()} == set(sids)
    assert all((tmp_path / sid).is_file() for sid in sids)
    assert store.delete(sids[0])
    assert store.save(sids[1], Changes(set={"k": "3"}, create=False), meta(ttl=-1))
    assert store.purge() == 1
    assert {p.name for p in tmp_path.iterdir()} == set(sids[2:])
    assert sorted(store.ids()) == sorted(sids[2:])


def test_warns_about_a_directory_others_can_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tmp_path.chmod(0o755)
    with caplog.at_level(logging.WARNING, logger="satchel"):
        FileStore(tmp_path)
    assert "accessible to other users" in caplog.text


def test_a_string_that_is_not_an_id_never_becomes_a_path(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "s")
    for bad in ("../../etc/passwd", "a" * 42, "a" * 42 + "/", ""):
        with pytest.raises(ValueError, match="not a session id"):
            store.load(bad)
        with pytest.raises(ValueError, match="not a session id"):
            store.save(bad, Changes(set={"k": "1"}), meta())
    assert list((tmp_path / "s").iterdir()) == []


# -- unreadable files ------------------------------------------------------------------------


def _path(store: FileStore, sid: str) -> Path:
    return Path(store.directory) / sid[:2] / sid


def _garbled(tmp_path: Path) -> tuple[FileStore, str]:
    """A store whose one session file was overwritten with garbage (marked SECRET-CONTENT, so a
    log that quoted it would show)."""
    store = FileStore(tmp_path)
    sid = new_id()
    put(store, sid, {"k": "1"})
    _path(store, sid).write_bytes(b"SECRET-CONTENT " + os.urandom(200))
    return store, sid


def test_garbage_file_reads_as_absent_and_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, sid = _garbled(tmp_path)
    with caplog.at_level(logging.WARNING, logger="satchel"):
        assert store.load(sid) is None
        assert store.exists(sid) is False
        assert store.save(sid, Changes(set={"k": "2"}, create=False), meta()) is False
    assert caplog.records and all(r.name == "satchel.security" for r in caplog.records)
    assert "unreadable session file" in caplog.text
    assert sid not in caplog.text and "SECRET" not in caplog.text
    # A save that may create replaces the garbage with a good file.
    put(store, sid, {"k": "3"})
    record = store.load(sid)
    assert record is not None and record.data == {"k": "3"}


@pytest.mark.parametrize("content", [b"", b"satchel-ses", b"satchel-session 1\n", b"\x00" * 64])
def test_empty_or_truncated_file_reads_as_absent(tmp_path: Path, content: bytes) -> None:
    store = FileStore(tmp_path)
    sid = new_id()
    put(store, sid, {"k": "1"})
    _path(store, sid).write_bytes(content)
    assert store.load(sid) is None
    assert store.touch(sid, time.time(), time.time() + 60) is False
    assert list(store.ids()) == []


def test_an_incomplete_last_record_leaves_the_previous_one(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    sid = new_id()
    put(store, sid, {"k": '"old"'})
    path = _path(store, sid)
    old_size = path.stat().st_size
    store.save(sid, Changes(set={"k": '"new"', "j": '"' + "x" * 3000 + '"'}, create=False), meta())
    assert path.stat().st_size > old_size  # appended, not rewritten
    for cut in (old_size + 3, old_size + 1500, path.stat().st_size - 1):
        with path.open("r+b") as f:
            full = f.read()
            f.truncate(cut)
        record = store.load(sid)
        assert record is not None and record.data == {"k": '"old"'}
        path.write_bytes(full)
    # A writer cuts the incomplete record off before appending its own.
    path.write_bytes(full[: old_size + 1500])
    store.save(sid, Changes(set={"z": "1"}, create=False), meta())
    record = store.load(sid)
    assert record is not None and record.data == {"k": '"old"', "z": "1"}


def test_compaction_bounds_the_file_and_keeps_the_data(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    sid = new_id()
    put(store, sid, {f"k{i}": '"' + "v" * 100 + '"' for i in range(10)})
    sizes = []
    record_size = _path(store, sid).stat().st_size
    writes = 2 * COMPACT_BYTES // record_size
    for n in range(writes):
        store.save(sid, Changes(set={"n": str(n)}, create=False), meta())
        sizes.append(_path(store, sid).stat().st_size)
    assert max(sizes) <= COMPACT_BYTES
    assert min(sizes[writes // 2:]) < 2 * record_size  # rewritten down to one record
    record = store.load(sid)
    assert record is not None and record.data["n"] == str(writes - 1) and len(record.data) == 11
    assert not any(p.name.endswith(".tmp") for p in _path(store, sid).parent.iterdir())


def test_touch_keeps_data_and_sets_mtime_to_expiry(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    sid = new_id()
    now = time.time()
    put(store, sid, {"k": '"v"'}, now=now, ttl=60, user="ana")
    assert store.touch(sid, now + 5, now + 500) is True
    record = store.load(sid)
    assert record is not None
    assert (record.data, record.user, record.expires) == ({"k": '"v"'}, "ana", now + 500)
    assert _path(store, sid).stat().st_mtime == pytest.approx(now + 500, abs=1e-3)


def test_update_appends_a_record_that_keeps_created_and_user(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    sid = new_id()
    now = time.time()
    put(store, sid, {"k": '"v"', "gone": "1"}, now=now - 10, ttl=60, user="ana")
    path = _path(store, sid)
    size, inode = path.stat().st_size, path.stat().st_ino
    changes = Changes(set={"j": "2"}, deleted=frozenset({"gone"}), create=False)
    assert store.update(sid, changes, now, now + 500, 100.0) is True
    assert path.stat().st_size > size and path.stat().st_ino == inode  # appended in place
    record = store.load(sid)
    assert record is not None
    assert (record.data, record.user) == ({"k": '"v"', "j": "2"}, "ana")
    assert (record.created, record.accessed) == (now - 10, now)
    assert record.expires == now - 10 + 100  # capped at created + lifetime
    assert path.stat().st_mtime == pytest.approx(now + 90, abs=1e-3)  # purge's hint follows


def test_update_leaves_an_unreadable_file_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, sid = _garbled(tmp_path)
    garbage = _path(store, sid).read_bytes()
    now = time.time()
    with caplog.at_level(logging.WARNING, logger="satchel"):
        assert store.update(sid, Changes(set={"k": "2"}, create=False), now, now + 60,
                            None) is False
    assert "unreadable session file" in caplog.text and "SECRET" not in caplog.text
    assert _path(store, sid).read_bytes() == garbage


def test_purge_removes_orphaned_temporary_files(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    sid = new_id()
    put(store, sid, {"k": "1"})
    orphan = _path(store, sid).parent / f".{sid}.tmp"
    orphan.write_bytes(b"half a file")
    assert list(store.ids()) == [sid]
    assert store.purge() == 0
    assert not orphan.exists()
    assert store.load(sid) is not None


def test_fsync_option_round_trips(tmp_path: Path) -> None:
    store = FileStore(tmp_path, fsync=True)
    sid = new_id()
    put(store, sid, {"k": "1"})
    store.save(sid, Changes(set={"j": "2"}, create=False), meta())
    record = store.load(sid)
    assert record is not None and record.data == {"k": "1", "j": "2"}


# -- locking ---------------------------------------------------------------------------------

_HOLD_LOCK = """
    import fcntl, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    print("locked", flush=True)
    time.sleep(60)
"""


def test_a_lock_held_by_another_process_times_out(tmp_path: Path) -> None:
    store = FileStore(tmp_path, lock_timeout=0.3)
    sid = new_id()
    put(store, sid, {"k": "1"})
    holder = _start(_HOLD_LOCK, str(tmp_path / sid[:2] / sid))  # writers lock the session file
    try:
        _wait_for_line(holder, "locked")
        started = time.monotonic()
        with pytest.raises(satchel.StoreTimeout, match="lock"):
            store.save(sid, Changes(set={"k": "2"}, create=False), meta())
        elapsed = time.monotonic() - started
        assert 0.25 <= elapsed < 2.0
        with pytest.raises(satchel.StoreTimeout):
            store.delete(sid)
        with pytest.raises(satchel.StoreTimeout):
            store.touch(sid, time.time(), time.time() + 60)
        with pytest.raises(satchel.StoreTimeout):  # a blind write merges under the lock too
            store.update(sid, Changes(set={"k": "2"}, create=False), time.time(),
                         time.time() + 60, None)
        # Readers never lock: the session still loads while a writer is stuck.
        record = store.load(sid)
        assert record is not None and record.data == {"k": "1"}
    finally:
        _stop(holder)
    assert store.save(sid, Changes(set={"k": "3"}, create=False), meta()) is True


def test_a_held_shard_lock_times_out_creation_only(tmp_path: Path) -> None:
    store = FileStore(tmp_path, lock_timeout=0.3)
    sid = new_id()
    put(store, sid, {"k": "1"})
    newcomer = sid[:2] + new_id()[2:]  # same shard, no file yet
    holder = _start(_HOLD_LOCK, str(tmp_path / sid[:2] / ".lock"))
    try:
        _wait_for_line(holder, "locked")
        started = time.monotonic()
        with pytest.raises(satchel.StoreTimeout):
            put(store, newcomer, {"k": "1"})
        assert 0.25 <= time.monotonic() - started < 2.0
        # Sessions that exist lock their own file, not the shard.
        assert store.save(sid, Changes(set={"k": "2"}, create=False), meta()) is True
    finally:
        _stop(holder)
    put(store, newcomer, {"k": "1"})
    assert store.load(newcomer) is not None


# -- crash safety ----------------------------------------------------------------------------

_WRITER = """
    import json, sys, time
    from satchel import Changes, FileStore, SessionMeta
    store = FileStore(sys.argv[1])
    sids = sys.argv[3:]
    gen = int(sys.argv[2])
    while True:
        gen += 1
        data = {f"k{j}": json.dumps(f"{gen}:" + "x" * 40000) for j in range(10)}
        data["gen"] = str(gen)
        now = time.time()
        for sid in sids:
            store.save(sid, Changes(set=data, create=False), SessionMeta(now, now, now + 3600))
        if gen == int(sys.argv[2]) + 1:
            print("ready", flush=True)
"""


def _check_consistent(store: FileStore, sid: str) -> int:
    record = store.load(sid)
    assert record is not None
    gen = int(record.data["gen"])
    for key, value in record.data.items():
        if key != "gen":
            assert json.loads(value).startswith(f"{gen}:")
    assert len(record.data) == 11
    return gen


def test_writers_killed_mid_write_leave_every_session_readable(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    sids = [new_id() for _ in range(3)]
    for sid in sids:
        data = {f"k{j}": json.dumps("0:") for j in range(10)}
        put(store, sid, dict(data, gen="0"))
    rng = random.Random()
    last = dict.fromkeys(sids, 0)
    for _ in range(6):
        gen = max(last.values()) + 1000
        writer = _start(_WRITER, str(tmp_path), str(gen), *sids)
        try:
            _wait_for_line(writer, "ready")
            time.sleep(rng.uniform(0.0, 0.12))
        finally:
            _stop(writer)
        assert writer.returncode == -signal.SIGKILL
        for sid in sids:
            now_gen = _check_consistent(store, sid)
            assert now_gen >= last[sid]  # the old record or a newer one, never an older one
            last[sid] = now_gen
        assert set(store.ids()) == set(sids)  # temporary files are never taken for sessions
        assert store.count() == len(sids)
    assert store.purge() == 0
    for sid in sids:
        assert not (tmp_path / sid[:2] / f".{sid}.tmp").exists()
        store.save(sid, Changes(set={"after": "1"}, create=False), meta())
        record = store.load(sid)
        assert record is not None and record.data["after"] == "1"


_BUSY_WRITER = """
    import json, sys, time
    from satchel import Changes, FileStore, SessionMeta
    store = FileStore(sys.argv[1])
    sid = sys.argv[2]
    target = int(sys.argv[3])
    deadline = time.monotonic() + 20  # a bound for a very busy machine
    gen = 0
    while gen < target and time.monotonic() < deadline:
        gen += 1
        size = 30 if gen % 3 else 6000  # small records and ones larger than a tail read
        data = {f"k{j}": json.dumps(f"{gen}:" + "x" * size) for j in range(10)}
        data["gen"] = str(gen)
        now = time.time()
        store.save(sid, Changes(set=data, create=False), SessionMeta(now, now, now + 3600))
        if gen == 1:
            print("ready", flush=True)
    print(gen, flush=True)
"""


def test_readers_never_see_a_missing_or_torn_record_while_a_process_writes(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path)
    sid = new_id()
    put(store, sid, dict({f"k{j}": json.dumps("0:") for j in range(10)}, gen="0"))
    writer = _start(_BUSY_WRITER, str(tmp_path), sid, "300")
    loads = 0
    try:
        _wait_for_line(writer, "ready")
        seen = 0
        while writer.poll() is None and loads < 200_000:
            gen = _check_consistent(store, sid)
            assert gen >= seen
            seen = gen
            loads += 1
        assert writer.stdout is not None
        writes = int(writer.stdout.readline())
    finally:
        _stop(writer)
    assert writer.returncode == 0
    assert writes > 100 and loads > 100  # both sides really ran, compactions included
    assert _check_consistent(store, sid) == writes


# -- URLs ------------------------------------------------------------------------------------


def test_open_store_file_url(tmp_path: Path) -> None:
    store = satchel.open_store(f"file://{tmp_path}/s?lock_timeout=0.5&fsync=true")
    assert isinstance(store, FileStore)
    assert store.directory == str(tmp_path / "s")
    assert store.lock_timeout == 0.5 and store.fsync is True
    local = satchel.open_store(f"file://localhost{tmp_path}/t")
    assert isinstance(local, FileStore) and local.directory == str(tmp_path / "t")
    spaced = satchel.open_store(f"file://{tmp_path}/with%20space")
    assert isinstance(spaced, FileStore) and spaced.directory == str(tmp_path / "with space")


@pytest.mark.parametrize(
    "url",
    [
        "file://example.com/var/sessions",
        "file://relative/dir",
        "file://",
        "file:///",
        "file:///tmp/x?lock_timeout=soon",
        "file:///tmp/x?fsync=maybe",
        "file:///tmp/x?colour=blue",
        "file:///tmp/x#frag",
    ],
)
def test_bad_file_urls(url: str) -> None:
    with pytest.raises(satchel.ConfigurationError, match="file://"):
        satchel.open_store(url)


def test_relative_file_url_names_the_accepted_form() -> None:
    with pytest.raises(satchel.ConfigurationError, match=r"file:///absolute/directory"):
        satchel.open_store("file://sessions/dir")


def test_bad_lock_timeout(tmp_path: Path) -> None:
    with pytest.raises(satchel.ConfigurationError, match="lock_timeout"):
        FileStore(tmp_path, lock_timeout=0)


def test_session_meta_round_trip_keeps_user_none_and_unicode(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    sid, other = new_id(), new_id()
    now = time.time()
    store.save(sid, Changes(set={"k": "1"}), SessionMeta(now, now, now + 60, None))
    store.save(other, Changes(set={"k": "1"}), SessionMeta(now, now, now + 60, "ünï ✓"))
    first, second = store.load(sid), store.load(other)
    assert first is not None and first.user is None
    assert second is not None and second.user == "ünï ✓"
    assert store.user_sessions("ünï ✓") == [other]


def _check_full_disk(directory: Path, fill: bool) -> None:
    """Creating and growing a session on a full disk raise a clean StoreUnavailable whose
    message, and whose chained causes, never hold a session id; what was stored survives."""
    store = FileStore(directory)
    grown = new_id()
    put(store, grown, {"a": '"1"'})
    if fill:  # leave less room than one more value needs
        filler = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            for _ in range(1000):
                os.write(filler, b"\0" * 1024)
        except OSError:
            pass
        finally:
            os.close(filler)
    big = '"' + "x" * 20000 + '"'
    created = new_id()
    for sid, changes in ((created, Changes(set={"big": big})),
                         (grown, Changes(set={"big": big}, create=False))):
        with pytest.raises(satchel.StoreUnavailable) as caught:
            store.save(sid, changes, meta())
        error: BaseException | None = caught.value
        while error is not None:
            assert created not in str(error) and grown not in str(error), repr(error)
            error = error.__cause__ or error.__context__
    record = store.load(grown)
    assert record is not None and record.data == {"a": '"1"'}
    assert store.load(created) is None


def test_a_full_disk_is_a_store_outage_naming_no_session(tmp_path: Path) -> None:
    """On a tiny tmpfs (as root); else with a file size limit in a child process."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
                             capture_output=True).returncode == 0
    if mounted:
        try:
            _check_full_disk(disk / "sessions", fill=True)
        finally:
            subprocess.run(["umount", str(disk)], check=True)
        return
    import resource

    pid = os.fork()
    if pid == 0:  # the child: files may not grow past 8 KiB
        code = 1
        try:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
            resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))
            _check_full_disk(disk / "sessions", fill=False)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.parametrize("which", [0, 1, 2])
def test_a_time_that_is_not_a_number_reads_as_absent(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, which: int) -> None:
    store = FileStore(tmp_path)
    sid = new_id()
    now = time.time()
    times = [now, now, now + 3600]
    times[which] = math.nan  # compares false with every moment: it would never expire
    put(store, sid, {"a": '"1"'})
    payload = _filelog.head(*times, None) + _filelog.encode_data({"a": '"1"'})
    Path(store._paths(sid)[1]).write_bytes(_filelog.MAGIC + _filelog.frame(payload))
    check_reads_as_absent(store, sid, caplog)
