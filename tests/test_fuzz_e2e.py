"""End to end: mutated cookies, query strings and id headers through the WSGI middleware, over
the memory, file, SQLite, Redis and cookie stores.

A few victims get real sessions first; then every request carries one of their credentials
mutated (bits flipped, characters replaced, cut, inserted, case swapped, two spliced, path
traversal, quoting, noise around it).  The run asserts: no 5xx (an exception out of the
middleware counts as one), no forged session (a request whose credential, as the transport
reads it, differs from a victim's never sees that victim's data), no file outside the file
store's directory, and every redirect stays on this origin.

Short by default (``REQUESTS`` per store and transport); ``SATCHEL_FUZZ_LONG=1`` sends 5,000
per combination.  ``SATCHEL_FUZZ_REPORT=<path>`` appends one JSON line of figures per
combination, which is what docs/reliability.md quotes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from wsgiref.util import setup_testing_defaults

import pytest

import satchel
import satchel.asgi

from . import server_fixtures
from .servers.redis import RedisServer

redis_server = server_fixtures.redis_server

SECRET = "e2e-fuzz-secret-0123456789abcdef"
LONG = os.environ.get("SATCHEL_FUZZ_LONG") == "1"
REQUESTS = 5000 if LONG else 250
VICTIMS = 4
ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
NOISE = ID_CHARS + ";=,\"' %&+#?/\\\t\x00\x7fé"
HEADER = "X-Session-Id"


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """Answers with the session's owner before this request; a new session takes the caller's."""
    session = environ["satchel.session"]
    owner = session.get("owner")
    if owner is None:
        session["owner"] = environ.get("HTTP_X_OWNER", "anonymous")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [(owner or "-").encode()]


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """:func:`app` for ASGI."""
    session = scope["session"]
    await session.load()
    owner = session.get("owner")
    if owner is None:
        caller = dict(scope["headers"]).get(b"x-owner", b"anonymous")
        session["owner"] = caller.decode("latin-1")
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": (owner or "-").encode()})


class Run:
    """One middleware, the requests sent through it, and what came back."""

    def __init__(self, mw: Any, transport: str) -> None:
        self.mw = mw
        self.transport = transport
        self.sent = 0
        self.errors = 0  # 5xx answers and exceptions out of the middleware
        self.offsite = 0  # redirects whose Location is not a path on this origin

    def request(self, owner: str, value: str | None) -> tuple[int, dict[str, str], str]:
        """GET / with ``value`` where the transport looks for the id (raw: cookie header,
        query string or id header)."""
        environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/",
                                   "HTTP_X_OWNER": owner}
        setup_testing_defaults(environ)
        if value is not None:
            key = {"cookie": "HTTP_COOKIE", "querystring": "QUERY_STRING",
                   "header": "HTTP_X_SESSION_ID"}[self.transport]
            environ[key] = value
        self.sent += 1
        try:
            status, raw_headers, body = self.respond(environ)
        except Exception:
            self.errors += 1
            return 500, {}, ""
        headers = {k.lower(): v for k, v in raw_headers}
        if status >= 500:
            self.errors += 1
        location = headers.get("location")
        if location is not None and (not location.startswith("/") or location.startswith("//")
                                     or urlsplit(location).netloc):
            self.offsite += 1
        return status, headers, body.decode()

    def respond(self, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        got: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc: Any = None) -> Any:
            got["status"], got["headers"] = int(status.split()[0]), headers

        result = self.mw(environ, start_response)
        body = b"".join(result)
        close = getattr(result, "close", None)
        if close is not None:
            close()
        return got["status"], got["headers"], body

    def credential(self, status: int, headers: dict[str, str]) -> str | None:
        """The credential a response hands out, as the client would send it back raw."""
        if self.transport == "cookie":
            cookie = headers.get("set-cookie", "")
            return cookie.split(";", 1)[0] if cookie.startswith("satchel=") else None
        if self.transport == "header":
            return headers.get(HEADER.lower()) or None
        location = headers.get("location")
        return urlsplit(location).query if status == 302 and location else None

    def read(self, raw: str) -> str | None:
        """What the transport makes of a raw value (the id or token it will look up)."""
        return self.mw.transport.read(raw)

    def new_victim(self, owner: str) -> str:
        """A real session owned by ``owner``; returns its raw credential."""
        status, headers, _ = self.request(owner, None)
        raw = self.credential(status, headers)
        assert raw is not None
        if self.transport == "querystring":  # follow the redirect: the session starts there
            status, headers, body = self.request(owner, raw)
            assert status == 200 and body == "-"
        status, _, body = self.request(owner, raw)
        assert (status, body) == (200, owner)  # the detector works: the real credential reads
        return raw


class AsgiRun(Run):
    """The same requests through the ASGI middleware, on one event loop."""

    def __init__(self, mw: Any, transport: str, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(mw, transport)
        self.loop = loop

    def respond(self, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = [(b"x-owner", environ["HTTP_X_OWNER"].encode("latin-1"))]
        for key, name in (("HTTP_COOKIE", b"cookie"), ("HTTP_X_SESSION_ID", b"x-session-id")):
            if key in environ:
                headers.append((name, environ[key].encode("latin-1")))
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": "/", "raw_path": b"/",
                 "root_path": "", "query_string": environ.get("QUERY_STRING", "").encode(
                     "latin-1"), "headers": headers, "server": ("127.0.0.1", 80),
                 "client": ("127.0.0.1", 1234)}
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        self.loop.run_until_complete(self.mw(scope, receive, send))
        start = sent[0]
        body = b"".join(m.get("body", b"") for m in sent[1:])
        return (start["status"], [(k.decode("latin-1"), v.decode("latin-1"))
                                  for k, v in start["headers"]], body)


def mutate(rng: random.Random, raw: str, value: str, other: str) -> str:
    """A mutation of the raw credential ``raw`` whose id or token part is ``value``."""
    kind = rng.randrange(12)
    at = rng.randrange(len(value))
    if kind == 0:  # one character replaced
        changed = value[:at] + rng.choice(ID_CHARS) + value[at + 1:]
    elif kind == 1:  # cut short
        changed = value[:at]
    elif kind == 2:  # a character inserted
        changed = value[:at] + rng.choice(NOISE) + value[at:]
    elif kind == 3:  # a letter's case swapped
        changed = value[:at] + value[at].swapcase() + value[at + 1:]
    elif kind == 4:  # two victims' credentials spliced
        cut = rng.randrange(1, min(len(value), len(other)))
        changed = value[:cut] + other[cut:]
    elif kind == 5:  # path traversal, in its usual spellings
        changed = rng.choice(["../", "..%2f", "%2e%2e/", "/", "..\\", "./"]) * rng.randrange(1, 5)
        changed += rng.choice(["escape", value, value[:41], "etc/passwd\x00" + value])
    elif kind == 6:  # over-long
        changed = value * rng.randrange(2, 40)
    elif kind == 7:  # quoted, padded, or white space around
        changed = rng.choice(['"{}"', "{}=", " {} ", "{}\t", '"{}']).format(value)
    elif kind == 8:  # random bytes of the same length
        changed = "".join(rng.choice(NOISE) for _ in value)
    elif kind == 9:  # empty, or only separators
        changed = rng.choice(["", ";", "=", "&", '""', " "])
    elif kind == 10:  # several characters replaced
        chars = list(value)
        for _ in range(rng.randrange(2, 8)):
            chars[rng.randrange(len(chars))] = rng.choice(ID_CHARS)
        changed = "".join(chars)
    else:  # the right value under a near name, the mutated one under ours
        changed = value[:-1] + rng.choice(ID_CHARS)
        return rng.choice(["Satchel={}; ", "satchel_={}; ", "x={}&"]).format(value) + \
            raw.replace(value, changed)
    mutated = raw.replace(value, changed)
    noise = rng.randrange(4)
    if noise == 1:
        mutated = rng.choice(["a=b; ", "a=b&", " "]) + mutated
    elif noise == 2:
        mutated = mutated + rng.choice(["; a=b", "&a=b", ";", "&"])
    return mutated


STORE_KINDS = ["memory", "file", "sqlite", "redis", "cookie"]
CASES = [(store, transport) for store in STORE_KINDS
         for transport in ("cookie", "querystring", "header")
         if not (store == "cookie" and transport == "querystring")]


@contextlib.contextmanager
def open_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """The store of ``kind``; the Redis server is started only for the Redis cases."""
    if kind == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        with server_fixtures.fresh_store(server) as store:
            yield store
        return
    if kind == "sqlite":
        (tmp_path / "db").mkdir()
    url = {"memory": "memory://", "file": f"file://{tmp_path}/store",
           "sqlite": f"sqlite:///{tmp_path}/db/sessions.db", "cookie": "cookie://"}[kind]
    options = {"secret": SECRET} if kind == "cookie" else {}
    with satchel.open_store(url, **options) as store:
        yield store


@pytest.fixture(autouse=True)
def _quiet_security_log() -> Iterator[None]:
    """Each refused id or cookie warns on ``satchel.security``: thousands of lines here."""
    logger = logging.getLogger("satchel.security")
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = False


@pytest.mark.parametrize("door", ["wsgi", "asgi"])
@pytest.mark.parametrize(("kind", "transport"), CASES, ids=[f"{s}-{t}" for s, t in CASES])
def test_mutated_credentials(kind: str, transport: str, door: str,
                             request: pytest.FixtureRequest, tmp_path: Path) -> None:
    with open_store(kind, request, tmp_path) as store:
        if door == "wsgi":
            mw = satchel.SessionMiddleware(app, store=store, secret=SECRET,
                                           transport=transport, header_name=HEADER)
            _mutated_credentials(kind, transport, Run(mw, transport), tmp_path)
            return
        loop = asyncio.new_event_loop()
        try:
            amw = satchel.asgi.SessionMiddleware(asgi_app, store=store, secret=SECRET,
                                                 transport=transport, header_name=HEADER)
            try:
                _mutated_credentials(kind, transport, AsgiRun(amw, transport, loop), tmp_path)
            finally:
                loop.run_until_complete(amw.aclose())
        finally:
            loop.close()


def _mutated_credentials(kind: str, transport: str, run: Run, tmp_path: Path) -> None:
    door = "asgi" if isinstance(run, AsgiRun) else "wsgi"
    owners = [f"victim-{i}" for i in range(VICTIMS)]
    raws = [run.new_victim(owner) for owner in owners]
    values = [run.read(raw) for raw in raws]
    assert all(values) and len(set(values)) == VICTIMS
    rng = random.Random(f"{kind}-{transport}")
    forged = same = 0  # same: a mutation the transport reads as the victim's own credential
    for n in range(REQUESTS):
        i = n % VICTIMS
        value = values[i]
        other = values[(i + 1) % VICTIMS]
        assert value is not None and other is not None
        mutated = mutate(rng, raws[i], value, other)
        status, _, body = run.request(f"attacker-{n}", mutated)
        if status == 200 and body in owners:
            if run.read(mutated) != values[owners.index(body)]:
                forged += 1
            else:
                same += 1
    for owner, raw in zip(owners, raws, strict=True):  # the victims' sessions are intact
        status, _, body = run.request(owner, raw)
        assert (status, body) == (200, owner)
    # Every file the run left under tmp_path must be the file store's, or the SQLite database's.
    homes = (tmp_path / "store", tmp_path / "db")
    outside = [str(p) for p in tmp_path.rglob("*")
               if not p.is_dir() and not any(home in p.parents for home in homes)]
    figures = {"door": door, "store": kind, "transport": transport, "requests": run.sent,
               "5xx": run.errors, "forged": forged, "read_as_own": same,
               "offsite_redirects": run.offsite, "files_outside": len(outside)}
    report = os.environ.get("SATCHEL_FUZZ_REPORT")
    if report:
        with open(report, "a", encoding="utf-8") as out:
            out.write(json.dumps(figures) + "\n")
    assert (run.errors, forged, run.offsite, outside) == (0, 0, 0, []), figures
    if transport == "querystring":
        assert all(parse_qsl(raw) for raw in raws)
