"""The ``satchel`` command line: operations over real stores, in process and as a subprocess."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import satchel
from satchel import Changes
from satchel.cli import default_demo_store_url, main
from satchel.ids import new_id
from satchel.stores import masked_url

from .contract import meta
from .e2e_util import Client
from .servers import LOOPBACK, free_port, port_open, wait_until
from .servers.postgres import PostgresServer

HOUR = 3600.0


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m satchel ARGS`` in a subprocess."""
    return subprocess.run([sys.executable, "-m", "satchel", *args], capture_output=True,
                          text=True, timeout=30, check=False)


def seed(url: str, live: int, expired: int) -> None:
    now = time.time()
    with satchel.open_store(url) as store:
        for _ in range(live):
            store.save(new_id(), Changes(set={"k": '"v"'}), meta(now))
        for _ in range(expired):
            store.save(new_id(), Changes(set={"k": '"v"'}), meta(now - 2 * HOUR))


@pytest.fixture(params=["sqlite", "file"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/sessions.db"
    else:
        yield f"file://{tmp_path}/sessions"


# -- main([...]) in this process ---------------------------------------------------------------


def test_count_and_purge(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    seed(store_url, live=3, expired=2)
    assert main(["count", store_url]) == 0
    assert capsys.readouterr().out == "3\n"
    assert main(["purge", store_url]) == 0
    assert capsys.readouterr().out == "removed 2 expired sessions\n"
    assert main(["purge", store_url]) == 0
    assert capsys.readouterr().out == "removed 0 expired sessions\n"
    assert main(["count", store_url]) == 0
    assert capsys.readouterr().out == "3\n"


def test_purge_says_session_for_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/one.db"
    seed(url, live=0, expired=1)
    assert main(["purge", url]) == 0
    assert capsys.readouterr().out == "removed 1 expired session\n"


def test_setup_count_purge_on_postgres_then_outage(capsys: pytest.CaptureFixture[str]) -> None:
    with PostgresServer(log_statements=False) as server:
        url = server.url + "?table=cli_sessions"

        def table_exists() -> bool:
            with psycopg.connect(server.url, autocommit=True) as conn:
                row = conn.execute("SELECT to_regclass('cli_sessions')").fetchone()
                return row is not None and row[0] is not None

        assert not table_exists()
        assert main(["setup", url]) == 0
        assert capsys.readouterr().out == "PostgresStore is set up\n"
        assert table_exists()
        assert main(["setup", url]) == 0  # idempotent
        capsys.readouterr()
        seed(url, live=1, expired=2)
        assert main(["purge", url]) == 0
        assert capsys.readouterr().out == "removed 2 expired sessions\n"
        assert main(["count", url]) == 0
        assert capsys.readouterr().out == "1\n"
        server.stop()
        assert main(["count", url]) == 3
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.startswith("satchel: error: store error: ")
        assert captured.err.count("\n") == 1


@pytest.mark.parametrize("url", ["memory://", "sqlite:///{tmp}/s.db"])
def test_setup_a_store_without_a_setup_step(url: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["setup", url.format(tmp=tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("nothing to set up: ") and out.endswith("needs no separate set-up step\n")


@pytest.mark.parametrize(("url", "expected"), [
    ("not-a-url", "is not a URL"),
    ("bogus://x", "scheme 'bogus' is unknown"),
    ("memory://somehost", "memory:// takes no host"),
])
def test_bad_url_is_one_line_and_exit_2(url: str, expected: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["count", url]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("satchel: error: ") and expected in captured.err
    assert captured.err.count("\n") == 1


def test_unreachable_store_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"redis://{LOOPBACK}:{free_port()}/0"  # nothing listens there
    assert main(["count", url]) == 3
    err = capsys.readouterr().err
    assert err.startswith("satchel: error: store error: ") and err.count("\n") == 1


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["frobnicate"], ["count"], ["demo", "--port", "x"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
    assert "usage: satchel" in capsys.readouterr().err


def test_default_demo_store_is_private_under_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = default_demo_store_url()
    directory = tmp_path / "satchel-data"
    assert url == f"sqlite:///{directory}/demo-sessions.sqlite3"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


# -- python -m satchel as a subprocess -----------------------------------------------------------


def test_subprocess_count_purge_and_bad_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/sessions.db"
    seed(url, live=2, expired=1)
    counted = run("count", url)
    assert (counted.returncode, counted.stdout) == (0, "2\n")
    purged = run("purge", url)
    assert (purged.returncode, purged.stdout) == (0, "removed 1 expired session\n")

    bad = run("purge", "bogus://x")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.startswith("satchel: error: ") and bad.stderr.count("\n") == 1
    assert "Traceback" not in bad.stderr


def test_console_script_is_installed(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "satchel"
    url = f"sqlite:///{tmp_path}/sessions.db"
    seed(url, live=1, expired=0)
    result = subprocess.run([str(script), "count", url], capture_output=True, text=True,
                            timeout=30, check=False)
    assert (result.returncode, result.stdout) == (0, "1\n")


# -- commands that read never create what they read ---------------------------------------------


def run_in(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "satchel", *args], capture_output=True,
                          text=True, timeout=30, check=False, cwd=cwd)


def refused(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == f"satchel: error: {expected}\n"


@pytest.mark.parametrize("command", ["count", "purge"])
def test_reading_a_missing_file_store_refuses_and_creates_nothing(tmp_path: Path,
                                                                  command: str) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    result = run_in(tmp_path, command, f"file://{missing}")
    refused(result, f"FileStore: no store at '{missing}': no such directory")
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("command", ["count", "purge"])
def test_reading_a_missing_sqlite_store_refuses_and_creates_nothing(tmp_path: Path,
                                                                    command: str) -> None:
    # What a cron job run in the wrong directory does with a relative sqlite:/// URL.
    result = run_in(tmp_path, command, "sqlite:///sessions.db")
    refused(result, f"SQLiteStore: no store at '{tmp_path}/sessions.db': no such file")
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_not_a_satchel_database_is_refused_untouched(tmp_path: Path) -> None:
    other = tmp_path / "app.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    conn.close()
    text = tmp_path / "notes.db"
    text.write_text("not a database\n")
    before = {p.name: p.read_bytes() for p in (other, text)}
    for path in (other, text):
        result = run_in(tmp_path, "purge", f"sqlite:///{path.name}")
        refused(result, f"SQLiteStore: no store at '{path}': the file holds no satchel sessions")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_setup_creates_then_count_and_purge_read(tmp_path: Path) -> None:
    url = "sqlite:///sessions.db"
    assert run_in(tmp_path, "setup", url).returncode == 0
    assert run_in(tmp_path, "count", url).stdout == "0\n"
    assert run_in(tmp_path, "purge", url).stdout == "removed 0 expired sessions\n"
    directory = tmp_path / "sessions"
    directory.mkdir(mode=0o700)
    assert run_in(tmp_path, "count", f"file://{directory}").stdout == "0\n"


@pytest.mark.parametrize("command", ["count", "purge"])
def test_reading_a_memory_store_says_it_means_nothing(tmp_path: Path, command: str) -> None:
    result = run_in(tmp_path, command, "memory://")
    refused(result, "memory:// sessions live inside the process that made them; this "
                    f"command's store would always be empty, so {command} means nothing here: "
                    "give the URL of the store your application uses")


def test_demo_on_a_port_in_use_names_it_and_creates_nothing(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind((LOOPBACK, 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_in(tmp_path, "demo", "--port", str(port))  # the default store
    assert result.returncode == 1
    assert result.stderr == (f"satchel: error: port {port} is in use on 127.0.0.1 (another "
                             "demo, or another program): choose a free one with --port\n")
    assert list(tmp_path.iterdir()) == []  # no satchel-data directory left behind


def test_demo_default_store_and_sigterm(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "demo.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "satchel", "demo", "--port", str(port)],
                                cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until(lambda: proc.poll() is not None or port_open(port), 20, "the demo listening")
        assert proc.poll() is None, log.read_text()
        assert Client(f"http://{LOOPBACK}:{port}").get("/").status == 200
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
    output = log.read_text()
    database = tmp_path / "satchel-data" / "demo-sessions.sqlite3"
    assert proc.returncode == 0, output
    assert f"sessions kept in sqlite:///{database}" in output
    assert f"serving on http://127.0.0.1:{port}/" in output
    assert output.rstrip().endswith("satchel demo: stopped")
    assert database.exists()
    with satchel.open_store(f"sqlite:///{database}") as store:
        assert store.count() == 1  # the visit above


def test_printed_store_urls_hide_passwords() -> None:
    assert masked_url("postgresql://app:s3cret@db.example:5432/app") == (
        "postgresql://app:***@db.example:5432/app")
    assert masked_url("redis://:s3cret@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert masked_url("sqlite:////var/lib/app.db") == "sqlite:////var/lib/app.db"
    assert masked_url("postgresql://db.example/app?sslmode=require&password=s3cret") == (
        "postgresql://db.example/app?sslmode=require&password=***")
    assert masked_url("sqlite:////a.db?password=x") == "sqlite:////a.db?password=***"
