"""Session3's ``SessionManager(store_obj, session_class=Session)`` over satchel.

It is satchel's Quixote session manager; ``store`` is the Session3-style store object given
(``get_session_manager().store.delete_old_sessions(60)`` works as before).
"""

from __future__ import annotations

from typing import Any

from ...ids import new_id
from ...integrations.quixote import SessionManager as _QuixoteSessionManager
from .Session import Session
from .store.SessionStore import SessionStore

__all__ = ["SessionManager"]


class SessionManager(_QuixoteSessionManager):
    """A persistent session manager for Quixote, with Session3's signature.

    Args:
        store_obj: one of the stores in ``satchel.compat.session3.store``.
        session_class: :class:`Session` (the default) or a subclass, e.g. ``DictSession``.
        **options: satchel's options (``idle_timeout``, ``cookie_samesite``, ...).
    """

    def __init__(self, store_obj: SessionStore, session_class: type[Session] = Session,
                 **options: Any) -> None:
        super().__init__(store_obj.backend, session_class, **options)
        self.store: Any = store_obj  # Session3's attribute: the store object it was given
        self.expired_sessions: dict[Any, Any] = {}  # Session3's attribute; satchel needs none
        store_obj._manager = self

    def _get_session_id(self, config: Any) -> str | None:
        """The session id the client sent (Session3's helper)."""
        import quixote

        sid = quixote.get_cookie(config.session_cookie_name)
        return None if sid in ("", "*del*") else sid

    def _make_session_id(self) -> str:
        """A fresh 256-bit id (Session3's made 64-bit ones)."""
        return new_id()

    def _create_session(self) -> Session:
        return self.new_session(None)

    def _set_cookie(self, value: str, **attrs: Any) -> str:
        return self.set_session_cookie(value, **attrs)
