"""``beaker.session``'s names over satchel's session: ``Session`` and ``SessionObject``.

Each method translates a Beaker call into satchel's session API; the policy (what is saved,
expiry, ids) stays in satchel's manager, configured by :mod:`.options`.  Beaker's methods that
reach into its storage internals (``lock``, ``namespace``, ``cookie``) have no counterpart.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

from ...engine import SessionEngine
from ...session import Session as CoreSession

if TYPE_CHECKING:
    from .middleware import SessionMiddleware

__all__ = ["Session", "SessionObject"]


class Session(MutableMapping[str, Any]):
    """A Beaker ``Session``: the mapping plus Beaker's methods, over a satchel session.

    This is what ``get_by_id()`` and ``environ['beaker.get_session']()`` return: like Beaker's,
    its ``save()`` writes at once.  Any other attribute (``flash``, ``csrf_token``, ``rotate``,
    ``user``, ...) is satchel's session's own.
    """

    __slots__ = ("_core", "_defaults", "_dirty", "_engine", "_new")

    def __init__(self, core: CoreSession, engine: SessionEngine,
                 defaults: tuple[str | None, str | None] = (None, "/")) -> None:
        self._core = core
        self._engine = engine
        self._defaults = defaults
        self._dirty = False
        self._new: bool | None = None

    # -- the mapping ---------------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        return self._core[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._core[key] = value

    def __delitem__(self, key: str) -> None:
        del self._core[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._core)

    def __len__(self) -> int:
        return len(self._core)

    def __contains__(self, key: object) -> bool:
        return key in self._core

    def get(self, key: str, default: Any = None) -> Any:
        return self._core.get(key, default)

    def clear(self) -> None:
        self._core.clear()

    def __bool__(self) -> bool:
        # Beaker's session objects are always true, empty or not: applications write
        # ``if not session`` to test what get_by_id() returned.
        return True

    def copy(self) -> dict[str, Any]:
        """A plain dict of the values (Beaker's sessions are dicts)."""
        return dict(self._core.items())

    def has_key(self, key: str) -> bool:
        """Beaker's (and Python 2's) spelling of ``key in session``."""
        return key in self._core

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._core, name)

    def __repr__(self) -> str:
        # satchel never puts session contents in a repr (they end up in logs).
        return f"<beaker-compatible {self._core!r}>"

    # -- Beaker's attributes -------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._core.id

    @property
    def is_new(self) -> bool:
        """True when no stored session was found for this request (stays so after save())."""
        if self._new is None:
            return self._core.is_new
        return self._new

    @property
    def created(self) -> float:
        return self._core.created

    @property
    def last_accessed(self) -> float | None:
        """When the session was last accessed before this request; None for a new one."""
        return None if self.is_new else self._core.accessed

    @property
    def timeout(self) -> float | None:
        """The idle timeout in seconds (Beaker's ``timeout``), None when there is none."""
        return self._engine.manager.idle_timeout

    @property
    def domain(self) -> str | None:
        """The cookie's domain; setting it re-sends the cookie with it in this response."""
        domain = self._core.cookie_domain
        return self._defaults[0] if domain is None else domain

    @domain.setter
    def domain(self, value: str | None) -> None:
        self._core.cookie_domain = value

    @property
    def path(self) -> str | None:
        """The cookie's path; setting it re-sends the cookie with it in this response."""
        path = self._core.cookie_path
        return self._defaults[1] if path is None else path

    @path.setter
    def path(self, value: str) -> None:
        self._core.cookie_path = value

    # -- Beaker's methods ----------------------------------------------------------------------

    def save(self, accessed_only: bool = False) -> None:
        """Write the session now (Beaker's ``Session.save``).  ``accessed_only`` only records
        the access, which satchel does by itself."""
        if accessed_only:
            return
        if self._new is None:
            self._new = self._core.is_new
        self._core.save()
        self._dirty = True
        self._engine.commit(self._core)

    def delete(self) -> None:
        """Delete the stored session now."""
        self._core.invalidate()
        self._dirty = True
        self._engine.commit(self._core)

    def invalidate(self) -> None:
        """Drop the session: its record is deleted, and what is written after starts a new
        session under a new id."""
        self._core.invalidate()

    def revert(self) -> None:
        """Undo this request's changes: back to the session as it was loaded."""
        self._core.revert()

    def regenerate_id(self) -> None:
        """A new id for the same data; the old record is deleted (Beaker keeps it, which leaves
        the old id usable: a fixation hole)."""
        self._core.rotate()


class SessionObject(Session):
    """``environ['beaker.session']``: lazy like Beaker's, saved when the response starts.

    Without the ``auto`` option only a session whose ``save()`` (or ``delete()``) was called
    keeps its changes, as in Beaker; the access time is recorded either way.
    """

    __slots__ = ("_mw",)

    def __init__(self, core: CoreSession, middleware: SessionMiddleware) -> None:
        super().__init__(core, middleware.engine, middleware.cookie_defaults)
        self._mw = middleware

    def save(self, accessed_only: bool = False) -> None:
        """Mark the session to be saved at the end of the request (Beaker's ``save``)."""
        if not accessed_only:
            self._core.save()
            self._dirty = True

    def delete(self) -> None:
        """Delete the stored session and expire the client's cookie, as the response starts."""
        self._core.invalidate()
        self._dirty = True

    def persist(self) -> None:
        """Beaker's middleware calls this as the response starts.  satchel's middleware saves
        the session at that same moment by itself, so there is nothing left to do here."""

    def dirty(self) -> bool:
        """True when ``save()`` or ``delete()`` was called in this request."""
        return self._dirty

    def accessed(self) -> bool:
        """True when the application used its session in this request."""
        return self._core.touched

    def get_by_id(self, id: str) -> Session | None:
        """The stored session with this id, or None; its ``save()`` writes at once."""
        return self._mw.get_by_id(id)
