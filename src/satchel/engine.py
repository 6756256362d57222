"""SessionEngine: where the manager's policy meets the store.

The engine opens sessions (lazily: the store is read on the application's first touch), and at
the end of the request asks the manager for a decision and carries it out against the store.

Like the manager it does no I/O itself: it names each store call it needs as an :data:`Op`
(method name, arguments) and takes back the result or the exception.  Committing is a *step*, a
generator that yields its calls; :func:`run` walks it against a sync store and
:func:`run_async` against an async one.  Loading is never more than one call, so it is a pair,
:meth:`~SessionEngine.load_step` and :meth:`~SessionEngine.loaded` (no generator on every
request's hot path).  WSGI and ASGI thus share every rule here; ``load`` and ``commit`` are the
sync entry points.

A client-side store (``store.client_side``) holds no records by id: the client's value is opened
instead of loaded, and every save or touch seals the whole session into a new value to set.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator
from typing import Any, TypeVar

from .codec import Codec
from .errors import StoreUnavailable
from .events import CREATED, EXPIRED, INVALIDATED, LOADED, ROTATED, SAVED, Events
from .ids import LEGACY_KEY
from .manager import Action, CookieOp, Decision, SessionManager
from .record import Changes, Ended, SessionMeta, SessionRecord
from .session import EXPIRY_KEY, Opener, Session, stored_lifetime
from .stores.base import Store, is_client_side

__all__ = ["FAIL_CLOSED", "FAIL_OPEN", "Op", "SessionEngine", "Step", "call_async", "run",
           "run_async"]

log = logging.getLogger("satchel")

FAIL_CLOSED = "fail_closed"
FAIL_OPEN = "fail_open"

T = TypeVar("T")

# A store call: the method's name and its arguments.  A store's sync and async faces share
# method names, so one step serves both.
Op = tuple[str, tuple[Any, ...]]
Step = Generator[Op, Any, T]


def run(step: Step[T], store: Any) -> T:
    """Walk ``step`` to its end, making each store call it asks for on a sync store."""
    try:
        op = step.send(None)
        while True:
            try:
                reply = getattr(store, op[0])(*op[1])
            except Exception as exc:  # raised in the step, where it asked for the call
                op = step.throw(exc)
            else:
                op = step.send(reply)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def run_async(step: Step[T], store: Any) -> T:
    """Walk ``step`` to its end, awaiting each store call it asks for on an async store."""
    try:
        op = step.send(None)
        while True:
            reply, failure = await call_async(store, op)
            op = step.send(reply) if failure is None else step.throw(failure)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def call_async(store: Any, op: Op) -> tuple[Any, Exception | None]:
    """Make one call on an async store: its result, or the exception it raised."""
    try:
        return await getattr(store, op[0])(*op[1]), None
    except Exception as exc:
        return None, exc


class SessionEngine:
    """Binds a store, a manager and a codec.

    Args:
        on_unavailable: ``"fail_closed"`` (the default) lets ``StoreUnavailable`` propagate, and
            the front door answers 503; ``"fail_open"`` runs the request with an empty,
            anonymous session that is neither saved nor given a cookie.
        clock: the time source (seconds since the epoch); tests pass a fixed one.
        events: the application's ``on_event`` hook, bound to its fingerprint key; None
            (the default) costs one comparison per place an event could be emitted.
    """

    def __init__(
        self,
        store: Store,
        manager: SessionManager,
        codec: Codec,
        *,
        on_unavailable: str = FAIL_CLOSED,
        clock: Callable[[], float] = time.time,
        events: Events | None = None,
    ) -> None:
        if on_unavailable not in (FAIL_CLOSED, FAIL_OPEN):
            from .errors import ConfigurationError

            raise ConfigurationError("on_unavailable must be 'fail_closed' or 'fail_open'")
        self.store = store
        self.sealer = store if is_client_side(store) else None
        self.manager = manager
        self.codec = codec
        self.fail_open = on_unavailable == FAIL_OPEN
        self.clock = clock
        self.events = events

    def session(self, opener: Opener, request: Any) -> Session:
        """A lazy session whose first touch calls ``opener(session, request, fetch)``."""
        return Session(self.codec, self.clock(), opener, request)

    def load(self, session: Session, raw_id: str | None, fetch: bool = True) -> bool:
        """Fill ``session`` from the sync store: :meth:`load_step`, its call, :meth:`loaded`."""
        op = self.load_step(session, raw_id, fetch)
        if type(op) is bool:
            return op
        try:
            found = getattr(self.store, op[0])(*op[1])
        except Exception as exc:
            return self.loaded(session, raw_id, op, None, exc)
        return self.loaded(session, raw_id, op, found)

    def load_step(self, session: Session, raw_id: str | None, fetch: bool = True) -> bool | Op:
        """Start filling ``session``, given the value the client sent (unvalidated).

        The value is an id, or for a client-side store the sealed session itself.  With
        ``fetch`` false only the id is learnt (no I/O), for a request that only writes.
        Returns True once nothing is left to read, False when only the id was wanted, or
        the one store call to make, whose outcome goes to :meth:`loaded`.
        """
        manager = self.manager
        session._policy = manager
        if self.sealer is not None:
            return ("open", (raw_id, session._now, True)) if raw_id else True
        if session._identified and fetch:
            sid = session.client_id
        else:
            sid = session.client_id = manager.client_id(raw_id)
        if sid is None:
            _issue(manager, session)
            return True
        # An old system's id, mapped by the manager: read at once, even for a request that
        # only writes, so the session is rotated before anything is written to it.
        if not fetch and sid == raw_id:
            return False
        return ("load", (sid,))

    def loaded(self, session: Session, raw_id: str | None, op: Op, found: Any,
               failure: Exception | None = None) -> bool:
        """Finish the load :meth:`load_step` began, with its call's result or exception.

        Raises ``failure`` unless the policy serves the request without its session
        (``fail_open`` and the store unavailable).  Returns True: nothing is left to read.
        """
        if failure is not None:
            if not (self.fail_open and isinstance(failure, StoreUnavailable)):
                raise failure
            log.warning("session store unavailable (%s); serving this request without its "
                        "session", failure)
            session._degraded = True
            return True
        manager = self.manager
        record: SessionRecord | None
        if self.sealer is not None:
            if isinstance(found, Ended):
                ended = found.record
                session._end_reason = (found.reason if ended is None else manager.why_dead(
                    ended, session._now, stored_lifetime(self.codec, ended.data)))
                return True
            if found is None:
                return True
            sid, record = found
            session.client_id = sid
            legacy = False
        else:
            sid, record = op[1][0], found
            legacy = sid != raw_id
        stored = record
        if record is not None:
            lifetime = (stored_lifetime(self.codec, record.data) if EXPIRY_KEY in record.data
                        else None)
            if manager.accept(record, session._now, lifetime) is None:
                # The store still returned it, so its times say how it died.
                session._end_reason = manager.why_dead(record, session._now, lifetime)
                record = None
        events = self.events
        if events is not None:
            if record is not None:
                events.emit(LOADED, sid, record.user)
            elif stored is not None:
                events.emit(EXPIRED, sid, stored.user, _why_dead(manager, stored, session._now))
        if record is not None and LEGACY_KEY in record.data:
            if legacy:
                _adopt_legacy(session, sid, record)
                return True
            record = None  # a migrated session answers only to its old id
        elif legacy:
            _issue(manager, session)
            return True  # an old id that was not migrated: never adopted
        if record is None:
            if manager.adopts(sid, session._now):
                session._sid = sid
            else:
                _issue(manager, session)
            return True
        session._attach(sid, record)
        return True

    def commit(self, session: Session, *, failed: bool = False,
               overhead: Callable[[Decision], int] | None = None) -> Decision:
        """End the request on the sync store: :meth:`commit_step` walked by :func:`run`."""
        step = self.commit_step(session, failed, overhead)
        return step if isinstance(step, Decision) else run(step, self.store)

    def commit_step(self, session: Session, failed: bool = False,
                    overhead: Callable[[Decision], int] | None = None
                    ) -> Step[Decision] | Decision:
        """Decide the end of the request: the decision, or the step that carries it out.

        A decision that needs no store call (most read-only requests) is returned at once;
        else the step makes the calls and returns the decision to render.  Safe to call more
        than once (a streaming response may change the session after the headers left):
        each call sends only what changed since the previous one.

        Args:
            overhead: for a client-side store, the bytes the transport will add around the
                sealed value of a decision (``Transport.overhead``); None counts none.

        Raises:
            SessionTooLarge: a client-side store cannot fit the session in the client's value.
        """
        now = self.clock()
        decision = self.manager.finish(session, now, failed=failed)
        if decision.action is Action.NOTHING and not decision.discard:
            return decision
        return self._carry_out(session, decision, overhead, now)

    def _carry_out(self, session: Session, decision: Decision,
                   overhead: Callable[[Decision], int] | None, now: float) -> Step[Decision]:
        discard = decision.discard
        events = self.events
        # Read before the step changes them: did this request rotate, or log out?
        rotated = session._rotated and bool(discard)
        revoked = session._revoke
        try:
            action = decision.action
            if self.sealer is not None and action in (Action.SAVE, Action.TOUCH):
                # The client holds the session: writing it means sealing all of it anew.
                sid, meta = _target(decision)
                changes = decision.changes
                data = session._orig if changes is None else changes.apply(session._orig)
                token = yield ("seal", (sid, data, meta,
                                        0 if overhead is None else overhead(decision)))
                # A SAVE or TOUCH decision is made fresh for this request: ours to complete.
                decision.cookie = CookieOp.SET
                decision.token = token
                session._saved(sid, changes, meta)
                if events is not None and action is Action.SAVE:
                    _saved_event(events, sid, changes, meta, rotated)
            elif action is Action.SAVE:
                sid, meta = _target(decision)
                changes = decision.changes
                moved_from = _rotated_from(session, decision)
                if moved_from is not None and changes is not None:
                    # A rotation moves the stored session, with what other requests wrote to
                    # it meanwhile, rather than saving a copy and deleting the old one.
                    done = yield ("move", (moved_from, sid, _since_load(session._orig, changes),
                                           meta))
                    discard = ()
                else:
                    done = changes is None or (yield ("save", (sid, changes, meta)))
                if not done:
                    # Deleted by a concurrent request (a logout): do not bring it back.
                    log.info("session vanished before its changes were saved; not recreating it")
                    session.invalidate()
                    session._discard = []
                    return Decision(Action.NOTHING, cookie=CookieOp.REVOKE, vary=True)
                session._saved(sid, changes, meta)
                if events is not None:
                    _saved_event(events, sid, changes, meta, rotated)
            elif action is Action.UPDATE:
                sid, meta = _target(decision)
                changes = decision.changes
                if changes is not None and not (yield ("update", (
                    sid, changes, meta.accessed, meta.expires, self.manager.absolute_timeout
                ))):
                    # Expired, deleted or never stored: what was written starts a new session.
                    session._found_absent(sid if self.manager.adopts(sid, session._now) else None)
                    again = self.commit_step(session, False, overhead)
                    return again if isinstance(again, Decision) else (yield from again)
                session._flushed()
                if events is not None and changes is not None:
                    events.emit(SAVED, sid, meta.user, "blind_write")
            elif action is Action.TOUCH:
                sid, meta = _target(decision)
                yield ("touch", (sid, meta.accessed, meta.expires))
                session._accessed = meta.accessed
            ended = session._ended
            if events is not None and (revoked or action is Action.DELETE):
                for old in discard:
                    user = ended[old][0] if ended is not None and old in ended else None
                    events.emit(INVALIDATED, old, user, "invalidate" if revoked else "emptied")
            for old in discard:
                if self.sealer is not None and ended is not None and old in ended:
                    # A logout: the sealer may refuse this session's tokens from now on.
                    user, created, lifetime = ended[old]
                    yield ("end", (old, user, self.manager.outlived(created, now, lifetime)))
                else:
                    yield ("delete", (old,))
            session._discard = []
            session._ended = None
            if action is Action.DELETE:
                session._found_absent(None)
        except StoreUnavailable as exc:
            if not self.fail_open:
                raise
            log.error("session store unavailable (%s); this request's session changes were not "
                      "saved", exc)
            return Decision(Action.NOTHING, vary=decision.vary)
        return decision

    def purge(self, now: float | None = None) -> int:
        """Remove expired sessions from the store; return how many."""
        return self.store.purge(self.clock() if now is None else now)


def _issue(manager: SessionManager, session: Session) -> None:
    """A visitor without a (live) session gets a minted id at once, under ``issue_ids``."""
    if manager.issue_ids and session._sid is None:
        session._sid = manager.mint_id(session._now)


def _adopt_legacy(session: Session, sid: str, record: SessionRecord) -> None:
    """Take a migrated session found through its old id, and rotate it: the old id is
    honoured on this request only, and the session goes on under a fresh satchel id."""
    session._attach(sid, record)
    session._opener = None  # read: rotating must not open it again
    session._data.pop(LEGACY_KEY, None)
    session.rotate()


def _saved_event(events: Events, sid: str, changes: Changes | None, meta: SessionMeta,
                 rotated: bool) -> None:
    if rotated:
        events.emit(ROTATED, sid, meta.user, "rotate")
    elif changes is not None and changes.create:
        events.emit(CREATED, sid, meta.user)
    elif changes is not None:
        events.emit(SAVED, sid, meta.user)


def _why_dead(manager: SessionManager, record: SessionRecord, now: float) -> str:
    """Which limit a session found dead on load ran into."""
    absolute = manager.absolute_timeout
    if absolute is not None and now >= record.created + absolute:
        return "absolute_timeout"
    return "idle_timeout"


def _rotated_from(session: Session, decision: Decision) -> str | None:
    """The id a SAVE decision rotates away from (``session.rotate()`` on a stored session,
    not logged out since), else None."""
    if session._rotated and not session._revoke and len(decision.discard) == 1:
        return decision.discard[0]
    return None


def _since_load(loaded: dict[str, str], changes: Changes) -> Changes:
    """A rotation's changes relative to what was loaded: it rewrites every key, but only the
    keys this request changed may override what other requests wrote meanwhile."""
    return Changes(
        {key: text for key, text in changes.set.items() if loaded.get(key) != text},
        frozenset(key for key in loaded if key not in changes.set),
        cleared=False, create=False,
    )


def _target(decision: Decision) -> tuple[str, SessionMeta]:
    # The manager always names the id and metadata of a save or touch.
    if decision.sid is None or decision.meta is None:
        raise RuntimeError(f"malformed {decision.action.value} decision")
    return decision.sid, decision.meta
