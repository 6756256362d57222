"""Session3's store API over a satchel store.

The methods Session3's manager called (``load_session``, ``save_session``, ``delete_session``,
``has_session``) and the maintenance ones (``setup``, ``delete_old_sessions``,
``iter_sessions``) work on any satchel store; sessions are read through satchel's codec, so a
store never unpickles anything.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ....ids import is_valid_id
from ....stores import Store

if TYPE_CHECKING:
    from ....integrations.quixote import Session
    from ....integrations.quixote import SessionManager as _Manager

__all__ = ["SessionStore"]


class SessionStore:
    """Persistent session storage with Session3's methods, kept by the satchel store
    ``backend``.

    ``is_multiprocess_safe`` and ``is_thread_safe`` say what the satchel store guarantees.
    """

    is_multiprocess_safe = False
    is_thread_safe = False

    def __init__(self, backend: Store) -> None:
        self.backend = backend
        self.is_multiprocess_safe = bool(backend.multiprocess_safe)
        self.is_thread_safe = bool(backend.thread_safe)
        self._manager: _Manager | None = None

    def _reader(self) -> _Manager:
        """The manager whose codec and policy read sessions (a default one when used alone)."""
        if self._manager is None:
            from ..Session import Session as Session3Session
            from ..SessionManager import SessionManager

            SessionManager(self, Session3Session)  # registers itself as self._manager
        assert self._manager is not None
        return self._manager

    # -- what Session3's manager called ------------------------------------------------------

    def load_session(self, id: str, default: Any = None) -> Any:
        """The stored session ``id``, or ``default`` (a malformed id is never looked up)."""
        return self._reader().get(id, default)

    def save_session(self, session: Session) -> None:
        """Save changes made to a session from :meth:`load_session`.  The current request's
        session needs no call: satchel saves it at the end of the request."""
        sid = session.id
        if sid is not None:
            self._reader()[sid] = session

    def delete_session(self, session: Any) -> None:
        """Delete a session (given as the session or its id)."""
        sid = session if isinstance(session, str) else getattr(session, "id", None)
        if isinstance(sid, str) and is_valid_id(sid):
            self.backend.delete(sid)

    def has_session(self, id: str) -> bool:
        return is_valid_id(id) and self.backend.exists(id)

    # -- maintenance -------------------------------------------------------------------------

    def iter_sessions(self) -> list[tuple[str, Session]]:
        """(id, session) for every live session (``NotImplementedError`` where the satchel
        store cannot list its sessions, as memcached cannot)."""
        return self._reader().items()

    def setup(self) -> None:
        """Create the store's tables where it has any (never drops existing ones)."""
        setup = getattr(self.backend, "setup", None)
        if callable(setup):
            setup()

    def delete_old_sessions(self, minutes: float) -> Any:
        """Delete the sessions not used for more than ``minutes``; Session3 returned nothing
        from this method except in ``DirectorySessionStore``."""
        self._delete_old(minutes)
        return None

    def _delete_old(self, minutes: float) -> tuple[int, int]:
        """(deleted, remaining), judged by each session's last access; scans the store."""
        cutoff = time.time() - minutes * 60
        backend = self.backend
        deleted = remaining = 0
        for sid in list(backend.ids()):
            record = backend.load(sid)
            if record is None:
                continue
            if record.accessed < cutoff and backend.delete(sid):
                deleted += 1
            else:
                remaining += 1
        return deleted, remaining

    def close(self) -> None:
        """Close the satchel store."""
        self.backend.close()
