"""The ASGI front door under a real uvicorn on loopback, driven by httpx and websockets: every kind
of store, concurrent requests on one session, a WebSocket, a Redis outage, a forked face."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from websockets.sync.client import connect as ws_connect

import satchel
import satchel.asgi
from satchel.stores.aio import async_face

from . import server_fixtures
from .server_fixtures import fresh_store
from .servers import LOOPBACK
from .servers.redis import RedisServer

redis_server = server_fixtures.redis_server

TIMEOUT = 0.5
BOUND = 3 * TIMEOUT


async def mark(request: Request) -> PlainTextResponse:
    request.session[request.query_params["key"]] = 1  # a blind write: no read, no lost key
    return PlainTextResponse("ok")


async def keys(request: Request) -> PlainTextResponse:
    session = await request.session.load()
    return PlainTextResponse(",".join(sorted(session)))


async def count(request: Request) -> PlainTextResponse:
    session = await request.session.load()
    session["n"] = session.get("n", 0) + 1
    return PlainTextResponse(str(session["n"]))


async def plain(request: Request) -> PlainTextResponse:
    return PlainTextResponse("plain")


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(str(websocket.session.get("n")))
    websocket.session["ws"] = await websocket.receive_text()
    await satchel.asgi.save(websocket)
    await websocket.send_text("saved")
    await websocket.close()


def make_app(store: Any) -> Starlette:
    routes = [Route("/mark", mark), Route("/keys", keys), Route("/count", count),
              Route("/plain", plain), WebSocketRoute("/ws", echo)]
    return Starlette(routes=routes, middleware=[
        Middleware(satchel.asgi.SessionMiddleware, store=store)])


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """uvicorn on a free loopback port, in a thread; yields its base URL."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host=LOOPBACK, port=port, log_level="warning",
                                           lifespan="on", ws="websockets-sansio"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        thread.join(20)


def exercise(base: str) -> None:
    """Sessions, concurrent writes and a WebSocket through the real server."""
    with httpx.Client(base_url=base, timeout=10) as client:
        assert client.get("/count").text == "1"
        assert client.get("/count").text == "2"
        cookie = client.cookies["satchel"]
        assert client.get("/plain").headers.get("set-cookie") is None

    async def concurrent() -> None:
        async with httpx.AsyncClient(base_url=base, cookies={"satchel": cookie},
                                     timeout=10) as aclient:
            answers = await asyncio.gather(*(aclient.get("/mark", params={"key": f"k{i}"})
                                             for i in range(24)))
            assert all(a.text == "ok" for a in answers)

    asyncio.run(concurrent())
    with httpx.Client(base_url=base, cookies={"satchel": cookie}, timeout=10) as client:
        assert client.get("/keys").text == ",".join(sorted([*(f"k{i}" for i in range(24)), "n"]))
    ws_url = base.replace("http://", "ws://") + "/ws"
    with ws_connect(ws_url, additional_headers={"Cookie": f"satchel={cookie}"}) as ws:
        assert ws.recv(timeout=10) == "2"  # read at connect
        ws.send("hello")
        assert ws.recv(timeout=10) == "saved"
    with httpx.Client(base_url=base, cookies={"satchel": cookie}, timeout=10) as client:
        assert "ws" in client.get("/keys").text.split(",")


@pytest.mark.parametrize("kind", ["memory", "file", "sqlite", "cookie"])
def test_local_stores_under_uvicorn(kind: str, tmp_path: Path) -> None:
    url = {"memory": "memory://", "file": f"file://{tmp_path}/files",
           "sqlite": f"sqlite:///{tmp_path}/s.db", "cookie": "cookie://"}[kind]
    store = satchel.open_store(url, **({"secret": "x" * 32} if kind == "cookie" else {}))
    try:
        if kind == "cookie":
            # One sealed cookie per browser: concurrent writers each seal their own copy, so
            # only the sequential part of the exercise applies.
            with serving(make_app(store)) as base, httpx.Client(base_url=base) as client:
                assert [client.get("/count").text for _ in range(3)] == ["1", "2", "3"]
            return
        with serving(make_app(store)) as base:
            exercise(base)
    finally:
        store.close()


def test_redis_under_uvicorn(redis_server: RedisServer) -> None:
    with fresh_store(redis_server) as store, serving(make_app(store)) as base:
        exercise(base)


def test_redis_outage_under_uvicorn(redis_server: RedisServer) -> None:
    with fresh_store(redis_server, connect_timeout=TIMEOUT, timeout=TIMEOUT) as store, \
            serving(make_app(store)) as base, httpx.Client(base_url=base, timeout=10) as client:
        assert client.get("/count").text == "1"
        redis_server.stop()
        try:
            for path, expected in (("/plain", 200), ("/count", 503), ("/keys", 503)):
                started = time.monotonic()
                assert client.get(path).status_code == expected
                assert time.monotonic() - started < BOUND
        finally:
            redis_server.start()
        # Recovery without a restart (the restarted server is empty: a new session).
        client.cookies.clear()
        assert client.get("/count").text == "1"
        assert client.get("/count").text == "2"


def test_a_thread_face_serves_a_forked_child(tmp_path: Path) -> None:
    store = satchel.open_store(f"sqlite:///{tmp_path}/s.db")
    face = async_face(store)

    async def write(key: str) -> bool:
        changes = satchel.Changes(set={key: "1"}, create=True)
        now = time.time()
        return bool(await face.save("a" * 43, changes, satchel.SessionMeta(now, now, now + 60)))

    assert asyncio.run(write("parent"))
    pid = os.fork()
    if pid == 0:  # the child: the parent's pool threads do not exist here
        code = 0
        try:
            code = 0 if asyncio.run(asyncio.wait_for(write("child"), 10)) else 1
        except BaseException:
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    record = store.load("a" * 43)
    assert record is not None and set(record.data) == {"parent", "child"}
    asyncio.run(face.aclose())
