"""The ASGI front door under Starlette's TestClient: the session in scope["session"], the cookie on
http.response.start, lazy reads that never block the loop, streaming, lifespan, WebSockets."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware as StarletteSessions
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

import satchel
import satchel.asgi
from satchel.errors import SessionNotLoaded

SECRET = "asgi-test-secret-0123456789abcdef"


class CountingStore(satchel.BaseStore):
    """A real store behind a counter of the calls that reach it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[str] = []
        self.thread_safe = inner.thread_safe
        self.blocking = getattr(inner, "blocking", True)

    def __getattribute__(self, name: str) -> Any:
        if name in ("load", "save", "update", "touch", "delete", "move", "exists", "purge"):
            calls = object.__getattribute__(self, "calls")
            method = getattr(object.__getattribute__(self, "inner"), name)

            def counted(*args: Any) -> Any:
                calls.append(name)
                return method(*args)

            return counted
        return object.__getattribute__(self, name)


# -- an application written for Starlette's own SessionMiddleware ----------------------------------


def counter(request: Request) -> JSONResponse:  # a sync endpoint: runs in a worker thread
    request.session["count"] = request.session.get("count", 0) + 1
    return JSONResponse({"count": request.session["count"]})


async def login(request: Request) -> JSONResponse:
    request.session["user"] = request.query_params["name"]
    return JSONResponse({"ok": True})


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse({"user": request.session.get("user"), "keys": sorted(request.session)})


async def logout(request: Request) -> JSONResponse:
    request.session.clear()
    return JSONResponse({"ok": True})


async def nothing(request: Request) -> PlainTextResponse:
    return PlainTextResponse("nothing")


STARLETTE_ROUTES = [Route("/counter", counter), Route("/login", login), Route("/whoami", whoami),
                    Route("/logout", logout), Route("/nothing", nothing)]


def starlette_app(middleware: Middleware) -> Starlette:
    return Starlette(routes=STARLETTE_ROUTES, middleware=[middleware])


def drive_starlette_app(client: TestClient) -> None:
    """What the application does, and what its users see: the same under either middleware."""
    assert client.get("/whoami").json() == {"user": None, "keys": []}
    assert [client.get("/counter").json()["count"] for _ in range(3)] == [1, 2, 3]
    assert client.get("/login", params={"name": "ada"}).json() == {"ok": True}
    assert client.get("/whoami").json() == {"user": "ada", "keys": ["count", "user"]}
    assert client.get("/counter").json() == {"count": 4}
    assert len(client.cookies) == 1  # one cookie carries the session, whichever middleware
    assert client.get("/logout").json() == {"ok": True}
    assert client.get("/whoami").json() == {"user": None, "keys": []}
    assert client.get("/nothing").text == "nothing"


def test_the_application_runs_unchanged_under_starlettes_own_middleware() -> None:
    # The reference: the application as its authors ran it.
    with TestClient(starlette_app(Middleware(StarletteSessions, secret_key=SECRET))) as client:
        drive_starlette_app(client)


@pytest.mark.parametrize("url", ["memory://", "cookie://", "sqlite"])
def test_only_the_middleware_swapped(url: str, tmp_path: Path) -> None:
    if url == "sqlite":
        url = f"sqlite:///{tmp_path}/s.db"
    # Async endpoints read the session on the event loop: a store that does I/O is preloaded.
    middleware = Middleware(satchel.asgi.SessionMiddleware, store=url, secret=SECRET,
                            preload=url.startswith("sqlite"))
    with TestClient(starlette_app(middleware)) as client:
        drive_starlette_app(client)


# -- the front door's own guarantees -------------------------------------------------------------


def plain_app(**options: Any) -> tuple[Starlette, CountingStore]:
    store = CountingStore(options.pop("inner", None) or satchel.MemoryStore())

    async def write(request: Request) -> PlainTextResponse:
        request.session[request.query_params["key"]] = request.query_params["value"]
        return PlainTextResponse("ok")

    async def read(request: Request) -> PlainTextResponse:
        await request.session.load()
        return PlainTextResponse(str(request.session.get(request.query_params["key"])))

    async def unloaded(request: Request) -> PlainTextResponse:
        try:
            request.session.get("a")
        except SessionNotLoaded:
            return PlainTextResponse("not loaded")
        return PlainTextResponse("loaded")

    async def stream(request: Request) -> StreamingResponse:
        session = request.session

        async def body() -> AsyncIterator[bytes]:
            yield b"one "
            session["streamed"] = "yes"  # after the headers left: saved when the body ends
            yield b"two"

        session["before"] = "yes"
        return StreamingResponse(body(), media_type="text/plain")

    async def untouched(request: Request) -> PlainTextResponse:
        return PlainTextResponse("untouched")

    routes = [Route("/write", write), Route("/read", read), Route("/unloaded", unloaded),
              Route("/stream", stream), Route("/untouched", untouched)]
    app = Starlette(routes=routes, middleware=[
        Middleware(satchel.asgi.SessionMiddleware, store=store, **options)])
    return app, store


