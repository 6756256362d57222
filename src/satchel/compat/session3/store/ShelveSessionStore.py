"""Session3's ``ShelveSessionStore``, kept in a SQLite file instead of a shelf.

A shelf pickles its values and is safe for neither threads nor processes; satchel's SQLite
store is both, and stores no pickle.  A Session3 shelf file cannot be read: point the store at
a new file name (old shelves' sessions are not carried over).
"""

from __future__ import annotations

import os

from ....stores.sqlite import SQLiteStore
from .SessionStore import SessionStore

__all__ = ["ShelveSessionStore"]


class ShelveSessionStore(SessionStore):
    """Store sessions in one database file, ``filename`` (SQLite)."""

    def __init__(self, filename: str | os.PathLike[str]) -> None:
        self.filename = os.fspath(filename)
        super().__init__(SQLiteStore(self.filename))

    def open(self) -> SQLiteStore:
        """Session3 opened the shelf per call; here the store stays open: it is returned."""
        return self.backend  # type: ignore[return-value]
