"""MemoryStore against the store contract, plus its LRU bound."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import satchel
from satchel import MemoryStore
from satchel.ids import new_id

from .contract import StoreContract, put


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> Iterator[MemoryStore]:
        with MemoryStore() as store:
            yield store


def test_lru_bound_drops_least_recently_used() -> None:
    store = MemoryStore(max_sessions=3)
    a, b, c, d = (new_id() for _ in range(4))
    for sid in (a, b, c):
        put(store, sid, {"k": "1"})
    assert store.load(a) is not None  # a is now the most recently used
    put(store, d, {"k": "1"})
    assert store.load(b) is None
    assert all(store.load(s) is not None for s in (a, c, d))
    assert store.count() == 3


def test_open_store_memory_url() -> None:
    store = satchel.open_store("memory://?max_sessions=5")
    assert isinstance(store, MemoryStore) and store.max_sessions == 5


@pytest.mark.parametrize("url", ["memory://host", "memory://?max_sessions=x", "memory://?bogus=1"])
def test_bad_memory_urls(url: str) -> None:
    with pytest.raises(ValueError, match="memory://"):
        satchel.open_store(url)


def test_bad_max_sessions() -> None:
    with pytest.raises(ValueError, match="max_sessions"):
        MemoryStore(max_sessions=0)