def test_an_untouched_request_costs_no_store_call_and_sets_no_cookie() -> None:
    app, store = plain_app()
    with TestClient(app) as client:
        client.get("/write", params={"key": "a", "value": "1"})
        assert "satchel" in client.cookies
        before = list(store.calls)
        response = client.get("/untouched")
        assert response.text == "untouched"
        assert "set-cookie" not in response.headers
        assert store.calls == before


def test_writes_need_no_read_and_reads_are_awaited(tmp_path: Path) -> None:
    inner = satchel.open_store(f"sqlite:///{tmp_path}/s.db")
    app, store = plain_app(inner=inner)
    with TestClient(app) as client:
        assert client.get("/write", params={"key": "a", "value": "1"}).text == "ok"
        assert store.calls == ["save"]  # a new session: one write, no read
        assert client.get("/write", params={"key": "b", "value": "2"}).text == "ok"
        assert store.calls[-1] == "update"  # a blind write to the stored session
        assert client.get("/read", params={"key": "a"}).text == "1"
        assert client.get("/read", params={"key": "b"}).text == "2"
        # A sync touch on the event loop of a session not read yet is refused, not blocking.
        assert client.get("/unloaded").text == "not loaded"
    inner.close()


def test_a_store_that_never_blocks_is_read_on_first_touch() -> None:
    app, _ = plain_app()
    with TestClient(app) as client:
        client.get("/write", params={"key": "a", "value": "1"})
        assert client.get("/unloaded").text == "loaded"


def test_preload_reads_before_the_application(tmp_path: Path) -> None:
    inner = satchel.open_store(f"sqlite:///{tmp_path}/s.db")
    app, store = plain_app(inner=inner, preload=True)
    with TestClient(app) as client:
        client.get("/write", params={"key": "a", "value": "1"})
        assert client.get("/unloaded").text == "loaded"
        before = len(store.calls)
        # Preloading costs a read on every request that carries an id, touched or not...
        assert "set-cookie" not in client.get("/untouched").headers
        assert store.calls[before:] == ["load"]
        # ...and none for a visitor without one.
        client.cookies.clear()
        client.get("/untouched")
        assert store.calls[before:] == ["load"]
    inner.close()


def test_streaming_response_saves_changes_made_while_streaming() -> None:
    app, _ = plain_app()
    with TestClient(app) as client:
        response = client.get("/stream")
        assert response.text == "one two"
        assert "satchel=" in response.headers["set-cookie"]
        assert client.get("/read", params={"key": "before"}).text == "yes"
        assert client.get("/read", params={"key": "streamed"}).text == "yes"


def test_lifespan_passes_through() -> None:
    events: list[str] = []

    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    import contextlib

    app = Starlette(routes=[], lifespan=contextlib.asynccontextmanager(lifespan), middleware=[
        Middleware(satchel.asgi.SessionMiddleware, store="memory://")])
    with TestClient(app):
        assert events == ["startup"]
    assert events == ["startup", "shutdown"]


def test_a_failing_request_saves_nothing() -> None:
    async def boom(request: Request) -> PlainTextResponse:
        request.session["half"] = "done"
        raise RuntimeError("boom")

    store = CountingStore(satchel.MemoryStore())
    app = Starlette(routes=[Route("/boom", boom)], middleware=[
        Middleware(satchel.asgi.SessionMiddleware, store=store)])
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/boom").status_code == 500
    assert store.calls == []


def test_query_string_transport_redirects_a_get_without_an_id() -> None:
    async def page(request: Request) -> PlainTextResponse:
        request.session["seen"] = True
        return PlainTextResponse(request.session.id)

    app = Starlette(routes=[Route("/page", page)], middleware=[
        Middleware(satchel.asgi.SessionMiddleware, store="memory://", transport="querystring",
                   secret=SECRET)])
    with TestClient(app) as client:
        first = client.get("/page", params={"x": "1"}, follow_redirects=False)
        assert first.status_code == 302
        location = first.headers["location"]
        assert location.startswith("/page?x=1&satchel_session=")
        sid = location.rsplit("=", 1)[1]
        assert client.get(location).text == sid


