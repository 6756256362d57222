"""Session3's ``VolatileSessionStore``: sessions in this process's memory (satchel's
``MemoryStore``), lost when it exits."""

from __future__ import annotations

from ....stores.memory import MemoryStore
from .SessionStore import SessionStore

__all__ = ["VolatileSessionStore"]


class VolatileSessionStore(SessionStore):
    """A non-persistent store for one process (tests, development)."""

    def __init__(self) -> None:
        super().__init__(MemoryStore())
