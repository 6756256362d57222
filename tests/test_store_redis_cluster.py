"""RedisStore on a private three-master Redis Cluster: the store contract, hash tags, the
user index across slots, scans over every master, and round trips counted with MONITOR."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from redis.cluster import RedisCluster

import satchel
from satchel import Changes
from satchel.ids import new_id
from satchel.stores.redis import RedisStore

from .contract import StoreContract, meta, put
from .server_fixtures import fresh_store
from .servers import LOOPBACK, free_port
from .servers.redis import CommandLog, RedisClusterServers, redis_command, running_cluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterServers]:
    with running_cluster() as servers:
        yield servers


@pytest.fixture
def store(cluster: RedisClusterServers) -> Iterator[RedisStore]:
    with fresh_store(cluster) as store:
        yield store


class TestRedisClusterStore(StoreContract):
    @pytest.fixture
    def store_spec(self, cluster: RedisClusterServers) -> tuple[str, dict[str, Any]]:
        return cluster.url, {}


def _client(store: RedisStore) -> RedisCluster:
    client = store.client()
    assert isinstance(client, RedisCluster)
    return client


def _node_port(client: RedisCluster, key: str) -> int:
    return int(client.get_node_from_key(key).port)


def test_one_session_is_one_slot(store: RedisStore) -> None:
    client = _client(store)
    sid = new_id()
    put(store, sid, {"a": "1"}, user="ana")
    key = store.session_key(sid)
    assert key == f"satchel:s:{{{sid}}}"
    assert client.keyslot(key) == client.keyslot(sid)
    # the server agrees with the client on the slot, and holds the key on that slot's node
    assert client.cluster_keyslot(key) == client.keyslot(sid)
    port = _node_port(client, key)
    assert redis_command(port, "EXISTS", key).startswith(":1")


def test_sessions_spread_over_masters_and_scans_see_them_all(store: RedisStore) -> None:
    client = _client(store)
    sids = {new_id() for _ in range(30)}
    for sid in sids:
        put(store, sid, {"a": "1"})
    ports = {_node_port(client, store.session_key(sid)) for sid in sids}
    assert len(ports) == 3  # 30 random ids on 3 masters: all used (odds of not: ~1e-5)
    assert set(store.ids()) == sids
    assert store.count() == 30


def test_user_index_across_slots(store: RedisStore) -> None:
    client = _client(store)
    mine = {new_id() for _ in range(12)}
    for sid in mine:
        put(store, sid, {"a": "1"}, user="ana")
    other = new_id()
    put(store, other, {"a": "1"}, user="bob")
    user_port = _node_port(client, store.user_key("ana"))
    assert any(_node_port(client, store.session_key(s)) != user_port for s in mine)
    assert set(store.user_sessions("ana")) == mine
    gone = sorted(mine)[:2]
    store.delete(gone[0])
    store.save(gone[1], Changes(create=False), meta(user="bob"))
    assert set(store.user_sessions("ana")) == mine - set(gone)
    assert set(store.user_sessions("bob")) == {other, gone[1]}
    assert store.delete_user("ana") == 10
    assert store.user_sessions("ana") == []
    assert store.load(other) is not None


def test_purge_cleans_stale_user_members(store: RedisStore) -> None:
    client = _client(store)
    live, dead = new_id(), new_id()
    put(store, live, {"a": "1"}, user="ana")
    now = time.time()
    store.save(dead, Changes(set={"a": "1"}), meta(now - 100, ttl=99, user="ana"))
    assert client.smembers(store.user_key("ana")) == {live, dead}
    assert store.purge() == 0
    assert client.smembers(store.user_key("ana")) == {live}


def test_save_without_create_adds_no_session_even_with_a_user(store: RedisStore) -> None:
    sid = new_id()
    assert store.save(sid, Changes(set={"a": "1"}, create=False), meta(user="ana")) is False
    assert store.load(sid) is None
    assert store.user_sessions("ana") == []


def test_script_cache_flushed_falls_back_to_eval(
    cluster: RedisClusterServers, store: RedisStore
) -> None:
    def flush_scripts() -> None:
        for port in cluster.ports:
            assert redis_command(port, "SCRIPT", "FLUSH").startswith("+OK")

    flush_scripts()
    sid = new_id()
    put(store, sid, {"a": "1"}, user="ana")
    flush_scripts()
    put(store, new_id(), {"a": "1"})
    flush_scripts()
    assert store.touch(sid, time.time(), time.time() + 60) is True
    assert store.user_sessions("ana") == [sid]


def test_round_trips_in_a_cluster(cluster: RedisClusterServers, store: RedisStore) -> None:
    client = _client(store)
    # a session whose user set lives on another master
    sid = next(s for s in iter(new_id, None)
               if _node_port(client, store.session_key(s))
               != _node_port(client, store.user_key("ana")))
    for i in range(40):  # open every node's connection and cache the scripts on every master
        warm = new_id()
        put(store, warm, {"a": "1"}, user=f"w{i}")
        store.touch(warm, time.time(), time.time() + 60)
        store.update(warm, Changes(create=False), time.time(), time.time() + 60, None)
    with CommandLog(*cluster.ports) as log:
        put(store, sid, {"a": "1"}, user="ana")
    assert sorted(log.calls) == ["EVALSHA", "SADD"]  # one round, two nodes
    with CommandLog(*cluster.ports) as log:
        store.save(sid, Changes(set={"b": "2"}, create=False), meta())
    assert log.calls == ["EVALSHA"]
    with CommandLog(*cluster.ports) as log:
        assert store.load(sid) is not None
    assert log.calls == ["HGETALL"]
    with CommandLog(*cluster.ports) as log:
        assert store.touch(sid, time.time(), time.time() + 60) is True
    assert log.calls == ["EVALSHA"]
    store.save(sid, Changes(create=False), meta(user="ana"))
    now = time.time()
    with CommandLog(*cluster.ports) as log:
        assert store.update(sid, Changes(set={"c": "3"}, deleted=frozenset({"a"}), create=False),
                            now, now + 3600, 900.0) is True
    assert log.calls == ["EVALSHA"]  # a blind write: one command, on the session's node
    assert log.lua == ["HMGET", "HDEL", "HSET", "PEXPIREAT"]
    record = store.load(sid)
    assert record is not None and record.data == {"b": "2", "c": "3"} and record.user == "ana"
    assert store.user_sessions("ana") == [sid]


def test_unreachable_cluster_raises_store_unavailable_fast() -> None:
    # Building the store does not connect: an application can start while the cluster is down.
    store = RedisStore(cluster=[(LOOPBACK, free_port()), (LOOPBACK, free_port())],
                       connect_timeout=0.3, timeout=0.3)
    with store:
        for call in (lambda: store.load(new_id()), lambda: put(store, new_id(), {"a": "1"}),
                     store.count):
            started = time.monotonic()
            with pytest.raises(satchel.StoreUnavailable) as info:
                call()
            assert time.monotonic() - started < 2.0
            assert info.value.__cause__ is not None
