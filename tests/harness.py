"""Drive the engine without a framework: a raw id in, a decision out, time under control."""

from __future__ import annotations

import time
from typing import Any

from satchel import (
    Action,
    CookieOp,
    Decision,
    JSONCodec,
    MemoryStore,
    Session,
    SessionEngine,
    SessionManager,
)


class Clock:
    """A controllable clock; it starts at the real time because stores judge expiry by theirs."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Harness:
    """One engine over a store, driven request by request like a front door would."""

    def __init__(self, store: Any = None, **policy: Any) -> None:
        self.clock = Clock()
        self.store = store if store is not None else MemoryStore()
        self.manager = SessionManager(**policy)
        self.engine = SessionEngine(self.store, self.manager, JSONCodec(), clock=self.clock)
        self.loads = 0

    def _open(self, session: Session, raw: str | None, fetch: bool) -> bool:
        self.loads += fetch
        return self.engine.load(session, raw, fetch)

    def request(self, raw_id: str | None = None) -> Session:
        return self.engine.session(self._open, raw_id)

    def finish(self, session: Session, *, failed: bool = False) -> Decision:
        return self.engine.commit(session, failed=failed)

    def new_session(self, **data: Any) -> str:
        """Make a stored session holding ``data``; return its id."""
        s = self.request()
        s.update(data)
        decision = self.finish(s)
        assert decision.action is Action.SAVE and decision.cookie is CookieOp.SET
        assert decision.sid is not None
        return decision.sid

    def new_session_saved(self, **data: Any) -> str:
        """:meth:`new_session` that also calls ``save()`` (for an ``explicit_save`` policy)."""
        s = self.request()
        s.update(data)
        s.save()
        decision = self.finish(s)
        assert decision.action is Action.SAVE and decision.sid is not None
        return decision.sid
