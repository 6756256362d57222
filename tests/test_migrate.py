"""``satchel migrate`` and the ``legacy_ids`` option: sessions written by the real Beaker 1.14
and the real Session3 (on Quixote), and Pesto's file format as its source writes it, copied into
satchel stores; then a browser with its old cookie is still logged in, once, and is moved to a
fresh satchel id.
"""

from __future__ import annotations

import base64
import io
import os
import pickle
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

import satchel
from satchel.cli import main
from satchel.ids import LEGACY_KEY, is_valid_id, legacy_id
from satchel.migrate import Policy, migrate
from satchel.stores.file import FileStore

from . import server_fixtures
from .wsgi_util import call

redis_server = server_fixtures.redis_server


# -- writing the old systems' sessions with the old systems themselves --------------------------


def wsgi_get(app: Any, path: str = "/", cookie: str | None = None,
             query: str = "") -> tuple[str, list[tuple[str, str]], bytes]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": "GET", "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(), "REMOTE_ADDR": "127.0.0.1",
        "wsgi.errors": io.StringIO(), "wsgi.version": (1, 0), "wsgi.run_once": False,
        "wsgi.multithread": False, "wsgi.multiprocess": False,
    }
    if cookie:
        env["HTTP_COOKIE"] = cookie
    seen: list[Any] = []
    result = app(env, lambda status, headers, exc=None: seen.append((status, headers)))
    body = b"".join(result)
    close = getattr(result, "close", None)
    if close:
        close()
    return seen[0][0], seen[0][1], body


def cookie_value(headers: list[tuple[str, str]], name: str) -> str:
    for key, value in headers:
        if key.lower() == "set-cookie" and value.strip().startswith(name + "="):
            return value.strip()[len(name) + 1:].split(";")[0].strip('"')
    raise AssertionError(f"no {name} cookie in {headers}")


def beaker_logins(options: dict[str, Any], users: Iterable[str]) -> dict[str, str]:
    """Log each user in through the real Beaker middleware; {user: Beaker session id}."""
    from beaker.middleware import SessionMiddleware as BeakerMiddleware

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        session = environ["beaker.session"]
        session["user"] = environ["QUERY_STRING"]
        session["cart"] = ["apple", ("pear", 2)]
        session["token"] = b"\x00\xff"
        session.save()
        start_response("200 OK", [])
        return [b"ok"]

    middleware = BeakerMiddleware(app, options)
    return {user: cookie_value(wsgi_get(middleware, query=user)[1], "beaker.session.id")
            for user in users}


def session3_logins(directory: Path, users: Iterable[str]) -> dict[str, str]:
    """Log each user in through a real Quixote publisher with Session3's manager and store."""
    from quixote import get_request, get_session
    from quixote.directory import Directory
    from quixote.publish import Publisher
    from quixote.wsgi import QWIP
    from session3.SessionManager import SessionManager
    from session3.store.DirectorySessionStore import DirectorySessionStore

    class Root(Directory):
        _q_exports = ["login"]

        def login(self) -> str:
            session = get_session()
            session.set_user(get_request().get_environ("QUERY_STRING"))
            session.visits = 3
            return "ok"

    streams = sys.stdout, sys.stderr  # Quixote's publisher redirects them to its logs
    publisher = Publisher(Root(), session_manager=SessionManager(DirectorySessionStore(
        str(directory))))
    sys.stdout, sys.stderr = streams
    app = QWIP(publisher)
    try:
        return {user: cookie_value(wsgi_get(app, "/login", query=user)[1], "QX_session")
                for user in users}
    finally:
        import quixote.publish

        quixote.publish._publisher = None  # Quixote allows one publisher per process


PY2_SESSION = (  # what Pesto's cPickle.dump(session.data, f) wrote under Python 2
    b"(dp0\nS'username'\np1\nS'%s'\np2\nsS'logged_in'\np3\nI01\nsS'since'\np4\n"
    b"cdatetime\ndatetime\np5\n(S'\\x07\\xda\\x03\\x04\\x05\\x06\\x07\\x00\\x00\\x00'\np6\n"
    b"tp7\nRp8\nsS'note'\np9\nVcaf\xe9\np10\ns."
)


