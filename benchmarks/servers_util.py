"""Private servers for the server-store benchmarks: how each is started, counted and reached.

One :class:`Backend` per engine owns a private server process (the test suite's classes in
``tests/servers``: free loopback port, temporary directory, stopped by its pid), the URL satchel
opens on it, the Beaker options that point ``ext:redis``/``ext:memcached``/``ext:database`` at
the *same* server, and a counter of the round trips an action costs, read from the server or
the wire (so nothing is assumed about either client):

* Redis: ``MONITOR`` (top-level commands; those a Lua script runs are listed apart);
* memcached: a relay in front of the server (``tests/servers/relay.py``) counting each wait for
  a reply, since memcached's ``stats`` count commands and a client may send two in one packet;
* PostgreSQL: the server's statement log, switched on only while counting;
* MySQL/MariaDB: ``SHOW GLOBAL STATUS LIKE 'Questions'`` deltas.

Each counter is calibrated with an empty action, so the counting machinery's own statements
never show up in a figure.  The timed runs happen with statement logging off and never pass
through the relay: a backend that counts at one names, in :attr:`Backend.counting_url` and
:attr:`Backend.counting_beaker_options`, where the apps built only for counting connect.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, for tests.servers

from tests.servers import LOOPBACK, ServerProcess

__all__ = ["BACKENDS", "Backend", "make_backend"]


class Backend:
    """A private server plus how satchel and Beaker reach it and how its round trips are counted."""

    name = "?"
    beaker_type = "?"
    unit = "round trips"

    def __init__(self) -> None:
        self.server: ServerProcess = self.make_server()
        self.tmp = Path(tempfile.mkdtemp(prefix=f"satchel-bench-{self.name}-"))
        self.baseline = 0

    def make_server(self) -> ServerProcess:
        raise NotImplementedError

    def start(self) -> float:
        """Start the server; return the seconds it took."""
        began = time.monotonic()
        self.server.start()
        self.after_start()
        self.baseline = 0
        self.baseline = self.count(lambda: None)
        return time.monotonic() - began

    def after_start(self) -> None:
        """Engine-specific set-up once the server answers."""

    def stop(self) -> None:
        import shutil

        try:
            self.server.cleanup()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    @property
    def satchel_url(self) -> str:
        raise NotImplementedError

    @property
    def beaker_options(self) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def counting_url(self) -> str | None:
        """Where a satchel store built only for counting connects; None: count the timed apps."""
        return None

    @property
    def counting_beaker_options(self) -> dict[str, Any] | None:
        """Beaker's options for an app built only for counting; None: count the timed app."""
        return None

    def count(self, action: Callable[[], object]) -> int:
        """The round trips ``action`` sends to the server, less the counter's own."""
        raise NotImplementedError

    def pinger(self) -> tuple[Callable[[], object], Callable[[], None]]:
        """One minimal round trip through the client library satchel's store uses, and how to
        close that client: the price of a round trip, below which no store can go."""
        raise NotImplementedError


class RedisBackend(Backend):
    name = "redis"
    beaker_type = "ext:redis"
    unit = "commands (MONITOR)"

    def make_server(self) -> ServerProcess:
        from tests.servers.redis import RedisServer

        return RedisServer()

    @property
    def satchel_url(self) -> str:
        return f"redis://{LOOPBACK}:{self.server.port}/0"

    @property
    def beaker_options(self) -> dict[str, Any]:
        return {"session.type": "ext:redis", "session.url": self.satchel_url}

    def count(self, action: Callable[[], object]) -> int:
        from tests.servers.redis import CommandLog

        with CommandLog(self.server.port) as log:
            action()
        return len(log.calls) - self.baseline

    def pinger(self) -> tuple[Callable[[], object], Callable[[], None]]:
        import redis

        client = redis.Redis(host=LOOPBACK, port=self.server.port)
        return client.ping, client.close


class MemcachedBackend(Backend):
    """Counted at a relay: satchel's store may send ``touch ... noreply`` and ``append`` in one
    packet, two commands for ``stats`` but one wait for the server."""

    name = "memcached"
    beaker_type = "ext:memcached"
    unit = "round trips (relay)"

    def __init__(self) -> None:
        from tests.servers.relay import Relay

        super().__init__()
        self.relay = Relay(self.server.port)

    def make_server(self) -> ServerProcess:
        from tests.servers.memcached import MemcachedServer

        return MemcachedServer()

    def after_start(self) -> None:
        self.relay.start()

    def stop(self) -> None:
        try:
            self.relay.stop()
        finally:
            super().stop()

    @property
    def satchel_url(self) -> str:
        return f"memcached://{LOOPBACK}:{self.server.port}"

    @property
    def beaker_options(self) -> dict[str, Any]:
        # Beaker 1.14 speaks to memcached through python-memcached (the ``memcache`` module).
        return {"session.type": "ext:memcached", "session.url": f"{LOOPBACK}:{self.server.port}",
                "session.memcache_module": "memcache",
                "session.lock_dir": str(self.tmp / "beaker-locks")}

    @property
    def counting_url(self) -> str:
        return f"memcached://{self.relay.host_port}"

    @property
    def counting_beaker_options(self) -> dict[str, Any]:
        return {**self.beaker_options, "session.url": self.relay.host_port}

    def count(self, action: Callable[[], object]) -> int:
        return self.relay.count(action) - self.baseline

    def pinger(self) -> tuple[Callable[[], object], Callable[[], None]]:
        from pymemcache.client.base import Client

        client = Client((LOOPBACK, self.server.port))
        return (lambda: client.get("satchel-bench-ping")), client.close


