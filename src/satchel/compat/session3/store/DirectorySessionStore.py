"""Session3's ``DirectorySessionStore``: one file per session, directly in a directory.

Backed by satchel's ``FileStore(directory, flat=True)``: each file is named by the session id
and holds satchel's checksummed record log (no pickle), writers lock the file itself, and
nothing but session files is left in the directory.
"""

from __future__ import annotations

import os

from ....ids import is_valid_id
from ....stores.file import FileStore
from .SessionStore import SessionStore

__all__ = ["DirectorySessionStore"]


class DirectorySessionStore(SessionStore):
    """Store sessions in individual files within a directory.

    Args:
        directory: where the session files are kept.
        create: make the directory if it does not exist (else ``OSError``, as in Session3).
    """

    def __init__(self, directory: str | os.PathLike[str], create: bool = False) -> None:
        directory = os.path.abspath(os.fspath(directory))
        if not os.path.exists(directory):
            if not create:
                raise OSError(f"error, '{directory}' does not exist.")
            os.mkdir(directory, 0o700)
        if not os.path.isdir(directory):
            raise OSError(f"error, '{directory}' is not a directory.")
        self.directory = directory
        super().__init__(FileStore(directory, flat=True))

    def _make_filename(self, id: str) -> str:
        """The file of session ``id``; an id of the wrong shape never becomes a path."""
        if not is_valid_id(id):
            raise ValueError("not a session id")
        return os.path.join(self.directory, id)

    def delete_old_sessions(self, minutes: float) -> tuple[int, int]:
        """Delete the sessions not used for more than ``minutes``: (n_deleted, n_remaining)."""
        return self._delete_old(minutes)
