"""The store contract: what every store guarantees, in one place.

Stores are persistence only.  They never decide expiry policy (the manager does); they keep the
``expires`` moment they are given, answer ``load`` with None once it has passed, and remove such
records in ``purge``.  Ids reach a store already validated by format.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import TracebackType
from typing import Protocol, TypeGuard, TypeVar, runtime_checkable
from urllib.parse import SplitResult, parse_qsl

from ..errors import ConfigurationError
from ..record import Changes, Ended, SessionMeta, SessionRecord

__all__ = ["BaseStore", "ClientSideStore", "Store", "is_client_side", "now_or", "url_options"]

_S = TypeVar("_S", bound="BaseStore")


@runtime_checkable
class Store(Protocol):
    """A place where sessions are kept.

    Capabilities are class attributes so that the middleware and tests can read them:
    ``thread_safe`` (one instance may serve several threads), ``multiprocess_safe`` (several
    processes may share the data) and ``native_expiry`` (the engine drops expired records by
    itself, so ``purge`` has little or nothing to do).  A store whose sessions travel in the
    client's cookie says ``client_side = True`` and follows :class:`ClientSideStore` instead of
    being loaded and saved by id.
    """

    thread_safe: bool
    multiprocess_safe: bool
    native_expiry: bool

    def load(self, sid: str) -> SessionRecord | None:
        """Return the record for ``sid``, or None when it is absent or expired.

        One round trip.  Raises ``StoreUnavailable`` when the backend cannot answer.
        """

    def save(self, sid: str, changes: Changes, meta: SessionMeta) -> bool:
        """Apply ``changes`` atomically against what is stored now, and write ``meta``.

        Keys not named in ``changes`` keep their stored value (unless ``changes.cleared``).
        ``meta.accessed`` is the caller's now: a record whose expiry is not after it is dead,
        whatever the store's own clock says (one notion of now, the application's ``clock``).
        Returns False, writing nothing, when the record is absent or dead and
        ``changes.create`` is False; True otherwise (a dead record is then started afresh).
        """

    def update(self, sid: str, changes: Changes, accessed: float, expires: float,
               lifetime: float | None) -> bool:
        """Apply ``changes`` to a live record without knowing its metadata (a blind write).

        Atomically, against what is stored now: keeps the stored ``created`` and ``user``,
        sets ``accessed``, and sets ``expires`` to the nearer of ``expires`` and the stored
        ``created + lifetime`` (``lifetime`` None: ``expires`` as given).  ``expires`` is
        ``math.inf`` when there is no idle timeout; the lifetime then decides alone.
        ``accessed`` is the caller's now: returns False, writing nothing, when the record is
        absent or its expiry is not after ``accessed``.  One round trip where the engine
        allows it: a request that only writes its session then costs one.
        """

    def delete(self, sid: str) -> bool:
        """Remove the record; True if there was one."""

    def move(self, old: str, new: str, changes: Changes, meta: SessionMeta) -> bool:
        """Rotation: keep the session stored under ``old`` under the fresh id ``new`` instead.

        Atomically where the engine allows: what is stored under ``old`` now (with the writes
        of concurrent requests) gets ``changes`` and ``meta`` and is kept under ``new``, and
        ``old`` is gone, so that a blind write to ``old`` either lands before the move and is
        carried, or finds no session (its ``update`` returns False) — never lands in between
        and is lost.  Returns False, writing nothing, when ``old`` is absent or dead at
        ``meta.accessed`` (a logout won the race).
        """

    def touch(self, sid: str, accessed: float, expires: float) -> bool:
        """Move the access and expiry times of a record live at ``accessed`` (the caller's
        now); False, writing nothing, if it is absent or dead."""

    def exists(self, sid: str) -> bool:
        """True when a live (unexpired) record is kept under ``sid``."""

    def purge(self, now: float | None = None) -> int:
        """Remove the records expired at ``now`` (default: the current time); return how many.

        Costs what it removes, not what is stored, wherever the engine allows it.
        """

    def count(self) -> int:
        """How many live records are kept (for admin tools; may scan)."""

    def ids(self) -> Iterator[str]:
        """Iterate over the ids of live records (for admin tools; may scan)."""

    def user_sessions(self, user: str) -> list[str]:
        """The ids of the live records whose ``user`` is ``user``: to log a user out everywhere."""

    def close(self) -> None:
        """Release connections, handles and threads.  The store is unusable afterwards."""

    def __enter__(self) -> Store: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class ClientSideStore(Store, Protocol):
    """A store that keeps each session in the value the client holds (a sealed cookie).

    The engine opens the client's value instead of loading by id, and seals the whole session
    into a new value instead of saving changes: every save or touch sends a new value.  ``delete``
    still receives the ids of discarded sessions (for anything the store keeps server-side).
    """

    client_side: bool

    def open(self, token: str, now: float,
             why: bool = False) -> tuple[str, SessionRecord] | Ended | None:
        """The session id and record sealed in ``token``, or None.

        None for anything this store did not seal, cannot open, or that is dead at ``now``:
        never an exception for a bad value.  With ``why``, a value it sealed whose session is
        dead may instead give an :class:`~satchel.record.Ended` saying why (``session.ended``).
        Raises ``StoreUnavailable`` only when a backend it consults cannot answer.
        """

    def seal(self, sid: str, data: dict[str, str], meta: SessionMeta, overhead: int = 0) -> str:
        """The value that carries the whole session to the client.

        ``overhead`` is how many bytes the transport adds around the value in the header it
        sends (cookie name and attributes), counted against the store's size limit.  Raises
        ``SessionTooLarge`` rather than produce a value the client would drop.
        """

    def end(self, sid: str, user: str, until: float) -> None:
        """Session ``sid`` of ``user`` was logged out (``session.invalidate()``).

        Drop whatever is kept server-side for it, like ``delete``; and where the store can,
        refuse every token of it from now on, including one that a request still in flight
        seals after this call.  ``until`` is a moment by which every such token is dead: the
        refusal need not be kept longer.
        """


def is_client_side(store: Store) -> TypeGuard[ClientSideStore]:
    """True for a store whose sessions live in the client's value (see ``ClientSideStore``)."""
    return getattr(store, "client_side", False) is True


