"""SessionMiddleware: the ASGI front door (Starlette, FastAPI, any ASGI application).

It puts a lazy session in ``scope["session"]`` (where Starlette's ``request.session`` and
``websocket.session`` look), commits it when the response starts (``http.response.start`` or
``websocket.accept``) and adds the cookie to that message.  The rules are the engine's, walked
on the store's async face (``stores.aio``): nothing here makes the event loop wait on a store.

Touching a session is synchronous (``request.session["x"]``), so on the event loop a session
that is not read yet must be read first: ``await request.session.load()``, or ``preload=True``.
Code in a worker thread (Starlette's and FastAPI's ``def`` endpoints) may touch it directly, as
may any code when the store never blocks (memory, cookie sessions).  Writing needs no read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from .config import Settings
from .engine import call_async, run_async
from .errors import SessionNotLoaded, StoreUnavailable
from .keys import SecretLike
from .manager import Action, CookieOp, Decision
from .purge import Purger
from .session import Session
from .stores import Store
from .stores.aio import DEFAULT_THREADS, async_face
from .transport import QueryTransport, with_session_headers

__all__ = ["SessionMiddleware", "save"]

log = logging.getLogger("satchel")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

_UNAVAILABLE = b"Service Unavailable: the session store cannot be reached.\n"
_STARTS = ("http.response.start", "websocket.accept")


class SessionMiddleware:
    """Give an ASGI application a persistent session per browser.

    Args:
        app: the ASGI application to wrap.
        store: a store, a store URL, or None for the embedded SQLite default.
        secret: a secret key, or a list of keys newest first (pickle and cookie sessions).
        preload: read the session before the application runs, so that code on the event
            loop may touch it (one store call per request that carries an id, touched or not).
        threads: at most this many threads wait on a sync store at once (``stores.aio``).
        **options: the WSGI middleware's options (the README's table); ``environ_key``
            names the scope keys, by default ``session`` (Starlette's) and ``satchel.session``.
    """

    def __init__(self, app: ASGIApp, store: Store | str | None = None,
                 secret: SecretLike | None = None, *, preload: bool = False,
                 threads: int = DEFAULT_THREADS, **options: Any) -> None:
        options.setdefault("environ_key", ("session", "satchel.session"))
        settings = Settings.from_options(store=store, secret=secret, **options)
        self.app = app
        self.store, self._owns_store = settings.make_store()
        self.engine = settings.make_engine(self.store)
        self.transport = settings.make_transport()
        self.face = async_face(self.store, threads=threads)
        self.preload = preload
        self.inline = not getattr(self.store, "blocking", True)  # its calls never wait
        self._keys = settings.environ_keys
        self._issue = settings.issue_ids
        self._opener = _Opener(self)
        self._query = self.transport.source == "query"
        source = self.transport.source
        self._header = (b"cookie" if source == "cookie"
                        else self.transport.header_name.lower().encode("latin-1"))
        self.purger = (Purger(self.engine.purge, settings.auto_purge_every)
                       if settings.auto_purge_every else None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            return await self.app(scope, receive, send)  # lifespan and others pass through
        session = Session(self.engine.codec, self.engine.clock(), self._opener, scope)
        for key in self._keys:
            scope[key] = session
        if self.purger is not None and not self.purger.running:
            self.purger.start()
        call = _Call(self, session, scope, send)
        try:
            if self._query and kind == "http" and scope.get("method") == "GET" \
                    and self.read(scope) is None:
                return await call.redirect()
            if self.preload or kind == "websocket":
                await session.load()  # reads only when the client sent an id
            await self.app(scope, receive, call.send)
        except StoreUnavailable as exc:
            return await call.unavailable(exc)
        except BaseException:
            call.failed = True
            raise
        if session.touched:
            await call.finished()

    def read(self, scope: Scope) -> str | None:
        """The id (or sealed session) the client sent, as the transport reads it."""
        if self._query:
            return self.transport.read(scope.get("query_string", b"").decode("latin-1"))
        values = [v.decode("latin-1") for k, v in scope.get("headers", ()) if k == self._header]
        return self.transport.read("; ".join(values)) if values else None

    async def commit(self, session: Session, scope: Scope) -> Decision:
        """Carry out the session's end of request (or a save now) on the store's async face."""
        overhead = None
        if self.engine.sealer is not None:
            https, root = _origin(scope)

            def overhead(decision: Decision) -> int:
                return self.transport.overhead(decision, https=https, script_name=root)

        step = self.engine.commit_step(session, False, overhead)
        return step if isinstance(step, Decision) else await run_async(step, self.face)

    def render(self, decision: Decision, scope: Scope,
               headers: Sequence[tuple[bytes, bytes]] = ()) -> Headers:
        """The response ``headers`` with those that carry ``decision`` to the client added
        (see :func:`~satchel.transport.with_session_headers`)."""
        https, root = _origin(scope)
        extra = self.transport.render(decision, https=https, script_name=root)
        if not extra:
            return list(headers)
        app = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]
        return [(k.lower().encode("latin-1"), v.encode("latin-1"))
                for k, v in with_session_headers(app, extra)]

    async def aclose(self) -> None:
        """Stop the purge thread, and close the store if this middleware opened it."""
        if self.purger is not None:
            self.purger.stop()
        if self._owns_store:
            await self.face.aclose()


class _Opener:
    """How a session of this middleware is read: inline where that cannot block the event
    loop, else only through ``await session.load()``."""

    __slots__ = ("mw",)

    def __init__(self, mw: SessionMiddleware) -> None:
        self.mw = mw

    def __call__(self, session: Session, scope: Scope, fetch: bool) -> bool:
        mw = self.mw
        raw = mw.read(scope)
        if mw.inline or _off_loop():
            return mw.engine.load(session, raw, fetch)
        op = mw.engine.load_step(session, raw, fetch)
        if type(op) is bool:
            return op
        raise SessionNotLoaded("this session is not read yet and reading it here would block "
                               "the event loop: await session.load() first, or preload=True")

    async def load_async(self, session: Session, scope: Scope) -> None:
        mw = self.mw
        raw = mw.read(scope)
        op = mw.engine.load_step(session, raw, True)
        if type(op) is not bool:
            mw.engine.loaded(session, raw, op, *await call_async(mw.face, op))


def _origin(scope: Scope) -> tuple[bool, str]:
    """Whether the client connected over TLS, and the application's mount path."""
    return scope.get("scheme") in ("https", "wss"), scope.get("root_path", "")


def _off_loop() -> bool:
    """True in a thread without a running event loop (a worker thread), where waiting is fine."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return True
    return False


class _Call:
    """One request or WebSocket connection passing through the middleware."""

    __slots__ = ("failed", "mw", "real_send", "replaced", "scope", "session", "started")

    def __init__(self, mw: SessionMiddleware, session: Session, scope: Scope,
                 send: Send) -> None:
        self.mw = mw
        self.session = session
        self.scope = scope
        self.real_send = send
        self.failed = self.started = self.replaced = False
        scope["satchel.call"] = self

    async def send(self, message: Message) -> None:
        if self.replaced:
            return  # a 503 went out instead of this response
        if message["type"] in _STARTS and not self.started:
            session = self.session
            if (self.mw._issue and not session.touched and self.mw.read(self.scope) is None):
                session.id  # noqa: B018 - a visitor without an id gets one (no store I/O)
            if session.touched:
                try:
                    headers = list(message.get("headers", ()))
                    rendered = self.mw.render(await self.mw.commit(session, self.scope),
                                              self.scope, headers)
                except StoreUnavailable as exc:
                    return await self.unavailable(exc)
                if rendered != headers:
                    message = {**message, "headers": rendered}
            self.started = True
        await self.real_send(message)

    async def finished(self) -> None:
        """Save what changed after the response started (a streamed body, a WebSocket)."""
        if not self.session.touched or self.failed or self.replaced:
            return
        try:
            decision = await self.mw.commit(self.session, self.scope)
        except StoreUnavailable as exc:
            log.error("session store unavailable (%s); late session changes were not saved", exc)
            return
        if decision.action is not Action.NOTHING and decision.cookie is not CookieOp.KEEP:
            log.warning("session changed after the response started; "
                        "its new cookie could not be delivered")

    async def unavailable(self, exc: StoreUnavailable) -> None:
        """Answer 503 (or close the WebSocket) for a session that cannot be read or saved."""
        log.error("session store unavailable (%s); answering 503", exc)
        if self.started:
            raise exc
        self.replaced = True
        if self.scope["type"] == "websocket":
            return await self.real_send({"type": "websocket.close", "code": 1011})
        await self.real_send({"type": "http.response.start", "status": 503, "headers": [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(_UNAVAILABLE)).encode()),
            (b"retry-after", b"5"), (b"cache-control", b"no-store")]})
        await self.real_send({"type": "http.response.body", "body": _UNAVAILABLE})

    async def redirect(self) -> None:
        """Send a GET without an id to the same URL with a fresh one (query-string transport)."""
        mw = self.mw
        transport = mw.transport
        assert isinstance(transport, QueryTransport)  # only it reads the id from the query
        location = transport.redirect_location(
            "", self.scope.get("path", "/"), self.scope.get("query_string", b"").decode(
                "latin-1"), mw.engine.manager.mint_id(mw.engine.clock()))
        self.replaced = True
        await self.real_send({"type": "http.response.start", "status": 302, "headers": [
            (b"location", location.encode("latin-1")), (b"content-length", b"0"),
            (b"cache-control", b"no-store")]})
        await self.real_send({"type": "http.response.body", "body": b""})


async def save(connection: Any) -> None:
    """Save a connection's session now: a WebSocket's, during the connection.

    ``connection`` is a Starlette ``WebSocket`` or ``Request`` (anything with ``.scope``), or
    the ASGI scope itself.  The client's cookie cannot change any more: a session the client
    holds no id for is saved, but the client will not find it again.
    """
    scope = getattr(connection, "scope", connection)
    call: _Call = scope["satchel.call"]
    if call.session.touched:
        await call.mw.commit(call.session, scope)
