"""A private MariaDB server for tests: mariadb-install-db in a temp dir, mariadbd on loopback.

``--no-defaults`` keeps the machine's /etc/mysql configuration (and its socket) out of it.  The
server is sized for tests (32 MB buffer pool, 8 MB redo log, no doublewrite, no binlog) so it
is installed and started in about two seconds.  A ``satchel`` user with a password owns the
``satchel`` database, so the store is exercised through real authentication.  The general
query log is on (unless a benchmark asks for quiet), so tests can count the statements a store
sends.
"""

from __future__ import annotations

import re
import subprocess

import pymysql

from . import LOOPBACK, DatabaseServer, find_binary

__all__ = ["MariaDBServer"]

SBIN = ("/usr/sbin", "/usr/local/sbin", "/usr/bin")
DATABASE = "satchel"
USER = "satchel"
PASSWORD = "s3cret-pw"

_TUNING = [
    "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=8M",
    "--skip-name-resolve",
]


class MariaDBServer(DatabaseServer):
    """``mariadbd`` on a free port, root over its private socket, ``satchel`` over TCP."""

    name = "mariadb"
    statement = re.compile(r"\s\d+ Query\t")  # a statement in the general query log

    def __init__(self, *, log_queries: bool = True) -> None:
        super().__init__()
        self.log_queries = log_queries
        self.socket = self.dir / "mysqld.sock"
        self.statement_log = self.dir / "general.log"

    @property
    def url(self) -> str:
        return f"mysql://{USER}:{PASSWORD}@{LOOPBACK}:{self.port}/{DATABASE}"

    def prepare(self) -> None:
        subprocess.run(
            [find_binary("mariadb-install-db", SBIN), "--no-defaults", "--user=root",
             f"--datadir={self.data}", "--auth-root-authentication-method=normal",
             "--skip-test-db", *_TUNING],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.dir,
        )

    def command(self) -> list[str]:
        return [
            find_binary("mariadbd", SBIN), "--no-defaults", "--user=root",
            f"--datadir={self.data}", f"--port={self.port}", f"--bind-address={LOOPBACK}",
            f"--socket={self.socket}", f"--pid-file={self.dir / 'mariadbd.pid'}",
            f"--tmpdir={self.dir}", *_TUNING, "--skip-log-bin",
            "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0",
            "--performance-schema=0", "--max-connections=80",
            f"--general-log={int(self.log_queries)}", f"--general-log-file={self.statement_log}",
        ]

    def root(self) -> pymysql.connections.Connection:  # type: ignore[type-arg]
        return pymysql.connect(unix_socket=str(self.socket), user="root", password="",
                               connect_timeout=2, autocommit=True)

    def ready(self) -> bool:
        if not self.socket.exists():
            return False
        self.root().close()
        return True

    def create_database(self) -> None:
        conn = self.root()
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4")
                cur.execute(f"CREATE USER '{USER}'@'{LOOPBACK}' IDENTIFIED BY '{PASSWORD}'")
                cur.execute(f"GRANT ALL ON {DATABASE}.* TO '{USER}'@'{LOOPBACK}'")
        finally:
            conn.close()
