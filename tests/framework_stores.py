"""The stores every framework integration is tested over: SQLite, Redis and cookie sessions.

A test module binds ``store_url`` and ``redis_server`` from here; the Redis server starts only
for the Redis cases, once per module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .server_fixtures import redis_server

__all__ = ["SECRET", "redis_server", "store_url"]

SECRET = "framework-tests-secret-0123456789"


@pytest.fixture(params=["sqlite", "redis", "cookie"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store URL for a fresh, empty store of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'sessions.db'}"
    elif request.param == "redis":
        server = request.getfixturevalue("redis_server")
        if server.proc is None:  # an outage test stopped it
            server.start()
        server.flush()
        yield server.url
    else:
        yield "cookie://"
