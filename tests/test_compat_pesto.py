"""Pesto's session API over satchel: the seed's documentation run as tests, and Pesto's
behaviours (cookie and query-string ids, purging, the file layout, several processes).

The examples are read from the seed files at test time (``tests/seeds.py``); ``import pesto``
in them means satchel's facade for the session modules and a small stand-in for Pesto's web
layer (``tests/pesto_web.py``), since Pesto itself does not import on Python 3.
"""

from __future__ import annotations

import contextlib
import doctest
import io
import multiprocessing
import os
import re
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from satchel.compat.pesto import session_middleware
from satchel.compat.pesto.session import base as pesto_base
from satchel.compat.pesto.session.base import Session
from satchel.compat.pesto.session.filesessionmanager import FileSessionManager
from satchel.compat.pesto.session.memorysessionmanager import MemorySessionManager
from satchel.ids import is_valid_id
from satchel.wsgi import SessionMiddleware

from .pesto_web import Response, TestApp, pesto_modules, to_wsgi
from .seeds import seed_text

SEED_PAGE = "000_3d13be98beb63e70.txt"
SEED_SOURCE = "001_989a6b4803213ad6.txt"


@pytest.fixture
def pesto(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``import pesto`` means the facade; every middleware the examples build is closed after
    (their purge threads stopped)."""
    for name, module in pesto_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    built: list[SessionMiddleware] = []

    class Closed(SessionMiddleware):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            built.append(self)

    monkeypatch.setattr(pesto_base, "SessionMiddleware", Closed)
    yield sys.modules["pesto"]
    for middleware in built:
        middleware.close()


def session_id(response: Any) -> str | None:
    cookie = response.get_header("Set-Cookie")
    if cookie:
        found = re.match(r"pesto_session=([^;]*);", cookie)
        return found.group(1) if found else None
    return None


# -- the seeds' examples ---------------------------------------------------------------------


def test_seed_page_doctests(pesto: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ``>>>`` example of the rendered page (seed 000), in its module's namespace.

    The rendering lost the blank line between an example's output and the text after it (an
    API heading such as ``release_lock(session_id=None)``), so an example's output is compared
    with the start of what follows it; a bare ``>>>`` prompt has no statement and ends a block.
    """
    monkeypatch.chdir(tmp_path)
    examples = doctest.DocTestParser().get_examples(seed_text(SEED_PAGE))
    globs: dict[str, Any] = {}
    for module in ("base", "memorysessionmanager", "filesessionmanager"):
        globs.update(vars(sys.modules[f"pesto.session.{module}"]))
    ran = compared = 0
    for example in examples:
        if not example.source.strip():
            continue
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(example.source, "<seed 000>", "single"), globs)
        got = out.getvalue()
        ran += 1
        if got:
            want = example.want.splitlines(keepends=True)[: len(got.splitlines())]
            assert got == "".join(want), f"{example.source!r} printed {got!r}"
            compared += 1
    assert ran >= 20 and compared >= 1
    # Building a file manager touches nothing on disk, as in Pesto ('./sessions', '/tmp').
    assert not (tmp_path / "sessions").exists()


_DIRECTIVE = re.compile(r"^\.\. (testsetup|testcode|testoutput)::")


def sphinx_blocks(text: str) -> list[tuple[str, bool, str]]:
    """(kind, hidden, body) for each sphinx-doctest directive of an rst text, in order."""
    lines = text.splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        found = _DIRECTIVE.match(lines[i])
        i += 1
        if not found:
            continue
        hidden = False
        while i < len(lines) and lines[i][:1].isspace() and lines[i].strip().startswith(":"):
            hidden = hidden or lines[i].strip() == ":hide:"
            i += 1
        body = []
        while i < len(lines) and (not lines[i].strip() or lines[i][:1].isspace()):
            body.append(lines[i])
            i += 1
        blocks.append((found.group(1), hidden, textwrap.dedent("\n".join(body)).strip("\n")))
    return blocks


def python3(code: str) -> str:
    """The seed's hidden checks are Python 2: ``print x`` becomes ``print(x)``."""
    return re.sub(r"^(\s*)print (?!\()(.+)$", r"\1print(\2)", code, flags=re.MULTILINE)


def output_matches(want: str, got: str) -> bool:
    """Sphinx-doctest's comparison (ELLIPSIS).  Pesto joined cookie attributes with ';';
    satchel writes RFC 6265's '; ' (section 4.1.1), so the space is not compared."""
    got = re.sub(r";[ \t]+", ";", got)
    return doctest.OutputChecker().check_output(want.strip() + "\n", got, doctest.ELLIPSIS)


