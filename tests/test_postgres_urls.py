"""Every form of PostgreSQL URL that libpq accepts opens a store, each in a fresh interpreter
against a private server: over its unix socket (the directory the server was started with)
and over TCP, with the database, host and port taken from the URL or from libpq's ``PG*``
environment variables."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from urllib.parse import quote

import psycopg
import pytest

from .servers import LOOPBACK, free_port
from .servers.postgres import USER, PostgresServer

DB = "mydb"

# Runs in the subprocess: open the store, write a session (the table is made on first use),
# and report where the connection went.
PROBE = """
import sys, satchel
from satchel.ids import new_id
from satchel.record import Changes, SessionMeta
with satchel.open_store(sys.argv[1]) as store:
    store.save(new_id(), Changes(set={"k": '"v"'}, create=True), SessionMeta(1.0, 1.0, 4e9))
    row = store._run(lambda c: c.execute(
        "SELECT current_database(), current_user, inet_server_addr() IS NULL,"
        " current_setting('application_name')").fetchone())
    print(*row, store.table, sep="|")
"""


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    with PostgresServer(log_statements=False) as srv:
        with psycopg.connect(srv.url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DB}")
        yield srv


def probe(url: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    return subprocess.run([sys.executable, "-c", PROBE, url], env={**clean, **env},
                          capture_output=True, text=True, timeout=60, check=False)


def forms(server: PostgresServer) -> list[tuple[str, dict[str, str], bool]]:
    """(URL, environment, over the unix socket?) for each form."""
    sock, port = str(server.dir), str(server.port)
    pg = {"PGUSER": USER}
    local = {**pg, "PGHOST": sock, "PGPORT": port}
    tcp = f"{LOOPBACK}:{port}"
    return [
        (f"postgresql:///{DB}", local, True),
        (f"postgres:///{DB}", local, True),
        (f"postgresql:///{DB}?host={sock}", {**pg, "PGPORT": port}, True),
        (f"postgresql:///{DB}?host={quote(sock, safe='')}&port={port}&table=t_query", pg, True),
        (f"postgresql://{quote(sock, safe='')}:{port}/{DB}", pg, True),
        (f"postgresql://{USER}@/{DB}?host={sock}&port={port}", {}, True),
        ("postgresql://", {**local, "PGDATABASE": DB}, True),
        ("postgres://", {**local, "PGDATABASE": DB}, True),
        (f"postgresql://{tcp}/{DB}", pg, False),
        (f"postgresql://{USER}@{tcp}/{DB}?sslmode=disable&table=t_tcp&max_size=3", {}, False),
        (f"postgresql://{LOOPBACK}:{free_port()},{tcp}/{DB}?user={USER}", {}, False),
        (f"postgresql://{tcp}/{DB}?application_name=my%20app", pg, False),
    ]


def test_every_libpq_url_form_opens_the_store(server: PostgresServer) -> None:
    for url, env, over_socket in forms(server):
        result = probe(url, env)
        assert result.returncode == 0, (url, result.stderr)
        database, user, socket, application, table = result.stdout.strip().split("|")
        assert (database, user) == (DB, USER), url
        assert socket == str(over_socket), url
        assert application == ("my app" if "application_name" in url else "satchel"), url
        expected = "t_query" if "t_query" in url else "t_tcp" if "t_tcp" in url else None
        assert table == (expected or "satchel_sessions"), url


def test_the_cli_takes_a_socket_url(server: PostgresServer) -> None:
    env = {"PGUSER": USER, "PGHOST": str(server.dir), "PGPORT": str(server.port)}
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    for command, out in (("setup", "PostgresStore is set up\n"), ("count", None)):
        result = subprocess.run(
            [sys.executable, "-m", "satchel", command, f"postgresql:///{DB}?table=t_cli"],
            env={**clean, **env}, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        assert result.stdout == (out or "0\n")
    with psycopg.connect(host=str(server.dir), port=server.port, user=USER, dbname=DB) as conn:
        assert conn.execute("SELECT to_regclass('t_cli') IS NOT NULL").fetchone() == (True,)
