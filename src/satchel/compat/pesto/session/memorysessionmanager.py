"""Pesto's ``pesto.session.memorysessionmanager`` over satchel's :class:`~satchel.MemoryStore`.

Sessions live in this process's memory, so they are lost when it exits and are not shared
between processes: use the file manager (or any satchel store) for CGI or several workers.
"""

from __future__ import annotations

import sys

from ....codec import Codec
from ....errors import ConfigurationError
from ....stores.memory import MemoryStore
from .base import ThreadsafeSessionManagerBase

__all__ = ["MemorySessionManager"]


class MemorySessionManager(ThreadsafeSessionManagerBase):
    """An in-memory session manager.

    Args:
        cache_size: the most sessions kept; the least recently used goes first when a new one
            would exceed it.  0 means no limit, as in Pesto.
    """

    def __init__(self, cache_size: int = 200, *, codec: Codec | None = None) -> None:
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise ConfigurationError("MemorySessionManager: cache_size must be an integer >= 0")
        self.cache_size = cache_size
        super().__init__(MemoryStore(max_sessions=cache_size or sys.maxsize), codec=codec)