def test_seed_source_doctests(pesto: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every testsetup/testcode/testoutput block of the page's source (seed 001), in order,
    in one namespace, as sphinx-doctest runs them."""
    monkeypatch.chdir(tmp_path)
    blocks = sphinx_blocks(seed_text(SEED_SOURCE))
    assert [k for k, _, _ in blocks].count("testcode") >= 8
    assert [k for k, _, _ in blocks].count("testoutput") == 2
    namespace: dict[str, Any] = {"__name__": "seed001"}
    got = ""
    checked = 0
    for kind, _hidden, body in blocks:
        code = python3(body)
        if kind in ("testsetup", "testcode"):
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(code, "<seed 001>", "exec"), namespace)
            got = out.getvalue()
            continue
        assert output_matches(body, got), f"expected {body!r}, got {got!r}"
        checked += 1
    assert checked == 2


def run_login_example(pesto: Any, directory: Path) -> Any:
    """The seed's login / secure-area example, its store path moved to ``directory``."""
    blocks = sphinx_blocks(seed_text(SEED_SOURCE))
    example = next(body for kind, _, body in blocks
                   if kind == "testcode" and "/secure-area" in body)
    assert "'/path/to/session/store'" in example
    example = example.replace("'/path/to/session/store'", repr(str(directory)))
    users = {"alice": "wonderland"}

    class response:  # the example calls response.redirect(...) on a module-level name
        redirect = staticmethod(Response.redirect)

    namespace: dict[str, Any] = {
        "pesto": pesto, "response": response,
        "is_valid": lambda name, password: users.get(name) == password,
    }
    exec(compile(example, "<seed 001 example>", "exec"), namespace)
    return namespace["application"]


def test_login_example_against_the_facade(pesto: Any, tmp_path: Path) -> None:
    application = run_login_example(pesto, tmp_path)
    try:
        client = TestApp(application)
        denied = client.get("/secure-area")
        assert denied.status.startswith("302") and denied.get_header("Location") == "/login"
        # As with Pesto, the first response gives the visitor an id; nothing is stored for it.
        sid = session_id(denied)
        assert sid is not None and is_valid_id(sid)
        jar = f"pesto_session={sid}"

        wrong = client.post("/login", {"username": "alice", "password": "nope"}, HTTP_COOKIE=jar)
        assert session_id(wrong) is None
        assert session_files(tmp_path) == []

        ok = client.post("/login", {"username": "alice", "password": "wonderland"},
                         HTTP_COOKIE=jar)
        assert ok.status.startswith("200")
        # one file per session, at Pesto's path, under the id the visitor was given
        files = session_files(tmp_path)
        assert [p.name for p in files] == [sid] and files[0].parent.name == sid[:2]

        inside = client.get("/secure-area", HTTP_COOKIE=jar)
        assert inside.status.startswith("200")
        assert inside.body == b"Welcome to the secure area, alice"
        assert inside.get_header("Set-Cookie") is None  # the cookie is sent once

        stranger = client.get("/secure-area", HTTP_COOKIE="pesto_session=" + "a" * 64)
        assert stranger.status.startswith("302")
    finally:
        application.close()


# -- cookie persistence -------------------------------------------------------------------------


def counter_app() -> Any:
    @to_wsgi
    def app(request: Any) -> Any:
        request.session["counter"] = request.session.get("counter", -1) + 1
        environ = request.environ
        assert environ["pesto.sessionmanager"] is not None
        return Response([str(request.session["counter"]), " new" if request.session.is_new
                         else " old"])
    return app


def test_cookie_persistence_and_is_new() -> None:
    manager = MemorySessionManager(cache_size=10)
    app = session_middleware(manager, auto_purge_every=0)(counter_app())
    client = TestApp(app)
    first = client.get("/")
    sid = session_id(first)
    assert sid and first.body == b"0 new"
    for n in range(1, 6):
        again = client.get("/", HTTP_COOKIE=f"pesto_session={sid}")
        assert again.body == f"{n} old".encode()
        assert again.get_header("Set-Cookie") is None
        assert manager.load(sid)["counter"] == n
    cookie = first.get_header("Set-Cookie")
    assert "Path=/" in cookie and "HttpOnly" in cookie and "Domain" not in cookie


def test_cookie_path_and_domain() -> None:
    app = session_middleware(MemorySessionManager(), auto_purge_every=0)(counter_app())
    cookie = TestApp(app).get("/test", SCRIPT_NAME="/myapp").get_header("Set-Cookie")
    assert "Path=/myapp" in cookie
    app = session_middleware(MemorySessionManager(), auto_purge_every=0,
                             cookie_path="/another-path",
                             cookie_domain=".example.com")(counter_app())
    cookie = TestApp(app).get("/test", SCRIPT_NAME="/myapp").get_header("Set-Cookie")
    assert "Path=/another-path" in cookie and "Domain=.example.com" in cookie


def test_a_removed_session_starts_afresh() -> None:
    manager = MemorySessionManager(cache_size=10)
    client = TestApp(session_middleware(manager, auto_purge_every=0)(counter_app()))
    sid = session_id(client.get("/"))
    assert sid in manager
    assert client.get("/", HTTP_COOKIE=f"pesto_session={sid}").body == b"1 old"
    manager.remove(sid)
    assert sid not in manager
    again = client.get("/", HTTP_COOKIE=f"pesto_session={sid}")
    assert again.body == b"0 new" and session_id(again) is not None


def test_every_visitor_gets_an_id_but_nothing_is_stored_for_it() -> None:
    """Pesto's cookie on the first response, so ``session_id`` is stable from the first visit;
    unlike Pesto, no empty session is stored for a visitor who stores nothing."""
    manager = MemorySessionManager()
    seen: list[str] = []

    @to_wsgi
    def app(request: Any) -> Any:
        if request.environ["PATH_INFO"] == "/id":
            seen.append(request.session.session_id)
        if request.environ["PATH_INFO"] == "/store":
            request.session["kept"] = True
        return Response(["ok"])

    client = TestApp(session_middleware(manager, auto_purge_every=0)(app))
    first = client.get("/static")  # the session is never touched
    sid = session_id(first)
    assert sid is not None and is_valid_id(sid)
    assert manager.satchel_store.count() == 0
    jar = f"pesto_session={sid}"
    for _ in range(2):
        assert session_id(client.get("/id", HTTP_COOKIE=jar)) is None
    assert seen == [sid, sid] and manager.satchel_store.count() == 0
    client.get("/store", HTTP_COOKIE=jar)
    assert sid in manager and manager.load(sid)["kept"] is True
    forged = client.get("/id", HTTP_COOKIE="pesto_session=" + "A" * 43)  # not ours: replaced
    assert session_id(forged) not in (None, "A" * 43)


def test_invalidate_logs_out() -> None:
    manager = MemorySessionManager()

    @to_wsgi
    def app(request: Any) -> Any:
        if request.environ["PATH_INFO"] == "/logout":
            request.session.invalidate()
        else:
            request.session["user"] = "alice"
        return Response(["ok"])

    client = TestApp(session_middleware(manager, auto_purge_every=0)(app))
    sid = session_id(client.get("/login"))
    assert sid in manager
    out = client.get("/logout", HTTP_COOKIE=f"pesto_session={sid}")
    assert sid not in manager
    assert "Max-Age=0" in out.get_header("Set-Cookie")


def test_cache_size_bounds_memory() -> None:
    manager = MemorySessionManager(cache_size=3)
    client = TestApp(session_middleware(manager, auto_purge_every=0)(counter_app()))
    sids = [session_id(client.get("/")) for _ in range(5)]
    assert [sid in manager for sid in sids] == [False, False, True, True, True]


# -- querystring persistence --------------------------------------------------------------------


def test_querystring_redirects_a_get_and_keeps_its_parameters() -> None:
    manager = MemorySessionManager()
    client = TestApp(session_middleware(manager, persist="querystring",
                                        auto_purge_every=0)(counter_app()))
    first = client.get("/page?a=1&b=two")
    assert first.status.startswith("302")
    location = first.get_header("Location")
    path, _, query = location.partition("?")
    assert path == "/page"
    params = dict(p.split("=", 1) for p in query.split("&"))
    assert params["a"] == "1" and params["b"] == "two"
    sid = params["pesto_session"]
    assert is_valid_id(sid)
    for n in range(3):
        page = client.get(location)
        assert page.status.startswith("200") and page.body.startswith(str(n).encode())
        assert page.get_header("Set-Cookie") is None
    assert manager.load(sid)["counter"] == 2


def test_querystring_does_not_redirect_a_post() -> None:
    client = TestApp(session_middleware(MemorySessionManager(), persist="querystring",
                                        auto_purge_every=0)(counter_app()))
    posted = client.post("/form", {"x": "1"})
    assert posted.status.startswith("200") and posted.body == b"0 new"
    assert posted.get_header("Location") is None


# -- purging --------------------------------------------------------------------------------------


def session_files(directory: Path) -> list[Path]:
    root = directory / "_pesto_sessions"
    return [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")]


def test_purge_thread_removes_expired_sessions(tmp_path: Path) -> None:
    manager = FileSessionManager(tmp_path)
    app = session_middleware(manager, auto_purge_every=0.05, auto_purge_olderthan=0.3)(
        counter_app())
    try:
        sid = session_id(TestApp(app).get("/"))
        assert sid is not None
        assert len(session_files(tmp_path)) == 1
        assert app.purger is not None and app.purger.running
        deadline = time.monotonic() + 10
        while session_files(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert session_files(tmp_path) == []
        assert app.purger.runs > 0
    finally:
        app.close()


def test_run_once_purges_after_the_request(tmp_path: Path) -> None:
    manager = FileSessionManager(tmp_path)
    app = session_middleware(manager, auto_purge_every=600, auto_purge_olderthan=0.2)(
        counter_app())
    try:
        client = TestApp(app, **{"wsgi.run_once": True})
        client.get("/")
        assert len(session_files(tmp_path)) == 1
        time.sleep(0.3)
        client.get("/")  # a CGI request: the expired session goes after it
        files = session_files(tmp_path)
        assert len(files) == 1  # only the session this request made is left
        assert app.purger is not None and not app.purger.running  # no thread under CGI
    finally:
        app.close()


# -- the file manager -----------------------------------------------------------------------------


def test_file_manager_one_file_per_session_at_pestos_path(tmp_path: Path) -> None:
    manager = FileSessionManager(tmp_path)
    client = TestApp(session_middleware(manager, auto_purge_every=0)(counter_app()))
    sids = [session_id(client.get("/")) for _ in range(4)]
    files = sorted(str(p) for p in session_files(tmp_path))
    assert files == sorted(manager.get_path(sid) for sid in sids if sid)
    assert all(manager.get_path(s) == str(tmp_path / "_pesto_sessions" / s[:2] / s)
               for s in sids if s)
    assert os.stat(tmp_path / "_pesto_sessions").st_mode & 0o077 == 0


@pytest.mark.parametrize("bad", ["../etc", "a/b", ".hidden", "", "x" * 129, "a\x00b", 7])
def test_get_path_refuses_what_is_not_a_plain_name(tmp_path: Path, bad: Any) -> None:
    with pytest.raises(ValueError, match="not a session id"):
        FileSessionManager(tmp_path).get_path(bad)


def test_file_manager_is_built_without_touching_its_directory(tmp_path: Path) -> None:
    FileSessionManager(tmp_path / "later")
    assert not (tmp_path / "later").exists()


def test_manager_methods(tmp_path: Path) -> None:
    for manager in (MemorySessionManager(), FileSessionManager(tmp_path)):
        fresh = manager.load(None)
        assert fresh.is_new and is_valid_id(fresh.session_id)
        fresh["cart"] = ["apple"]
        assert fresh.save_if_changed() and not fresh.is_new
        assert not fresh.save_if_changed()
        sid = fresh.session_id
        assert sid in manager and "nope" not in manager
        manager.acquire_lock(sid)
        try:
            loaded = manager.read_session(sid)
        finally:
            manager.release_lock(sid)
        assert not loaded.is_new and loaded["cart"] == ["apple"] and loaded.has_key("cart")
        before = manager.get_access_time(sid)
        time.sleep(0.01)
        manager.update_access_time(sid)
        assert manager.get_access_time(sid) > before
        loaded.invalidate()
        assert sid not in manager and loaded.session_id is None
        with pytest.raises(KeyError):
            manager.get_access_time(sid)
        standalone = Session(manager, "abcdefgh", True)
        with pytest.raises(ValueError, match="made by satchel"):
            standalone.save()


def _hammer(directory: str, sid: str, key: str, rounds: int) -> None:
    manager = FileSessionManager(directory)

    @to_wsgi
    def app(request: Any) -> Any:
        request.session[key] = request.session.get(key, 0) + 1
        return Response(["ok"])

    client = TestApp(session_middleware(manager, auto_purge_every=0)(app))
    for _ in range(rounds):
        assert client.get("/", HTTP_COOKIE=f"pesto_session={sid}").status.startswith("200")


def test_two_processes_share_one_directory(tmp_path: Path) -> None:
    manager = FileSessionManager(tmp_path)
    sid = session_id(TestApp(session_middleware(manager, auto_purge_every=0)(counter_app()))
                     .get("/"))
    assert sid is not None
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_hammer, args=(str(tmp_path), sid, key, 40))
               for key in ("left", "right")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    session = manager.load(sid)
    assert (session["left"], session["right"], session["counter"]) == (40, 40, 0)
    assert len(session_files(tmp_path)) == 1


def test_module_paths_mirror_pestos() -> None:
    import satchel.compat.pesto as top
    import satchel.compat.pesto.session as package

    assert top.session_middleware is package.session_middleware is pesto_base.session_middleware
    assert pesto_base.Session.COOKIE_NAME == "pesto_session"


def test_no_purge_thread_outlives_these_tests() -> None:
    import threading

    assert not any(t.name == "satchel-purge" and t.is_alive() for t in threading.enumerate())


def test_a_missing_seed_fails_rather_than_skips() -> None:
    with pytest.raises(AssertionError, match="not found"):
        seed_text("no-such-seed.txt")