# -- WebSockets ------------------------------------------------------------------------------------


async def chat(websocket: WebSocket) -> None:
    await websocket.accept()
    # Loaded at connect: readable at once, on the event loop, whatever the store.
    await websocket.send_json({"user": websocket.session.get("user")})
    async for text in websocket.iter_text():
        if text == "bye":
            break
        websocket.session["last"] = text
        await satchel.asgi.save(websocket)  # saved during the connection
        await websocket.send_text("saved")
    await websocket.close()


def test_websocket_session_loaded_at_connect_and_saved_during_the_connection(
        tmp_path: Path) -> None:
    inner = satchel.open_store(f"sqlite:///{tmp_path}/s.db")
    app = Starlette(routes=[Route("/login", login), Route("/whoami", whoami),
                            WebSocketRoute("/ws", chat)],
                    middleware=[Middleware(satchel.asgi.SessionMiddleware, store=inner,
                                           preload=True)])
    with TestClient(app) as client:
        client.get("/login", params={"name": "ada"})
        with client.websocket_connect("/ws") as ws:
            assert ws.receive_json() == {"user": "ada"}
            ws.send_text("hello")
            assert ws.receive_text() == "saved"
            # Another request sees it while the connection is still open.
            assert client.get("/whoami").json()["keys"] == ["last", "user"]
            ws.send_text("bye")
    inner.close()


# -- the async faces -------------------------------------------------------------------------------


def test_thread_face_never_runs_a_store_call_on_the_loop_thread(tmp_path: Path) -> None:
    from satchel.stores.aio import ThreadFace, async_face

    store = satchel.open_store(f"sqlite:///{tmp_path}/s.db")
    face = async_face(store, threads=2)
    assert isinstance(face, ThreadFace)
    seen: list[int] = []
    real_count = store.count

    def count() -> int:
        seen.append(threading.get_ident())
        return real_count()

    store.count = count  # type: ignore[method-assign]

    async def main() -> int:
        results = await asyncio.gather(*(face.count() for _ in range(8)))
        assert len(set(results)) == 1
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert len(seen) == 8 and loop_thread not in seen
    assert len(set(seen)) <= 2  # bounded
    asyncio.run(face.aclose())


def test_memory_face_is_direct() -> None:
    from satchel.stores.aio import DirectFace, async_face

    assert isinstance(async_face(satchel.MemoryStore()), DirectFace)


# -- a mixed deployment ---------------------------------------------------------------------------


def test_a_wsgi_and_an_asgi_application_share_one_session_cookie(tmp_path: Path) -> None:
    from .wsgi_util import call, counter_app

    store = satchel.open_store(f"sqlite:///{tmp_path}/shared.db")
    wsgi = satchel.SessionMiddleware(counter_app, store=store)
    asgi = Starlette(routes=[Route("/counter", counter)], middleware=[
        Middleware(satchel.asgi.SessionMiddleware, store=store)])
    first = call(wsgi, "/write")  # the WSGI side starts the session: n = 1
    cookie = first.cookies["satchel"]
    with TestClient(asgi, cookies={"satchel": cookie}) as client:
        assert client.get("/counter").json() == {"count": 1}  # its own key, same session
        assert "set-cookie" not in client.get("/counter").headers  # the same cookie serves
    second = call(wsgi, "/write", cookie=f"satchel={cookie}")
    assert second.cookies == {}  # still the session the ASGI side wrote to
    record = store.load(cookie)
    assert record is not None and (record.data["n"], record.data["count"]) == ("2", "2")
    store.close()


def test_responses_that_set_the_cookie_are_private() -> None:
    async def own(request: Request) -> PlainTextResponse:
        request.session["k"] = 1
        return PlainTextResponse("ok", headers={"Cache-Control": "public, max-age=60"})

    app = Starlette(routes=[*STARLETTE_ROUTES, Route("/own", own)], middleware=[
        Middleware(satchel.asgi.SessionMiddleware, store="memory://", cookie_partitioned=True)])
    with TestClient(app, base_url="https://testserver") as client:  # a Secure cookie
        first = client.get("/counter")
        assert first.headers.get_list("cache-control") == ["private"]
        assert "Partitioned" in first.headers["set-cookie"]
        assert client.get("/counter").headers.get_list("cache-control") == []
        client.cookies.clear()
        assert client.get("/own").headers.get_list("cache-control") == ["private, max-age=60"]
