"""What the Redis test modules share: one redis-server per module (starting it is the slow part)
and an emptied store on a server or a cluster for each test."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

import satchel
from satchel.stores.redis import RedisStore

from .servers.redis import RedisClusterServers, RedisServer, running_server


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """A module binds it to the name its tests use: ``server = server_fixtures.redis_server``."""
    with running_server() as srv:
        yield srv


@contextlib.contextmanager
def fresh_store(target: RedisServer | RedisClusterServers, **options: Any) -> Iterator[RedisStore]:
    """A store on ``target``'s URL, emptied first; a server an outage test left stopped is started
    again, so that one failed test does not fail the rest of its module."""
    if isinstance(target, RedisServer) and target.proc is None:
        target.start()
    target.flush()
    store = satchel.open_store(target.url, **options)
    assert isinstance(store, RedisStore)
    with store:
        yield store
