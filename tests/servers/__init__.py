"""Private server processes for tests: free loopback ports, temporary directories, stop by pid.

Each engine has a module here (``redis.py``, ``postgres.py``, ...) that builds on
:class:`ServerProcess` (the SQL servers on :class:`DatabaseServer`).  Tests never use a
machine's shared services: they start their own, so that a test may also stop one to prove an
outage is handled.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

__all__ = ["DatabaseServer", "ServerProcess", "find_binary", "free_port", "wait_until"]

LOOPBACK = "127.0.0.1"
S = TypeVar("S", bound="ServerProcess")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05
) -> None:
    """Poll ``check`` until it is true; raise TimeoutError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(interval)
    raise TimeoutError(f"{what} did not happen within {timeout} s")


def find_binary(name: str, extra_dirs: Sequence[str] = ()) -> str:
    """The path of a server binary, from PATH or the given directories (e.g. Debian's libexec)."""
    found = shutil.which(name)
    if found:
        return found
    for pattern in extra_dirs:  # absolute glob patterns, newest version first
        for directory in sorted(glob.glob(pattern), reverse=True):
            path = Path(directory) / name
            if path.exists():
                return str(path)
    raise FileNotFoundError(
        f"{name} not found; run ./scripts/test, which installs the server packages"
    )


class ServerProcess:
    """A server process in its own temporary directory on a free loopback port.

    Subclasses implement :meth:`command` (and optionally :meth:`prepare` and :meth:`ready`).
    :meth:`stop` and :meth:`start` may be called again during a test to simulate an outage;
    the port and data directory stay the same.
    """

    name = "server"
    start_timeout = 30.0

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"satchel-{self.name}-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.dir / "server.log"
        self.prepared = False

    def prepare(self) -> None:
        """One-time set-up of the data directory (initdb, ...)."""

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str] | None:
        return None

    def preexec(self) -> Callable[[], None] | None:
        return None

    def ready(self) -> bool:
        return port_open(self.port)

    def start(self) -> None:
        if not self.prepared:
            self.prepare()
            self.prepared = True
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.dir, env=self.env(), preexec_fn=self.preexec(), start_new_session=True,
            )
        try:
            wait_until(lambda: self._alive() and self.ready(), self.start_timeout,
                       f"{self.name} on port {self.port} becoming ready")
        except TimeoutError:
            tail = self.log.read_text(errors="replace")[-3000:]
            self.stop()
            raise TimeoutError(f"{self.name} failed to start; log tail:\n{tail}") from None

    def _alive(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; log:\n{tail}")
        return True

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        """Stop the server by its pid (SIGKILL if it ignores ``sig``)."""
        proc = self.proc
        if proc is None:
            return
        self.proc = None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
        wait_until(lambda: not port_open(self.port), 10, f"{self.name} port closing")

    def freeze(self) -> None:
        """Stop the server with SIGSTOP: connections stay open, nothing answers (a timeout).

        ``kill`` only queues the signal, and a thread running on the other core may still
        answer a command or two: wait until every thread of the process is stopped.
        """
        if self.proc is None:
            raise RuntimeError(f"{self.name} is not running")
        # Every process of the server: PostgreSQL serves each connection from a child.
        self._frozen = [self.proc.pid, *_descendants(self.proc.pid)]
        for pid in self._frozen:
            os.kill(pid, signal.SIGSTOP)
        for pid in self._frozen:
            wait_until(lambda pid=pid: _all_threads_stopped(pid), 5,  # type: ignore[misc]
                       f"{self.name} stopping", interval=0.005)

    def thaw(self) -> None:
        """Let a frozen server run again."""
        for pid in getattr(self, "_frozen", ()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self._frozen = []

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self: S) -> S:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


class DatabaseServer(ServerProcess):
    """A SQL server: a data directory, a database made on first start, and a statement log.

    Subclasses set :attr:`statement` (what a logged statement's line looks like), point
    :attr:`statement_log` at the file the server logs statements to if that is not its output
    (:attr:`log`), and implement :meth:`create_database`.  Tests count a store's statements
    with :meth:`log_size` and :meth:`statements_since`.
    """

    statement: re.Pattern[str]

    def __init__(self) -> None:
        super().__init__()
        self.data = self.dir / "data"
        self.statement_log = self.log
        self.startup_seconds = 0.0

    @property
    def url(self) -> str:
        raise NotImplementedError

    def create_database(self) -> None:
        """Once, after the first start: the database (and account) that stores use."""
        raise NotImplementedError

    def start(self) -> None:
        began = time.monotonic()
        first = not self.prepared
        super().start()
        if first:
            self.create_database()
        self.startup_seconds = time.monotonic() - began

    def log_size(self) -> int:
        return self.statement_log.stat().st_size

    def statements_since(self, offset: int) -> list[str]:
        """The statements the server logged after byte ``offset`` of its statement log."""
        time.sleep(0.05)  # a statement is logged as it starts, not as it ends: let it land
        with open(self.statement_log, "rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
        return [line for line in text.splitlines() if self.statement.search(line)]


def _descendants(pid: int) -> list[int]:
    """The pids of every process below ``pid``, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                with open(f"/proc/{entry}/stat") as stat:
                    ppid = int(stat.read().rpartition(")")[2].split()[1])
                children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.append(child)
            todo.append(child)
    return found


def _all_threads_stopped(pid: int) -> bool:
    states = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/stat") as stat:
            states.append(stat.read().rpartition(")")[2].split()[0])
    return bool(states) and all(state in ("T", "t") for state in states)
