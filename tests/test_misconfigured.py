"""Wrong settings are told apart from outages.

A wrong password or role, an unknown database, a bad option, a directory the process may not
write: each raises :class:`StoreMisconfigured` (a ``ConfigurationError``) naming the cause in
the driver's words, never a secret, at start-up or first use; a server that is down raises
:class:`StoreUnavailable` whose message, and the middleware's log line, carry the driver's
reason.  Real servers, real connections; the file cases as a user that is not root.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import satchel
from satchel import StoreMisconfigured, StoreUnavailable

from .servers import LOOPBACK, free_port
from .servers.mysql import DATABASE, PASSWORD, MariaDBServer
from .servers.postgres import PostgresServer
from .servers.redis import RedisServer, redis_command
from .sql_util import app_writing, request

PG_PASSWORD = "pg-Secret-4711"
WRONG = "wrong-Secret-0815"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "satchel", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def first_use(url: str) -> BaseException:
    """The error the store's first operation raises."""
    store = satchel.open_store(url, connect_timeout=2)
    try:
        store.count()
    except (StoreMisconfigured, StoreUnavailable) as exc:
        return exc
    finally:
        store.close()
    raise AssertionError(f"{url}: no error")


# -- PostgreSQL ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    """A server where role ``app`` logs in with a password over TCP (scram-sha-256)."""
    with PostgresServer(log_statements=False) as srv:
        with psycopg.connect(srv.url, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE app LOGIN PASSWORD '{PG_PASSWORD}'")
            conn.execute("GRANT ALL ON SCHEMA public TO app")
            conn.execute("CREATE ROLE cannot_login PASSWORD 'x'")
            (srv.data / "pg_hba.conf").write_text(
                "local all all trust\n"
                f"host all postgres {LOOPBACK}/32 trust\n"
                f"host all all {LOOPBACK}/32 scram-sha-256\n")
            conn.execute("SELECT pg_reload_conf()")
        yield srv


def pg_url(srv: PostgresServer, user: str = "app", password: str = PG_PASSWORD,
           db: str = "satchel", query: str = "") -> str:
    return f"postgresql://{user}:{password}@{LOOPBACK}:{srv.port}/{db}{query}"


@pytest.mark.parametrize(("settings", "cause"), [
    ({"password": WRONG}, 'password authentication failed for user "app"'),
    ({"user": "nobody"}, 'password authentication failed for user "nobody"'),
    ({"user": "cannot_login", "password": "x"}, 'role "cannot_login" is not permitted to log in'),
    ({"db": "nodb"}, 'database "nodb" does not exist'),
    ({"query": "?sslmode=bogus"}, 'invalid sslmode value: "bogus"'),
    ({"query": "?sslmode=require"}, "server does not support SSL, but SSL was required"),
    ({"query": "?options=-c%20no_such_setting%3D1"}, 'unrecognized configuration parameter'),
])
def test_postgres_wrong_settings_are_misconfigured(pg: PostgresServer,
                                                   settings: dict[str, str],
                                                   cause: str) -> None:
    exc = first_use(pg_url(pg, **settings))
    assert isinstance(exc, StoreMisconfigured) and isinstance(exc, satchel.ConfigurationError)
    message = str(exc)
    assert message.startswith(f"PostgreSQL at {LOOPBACK}:{pg.port} refuses satchel's settings: ")
    assert cause in message
    assert WRONG not in message and PG_PASSWORD not in message


def test_postgres_right_settings_work_and_a_stopped_server_is_an_outage(
        pg: PostgresServer) -> None:
    with satchel.open_store(pg_url(pg)) as store:
        assert store.count() == 0
    down = f"postgresql://app:{PG_PASSWORD}@{LOOPBACK}:{free_port()}/satchel"
    exc = first_use(down)
    assert type(exc) is StoreUnavailable
    assert "is unavailable: " in str(exc) and "Connection refused" in str(exc)
    assert PG_PASSWORD not in str(exc)


def test_postgres_privilege_denied_is_misconfigured(pg: PostgresServer) -> None:
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute("CREATE ROLE reader LOGIN PASSWORD 'reader-pw'")
        conn.execute("REVOKE CREATE ON SCHEMA public FROM reader")
    exc = first_use(pg_url(pg, user="reader", password="reader-pw", query="?table=t_denied"))
    assert isinstance(exc, StoreMisconfigured)
    assert "permission denied for schema public" in str(exc)


def test_cli_tells_a_wrong_password_from_an_outage(pg: PostgresServer) -> None:
    wrong = cli("count", pg_url(pg, password=WRONG))
    assert wrong.returncode == 2 and wrong.stdout == ""
    assert wrong.stderr.startswith("satchel: error: PostgreSQL at ")
    assert 'password authentication failed for user "app"' in wrong.stderr
    assert WRONG not in wrong.stderr and wrong.stderr.count("\n") == 1
    down = cli("count", f"postgresql://app:{WRONG}@{LOOPBACK}:{free_port()}/satchel")
    assert down.returncode == 3
    assert down.stderr.startswith("satchel: error: store error: PostgreSQL at ")
    assert "Connection refused" in down.stderr and WRONG not in down.stderr


def test_the_middleware_logs_the_outage_s_reason(caplog: pytest.LogCaptureFixture) -> None:
    url = f"postgresql://app:{PG_PASSWORD}@{LOOPBACK}:{free_port()}/satchel"
    app = satchel.SessionMiddleware(app_writing, store=url)
    try:
        with caplog.at_level(logging.ERROR, logger="satchel"):
            response = request(app)
    finally:
        app.close()
    assert response.code == 503
    [line] = [r.getMessage() for r in caplog.records if "answering 503" in r.getMessage()]
    assert "Connection refused" in line and PG_PASSWORD not in line


def test_the_middleware_does_not_hide_a_wrong_password_behind_a_503(pg: PostgresServer) -> None:
    app = satchel.SessionMiddleware(app_writing, store=pg_url(pg, password=WRONG))
    try:
        with pytest.raises(StoreMisconfigured, match="password authentication failed"):
            request(app)
    finally:
        app.close()


# -- MySQL / MariaDB -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mariadb() -> Iterator[MariaDBServer]:
    with MariaDBServer(log_queries=False) as srv:
        with srv.root() as root, root.cursor() as cur:
            # Authenticated by the client's operating-system user, which is never "socketonly".
            cur.execute("CREATE USER 'socketonly'@'localhost' IDENTIFIED VIA unix_socket")
            cur.execute("GRANT ALL ON satchel.* TO 'socketonly'@'localhost'")
        yield srv


@pytest.mark.parametrize(("url", "cause"), [
    ("mysql://satchel:{wrong}@{tcp}/satchel", "Access denied for user 'satchel'@'127.0.0.1' "
                                              "(using password: YES) (error 1045)"),
    ("mysql://socketonly@localhost/satchel?unix_socket={socket}",
     "Access denied for user 'socketonly'@'localhost' (error 1698)"),
    ("mysql://satchel:{password}@{tcp}/nodb", "to database 'nodb' (error 1044)"),
    ("mysql://satchel:{password}@{tcp}/satchel?ssl_ca=/nonexistent/ca.pem",
     "No such file or directory"),
])
def test_mysql_wrong_settings_are_misconfigured(mariadb: MariaDBServer, url: str,
                                                cause: str) -> None:
    url = url.format(wrong=WRONG, password=PASSWORD, tcp=f"{LOOPBACK}:{mariadb.port}",
                     socket=mariadb.socket)
    exc = first_use(url)
    assert isinstance(exc, StoreMisconfigured), exc
    assert "refuses satchel's settings: " in str(exc) and cause in str(exc)
    assert WRONG not in str(exc) and PASSWORD not in str(exc)


def test_mysql_outage_carries_the_reason_and_the_cli_tells_them_apart(
        mariadb: MariaDBServer) -> None:
    with satchel.open_store(mariadb.url) as store:
        assert store.count() == 0
    exc = first_use(f"mysql://satchel:{PASSWORD}@{LOOPBACK}:{free_port()}/{DATABASE}")
    assert type(exc) is StoreUnavailable
    assert "Connection refused" in str(exc) and "(error 2003)" in str(exc)
    wrong = cli("purge", f"mysql://satchel:{WRONG}@{LOOPBACK}:{mariadb.port}/satchel")
    assert wrong.returncode == 2 and "(error 1045)" in wrong.stderr
    assert WRONG not in wrong.stderr


# -- file and SQLite stores, as a user that is not root -------------------------------------------

AS_NOBODY = """
import os, sys
import satchel, satchel.stores.file, satchel.stores.sqlite, encodings.idna
from satchel.ids import new_id
from satchel.record import Changes, SessionMeta
if os.geteuid() == 0:  # root may write anywhere: become nobody (imports done, files open)
    os.setgroups([]); os.setgid(65534); os.setuid(65534)

def attempt(what, action):
    try:
        action()
        print(what, "ok")
    except satchel.SatchelError as exc:
        print(what, type(exc).__name__, exc, sep="|")

def write(store):
    store.save(new_id(), Changes(set={"k": "1"}, create=True), SessionMeta(1.0, 1.0, 4e9))

root = sys.argv[1]
attempt("file-unwritable", lambda: satchel.open_store(f"file://{root}/private"))
attempt("file-cannot-create", lambda: satchel.open_store(f"file://{root}/public/new"))
attempt("sqlite-cannot-create", lambda: satchel.open_store(f"sqlite:///{root}/public/new.db"))
attempt("sqlite-read-only", lambda: write(satchel.open_store(f"sqlite:///{root}/public/s.db")))
own = os.path.join(os.environ["TMPDIR"], "own")
store = satchel.open_store(f"file://{own}")
write(store)
os.chmod(own, 0o500)  # taken away while running
attempt("file-revoked", lambda: write(store))
"""


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user may reach (pytest's own tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="satchel-perm-"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def test_file_and_sqlite_stores_the_process_may_not_write(open_dir: Path) -> None:
    root = open_dir / "root"
    (root / "private").mkdir(parents=True, mode=0o700)
    (root / "public").mkdir(mode=0o755)
    os.chmod(root, 0o755)
    satchel.open_store(f"sqlite:///{root}/public/s.db").close()
    os.chmod(root / "public" / "s.db", 0o644)
    scratch = open_dir / "scratch"
    scratch.mkdir()
    os.chmod(scratch, 0o777)
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(AS_NOBODY), str(root)],
                            capture_output=True, text=True, timeout=60, check=False,
                            env={**os.environ, "TMPDIR": str(scratch)})
    assert result.returncode == 0, result.stderr
    lines = dict(line.split("|", 1) for line in result.stdout.splitlines())
    prefix = "StoreMisconfigured|"
    assert lines["file-unwritable"] == (
        f"{prefix}FileStore directory '{root}/private' refuses satchel's settings: this "
        f"process (uid {65534 if os.geteuid() == 0 else os.geteuid()}) may not write there")
    assert lines["file-cannot-create"] == (
        f"{prefix}FileStore directory '{root}/public/new' refuses satchel's settings: "
        "Permission denied")
    assert lines["sqlite-cannot-create"] == (
        f"{prefix}SQLiteStore at '{root}/public/new.db' refuses satchel's settings: "
        "Permission denied")
    assert lines["sqlite-read-only"].startswith(f"{prefix}SQLiteStore at '{root}/public/s.db'")
    assert "readonly database" in lines["sqlite-read-only"]
    assert lines["file-revoked"].startswith(f"{prefix}FileStore: cannot ")
    assert lines["file-revoked"].endswith(": Permission denied")
    assert not (root / "public" / "new").exists()