class PostgresBackend(Backend):
    name = "postgres"
    beaker_type = "ext:database"
    unit = "statements (log)"

    def make_server(self) -> ServerProcess:
        from tests.servers.postgres import PostgresServer

        class QuietPostgres(PostgresServer):
            """Statement logging decided at run time (``ALTER SYSTEM``), not on the command line,
            which would outrank it: on only while counting, so it never weighs on the timings."""

            def command(self) -> list[str]:
                args = super().command()
                for i, arg in enumerate(args):
                    if arg.startswith("log_statement="):
                        del args[i - 1:i + 1]
                        break
                return args

        return QuietPostgres(log_statements=False)

    def _user(self) -> str:
        from tests.servers import postgres

        return postgres.USER

    @property
    def satchel_url(self) -> str:
        return f"postgresql://{self._user()}@{LOOPBACK}:{self.server.port}/satchel"

    @property
    def beaker_options(self) -> dict[str, Any]:
        return {"session.type": "ext:database",
                "session.url": (f"postgresql+psycopg://{self._user()}@{LOOPBACK}:"
                                f"{self.server.port}/satchel"),
                "session.lock_dir": str(self.tmp / "beaker-locks")}

    def _log_statements(self, value: str) -> None:
        import psycopg

        with psycopg.connect(host=LOOPBACK, port=self.server.port, user=self._user(),
                             dbname="postgres", autocommit=True, connect_timeout=2) as conn:
            conn.execute(f"ALTER SYSTEM SET log_statement = '{value}'")
            conn.execute("SELECT pg_reload_conf()")
        # The postmaster signals the backends; each rereads its configuration before its next
        # statement.  Give the signal time to arrive.
        time.sleep(0.2)

    def count(self, action: Callable[[], object]) -> int:
        from tests.servers.postgres import PostgresServer

        server = self.server
        assert isinstance(server, PostgresServer)
        self._log_statements("all")
        try:
            offset = server.log_size()
            action()
            statements = server.statements_since(offset)
        finally:
            self._log_statements("none")
        return len(statements) - self.baseline

    def pinger(self) -> tuple[Callable[[], object], Callable[[], None]]:
        import psycopg

        conn = psycopg.connect(host=LOOPBACK, port=self.server.port, user=self._user(),
                               dbname="satchel", autocommit=True)
        return (lambda: conn.execute("SELECT 1").fetchone()), conn.close


class MySQLBackend(Backend):
    name = "mysql"
    beaker_type = "ext:database"
    unit = "Questions (status)"

    def make_server(self) -> ServerProcess:
        from tests.servers.mysql import MariaDBServer

        return MariaDBServer(log_queries=False)

    def _account(self) -> tuple[str, str]:
        from tests.servers import mysql

        return mysql.USER, mysql.PASSWORD

    @property
    def satchel_url(self) -> str:
        user, password = self._account()
        return f"mysql://{user}:{password}@{LOOPBACK}:{self.server.port}/satchel"

    @property
    def beaker_options(self) -> dict[str, Any]:
        user, password = self._account()
        return {"session.type": "ext:database",
                "session.url": (f"mysql+pymysql://{user}:{password}@{LOOPBACK}:"
                                f"{self.server.port}/satchel"),
                "session.lock_dir": str(self.tmp / "beaker-locks")}

    def _questions(self) -> int:
        from tests.servers.mysql import MariaDBServer

        server = self.server
        assert isinstance(server, MariaDBServer)
        conn = server.root()
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW GLOBAL STATUS LIKE 'Questions'")
                row = cur.fetchone()
        finally:
            conn.close()
        return int(row[1])

    def count(self, action: Callable[[], object]) -> int:
        before = self._questions()
        action()
        return self._questions() - before - self.baseline

    def pinger(self) -> tuple[Callable[[], object], Callable[[], None]]:
        import pymysql  # type: ignore[import-untyped]

        user, password = self._account()
        conn = pymysql.connect(host=LOOPBACK, port=self.server.port, user=user,
                               password=password, database="satchel", autocommit=True)
        cursor = conn.cursor()

        def ping() -> object:
            cursor.execute("SELECT 1")
            return cursor.fetchone()

        return ping, conn.close


BACKENDS: dict[str, type[Backend]] = {
    "redis": RedisBackend, "memcached": MemcachedBackend,
    "postgres": PostgresBackend, "mysql": MySQLBackend,
}


def make_backend(name: str) -> Backend:
    try:
        return BACKENDS[name]()
    except KeyError:
        raise SystemExit(f"unknown store {name!r}; choose from {', '.join(BACKENDS)}") from None
