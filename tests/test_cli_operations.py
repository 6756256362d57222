"""``satchel list/show/delete/revoke-user/stats`` as a subprocess over real stores."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import satchel
from satchel import Changes
from satchel.codec import JSONCodec
from satchel.ids import new_id
from satchel.record import SessionMeta

from .servers import LOOPBACK, free_port
from .servers.memcached import MemcachedServer
from .servers.postgres import PostgresServer
from .servers.redis import RedisServer, running_server

HOUR = 3600.0
DAY = 86400.0


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "satchel", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def run_json(*args: str) -> Any:
    result = run(args[0], "--json", *args[1:])
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def fp(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()[:12]


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with running_server() as server:
        yield server


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with PostgresServer(log_statements=False) as server:
        yield server


@pytest.fixture(params=["file", "sqlite", "redis", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return f"file://{tmp_path}/sessions"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/sessions.db"
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis")
        server.flush()
        return server.url
    pg: PostgresServer = request.getfixturevalue("postgres")
    return pg.url + f"?table=ops_{tmp_path.name.replace('-', '_')[-40:]}"


def seed(url: str) -> dict[str, str]:
    """Five sessions: ana's two (old, recent), bo's one, two anonymous (one big); one dead."""
    now = time.time()
    codec = JSONCodec()
    plan = {"ana-old": (now - 2 * DAY, "ana", {"cart": [1, 2]}),
            "ana-new": (now - 60, "ana", {"n": 1}),
            "bo": (now - 3 * HOUR, "bo", {"name": "<script>"}),
            "anon": (now - 10, None, {}),
            "big": (now - 30, None, {"blob": "x" * 5000})}
    ids = {}
    with satchel.open_store(url) as store:
        for name, (created, user, data) in plan.items():
            sid = ids[name] = new_id()
            encoded = {k: codec.encode(k, v) for k, v in data.items()}
            store.save(sid, Changes(set=encoded, create=True, user_changed=True),
                       SessionMeta(created, now, now + HOUR, user))
        store.save(new_id(), Changes(set={"k": '"v"'}, create=True),
                   SessionMeta(now - 2 * HOUR, now - 2 * HOUR, now - HOUR, "ana"))
    return ids


def test_list_filters_and_pages(url: str) -> None:
    ids = seed(url)
    listed = run_json("list", url)
    assert listed["total"] == 5 and listed["next_offset"] is None
    order = [ids[n] for n in ("ana-old", "bo", "ana-new", "big", "anon")]  # oldest first
    assert [s["fingerprint"] for s in listed["sessions"]] == [fp(s) for s in order]
    assert all("id" not in s for s in listed["sessions"])  # fingerprints unless --ids
    big = listed["sessions"][3]
    assert (big["user"], big["keys"]) == (None, 1) and big["size"] > 5000

    first = run_json("list", url, "--limit", "2", "--ids")
    assert [s["id"] for s in first["sessions"]] == order[:2] and first["next_offset"] == 2
    rest = run_json("list", url, "--limit", "2", "--offset", "4")
    assert [s["fingerprint"] for s in rest["sessions"]] == [fp(order[4])]
    assert rest["next_offset"] is None

    assert {s["fingerprint"] for s in run_json("list", url, "--user", "ana")["sessions"]} == {
        fp(ids["ana-old"]), fp(ids["ana-new"])}
    old = run_json("list", url, "--older-than", "1h")["sessions"]
    assert {s["fingerprint"] for s in old} == {fp(ids["ana-old"]), fp(ids["bo"])}
    # An id may begin with "-": given as --prefix=VALUE (or after --) it is not an option.
    by_prefix = run_json("list", url, f"--prefix={ids['bo'][:10]}", "--ids")["sessions"]
    assert [s["id"] for s in by_prefix] == [ids["bo"]]


def test_show_delete_revoke_and_stats(url: str) -> None:
    ids = seed(url)
    meta = run_json("show", url, fp(ids["bo"]))
    assert meta["user"] == "bo" and "data" not in meta and "id" not in meta
    shown = run_json("show", url, "--data", "--", ids["ana-old"])
    assert shown["data"] == {"cart": [1, 2]} and shown["fingerprint"] == fp(ids["ana-old"])
    human = run("show", url, fp(ids["bo"]), "--data")
    assert human.returncode == 0 and "name = '<script>'" in human.stdout
    assert ids["bo"] not in human.stdout

    stats = run_json("stats", url)
    assert stats["count"] == 5 and stats["anonymous"] == 2
    assert stats["sessions_per_user"] == {"ana": 2, "bo": 1}
    assert stats["by_age"] == {"<1h": 3, "1h-1d": 1, "1d-7d": 1, "7d-30d": 0, ">=30d": 0}
    assert stats["by_size"]["4-16KiB"] == 1 and stats["by_size"]["<1KiB"] == 4

    deleted = run("delete", url, fp(ids["bo"]))
    assert (deleted.returncode, deleted.stdout) == (0, f"deleted session {fp(ids['bo'])}\n")
    again = run("delete", url, fp(ids["bo"]))
    assert again.returncode == 1 and again.stdout == ""
    assert run("show", url, "--", ids["bo"]).returncode == 1

    assert run_json("revoke-user", url, "ana") == {"user": "ana", "deleted": 2}
    assert run("revoke-user", url, "ana").returncode == 1
    with satchel.open_store(url) as store:
        assert store.count() == 2
        assert store.load(ids["anon"]) is not None and store.load(ids["ana-new"]) is None


def test_human_list_shows_a_table_of_fingerprints(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    ids = seed(url)
    result = run("list", url, "--limit", "3")
    lines = result.stdout.splitlines()
    assert result.returncode == 0
    assert lines[0].split() == ["FINGERPRINT", "USER", "CREATED", "(UTC)", "AGE", "EXPIRES",
                                "IN", "KEYS", "BYTES"]
    assert lines[1].startswith(fp(ids["ana-old"]) + "  ana")
    assert lines[-1] == "1-3 of 5; next: --offset 3"
    assert not any(sid in result.stdout for sid in ids.values())


def test_memcached_cannot_list_unreachable_is_3_bad_url_is_2() -> None:
    with MemcachedServer() as server:
        result = run("list", server.url)
        assert result.returncode == 2
        assert result.stderr == ("satchel: error: memcached cannot list its keys: "
                                 "MemcachedStore.ids() is not supported\n")
        sid = new_id()
        assert run("show", server.url, "--", sid).returncode == 1  # by id it can still look
    down = run("stats", f"redis://{LOOPBACK}:{free_port()}/0")
    assert down.returncode == 3 and down.stderr.startswith("satchel: error: store error: ")
    bad = run("list", "bogus://x")
    assert bad.returncode == 2 and "scheme 'bogus' is unknown" in bad.stderr
    usage = run("list", "memory://", "--older-than", "soon")
    assert usage.returncode == 2 and "is not a duration" in usage.stderr