def test_a_store_path_under_a_regular_file_is_misconfigured(tmp_path: Path) -> None:
    # Works as root too: no permission bits are involved.
    regular = tmp_path / "regular"
    regular.write_text("")
    with pytest.raises(StoreMisconfigured, match="Not a directory"):
        satchel.open_store(f"file://{regular}/sessions")
    with pytest.raises(StoreMisconfigured, match="Not a directory"):
        satchel.open_store(f"sqlite:///{regular}/sessions.db")
    result = cli("setup", f"sqlite:///{regular}/sessions.db")
    assert result.returncode == 2 and "refuses satchel's settings: Not a directory" in result.stderr


# -- commands that read a SQL store never create its table ---------------------------------------


def check_read_commands_refuse_a_missing_table(url: str, label: str, exists: Any) -> None:
    for command in ("count", "purge"):
        result = cli(command, url)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith(f"satchel: error: {label} at ")
        assert result.stderr.endswith(": no store: table 't_missing' does not exist "
                                      "(satchel setup URL, or store.setup(), creates it)\n")
    assert not exists()
    assert cli("setup", url).returncode == 0
    assert exists()
    assert cli("count", url).stdout == "0\n"


def test_reading_a_postgres_store_without_its_table(pg: PostgresServer) -> None:
    def exists() -> bool:
        with psycopg.connect(pg.url) as conn:
            row = conn.execute("SELECT to_regclass('t_missing') IS NOT NULL").fetchone()
        return row == (True,)

    check_read_commands_refuse_a_missing_table(pg.url + "?table=t_missing", "PostgreSQL",
                                               exists)


