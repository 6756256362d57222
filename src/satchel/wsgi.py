"""SessionMiddleware: the WSGI front door.

It publishes a lazy session in the environ, runs the application, and applies the engine's
decision to the response.  It defers the real ``start_response`` until the application has
returned (or starts its body), so a session changed after ``start_response`` still gets its
cookie; a session changed while a streamed body is produced is saved when the body completes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Optional

from .config import Settings
from .errors import StoreUnavailable
from .keys import SecretLike
from .manager import Action, CookieOp, Decision
from .purge import Purger
from .session import Session
from .stores import Store
from .transport import QueryTransport, with_session_headers

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
else:
    OptExcInfo = Any

__all__ = ["SessionMiddleware"]

log = logging.getLogger("satchel")

Environ = dict[str, Any]
Headers = list[tuple[str, str]]
Write = Callable[[bytes], object]
StartResponse = Callable[..., Write]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

_UNAVAILABLE_BODY = b"Service Unavailable: the session store cannot be reached.\n"


class SessionMiddleware:
    """Give a WSGI application a persistent session per browser.

    Args:
        app: the WSGI application to wrap.
        store: a store, a store URL, or None for the embedded SQLite default.
        secret: a secret key, or a list of keys newest first; needed for ``pickle=True`` and
            for cookie sessions.
        **options: see the README's table (timeouts, transport, cookie attributes, purge, ...).

    The session is ``environ["satchel.session"]`` (or each name in ``environ_key``).
    """

    def __init__(self, app: WSGIApp, store: Store | str | None = None,
                 secret: SecretLike | None = None, **options: Any) -> None:
        settings = Settings.from_options(store=store, secret=secret, **options)
        self.app = app
        self.settings = settings
        self.store, self._owns_store = settings.make_store()
        self.engine = settings.make_engine(self.store)
        self.transport = settings.make_transport()
        self._codec = self.engine.codec
        self._clock = self.engine.clock
        self._keys = settings.environ_keys
        source = self.transport.source
        if source == "cookie":
            self._source = "HTTP_COOKIE"
        elif source == "query":
            self._source = "QUERY_STRING"
        else:
            self._source = "HTTP_" + self.transport.header_name.upper().replace("-", "_")
        self._redirect = source == "query"
        self._issue = settings.issue_ids
        self.purger: Purger | None = None
        if settings.auto_purge_every:
            self.purger = Purger(self.engine.purge, settings.auto_purge_every)

    def _open(self, session: Session, environ: Environ, fetch: bool) -> bool:
        return self.engine.load(session, self.transport.read(environ.get(self._source)), fetch)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        session = Session(self._codec, self._clock(), self._open, environ)
        for key in self._keys:
            environ[key] = session
        if self._redirect and environ.get("REQUEST_METHOD") == "GET":
            query = environ.get("QUERY_STRING", "")
            if self.transport.read(query) is None:
                return self._redirect_with_id(environ, start_response, query)
        purger = self.purger
        if purger is not None and not purger.running and not environ.get("wsgi.run_once"):
            purger.start()
        call = _Call(self, session, environ, start_response)
        try:
            result = self.app(environ, call.start_response)
        except StoreUnavailable as exc:
            return call.unavailable(exc)
        except BaseException:
            call.failed = True
            raise
        return call.returned(result)

    def _redirect_with_id(self, environ: Environ, start_response: StartResponse,
                          query: str) -> Iterable[bytes]:
        transport = self.transport
        if not isinstance(transport, QueryTransport):
            raise TypeError("only the query-string transport redirects")
        location = transport.redirect_location(
            environ.get("SCRIPT_NAME", ""), environ.get("PATH_INFO", ""), query,
            self.engine.manager.mint_id(self._clock()),
        )
        start_response("302 Found", [("Location", location), ("Content-Length", "0"),
                                     ("Cache-Control", "no-store")])
        return [b""]

    def close(self) -> None:
        """Stop the purge thread, and close the store if this middleware opened it."""
        if self.purger is not None:
            self.purger.stop()
        if self._owns_store:
            self.store.close()


class _Call:
    """The state of one request passing through the middleware."""

    __slots__ = (
        "environ",
        "exc_info",
        "failed",
        "headers",
        "mw",
        "returned_",
        "sent",
        "session",
        "start",
        "status",
        "writer",
    )

    def __init__(self, mw: SessionMiddleware, session: Session, environ: Environ,
                 start_response: StartResponse) -> None:
        self.mw = mw
        self.session = session
        self.environ = environ
        self.start = start_response
        self.failed = False
        self.returned_ = False
        self.sent = False
        self.status: str | None = None
        self.headers: Headers = []
        self.exc_info: OptExcInfo | None = None
        self.writer: Write | None = None

    def start_response(self, status: str, headers: Headers,
                       exc_info: Optional[OptExcInfo] = None) -> Write:  # noqa: UP045
        if exc_info is not None:
            # The application is reporting an error: its session changes are not saved.
            self.failed = True
            if self.sent:
                raise exc_info[1].with_traceback(exc_info[2])  # type: ignore[union-attr]
        # The real start_response waits for the first body chunk (PEP 3333 allows it), so a
        # generator that changes its session after start_response still sends its cookie.
        self.status, self.headers, self.exc_info = status, headers, exc_info
        return self.write

    def write(self, data: bytes) -> None:
        if not self.sent:
            self._send()
        assert self.writer is not None
        self.writer(data)

    def _send(self) -> None:
        """Commit the session and call the real start_response with its headers added."""
        headers = self.headers
        session = self.session
        mw = self.mw
        if (mw._issue and not session.touched and not self.failed
                and mw.transport.read(self.environ.get(mw._source)) is None):
            session.id  # noqa: B018 - a visitor without an id gets one (no store I/O)
        if session.touched and not self.failed:
            transport = mw.transport
            https = self.environ.get("wsgi.url_scheme") == "https"
            script_name = self.environ.get("SCRIPT_NAME", "")
            overhead = None
            if mw.engine.sealer is not None:
                # A sealed session shares the cookie's byte limit with the cookie's attributes.
                def overhead(decision: Decision) -> int:
                    return transport.overhead(decision, https=https, script_name=script_name)

            decision = mw.engine.commit(session, overhead=overhead)
            extra = transport.render(decision, https=https, script_name=script_name)
            if extra:
                headers = with_session_headers(headers, extra)
        self.sent = True
        self.writer = self.start(self.status, headers, self.exc_info)

    def returned(self, result: Iterable[bytes]) -> Iterable[bytes]:
        self.returned_ = True
        if type(result) is not list:
            # An iterator may still change the session while it produces its first chunk:
            # the headers wait for that chunk.
            return _Body(result, self)
        try:
            if self.status is not None and not self.sent:
                self._send()
        except StoreUnavailable as exc:
            _close(result)
            return self.unavailable(exc)
        except BaseException:
            _close(result)
            raise
        if self.environ.get("wsgi.run_once"):
            return _Body(result, self)
        return result  # the body is complete: nothing can change the session any more

    def finished(self, completed: bool) -> None:
        """The body has been sent (or abandoned): save late changes, purge under run_once."""
        mw = self.mw
        if completed and not self.failed and self.session.touched:
            try:
                decision = mw.engine.commit(self.session)
            except StoreUnavailable as exc:
                log.error("session store unavailable (%s); late session changes were not saved",
                          exc)
            else:
                if decision.action is not Action.NOTHING and decision.cookie is not CookieOp.KEEP:
                    log.warning("session changed after the response headers were sent; "
                                "its new cookie could not be delivered")
        if mw.purger is not None and self.environ.get("wsgi.run_once"):
            mw.purger.run_once()

    def unavailable(self, exc: StoreUnavailable) -> Iterable[bytes]:
        """Answer 503 for a request whose session could not be loaded or saved (fail closed)."""
        log.error("session store unavailable (%s); answering 503", exc)
        if self.sent:
            raise StoreUnavailable("session store unavailable after the response started")
        self.sent = True
        self.start("503 Service Unavailable", [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(_UNAVAILABLE_BODY))),
            ("Retry-After", "5"),
            ("Cache-Control", "no-store"),
        ])
        return [_UNAVAILABLE_BODY]


class _Body:
    """Wraps a response body to save late session changes when it completes."""

    __slots__ = ("call", "completed", "result")

    def __init__(self, result: Iterable[bytes], call: _Call) -> None:
        self.result = result
        self.call = call
        self.completed = False

    def __iter__(self) -> Iterator[bytes]:
        call = self.call
        try:
            for chunk in self.result:
                if not call.sent:
                    call._send()
                yield chunk
            if not call.sent:
                call._send()
        except StoreUnavailable as exc:
            call.failed = True
            if call.sent:
                raise
            yield from call.unavailable(exc)
            return
        except BaseException:
            call.failed = True
            raise
        self.completed = True

    def close(self) -> None:
        try:
            _close(self.result)
        finally:
            self.call.finished(self.completed)


def _close(result: Iterable[bytes]) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        close()