def pesto_files(directory: Path, users: Iterable[str]) -> dict[str, str]:
    """Pesto's FileSessionManager layout, as its source writes it: a Python 2 protocol-0
    pickle of the session dict at ``_pesto_sessions/<2 chars>/<sha256 hex id>``."""
    found = {}
    for n, user in enumerate(users):
        sid = f"{n:x}".rjust(2, "a") + os.urandom(31).hex()
        path = directory / "_pesto_sessions" / sid[:2] / sid
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(PY2_SESSION % user.encode())
        found[user] = sid
    return found


class Boom:
    """A pickle that runs code if loaded freely: it would make ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.marker),))


# -- after migration, a browser with its old cookie -----------------------------------------------


def whoami_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    session = environ["satchel.session"]
    name = session.get("user") or session.get("username") or "nobody"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [name.encode()]


def check_old_cookie(store: satchel.Store, cookie_name: str, old_id: str, user: str) -> None:
    """Logged in once with the old cookie, moved to a fresh id; the old cookie then finds
    nothing, and the new one keeps the user logged in."""
    app = satchel.SessionMiddleware(whoami_app, store=store, cookie_name=cookie_name,
                                    legacy_ids=True)
    first = call(app, cookie=f"{cookie_name}={old_id}")
    assert first.body == user.encode()
    new_id = first.cookies[cookie_name]
    assert is_valid_id(new_id) and new_id != legacy_id(old_id)
    assert not store.exists(legacy_id(old_id))
    again = call(app, cookie=f"{cookie_name}={old_id}")
    assert again.body == b"nobody"
    assert call(app, cookie=f"{cookie_name}={new_id}").body == user.encode()


def run_cli(*args: str) -> int:
    return main(["migrate", "--no-progress", *args])


def tree(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


# -- the sources ---------------------------------------------------------------------------------


def test_beaker_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "beaker"
    ids = beaker_logins({"session.type": "file", "session.data_dir": str(data_dir)},
                        ["alice", "bob"])
    # A third session whose payload would run code if it were unpickled freely.
    evil_id = beaker_logins({"session.type": "file", "session.data_dir": str(data_dir)},
                            ["mallory"])["mallory"]
    evil_path = next(data_dir.rglob(f"{evil_id}.cache"))
    marker = tmp_path / "pwned"
    payload = base64.b64encode(pickle.dumps({"x": Boom(marker)}, 2))
    evil_path.write_bytes(pickle.dumps({"session": payload}))
    before = tree(data_dir)
    target = f"sqlite:///{tmp_path}/satchel.db"

    assert run_cli("--from", f"beaker-file:{data_dir}", "--to", target) == 1
    out = capsys.readouterr().out
    assert "copied 2 of 3 sessions" in out
    assert "failed 1: 1 refused: the pickle names posix.mkdir" in out
    assert not marker.exists()
    assert tree(data_dir) == before  # nothing at the source changed

    with satchel.open_store(target) as store:
        assert store.count() == 2
        record = store.load(legacy_id(ids["alice"]))
        assert record is not None and LEGACY_KEY in record.data
        check_old_cookie(store, "beaker.session.id", ids["alice"], "alice")
        # Values keep their types through the copy (list, tuple, bytes).
        codec = satchel.JSONCodec()
        bob = store.load(legacy_id(ids["bob"]))
        assert bob is not None
        assert codec.decode(bob.data["cart"]) == ["apple", ("pear", 2)]
        assert codec.decode(bob.data["token"]) == b"\x00\xff"

    # Run again: everything live is already there; the refused one still fails.
    assert run_cli("--from", f"beaker-file:{data_dir}", "--to", target) == 1
    assert "skipped 1: 1 already in the target" in capsys.readouterr().out


def test_beaker_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/beaker.db"
    ids = beaker_logins({"session.type": "ext:database", "session.url": url}, ["carol"])
    target = f"file://{tmp_path}/sessions"
    assert run_cli("--from", f"beaker-database:{url}", "--to", target) == 0
    assert "copied 1 of 1 session" in capsys.readouterr().out
    with satchel.open_store(target) as store:
        check_old_cookie(store, "beaker.session.id", ids["carol"], "carol")


def test_beaker_redis(redis_server: Any, tmp_path: Path,
                      capsys: pytest.CaptureFixture[str]) -> None:
    redis_server.flush()
    ids = beaker_logins({"session.type": "ext:redis", "session.url": redis_server.url},
                        ["dave", "erin"])
    target = f"sqlite:///{tmp_path}/satchel.db"
    assert run_cli("--from", f"beaker-redis:{redis_server.url}", "--to", target) == 0
    assert "copied 2 of 2 sessions" in capsys.readouterr().out
    with satchel.open_store(target) as store:
        check_old_cookie(store, "beaker.session.id", ids["erin"], "erin")


def test_session3_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "session3"
    source.mkdir()
    ids = session3_logins(source, ["frank", "grace"])
    (source / "README").write_text("not a session")
    target = f"sqlite:///{tmp_path}/satchel.db"
    assert run_cli("--from", f"session3-dir:{source}", "--to", target) == 1
    out = capsys.readouterr().out
    assert "copied 2 of 3 sessions" in out and "failed 1: 1 id not in" in out
    with satchel.open_store(target) as store:
        record = store.load(legacy_id(ids["grace"]))
        assert record is not None and record.user == "grace"  # Session3's user, indexed
        assert satchel.JSONCodec().decode(record.data["visits"]) == 3  # a custom attribute
        app = satchel.SessionMiddleware(
            lambda e, s: (s("200 OK", []), [str(e["satchel.session"].user).encode()])[1],
            store=store, cookie_name="QX_session", legacy_ids=True)
        # Quixote quoted the cookie value; the browser sends it back as it got it.
        first = call(app, cookie=f'QX_session="{ids["grace"]}"')
        assert first.body == b"grace" and is_valid_id(first.cookies["QX_session"])


def test_pesto_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "pesto"
    ids = pesto_files(source, ["heidi", "ivan"])
    target = f"file://{tmp_path}/new"
    assert run_cli("--from", f"pesto-file:{source}", "--to", target) == 0
    assert "copied 2 of 2 sessions" in capsys.readouterr().out
    with satchel.open_store(target) as store:
        record = store.load(legacy_id(ids["ivan"]))
        assert record is not None
        codec = satchel.JSONCodec()
        assert codec.decode(record.data["note"]) == "caf\xe9"
        assert codec.decode(record.data["since"]).year == 2010
        check_old_cookie(store, "pesto_session", ids["ivan"], "ivan")
    # Through the Pesto facade, with legacy ids on:
    from satchel.compat.pesto import session_middleware
    from satchel.compat.pesto.session.filesessionmanager import FileSessionManager

    into_facade = tmp_path / "facade"
    assert run_cli("--from", f"pesto-file:{source}",
                   "--to", f"file://{into_facade}/_pesto_sessions") == 0

    def page(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [])
        return [environ["pesto.session"].get("username", "nobody").encode()]

    app = session_middleware(FileSessionManager(into_facade), auto_purge_every=0,
                             legacy_ids=True)(page)
    _, headers, body = wsgi_get(app, cookie=f"pesto_session={ids['heidi']}")
    assert body == b"heidi" and is_valid_id(cookie_value(headers, "pesto_session"))


def test_store_to_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source_url = f"file://{tmp_path}/old"
    with satchel.open_store(source_url) as source:
        writer = satchel.SessionMiddleware(
            lambda e, s: (e["satchel.session"].update(user="judy"), s("200 OK", []), [b""])[2],
            store=source)
        sid = call(writer).cookies["satchel"]
    target = f"sqlite:///{tmp_path}/new.db"
    assert run_cli("--from", f"satchel:{source_url}", "--to", target) == 0
    assert "copied 1 of 1 session" in capsys.readouterr().out
    with satchel.open_store(target) as store:
        assert call(satchel.SessionMiddleware(whoami_app, store=store),
                    cookie=f"satchel={sid}").body == b"judy"


def test_dry_run_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "pesto"
    pesto_files(source, ["kim"])
    target = f"file://{tmp_path}/new"
    assert run_cli("--dry-run", "--from", f"pesto-file:{source}", "--to", target) == 0
    assert "would copy 1 of 1 session" in capsys.readouterr().out
    assert FileStore(tmp_path / "new").count() == 0


def test_expired_sessions_are_skipped_not_failed(tmp_path: Path) -> None:
    source = tmp_path / "pesto"
    ids = pesto_files(source, ["old", "new"])
    hour_ago = time.time() - 3600
    path = source / "_pesto_sessions" / ids["old"][:2] / ids["old"]
    os.utime(path, (hour_ago, hour_ago))
    from satchel._oldstores import open_source

    with satchel.open_store(f"file://{tmp_path}/new") as target:
        report = migrate(open_source(f"pesto-file:{source}"), target, Policy(idle_timeout=1800))
    assert (report.copied, dict(report.skipped), dict(report.failed)) == (1, {"expired": 1}, {})


def test_values_json_cannot_hold_fail_unless_pickled(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir = tmp_path / "beaker"
    beaker_logins({"session.type": "file", "session.data_dir": str(data_dir)}, ["lee"])
    path = next(data_dir.rglob("*.cache"))
    now = time.time()
    inner = {"_creation_time": now, "_accessed_time": now, "user": "lee",
             "when": __import__("datetime").timedelta(seconds=5)}
    path.write_bytes(pickle.dumps({"session": base64.b64encode(pickle.dumps(inner, 2))}))
    target = f"sqlite:///{tmp_path}/a.db"
    assert run_cli("--from", f"beaker-file:{data_dir}", "--to", target) == 1
    assert "a value of type timedelta (use --pickle" in capsys.readouterr().out
    assert main(["migrate", "--pickle", "--from", f"beaker-file:{data_dir}", "--to",
                 target]) == 2
    monkeypatch.setenv("SATCHEL_SECRET", "a secret of at least sixteen bytes")
    assert run_cli("--pickle", "--from", f"beaker-file:{data_dir}", "--to", target) == 0


def test_progress_bar_and_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    source = tmp_path / "pesto"
    pesto_files(source, ["a", "b", "c"])
    assert main(["migrate", "--progress", "--from", f"pesto-file:{source}",
                 "--to", f"file://{tmp_path}/new"]) == 0
    err = capsys.readouterr().err
    assert "] 3/3" in err and "#" * 30 in err
    assert main(["migrate", "--from", "nothing:here", "--to", "memory://"]) == 2
    assert "expected one of beaker-file:" in capsys.readouterr().err
    assert main(["migrate", "--from", f"pesto-file:{tmp_path}/missing", "--to", "memory://"]) == 2


# -- legacy ids in the core -----------------------------------------------------------------------


def migrated_store(old_id: str, **data: Any) -> satchel.MemoryStore:
    store = satchel.MemoryStore()
    codec = satchel.JSONCodec()
    now = time.time()
    encoded = {k: codec.encode(k, v) for k, v in {**data, LEGACY_KEY: True}.items()}
    store.save(legacy_id(old_id), satchel.Changes(encoded),
               satchel.SessionMeta(now, now, now + 600))
    return store


def test_legacy_id_is_honoured_once_and_rotated() -> None:
    old = "0123456789abcdef" * 2
    store = migrated_store(old, user="zoe")
    app = satchel.SessionMiddleware(whoami_app, store=store, legacy_ids=True)
    first = call(app, cookie=f"satchel={old}")
    assert first.body == b"zoe"
    assert store.count() == 1 and not store.exists(legacy_id(old))
    new = first.cookies["satchel"]
    record = store.load(new)
    assert record is not None and LEGACY_KEY not in record.data
    assert call(app, cookie=f"satchel={old}").body == b"nobody"


def test_a_write_only_request_rotates_a_legacy_session_too() -> None:
    old = "fedcba9876543210"
    store = migrated_store(old, user="yan")

    def writer(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        environ["satchel.session"]["seen"] = True  # assigns without reading
        start_response("200 OK", [])
        return [b""]

    response = call(satchel.SessionMiddleware(writer, store=store, legacy_ids=True),
                    cookie=f"satchel={old}")
    new = response.cookies["satchel"]
    record = store.load(new)
    assert record is not None and set(record.data) == {"user", "seen"}
    assert not store.exists(legacy_id(old))


def test_old_ids_that_were_not_migrated_are_never_adopted() -> None:
    store = satchel.MemoryStore()
    app = satchel.SessionMiddleware(
        lambda e, s: (e["satchel.session"].update(a=1), s("200 OK", []), [b""])[2],
        store=store, legacy_ids=True, strict=False)
    old = "a" * 32
    response = call(app, cookie=f"satchel={old}")
    new = response.cookies["satchel"]
    assert new != legacy_id(old) and is_valid_id(new)
    assert not store.exists(legacy_id(old))


def test_a_migrated_session_answers_only_to_its_old_id() -> None:
    old = "b" * 64
    store = migrated_store(old, user="xena")
    app = satchel.SessionMiddleware(whoami_app, store=store, legacy_ids=True)
    assert call(app, cookie=f"satchel={legacy_id(old)}").body == b"nobody"
    off = satchel.SessionMiddleware(whoami_app, store=store)  # legacy_ids off: ignored
    assert call(off, cookie=f"satchel={old}").body == b"nobody"
    assert store.exists(legacy_id(old))


def test_encrypted_beaker_sessions_are_counted_unreadable(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "beaker"
    beaker_logins({"session.type": "file", "session.data_dir": str(data_dir),
                   "session.encrypt_key": "k" * 32, "session.validate_key": "v" * 32}, ["uma"])
    assert run_cli("--from", f"beaker-file:{data_dir}", "--to", "memory://") == 1
    assert "failed 1: 1 unreadable: an encrypted" in capsys.readouterr().out


class Cart:
    """An application's own class, as a Beaker session may hold one."""

    def __init__(self, items: list[str]) -> None:
        self.items = items


