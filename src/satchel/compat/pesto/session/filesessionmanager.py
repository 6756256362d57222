"""Pesto's ``pesto.session.filesessionmanager`` over satchel's :class:`~satchel.FileStore`.

One file per session at Pesto's path, ``<directory>/_pesto_sessions/<first two characters of
the id>/<id>``, which is also the file store's own layout.  The directory is made on first use,
not when the manager is built, as Pesto did.  The files are satchel's checksummed log format,
written under an ``fcntl`` lock, so several processes can share the directory; files in Pesto's
old pickle format found there are left alone (``satchel migrate --from pesto-file:DIR`` copies
them).
"""

from __future__ import annotations

import os

from ....codec import Codec
from ....stores.file import FileStore
from .base import SessionManagerBase, _LazyStore, check_path_name

__all__ = ["FileSessionManager"]

SUBDIRECTORY = "_pesto_sessions"


class FileSessionManager(SessionManagerBase):
    """A file-backed session manager.

    Args:
        directory: where the ``_pesto_sessions`` directory is (it is created, 0700, on first use;
            it should not be readable by other users).
    """

    def __init__(self, directory: str | os.PathLike[str], *, codec: Codec | None = None) -> None:
        self.directory = os.path.join(os.fspath(directory), SUBDIRECTORY)
        path = self.directory
        store = _LazyStore(lambda: FileStore(path), thread_safe=FileStore.thread_safe,
                           multiprocess_safe=FileStore.multiprocess_safe)
        super().__init__(store, codec=codec)

    def get_path(self, session_id: str) -> str:
        """The path of the file where the session is stored.

        The id is checked first: anything that is not a plain name (a separator, a dot, an
        empty or over-long string) is a ValueError, never part of a path.
        """
        name = check_path_name(session_id)
        return os.path.join(self.directory, name[:2], name)
