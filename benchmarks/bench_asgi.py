"""satchel's ASGI middleware vs Starlette's SessionMiddleware and starsessions, in-process.

    .venv/bin/python benchmarks/bench_asgi.py [--rounds 15] [--requests 400]

One plain ASGI application (no framework), the same for every contender, on an existing
session of 10 keys x 100 bytes: ``read`` one key, ``rmw`` (read-modify-write: increment a
counter), and ``untouched`` (the session is never used).  Each contender keeps sessions its
own way: satchel in its memory store, and (``--store sqlite``) in SQLite; Starlette's
middleware in a signed cookie (no server store); starsessions in its in-memory store.  The
figure is the median per-request time over interleaved rounds; a layer's overhead is its time
minus the bare application's, and the verdict is the ratio of satchel's overhead to each
other's.  satchel runs both ways an async application may use it: ``await session.load()``
(lazy) and ``preload=True``.  Every response body is checked.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import satchel
import satchel.asgi

KEYS = [f"k{i}" for i in range(10)]
VALUE = "v" * 100
SECRET = "benchmark-secret-0123456789abcdef"

Scope = dict[str, Any]
App = Callable[[Scope, Any, Any], Awaitable[None]]


def dispatch(load: Callable[[Scope], Awaitable[Any]]) -> App:
    """The benchmark application: ``load(scope)`` gives the session, read."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        path = scope["path"]
        if path == "/untouched":
            body = b"untouched"
        else:
            session = await load(scope)
            if path == "/read":
                body = session["k3"].encode()
            elif path == "/rmw":
                session["n"] = session.get("n", 0) + 1
                body = str(session["n"]).encode()
            elif path == "/setup":
                for key in KEYS:
                    session[key] = VALUE
                body = b"ok"
            else:
                raise AssertionError(path)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": body})

    return app


async def fake_session(scope: Scope) -> Any:
    return FAKE


FAKE: dict[str, Any] = dict.fromkeys(KEYS, VALUE)


async def satchel_load(scope: Scope) -> Any:
    return await scope["session"].load()


async def plain_load(scope: Scope) -> Any:
    return scope["session"]


async def starsessions_load(scope: Scope) -> Any:
    from starlette.requests import Request
    from starsessions import load_session

    request = Request(scope)
    await load_session(request)
    return request.session


def contenders(tmp: Path, store: str) -> dict[str, App]:
    from starlette.middleware.sessions import SessionMiddleware as StarletteSessions
    from starsessions import InMemoryStore
    from starsessions import SessionMiddleware as StarSessions

    url = "memory://" if store == "memory" else f"sqlite:///{tmp}/satchel.db"
    return {
        "bare": dispatch(fake_session),
        "satchel": satchel.asgi.SessionMiddleware(dispatch(satchel_load), store=url),
        "satchel-preload": satchel.asgi.SessionMiddleware(dispatch(plain_load), store=url,
                                                          preload=True),
        "starlette": StarletteSessions(dispatch(plain_load), secret_key=SECRET),
        "starsessions": StarSessions(dispatch(starsessions_load), store=InMemoryStore(),
                                     cookie_https_only=False, lifetime=3600),
    }


def scope_for(path: str, cookie: bytes | None) -> Scope:
    headers = [(b"host", b"127.0.0.1")]
    if cookie:
        headers.append((b"cookie", cookie))
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "headers": headers, "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80)}


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def one(app: App, path: str, cookie: bytes | None) -> tuple[bytes, list[Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope_for(path, cookie), receive, send)
    return sent[1]["body"], sent[0]["headers"]


def cookie_of(headers: list[tuple[bytes, bytes]]) -> bytes:
    for name, value in headers:
        if name.lower() == b"set-cookie":
            return value.split(b";", 1)[0]
    raise AssertionError("no Set-Cookie when the session was created")


async def batch(app: App, path: str, cookie: bytes | None, n: int) -> float:
    bodies = []
    started = time.perf_counter()
    for _ in range(n):
        bodies.append((await one(app, path, cookie))[0])
    elapsed = time.perf_counter() - started
    for body in bodies:
        if path == "/read" and body != VALUE.encode():
            raise AssertionError(f"wrong body {body[:20]!r}")
        if path == "/untouched" and body != b"untouched":
            raise AssertionError(f"wrong body {body[:20]!r}")
    return elapsed / n


async def run(store: str, rounds: int, n: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="satchel-asgi-bench-"))
    try:
        apps = contenders(tmp, store)
        cookies: dict[str, bytes | None] = {"bare": None}
        for name, app in apps.items():
            if name != "bare":
                # Cookie-held sessions (Starlette's) send a new cookie with each write.
                cookies[name] = cookie_of((await one(app, "/setup", None))[1])
        print(f"Python {sys.version.split()[0]}, satchel on {store}, {rounds} rounds x {n} "
              "requests; medians per request, '+' is the overhead above the bare app")
        names = list(apps)
        for path in ("/read", "/rmw", "/untouched"):
            times: dict[str, list[float]] = {name: [] for name in names}
            for name in names:  # warm-up
                await batch(apps[name], path, cookies[name], max(10, n // 10))
            for r in range(rounds):
                for name in names[r % len(names):] + names[:r % len(names)]:
                    times[name].append(await batch(apps[name], path, cookies[name], n))
            med = {name: statistics.median(t) for name, t in times.items()}
            bare = med["bare"]
            print(f"\n== {path[1:]}")
            for name in names:
                plus = (med[name] - bare) * 1e6
                print(f"   {name:16} {med[name] * 1e6:8.1f} µs   +{plus:7.1f} µs")
            ours = med["satchel"] - bare
            for other in ("starlette", "starsessions"):
                theirs = med[other] - bare
                print(f"   satchel / {other:13} overhead ratio {ours / theirs:.3f}")
            print(f"   preload / lazy overhead ratio {(med['satchel-preload'] - bare) / ours:.3f}")
        for app in (apps["satchel"], apps["satchel-preload"]):
            assert isinstance(app, satchel.asgi.SessionMiddleware)
            await app.aclose()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["memory", "sqlite"], default="memory")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=400, help="requests per round")
    args = parser.parse_args(argv)
    asyncio.run(run(args.store, args.rounds, args.requests))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
