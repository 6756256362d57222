"""The store contract, as tests.  Every store's test module subclasses :class:`StoreContract`.

A subclass provides ``store`` (a fixture yielding a fresh, empty store) and, for stores that are
``multiprocess_safe``, ``store_spec`` (a picklable ``(url, options)`` that a child process can
pass to ``satchel.open_store`` to reach the same data).  A capability a store lacks is an explicit
skip read from its flags, never a silent pass.
"""

from __future__ import annotations

import inspect
import logging
import math
import multiprocessing
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import satchel
from satchel import Changes, SessionMeta
from satchel.ids import new_id

from .aio_util import FaceBridge
from .contract_identity import IdentityContract
from .wsgi_util import Response, call

HOUR = 3600.0


def meta(now: float | None = None, *, ttl: float = HOUR, user: str | None = None) -> SessionMeta:
    now = time.time() if now is None else now
    return SessionMeta(created=now, accessed=now, expires=now + ttl, user=user)


def put(store: Any, sid: str, data: dict[str, str], **kw: Any) -> None:
    assert store.save(sid, Changes(set=data, create=True), meta(**kw)) is True


def _child_writer(spec: tuple[str, dict[str, Any]], sid: str, prefix: str, n: int) -> None:
    url, options = spec
    store = satchel.open_store(url, **options)
    try:
        for i in range(n):
            changes = Changes(set={f"{prefix}{i}": f'"{i}"'}, create=False)
            if prefix.endswith("1_"):  # one writer updates blindly, the others save
                now = time.time()
                store.update(sid, changes, now, now + HOUR, None)
            else:
                store.save(sid, changes, meta())
    finally:
        store.close()


