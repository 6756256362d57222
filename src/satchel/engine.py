"""SessionEngine: where the manager's policy meets the store.

The engine opens sessions (lazily: the store is read on the application's first touch), and at
the end of the request asks the manager for a decision and carries it out against the store.
Front doors hold an engine and stay thin; the async front door runs the same engine methods
through a thread offload.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from .codec import Codec
from .errors import StoreUnavailable
from .manager import Action, CookieOp, Decision, SessionManager
from .record import SessionMeta
from .session import Session
from .stores.base import Store

__all__ = ["FAIL_CLOSED", "FAIL_OPEN", "SessionEngine"]

log = logging.getLogger("satchel")

FAIL_CLOSED = "fail_closed"
FAIL_OPEN = "fail_open"


class SessionEngine:
    """Binds a store, a manager and a codec.

    Args:
        on_unavailable: ``"fail_closed"`` (the default) lets ``StoreUnavailable`` propagate, and
            the front door answers 503; ``"fail_open"`` runs the request with an empty,
            anonymous session that is neither saved nor given a cookie.
        clock: the time source (seconds since the epoch); tests pass a fixed one.
    """

    def __init__(
        self,
        store: Store,
        manager: SessionManager,
        codec: Codec,
        *,
        on_unavailable: str = FAIL_CLOSED,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if on_unavailable not in (FAIL_CLOSED, FAIL_OPEN):
            from .errors import ConfigurationError

            raise ConfigurationError("on_unavailable must be 'fail_closed' or 'fail_open'")
        self.store = store
        self.manager = manager
        self.codec = codec
        self.fail_open = on_unavailable == FAIL_OPEN
        self.clock = clock

    def session(self, opener: Callable[[Session, Any], None], request: Any) -> Session:
        """A lazy session whose first touch calls ``opener(session, request)``."""
        return Session(self.codec, self.clock(), opener, request)

    def load(self, session: Session, raw_id: str | None) -> None:
        """Fill ``session`` from the store, given the id the client sent (unvalidated)."""
        manager = self.manager
        sid = manager.client_id(raw_id)
        session.client_id = sid
        if sid is None:
            return
        try:
            record = self.store.load(sid)
        except StoreUnavailable:
            if not self.fail_open:
                raise
            log.warning("session store unavailable; serving this request without its session")
            session._degraded = True
            return
        record = manager.accept(record, session._now)
        if record is None:
            if not manager.strict:
                session._sid = sid
            return
        session._attach(sid, record)

    def commit(self, session: Session, *, failed: bool = False) -> Decision:
        """Decide and carry out the end of the request; return the decision to render.

        Safe to call more than once (a streaming response may change the session after the
        headers left): each call sends only what changed since the previous one.
        """
        decision = self.manager.finish(session, self.clock(), failed=failed)
        if decision.action is Action.NOTHING and not decision.discard:
            return decision
        store = self.store
        try:
            action = decision.action
            if action is Action.SAVE:
                sid, meta = _target(decision)
                changes = decision.changes
                if changes is not None and not store.save(sid, changes, meta):
                    # Deleted by a concurrent request (a logout): do not bring it back.
                    log.info("session vanished before its changes were saved; not recreating it")
                    session.invalidate()
                    session._discard = []
                    return Decision(Action.NOTHING, cookie=CookieOp.REVOKE, vary=True)
                session._saved(sid, changes, meta)
            elif action is Action.TOUCH:
                sid, meta = _target(decision)
                store.touch(sid, meta.accessed, meta.expires)
                session._accessed = meta.accessed
            for old in decision.discard:
                store.delete(old)
            session._discard = []
            if action is Action.DELETE:
                session._loaded_id = session._sid = None
        except StoreUnavailable:
            if not self.fail_open:
                raise
            log.error("session store unavailable; this request's session changes were not saved")
            return Decision(Action.NOTHING, vary=decision.vary)
        return decision

    def purge(self, now: float | None = None) -> int:
        """Remove expired sessions from the store; return how many."""
        return self.store.purge(self.clock() if now is None else now)


def _target(decision: Decision) -> tuple[str, SessionMeta]:
    # The manager always names the id and metadata of a save or touch.
    if decision.sid is None or decision.meta is None:
        raise RuntimeError(f"malformed {decision.action.value} decision")
    return decision.sid, decision.meta
