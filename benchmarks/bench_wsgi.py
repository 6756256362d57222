"""satchel vs Beaker 1.14 through WSGI, in-process, per store and scenario.

    .venv/bin/python benchmarks/bench_wsgi.py [--stores memory,file,sqlite] [--rounds 15]

Scenarios, on an existing session of 10 keys x 100 bytes: ``read`` one key, ``write`` one key
(a new value every request).  Both systems run with their default settings (Beaker writes the
access time on every read; satchel touches it at most once a minute).  Also measured: a request
that never touches its session (satchel must make no store call and add under 5 µs), and the
process's memory over many requests per store (it must stay flat).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import satchel
from harness import (
    KEYS,
    READ_KEY,
    VALUE,
    App,
    Contender,
    compare,
    cookie_from,
    request,
    rss_kib,
    run_batch,
    us,
)

SECRET = "benchmark-secret-0123456789abcdef"
EXPECTED_READ = VALUE.encode()
_counter = itertools.count()


def dispatch(get_session: Callable[[dict[str, Any]], Any], save: Callable[[Any], None]) -> App:
    """The benchmark application; identical for the bare app and both session layers."""

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        if path == "/read":
            body = get_session(environ)[READ_KEY].encode()
        elif path == "/write":
            value = f"w{next(_counter):099d}"
            session = get_session(environ)
            session[READ_KEY] = value
            save(session)
            body = value.encode()
        elif path == "/setup":
            session = get_session(environ)
            for key in KEYS:
                session[key] = VALUE
            save(session)
            body = b"ok"
        elif path == "/untouched":
            body = b"untouched"
        else:
            raise AssertionError(path)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]

    return app


def bare_app() -> App:
    fake: dict[str, str] = dict.fromkeys(KEYS, VALUE)
    return dispatch(lambda environ: fake, lambda session: None)


def satchel_app(store: Any) -> App:
    inner = dispatch(lambda environ: environ["satchel.session"], lambda session: None)
    return satchel.SessionMiddleware(inner, store=store, secret=SECRET)


def beaker_app(options: dict[str, Any]) -> App:
    from beaker.middleware import SessionMiddleware as BeakerMiddleware

    inner = dispatch(lambda environ: environ["beaker.session"], lambda session: session.save())
    return BeakerMiddleware(inner, {"session.key": "beaker", "session.secret": SECRET,
                                    **options})


class CountingStore(satchel.BaseStore):
    """Counts the calls reaching the real store it wraps (an untouched request must make none)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0
        self.thread_safe = inner.thread_safe
        self.multiprocess_safe = inner.multiprocess_safe
        self.native_expiry = inner.native_expiry

    def __getattribute__(self, name: str) -> Any:
        if name in ("load", "save", "update", "touch", "delete", "exists", "purge"):
            object.__setattr__(self, "calls", object.__getattribute__(self, "calls") + 1)
            return getattr(object.__getattribute__(self, "inner"), name)
        return object.__getattribute__(self, name)


def store_pairs(tmp: Path) -> dict[str, tuple[Callable[[], Any], dict[str, Any]]]:
    """Per store: how to build satchel's store, and Beaker's options for the same kind."""
    return {
        "memory": (lambda: satchel.open_store("memory://"), {"session.type": "memory"}),
        "file": (lambda: satchel.open_store(f"file://{tmp}/satchel-files"),
                 {"session.type": "file", "session.data_dir": str(tmp / "beaker-files"),
                  "session.lock_dir": str(tmp / "beaker-locks")}),
        "sqlite": (lambda: satchel.open_store(f"sqlite:///{tmp}/satchel.db"),
                   {"session.type": "ext:database", "session.url": f"sqlite:///{tmp}/beaker.db",
                    "session.lock_dir": str(tmp / "beaker-db-locks")}),
        # The whole session in an encrypted cookie: AES-GCM here, AES (cryptography) in Beaker.
        "cookie": (lambda: satchel.open_store("cookie://", secret=SECRET),
                   {"session.type": "cookie", "session.encrypt_key": SECRET,
                    "session.validate_key": SECRET + "-validate",
                    "session.crypto_type": "cryptography"}),
    }


def check_equals(expected: bytes) -> Callable[[bytes, int], None]:
    def check(body: bytes, i: int) -> None:
        if body != expected:
            raise AssertionError(f"request {i}: wrong body {body[:20]!r}...")
    return check


def check_written(body: bytes, i: int) -> None:
    if len(body) != 100 or not body.startswith(b"w"):
        raise AssertionError(f"request {i}: wrong body {body[:20]!r}...")