def _routes(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """``/write`` reads and counts ``n``; ``/assign`` only assigns ``w`` (a blind write);
    ``/read`` reads everything."""
    session = environ["satchel.session"]
    path = environ["PATH_INFO"]
    if path == "/write":
        session["n"] = session.get("n", 0) + 1
    elif path == "/assign":
        session["w"] = environ.get("QUERY_STRING") or "assigned"
    elif path == "/mark":
        session[environ["QUERY_STRING"]] = 1  # a blind write of a key of its own
    body = repr(sorted(dict(session).items())).encode() if path == "/read" else b"ok"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


def _request(mw: Any, path: str, sid: str | None = None, query: str = "") -> Response:
    return call(mw, path, cookie=None if sid is None else f"satchel={sid}", query=query)


def check_reads_as_absent(store: Any, sid: str, caplog: pytest.LogCaptureFixture) -> None:
    """The session under ``sid``, whose stored metadata was garbled, reads as absent: no error,
    a warning on ``satchel.security`` that names no id, and a request gets a fresh session."""
    with caplog.at_level(logging.WARNING, logger="satchel.security"):
        assert store.load(sid) is None
        response = _request(satchel.SessionMiddleware(_routes, store=store), "/write", sid)
    assert response.code == 200, response.body
    assert response.cookies.get("satchel") not in (None, sid)
    assert any(r.name == "satchel.security" for r in caplog.records)
    assert sid not in caplog.text


def _on_both_faces(fixture: Any) -> Any:
    """A ``store`` fixture serving what ``fixture`` makes, as it is and through its async face
    (the ``face`` fixture says which), with the original fixture's own parameters kept."""
    make = fixture.__wrapped__
    marker = getattr(fixture, "_fixture_function_marker", None)
    wanted = list(inspect.signature(make).parameters.values())
    names = [p.name for p in wanted[1:]]
    if "face" not in names:
        wanted.append(inspect.Parameter("face", inspect.Parameter.KEYWORD_ONLY))

    def store(self: Any, **deps: Any) -> Iterator[Any]:
        made = make(self, **{name: deps[name] for name in names})
        is_generator = inspect.isgenerator(made)
        sync_store = next(made) if is_generator else made
        try:
            if deps["face"] == "sync":
                yield sync_store
            else:
                with FaceBridge(sync_store) as bridge:
                    yield bridge
        finally:
            if is_generator:
                next(made, None)

    store.__signature__ = inspect.Signature(wanted)  # type: ignore[attr-defined]
    store.__name__ = store.__qualname__ = "store"
    if marker is not None and marker.params is not None:
        return pytest.fixture(params=marker.params, ids=marker.ids)(store)
    return pytest.fixture(store)


class StoreContract(IdentityContract):
    """Behaviour every store guarantees (see ``satchel.stores.base.Store``).

    Every test runs twice: on the store, and on its async face (``satchel.stores.aio``, what the
    ASGI front door awaits) driven through :class:`FaceBridge`.  A subclass's ``store`` fixture
    is wrapped to serve both, so the one suite covers both faces.
    """

    #: how many writes each concurrent writer makes; stores over a network may lower it
    writes_per_worker = 25

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fixture = cls.__dict__.get("store")
        if fixture is not None:
            cls.store = _on_both_faces(fixture)  # type: ignore[attr-defined]

    @pytest.fixture(params=["sync", "async face"])
    def face(self, request: pytest.FixtureRequest) -> str:
        """Which face of the store the contract drives (see :func:`_on_both_faces`)."""
        return str(request.param)

    @pytest.fixture
    def store_spec(self) -> tuple[str, dict[str, Any]]:
        pytest.skip("this store is not multiprocess_safe: no spec for other processes")

    # -- load / save -------------------------------------------------------------------------

    def test_load_absent_is_none(self, store: Any) -> None:
        assert store.load(new_id()) is None
        assert store.exists(new_id()) is False

    def test_save_then_load_round_trip(self, store: Any) -> None:
        sid = new_id()
        now = time.time()
        data = {"a": '"x"', "b": "[1,2,3]", "ünï": '"çødé ✓"', "big": '"' + "z" * 5000 + '"'}
        assert store.save(sid, Changes(set=data), meta(now, user="ana")) is True
        record = store.load(sid)
        assert record is not None
        assert record.data == data
        assert record.created == pytest.approx(now, abs=1e-3)
        assert record.accessed == pytest.approx(now, abs=1e-3)
        assert record.expires == pytest.approx(now + HOUR, abs=1e-3)
        assert record.user == "ana"
        assert store.exists(sid) is True

    def test_save_merges_against_what_is_stored(self, store: Any) -> None:
        sid = new_id()
        put(store, sid, {"a": "1", "b": "2", "c": "3"})
        ok = store.save(sid, Changes(set={"b": "20", "d": "4"}, deleted=frozenset({"c"}),
                                     create=False), meta())
        assert ok is True
        record = store.load(sid)
        assert record is not None
        assert record.data == {"a": "1", "b": "20", "d": "4"}

    def test_cleared_replaces_all(self, store: Any) -> None:
        sid = new_id()
        put(store, sid, {"a": "1", "b": "2"})
        store.save(sid, Changes(set={"z": "26"}, cleared=True, create=False), meta())
        record = store.load(sid)
        assert record is not None and record.data == {"z": "26"}

    def test_save_without_create_does_not_resurrect(self, store: Any) -> None:
        sid = new_id()
        assert store.save(sid, Changes(set={"a": "1"}, create=False), meta()) is False
        assert store.load(sid) is None

    def test_load_returns_a_copy(self, store: Any) -> None:
        sid = new_id()
        put(store, sid, {"a": "1"})
        record = store.load(sid)
        assert record is not None
        record.data["a"] = "mutated"
        again = store.load(sid)
        assert again is not None and again.data == {"a": "1"}

    def test_user_can_change_and_clear(self, store: Any) -> None:
        sid = new_id()
        put(store, sid, {"a": "1"}, user="ana")
        store.save(sid, Changes(create=False), meta(user="bob"))
        assert store.user_sessions("ana") == []
        assert store.user_sessions("bob") == [sid]
        store.save(sid, Changes(create=False), meta(user=None))
        assert store.user_sessions("bob") == []
        record = store.load(sid)
        assert record is not None and record.user is None

    def test_a_user_without_keys_is_kept(self, store: Any) -> None:
        sid = new_id()
        store.save(sid, Changes(), meta(user="ana"))
        record = store.load(sid)
        assert record is not None and record.data == {} and record.user == "ana"
        assert store.user_sessions("ana") == [sid]

    # -- update: a blind write that keeps what it does not know ------------------------------

    def test_update_applies_changes_and_keeps_created_and_user(self, store: Any) -> None:
        sid = new_id()
        now = time.time()
        put(store, sid, {"a": "1", "b": "2", "c": "3"}, now=now - 50, user="ana")
        ok = store.update(sid, Changes(set={"b": "20", "d": "4"}, deleted=frozenset({"c"}),
                                       create=False), now, now + HOUR, None)
        assert ok is True
        record = store.load(sid)
        assert record is not None
        assert record.data == {"a": "1", "b": "20", "d": "4"}
        assert record.created == pytest.approx(now - 50, abs=1e-3)
        assert record.accessed == pytest.approx(now, abs=1e-3)
        assert record.expires == pytest.approx(now + HOUR, abs=1e-3)
        assert record.user == "ana"

    def test_update_caps_expiry_at_created_plus_lifetime(self, store: Any) -> None:
        sid = new_id()
        now = time.time()
        put(store, sid, {"a": "1"}, now=now - 100)
        assert store.update(sid, Changes(set={"a": "2"}, create=False), now, now + HOUR, 400.0)
        record = store.load(sid)
        assert record is not None
        assert record.expires == pytest.approx(now - 100 + 400, abs=1e-3)

    def test_update_cleared_replaces_all(self, store: Any) -> None:
        sid = new_id()
        put(store, sid, {"a": "1", "b": "2"})
        now = time.time()
        assert store.update(sid, Changes(set={"z": "26"}, cleared=True, create=False),
                            now, now + HOUR, None)
        record = store.load(sid)
        assert record is not None and record.data == {"z": "26"}

    def test_update_of_absent_or_expired_writes_nothing(self, store: Any) -> None:
        now = time.time()
        absent = new_id()
        assert store.update(absent, Changes(set={"a": "1"}, create=False),
                            now, now + HOUR, None) is False
        assert store.load(absent) is None
        dead = new_id()
        store.save(dead, Changes(set={"a": "1"}), SessionMeta(now - 100, now - 100, now - 1))
        assert store.update(dead, Changes(set={"a": "2"}, create=False),
                            now, now + HOUR, None) is False
        assert store.load(dead) is None

    def test_update_without_an_idle_expiry_is_capped_by_the_lifetime(self, store: Any) -> None:
        # No idle timeout: a blind write knows no expiry of its own (math.inf), only the
        # lifetime that caps it against the stored created time.
        sid = new_id()
        now = time.time()
        put(store, sid, {"a": "1"}, now=now - 100)
        assert store.update(sid, Changes(set={"a": "2"}, create=False), now, math.inf, HOUR)
        record = store.load(sid)
        assert record is not None and record.data == {"a": "2"}
        assert record.expires == pytest.approx(now - 100 + HOUR, abs=1e-3)

    def test_update_judges_expiry_by_the_callers_clock(self, store: Any) -> None:
        # ``accessed`` is the caller's now: a record whose expiry is not after it is dead,
        # whatever this machine's clock says.
        sid = new_id()
        now = time.time()
        put(store, sid, {"a": "1"}, now=now, ttl=60)
        later = now + 61
        assert store.update(sid, Changes(set={"a": "2"}, create=False),
                            later, later + HOUR, None) is False
        assert store.touch(sid, later, later + HOUR) is False
        assert store.save(sid, Changes(set={"a": "3"}, create=False),
                          SessionMeta(now, later, later + HOUR)) is False
        record = store.load(sid)
        assert record is None or record.data == {"a": "1"}

    # -- through the middleware -------------------------------------------------------------

    def test_assigning_without_an_idle_timeout(self, store: Any) -> None:
        mw = satchel.SessionMiddleware(_routes, store=store, idle_timeout=None,
                                       absolute_timeout=HOUR)
        first = _request(mw, "/write")
        sid = first.cookies.get("satchel")
        assert first.code == 200 and sid
        for value in ("x", "y"):
            response = _request(mw, "/assign", sid, value)
            assert response.code == 200, response.body
            assert "satchel" not in response.cookies  # the same session, updated in place
        assert _request(mw, "/read", sid).body == repr([("n", 1), ("w", "y")]).encode()
        record = store.load(sid)
        assert record is not None
        assert record.expires == pytest.approx(record.created + HOUR, abs=1e-3)

    def test_a_blind_write_never_revives_a_session_dead_by_the_middlewares_clock(
        self, store: Any
    ) -> None:
        now = [time.time()]
        mw = satchel.SessionMiddleware(_routes, store=store, idle_timeout=60,
                                       absolute_timeout=HOUR, clock=lambda: now[0])
        sid = _request(mw, "/write").cookies.get("satchel")
        assert sid
        now[0] += 61  # idle past its timeout by the middleware's clock, not by the store's
        response = _request(mw, "/assign", sid, "late")
        assert response.code == 200
        fresh = response.cookies.get("satchel")
        assert fresh and fresh != sid  # what was written starts a new session
        assert _request(mw, "/read", fresh).body == repr([("w", "late")]).encode()
        record = store.load(sid)
        assert record is None or "w" not in record.data

    def test_move_carries_what_is_stored_now(self, store: Any) -> None:
        old, new = new_id(), new_id()
        now = time.time()
        put(store, old, {"a": "1", "b": "2"}, now=now - 10, user="ana")
        # another request's write, which the rotating request never read
        assert store.update(old, Changes(set={"c": "3"}, create=False), now, now + HOUR, None)
        moved = store.move(old, new, Changes(set={"a": "10"}, deleted=frozenset({"b"}),
                                             create=False), meta(now, user="bob"))
        assert moved is True
        record = store.load(new)
        assert record is not None and record.data == {"a": "10", "c": "3"}
        assert record.user == "bob" and record.created == pytest.approx(now, abs=1e-3)
        assert store.load(old) is None
        assert store.update(old, Changes(set={"d": "4"}, create=False),
                            now, now + HOUR, None) is False
        assert store.user_sessions("bob") == [new]
        assert store.move(old, new_id(), Changes(create=False), meta(now)) is False
        dead = new_id()
        put(store, dead, {"a": "1"}, now=now, ttl=60)
        assert store.move(dead, new_id(), Changes(create=False), meta(now + 61)) is False

    def test_rotation_keeps_every_write_that_lands_meanwhile(self, store: Any) -> None:
        """A login rotates the id while another request of the same client writes blindly to
        the old one.  A write that lands before the rotation is carried to the new id; one
        that lands during or after it either is carried too or is told the session is gone
        (its response starts another session): never reported kept and then lost."""
        if getattr(store, "client_side", False):
            pytest.skip("a client-side store keeps no record under the old id")
        mw = satchel.SessionMiddleware(_routes, store=store)
        writes: list[tuple[str, Response]] = []

        def write_to(sid: str) -> None:
            # Another request, on another thread, of the client that still holds ``sid``.
            key = f"w{len(writes)}"
            thread = threading.Thread(
                target=lambda: writes.append((key, _request(mw, "/mark", sid, key))))
            thread.start()
            thread.join(30)

        old = _request(mw, "/write").cookies["satchel"]
        rotating: list[int | None] = [None]  # the thread of the rotating request, meanwhile

        def login(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            session = environ["satchel.session"]
            session["n"] = session.get("n", 0) + 1
            session.rotate()
            session["user"] = "ana"
            write_to(old)  # lands after the load, before the rotation is stored
            rotating[0] = threading.get_ident()
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok"]

        for name in ("save", "move", "delete"):
            real = getattr(store, name, None)
            if real is None:
                continue

            def after(*args: Any, real: Any = real) -> Any:
                result = real(*args)
                if rotating[0] == threading.get_ident():
                    write_to(old)  # lands between (or after) the rotation's steps
                return result

            setattr(store, name, after)
        try:
            response = call(satchel.SessionMiddleware(login, store=store), "/",
                            cookie=f"satchel={old}")
        finally:
            rotating[0] = None
            for name in ("save", "move", "delete"):
                if name in vars(store):
                    delattr(store, name)
        new = response.cookies.get("satchel")
        assert response.code == 200 and new and new != old
        assert len(writes) >= 2
        record = store.load(new)
        assert record is not None and record.data.get("user") == '"ana"'
        for key, answer in writes:
            assert answer.code == 200, answer.body
            if "satchel" not in answer.cookies:  # told it wrote to the session it holds
                assert key in record.data, (key, sorted(record.data))
        assert "satchel" not in writes[0][1].cookies  # the write before was carried
        assert store.load(old) is None

    # -- delete / touch / expiry -------------------------------------------------------------

    def test_delete(self, store: Any) -> None:
        sid = new_id()
        put(store, sid, {"a": "1"})
        assert store.delete(sid) is True
        assert store.load(sid) is None
        assert store.delete(sid) is False

    def test_expired_reads_as_absent(self, store: Any) -> None:
        sid = new_id()
        now = time.time()
        store.save(sid, Changes(set={"a": "1"}), SessionMeta(now - 100, now - 100, now - 1))
        assert store.load(sid) is None
        assert store.exists(sid) is False

    def test_touch_moves_expiry(self, store: Any) -> None:
        sid = new_id()
        now = time.time()
        put(store, sid, {"a": "1"}, now=now, ttl=60)
        assert store.touch(sid, now + 30, now + 7200) is True
        record = store.load(sid)
        assert record is not None
        assert record.accessed == pytest.approx(now + 30, abs=1e-3)
        assert record.expires == pytest.approx(now + 7200, abs=1e-3)
        assert record.data == {"a": "1"}
        assert store.touch(new_id(), now, now + 60) is False

    def test_purge_removes_only_expired(self, store: Any) -> None:
        now = time.time()
        live = [new_id() for _ in range(5)]
        dead = [new_id() for _ in range(7)]
        for sid in live:
            put(store, sid, {"a": "1"}, now=now, ttl=HOUR)
        for sid in dead:
            put(store, sid, {"a": "1"}, now=now, ttl=60)
        removed = store.purge(now + 120)
        if not store.native_expiry:
            assert removed == len(dead)
        for sid in live:
            assert store.load(sid) is not None
        assert store.purge(now + 120) == 0

    def test_purge_after_touch_keeps_touched(self, store: Any) -> None:
        now = time.time()
        sid = new_id()
        put(store, sid, {"a": "1"}, now=now, ttl=60)
        store.touch(sid, now + 10, now + HOUR)
        store.purge(now + 120)
        assert store.load(sid) is not None

    # -- admin: ids, count, users ------------------------------------------------------------

    def test_ids_and_count(self, store: Any) -> None:
        if getattr(store, "listable", True) is False:
            pytest.skip("this store cannot list its sessions")
        sids = {new_id() for _ in range(6)}
        for sid in sids:
            put(store, sid, {"a": "1"})
        assert set(store.ids()) == sids
        assert store.count() == len(sids)

    def test_user_sessions_and_delete_user(self, store: Any) -> None:
        mine = {new_id() for _ in range(3)}
        for sid in mine:
            put(store, sid, {"a": "1"}, user="ana")
        other = new_id()
        put(store, other, {"a": "1"}, user="bob")
        assert set(store.user_sessions("ana")) == mine
        assert store.delete_user("ana") == 3
        assert store.user_sessions("ana") == []
        assert store.load(other) is not None

    def test_context_manager_closes(self, store: Any) -> None:
        with store as entered:
            assert entered is store

    # -- concurrency: different keys of one session, none lost -------------------------------

    def test_threads_writing_different_keys_lose_nothing(self, store: Any) -> None:
        if not store.thread_safe:
            pytest.skip("this store is not thread_safe")
        sid = new_id()
        put(store, sid, {"seed": "0"})
        n, workers = self.writes_per_worker, 4
        errors: list[BaseException] = []

        def writer(prefix: str) -> None:
            # Half the writers save (after a read), half update blindly: both must merge.
            blind = prefix.endswith(("1_", "3_"))
            try:
                for i in range(n):
                    changes = Changes(set={f"{prefix}{i}": f'"{i}"'}, create=False)
                    if blind:
                        now = time.time()
                        store.update(sid, changes, now, now + HOUR, None)
                    else:
                        store.save(sid, changes, meta())
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(f"t{w}_",)) for w in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors
        record = store.load(sid)
        assert record is not None
        lost = {f"t{w}_{i}" for w in range(workers) for i in range(n)} - set(record.data)
        assert lost == set()
        assert len(record.data) == 1 + n * workers

    def test_processes_writing_different_keys_lose_nothing(
        self, store: Any, store_spec: tuple[str, dict[str, Any]]
    ) -> None:
        if not store.multiprocess_safe:
            pytest.skip("this store is not multiprocess_safe")
        sid = new_id()
        put(store, sid, {"seed": "0"})
        n, workers = self.writes_per_worker, 3
        ctx = multiprocessing.get_context("spawn")
        procs = [ctx.Process(target=_child_writer, args=(store_spec, sid, f"p{w}_", n))
                 for w in range(workers)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        assert [p.exitcode for p in procs] == [0] * workers
        record = store.load(sid)
        assert record is not None
        lost = {f"p{w}_{i}" for w in range(workers) for i in range(n)} - set(record.data)
        assert lost == set()