def test_allow_class_admits_an_applications_own_class(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir = tmp_path / "beaker"
    beaker_logins({"session.type": "file", "session.data_dir": str(data_dir)}, ["val"])
    path = next(data_dir.rglob("*.cache"))
    now = time.time()
    inner = {"_creation_time": now, "_accessed_time": now, "user": "val",
             "cart": Cart(["tea"])}
    path.write_bytes(pickle.dumps({"session": base64.b64encode(pickle.dumps(inner, 2))}))
    target = f"sqlite:///{tmp_path}/a.db"
    name = f"{Cart.__module__}.Cart"
    assert run_cli("--from", f"beaker-file:{data_dir}", "--to", target) == 1
    assert f"the pickle names {name}, which is not allowed" in capsys.readouterr().out
    monkeypatch.setenv("SATCHEL_SECRET", "a secret of at least sixteen bytes")
    assert run_cli("--allow-class", name, "--pickle", "--from", f"beaker-file:{data_dir}",
                   "--to", target) == 0
    with satchel.open_store(target) as store:
        app = satchel.SessionMiddleware(
            lambda e, s: (s("200 OK", []), [",".join(e["satchel.session"]["cart"].items)
                                            .encode()])[1],
            store=store, cookie_name="beaker.session.id", legacy_ids=True, pickle=True,
            secret="a secret of at least sixteen bytes")
        old_id = path.name[: -len(".cache")]
        assert call(app, cookie=f"beaker.session.id={old_id}").body == b"tea"


def test_beaker_users_keep_their_sessions_through_the_beaker_facade(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The whole move for a Beaker application: migrate, then satchel's Beaker facade with
    ``legacy_ids`` reads the browser's old ``beaker.session.id`` cookie once."""
    from satchel.compat.beaker.middleware import SessionMiddleware as BeakerFacade

    ids = beaker_logins({"session.type": "file", "session.data_dir": str(tmp_path / "b")},
                        ["wendy"])
    target = f"sqlite:///{tmp_path}/satchel.db"
    assert run_cli("--from", f"beaker-file:{tmp_path / 'b'}", "--to", target) == 0

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [])
        return [str(environ["beaker.session"].get("user")).encode()]

    facade = BeakerFacade(app, {"session.type": target, "session.legacy_ids": "true"})
    _, headers, body = wsgi_get(facade, cookie=f"beaker.session.id={ids['wendy']}")
    new_id = cookie_value(headers, "beaker.session.id")
    assert body == b"wendy" and is_valid_id(new_id)
    assert wsgi_get(facade, cookie=f"beaker.session.id={ids['wendy']}")[2] == b"None"
    assert wsgi_get(facade, cookie=f"beaker.session.id={new_id}")[2] == b"wendy"