class BaseStore:
    """Shared plumbing for stores: context management, defaults built on the abstract methods."""

    thread_safe = True
    multiprocess_safe = False
    native_expiry = False
    client_side = False
    # Whether a call may wait on I/O (a socket, a lock file, a disk).  Async front doors call a
    # store that never blocks inline, and any other in a thread (``stores.aio``).
    blocking = True

    def load(self, sid: str) -> SessionRecord | None:
        raise NotImplementedError

    def save(self, sid: str, changes: Changes, meta: SessionMeta) -> bool:
        raise NotImplementedError

    def delete(self, sid: str) -> bool:
        raise NotImplementedError

    def update(self, sid: str, changes: Changes, accessed: float, expires: float,
               lifetime: float | None) -> bool:
        # Correct for any store (the save still merges atomically); stores that can do it in
        # one round trip override it.
        record = self.load(sid)
        if record is None:
            return False
        if lifetime is not None:
            expires = min(expires, record.created + lifetime)
        meta = SessionMeta(record.created, accessed, expires, record.user)
        blind = Changes(set=changes.set, deleted=changes.deleted, cleared=changes.cleared,
                        create=False, user_changed=False)
        return self.save(sid, blind, meta)

    def touch(self, sid: str, accessed: float, expires: float) -> bool:
        raise NotImplementedError

    def move(self, old: str, new: str, changes: Changes, meta: SessionMeta) -> bool:
        # Correct for any store but atomic for none: a write to ``old`` between the save and
        # the delete is lost.  Every store of satchel's overrides it with one atomic step.
        record = self.load(old)
        if record is None or record.expires <= meta.accessed:
            return False
        whole = Changes(set=changes.apply(record.data), cleared=True, create=True)
        self.save(new, whole, meta)
        self.delete(old)
        return True

    def ids(self) -> Iterator[str]:
        raise NotImplementedError

    def purge(self, now: float | None = None) -> int:
        raise NotImplementedError

    def exists(self, sid: str) -> bool:
        return self.load(sid) is not None

    def count(self) -> int:
        return sum(1 for _ in self.ids())

    def records(self) -> Iterator[tuple[str, SessionRecord | None]]:
        """Iterate over ``(id, record)`` of live records (for admin tools; may scan).

        A record is None when it died between the listing and the read.  This default loads
        each id; a store that can read them in one pass overrides it.  (On ``BaseStore``, like
        ``delete_user``, not on the ``Store`` protocol: a store written to the protocol alone
        stays one; tools fall back to ``ids`` and ``load``.)
        """
        for sid in self.ids():
            yield sid, self.load(sid)

    def user_sessions(self, user: str) -> list[str]:
        found = []
        for sid in self.ids():
            record = self.load(sid)
            if record is not None and record.user == user:
                found.append(sid)
        return found

    def delete_user(self, user: str) -> int:
        """Delete every session of ``user`` (log out everywhere); return how many."""
        return sum(1 for sid in self.user_sessions(user) if self.delete(sid))

    def close(self) -> None:
        return None

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


def now_or(now: float | None) -> float:
    """The purge moment: the one given, or the current time."""
    return time.time() if now is None else now


def url_options(parsed: SplitResult) -> dict[str, str]:
    """The query parameters of a store URL, one value each."""
    try:
        pairs = parse_qsl(parsed.query, keep_blank_values=True, strict_parsing=bool(parsed.query))
    except ValueError as exc:
        raise ConfigurationError(f"store URL query string is malformed: {exc}") from None
    return dict(pairs)