def bench_store(name: str, make_store: Callable[[], Any], beaker_options: dict[str, Any],
                rounds: int, n: int) -> dict[str, float]:
    store = make_store()
    ours = satchel_app(store)
    theirs = beaker_app(beaker_options)
    bare = bare_app()
    our_cookie = cookie_from(request(ours, path="/setup")[1])
    their_cookie = cookie_from(request(theirs, path="/setup")[1])
    results: dict[str, float] = {}
    print(f"\n== {name}: satchel {type(store).__name__} vs Beaker {beaker_options['session.type']}")
    print(f"   {'scenario':10} {'bare':>11} {'satchel':>11} {'beaker':>11} "
          f"{'satchel+':>11} {'beaker+':>11}  ratio")
    for scenario in ("read", "write"):
        check = check_equals(EXPECTED_READ) if scenario == "read" else check_written
        path = f"/{scenario}"
        contenders = [
            Contender("bare", bare, None, check, path),
            Contender("satchel", ours, our_cookie, check, path),
            Contender("beaker", theirs, their_cookie, check, path),
        ]
        compare(contenders, rounds, n)
        b, s, k = (c.median for c in contenders)
        ratio = (s - b) / (k - b)
        results[scenario] = ratio
        print(f"   {scenario:10} {us(b)} {us(s)} {us(k)} {us(s - b)} {us(k - b)}  {ratio:.3f}")
        if scenario == "write":  # a write must be what the next request reads
            for app, cookie in ((ours, our_cookie), (theirs, their_cookie)):
                written, headers = request(app, cookie, "/write")
                if any(name.lower() == "set-cookie" for name, _ in headers):
                    cookie = cookie_from(headers)  # a cookie session travels in the cookie
                if request(app, cookie, "/read")[0] != written:
                    raise AssertionError(f"a write was not persisted by {app!r}")
    ours.close()
    store.close()
    return results


def bench_untouched(rounds: int, n: int) -> float:
    counting = CountingStore(satchel.open_store("memory://"))
    ours = satchel_app(counting)
    cookie = cookie_from(request(ours, path="/setup")[1])
    calls_before = counting.calls
    check = check_equals(b"untouched")
    contenders = [Contender("bare", bare_app(), cookie, check, "/untouched"),
                  Contender("satchel", ours, cookie, check, "/untouched")]
    compare(contenders, rounds, n)
    if counting.calls != calls_before:
        raise AssertionError(f"an untouched request reached the store {counting.calls} times")
    overhead = contenders[1].median - contenders[0].median
    print(f"\n== untouched session: satchel adds {us(overhead)} per request, "
          f"{counting.calls - calls_before} store calls in {rounds * n + n // 10} requests")
    return overhead


def bench_memory(name: str, make_store: Callable[[], Any], total: int) -> tuple[int, int]:
    store = make_store()
    ours = satchel_app(store)
    cookie = cookie_from(request(ours, path="/setup")[1])
    check = check_written
    step = total // 10
    samples = []
    for _ in range(10):
        half = step // 2
        run_batch(ours, cookie, half, check, "/write")
        run_batch(ours, cookie, step - half, _any, "/read")
        gc.collect()
        samples.append(rss_kib())
    ours.close()
    store.close()
    growth = samples[-1] - samples[1]
    print(f"   {name:8} RSS after 10%: {samples[1]} KiB, after 100%: {samples[-1]} KiB, "
          f"growth {growth:+d} KiB over {total - step} requests")
    return samples[1], samples[-1]


def _any(body: bytes, i: int) -> None:
    if len(body) != 100:
        raise AssertionError(f"request {i}: wrong body")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default="memory,file,sqlite,cookie")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=400, help="requests per round")
    parser.add_argument("--memory-requests", type=int, default=100_000)
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="satchel-bench-"))
    try:
        pairs = store_pairs(tmp)
        names = [s for s in args.stores.split(",") if s]
        print(f"Python {sys.version.split()[0]}, {args.rounds} rounds x {args.requests} requests; "
              "times are medians per request, '+' is the overhead above the bare app")
        ratios = {n: bench_store(n, *pairs[n], args.rounds, args.requests) for n in names}
        untouched = bench_untouched(args.rounds, args.requests * 5)
        if args.memory_requests:
            print(f"\n== memory over {args.memory_requests} requests (half writes, half reads)")
            for n in names:
                bench_memory(n, pairs[n][0], args.memory_requests)
        print("\n== verdict (satchel overhead / Beaker overhead)")
        for n, r in ratios.items():
            print(f"   {n:8} read {r['read']:.3f}  write {r['write']:.3f}")
        print(f"   untouched overhead {untouched * 1e6:.2f} µs")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