def test_reading_a_mysql_store_without_its_table(mariadb: MariaDBServer) -> None:
    def exists() -> bool:
        with mariadb.root() as root, root.cursor() as cur:
            return bool(cur.execute("SHOW TABLES FROM satchel LIKE 't_missing'"))

    check_read_commands_refuse_a_missing_table(mariadb.url + "?table=t_missing", "MySQL",
                                               exists)


# -- Redis ---------------------------------------------------------------------------------------


def test_redis_refused_credentials_and_database_are_misconfigured() -> None:
    with RedisServer() as srv:
        assert redis_command(srv.port, "CONFIG", "SET", "requirepass", WRONG[::-1]) == "+OK\r\n"
        tcp = f"{LOOPBACK}:{srv.port}"
        for url, cause in (
            (f"redis://:{WRONG}@{tcp}/0", "invalid username-password pair"),
            (f"redis://bob:{WRONG}@{tcp}/0", "invalid username-password pair"),
            (f"redis://{tcp}/0", "authenticated"),
            (f"redis://:{WRONG[::-1]}@{tcp}/99", "DB index is out of range"),
        ):
            with pytest.raises(StoreMisconfigured) as info, satchel.open_store(url) as store:
                store.count()
            assert str(info.value).startswith("Redis refuses satchel's settings: ")
            assert cause in str(info.value) and WRONG not in str(info.value)
        with satchel.open_store(f"redis://:{WRONG[::-1]}@{tcp}/0") as store:
            assert store.count() == 0
        srv.stop()
        with pytest.raises(StoreUnavailable) as down, satchel.open_store(
                f"redis://:{WRONG[::-1]}@{tcp}/0") as store:
            store.count()
        assert not isinstance(down.value, StoreMisconfigured)
        assert "Connection refused" in str(down.value)
