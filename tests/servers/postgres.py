"""A private PostgreSQL server for tests: initdb in a temp dir, postmaster on a loopback port.

PostgreSQL refuses to run as root, so ``initdb`` and the postmaster drop to the ``postgres``
user in the child before exec (no ``runuser`` in between): the pid that :class:`ServerProcess`
signals is the postmaster itself.  It is stopped with SIGINT (fast shutdown): SIGTERM is a
*smart* shutdown, which waits for every client to disconnect, and a pool keeps clients open.
Every statement is logged (``log_statement=all``) so tests can count round trips, unless
a benchmark asks for quiet.
"""

from __future__ import annotations

import os
import pwd
import re
import signal
import subprocess
from collections.abc import Callable

import psycopg

from . import LOOPBACK, DatabaseServer, find_binary

__all__ = ["PostgresServer"]

PG_DIRS = ("/usr/lib/postgresql/*/bin",)
DATABASE = "satchel"
USER = "postgres"


def _drop_to(user: str) -> Callable[[], None]:
    entry = pwd.getpwnam(user)

    def demote() -> None:
        os.setgroups([])
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)

    return demote


class PostgresServer(DatabaseServer):
    """``postgres`` on a free port with trust auth on loopback, fsync off, statements logged."""

    name = "postgres"
    statement = re.compile(r"LOG:\s+(?:statement|execute [^:]*):\s")  # logged to stderr

    def __init__(self, *, log_statements: bool = True) -> None:
        super().__init__()
        self.log_statements = log_statements

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@{LOOPBACK}:{self.port}/{DATABASE}"

    def _demote(self) -> Callable[[], None] | None:
        return _drop_to(USER) if os.geteuid() == 0 else None

    def preexec(self) -> Callable[[], None] | None:
        return self._demote()

    def env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}

    def prepare(self) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam(USER)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            [find_binary("initdb", PG_DIRS), "-D", str(self.data), "-U", USER,
             "--auth=trust", "--no-sync", "--no-instructions", "-E", "UTF8", "--locale=C"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.dir,
            env=self.env(), preexec_fn=self._demote(),
        )

    def command(self) -> list[str]:
        return [
            find_binary("postgres", PG_DIRS), "-D", str(self.data), "-p", str(self.port),
            "-k", str(self.dir), "-c", f"listen_addresses={LOOPBACK}",
            "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            "-c", "shared_buffers=16MB", "-c", "max_connections=60",
            "-c", f"log_statement={'all' if self.log_statements else 'none'}",
            "-c", f"log_connections={'on' if self.log_statements else 'off'}",
            "-c", "log_destination=stderr",
            "-c", "logging_collector=off", "-c", "log_line_prefix=%p ",
        ]

    def ready(self) -> bool:
        with psycopg.connect(host=LOOPBACK, port=self.port, user=USER, dbname="postgres",
                             connect_timeout=2):
            return True

    def create_database(self) -> None:
        with psycopg.connect(host=LOOPBACK, port=self.port, user=USER, dbname="postgres",
                             autocommit=True, connect_timeout=2) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20.0) -> None:
        super().stop(sig, timeout)
