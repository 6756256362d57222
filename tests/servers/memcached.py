"""A private memcached on a free loopback port, with its command counters for round-trip tests."""

from __future__ import annotations

import signal

from pymemcache.client.base import Client

from . import LOOPBACK, ServerProcess, find_binary

__all__ = ["ROUND_TRIP_STATS", "MemcachedServer"]

#: the counters whose sum is the number of commands that reached the server (``stats`` itself
#: is not counted by memcached)
ROUND_TRIP_STATS = (
    "cmd_get", "cmd_set", "cmd_touch", "cmd_flush",
    "delete_hits", "delete_misses", "incr_hits", "incr_misses", "decr_hits", "decr_misses",
)


class MemcachedServer(ServerProcess):
    """``memcached -u root -l 127.0.0.1 -p PORT -U 0 -m 64`` (TCP only, 64 MiB, 1 MiB items)."""

    name = "memcached"
    start_timeout = 10.0

    def command(self) -> list[str]:
        return [find_binary("memcached"), "-u", "root", "-l", LOOPBACK, "-p", str(self.port),
                "-U", "0", "-m", "64", "-I", "1m"]

    def stop(self, sig: int = signal.SIGKILL, timeout: float = 20.0) -> None:
        """Stop by SIGKILL: memcached has nothing to flush, and on SIGTERM it waits for its
        once-a-second clock tick before exiting, which would cost every outage test a second."""
        super().stop(sig, timeout)

    @property
    def url(self) -> str:
        return f"memcached://{LOOPBACK}:{self.port}"

    def stats(self) -> dict[str, int]:
        """The server's counters, over a connection of its own."""
        client = Client((LOOPBACK, self.port), connect_timeout=2, timeout=2)
        try:
            raw = client.stats()
        finally:
            client.close()
        found: dict[str, int] = {}
        for key, value in raw.items():
            name = key.decode() if isinstance(key, bytes) else str(key)
            if isinstance(value, int):
                found[name] = value
        return found

    def commands(self) -> int:
        """How many commands the server has answered so far (see :data:`ROUND_TRIP_STATS`)."""
        stats = self.stats()
        return sum(stats.get(name, 0) for name in ROUND_TRIP_STATS)
