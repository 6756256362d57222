"""satchel's server stores vs Beaker 1.14's backends on the same private server, as ratios.

    .venv/bin/python benchmarks/bench_servers.py [--stores redis,memcached,postgres,mysql]
        [--rounds 25] [--requests 200] [--profile auto|all|none]

Per store, the script starts a private server (loopback, free port, temporary directory),
points satchel's store and Beaker's matching backend at it (Redis: ``ext:redis``; memcached:
``ext:memcached``; PostgreSQL and MySQL: ``ext:database`` through SQLAlchemy) and stops the
server by its pid at the end, whatever happens.

Scenarios, on an existing session of 10 keys x 100 bytes, as in ``bench_wsgi.py``: ``read``
one key, ``write`` one key (a new value every request), and ``untouched`` (the session is never
looked at).  Each is timed in interleaved rounds of the bare app, satchel and Beaker; a layer's
overhead is its median time less the bare app's, and the verdict is satchel's overhead over
Beaker's (the target is at most 1/3).  Round trips per request are *counted* for both systems
(see ``servers_util.py``): on the server, with statement logging on only while counting, or, for
memcached, at a relay in front of it, through which only apps built for counting connect (they
share the server, so the timed apps' cookies hold there too); the timed path stays direct.

The read and write rounds also time one bare round trip through the client library satchel's
store uses (``PING``, ``SELECT 1``...).  ``floor`` is satchel's round trips times that, over
Beaker's overhead: the ratio satchel would reach if its round trips were all it cost.  Where the
target is missed, cProfile shows where satchel's time goes, by layer and by function.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import pstats
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import satchel
from bench_wsgi import (
    EXPECTED_READ,
    bare_app,
    beaker_app,
    check_equals,
    check_written,
    satchel_app,
)
from harness import App, Contender, compare, cookie_from, request, run_batch, us
from servers_util import BACKENDS, Backend, make_backend

TARGET = 1 / 3
SCENARIOS = ("read", "untouched", "write")  # writes last: reads expect the set-up value
COUNTED_REQUESTS = 6  # per scenario and system when counting round trips


def check_for(scenario: str) -> Callable[[bytes, int], None]:
    if scenario == "read":
        return check_equals(EXPECTED_READ)
    if scenario == "write":
        return check_written
    return check_equals(b"untouched")


@dataclass
class Outcome:
    """One store's figures: medians (s), round trips per request, one bare round trip's price."""

    store: str
    beaker_type: str
    unit: str
    startup: float = 0.0
    medians: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    trips: dict[str, tuple[float, float]] = field(default_factory=dict)
    round_trip: dict[str, float] = field(default_factory=dict)

    def ratio(self, scenario: str) -> float:
        bare, ours, theirs = self.medians[scenario]
        return (ours - bare) / (theirs - bare)

    def floor(self, scenario: str) -> float:
        """The best ratio satchel could reach with its round trips, were they all it cost."""
        bare, _, theirs = self.medians[scenario]
        return self.trips[scenario][0] * self.round_trip.get(scenario, 0.0) / (theirs - bare)


def count_trips(backend: Backend, app: App, cookie: str, scenario: str) -> float:
    """Round trips per request of ``scenario``, counted on the server over a few requests."""
    check = check_for(scenario)
    total = backend.count(
        lambda: run_batch(app, cookie, COUNTED_REQUESTS, check, f"/{scenario}"))
    return total / COUNTED_REQUESTS


@contextlib.contextmanager
def counting_apps(backend: Backend, ours: App, theirs: App,
                  cookies: tuple[str, str]) -> Iterator[tuple[App, App]]:
    """The satchel and Beaker apps whose round trips are counted: the timed ones, unless the
    backend counts at a relay, which the timed apps must not pass through; then apps of their
    own on the same server (so the timed apps' ``cookies`` name sessions they find), past their
    first-use costs as the timed apps are."""
    url, options = backend.counting_url, backend.counting_beaker_options
    if url is None or options is None:
        yield ours, theirs
        return
    store = satchel.open_store(url)
    counted = satchel_app(store)
    try:
        apps = (counted, beaker_app(options))
        for app, cookie in zip(apps, cookies, strict=True):
            run_batch(app, cookie, 1, check_for("read"), "/read")
        yield apps
    finally:
        try:
            getattr(counted, "close")()  # noqa: B009 (the middleware; App types only the call)
        finally:
            store.close()


def ping_app(ping: Callable[[], object]) -> App:
    """The bare app plus one minimal round trip through the store's client library."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        ping()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"pong"]

    return app


def _layer(filename: str) -> str:
    if "/src/satchel/" in filename:
        return "satchel"
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0].split(".", 1)[0]
    if "socket" in filename or "recv" in filename or "send" in filename:
        return "socket I/O (waits for the server)"
    if "/benchmarks/" in filename:
        return "benchmark app"
    return "stdlib and builtins"


def profile_satchel(app: App, cookie: str, scenario: str, n: int, top: int = 12) -> str:
    """Where satchel's time goes in ``n`` requests of ``scenario``: own time per layer (µs per
    request, under cProfile, which inflates call-heavy code), then the costliest functions."""
    check = check_for(scenario)
    request(app, cookie, "/setup")  # reads expect the set-up value
    profiler = cProfile.Profile()
    profiler.enable()
    run_batch(app, cookie, n, check, f"/{scenario}")
    profiler.disable()
    stats = pstats.Stats(profiler)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    layers: dict[str, float] = {}
    rows = []
    for (filename, line, func), (_, calls, tottime, _, _) in raw.items():
        name = f"{filename}:{line}({func})" if line else func
        key = _layer(name)
        layers[key] = layers.get(key, 0.0) + tottime
        rows.append((tottime, calls, name))
    total = sum(layers.values())
    out = [f"      total {total / n * 1e6:.1f} µs/request under the profiler; own time by layer:"]
    for key, spent in sorted(layers.items(), key=lambda kv: -kv[1]):
        out.append(f"        {spent / n * 1e6:7.1f} µs  {100 * spent / total:4.1f}%  {key}")
    out.append("      costliest functions (own time, µs/request, calls/request):")
    for tottime, calls, name in sorted(rows, reverse=True)[:top]:
        short = name.split("site-packages/", 1)[-1].split("/src/", 1)[-1]
        out.append(f"        {tottime / n * 1e6:7.1f} µs  {calls / n:4.1f}  {short}")
    return "\n".join(out)


def bench_backend(backend: Backend, rounds: int, n: int, profile: str) -> Outcome:
    outcome = Outcome(backend.name, backend.beaker_type, backend.unit)
    outcome.startup = backend.start()
    store = satchel.open_store(backend.satchel_url)
    ours = satchel_app(store)
    theirs = beaker_app(backend.beaker_options)
    bare = bare_app()
    ping, close_ping = backend.pinger()
    try:
        print(f"\n== {backend.name}: satchel {type(store).__name__} vs Beaker "
              f"{backend.beaker_type} (server up in {outcome.startup:.1f} s)")
        our_cookie = cookie_from(request(ours, path="/setup")[1])
        their_cookie = cookie_from(request(theirs, path="/setup")[1])
        for app, cookie in ((ours, our_cookie), (theirs, their_cookie)):
            for scenario in SCENARIOS:  # first-use costs: scripts, prepared statements, pools
                run_batch(app, cookie, 3, check_for(scenario), f"/{scenario}")
            request(app, cookie, "/setup")
        with counting_apps(backend, ours, theirs, (our_cookie, their_cookie)) as (
                counted_ours, counted_theirs):
            for scenario in SCENARIOS:
                outcome.trips[scenario] = (
                    count_trips(backend, counted_ours, our_cookie, scenario),
                    count_trips(backend, counted_theirs, their_cookie, scenario))
        for app, cookie in ((ours, our_cookie), (theirs, their_cookie)):
            request(app, cookie, "/setup")
        print(f"   {'scenario':10} {'bare':>11} {'satchel':>11} {'beaker':>11} "
              f"{'satchel+':>11} {'beaker+':>11} {'1 trip':>11}  ratio  floor  trips s/b")
        for scenario in SCENARIOS:
            check = check_for(scenario)
            path = f"/{scenario}"
            contenders = [Contender("bare", bare, None, check, path),
                          Contender("satchel", ours, our_cookie, check, path),
                          Contender("beaker", theirs, their_cookie, check, path)]
            if scenario != "untouched":
                contenders.append(Contender("1 trip", ping_app(ping), None,
                                            check_equals(b"pong"), path))
            compare(contenders, rounds, n * 5 if scenario == "untouched" else n)
            b, s, k = (c.median for c in contenders[:3])
            if len(contenders) > 3:
                outcome.round_trip[scenario] = contenders[3].median - b
            outcome.medians[scenario] = (b, s, k)
            mine, theirs_trips = outcome.trips[scenario]
            trip = us(outcome.round_trip[scenario]) if scenario in outcome.round_trip else ""
            print(f"   {scenario:10} {us(b)} {us(s)} {us(k)} {us(s - b)} {us(k - b)} {trip:>11}  "
                  f"{outcome.ratio(scenario):.3f}  {outcome.floor(scenario):.3f}  "
                  f"{mine:g}/{theirs_trips:g}")
        print("   '1 trip': one bare round trip through the store's client library, timed in the "
              "same rounds;\n   floor = satchel's round trips x '1 trip' / Beaker's overhead")
        body, _ = request(ours, our_cookie, "/read")
        last, _ = request(theirs, their_cookie, "/read")
        if not (body.startswith(b"w") and last.startswith(b"w")):
            raise AssertionError("writes were not persisted")
        for scenario in ("read", "write"):
            if profile == "all" or (profile == "auto" and outcome.ratio(scenario) > TARGET):
                print(f"\n   profile of satchel, {backend.name} {scenario} "
                      f"({rounds * n} requests):")
                print(profile_satchel(ours, our_cookie, scenario, rounds * n))
    finally:
        try:
            close_ping()
            getattr(ours, "close")()  # noqa: B009 (the middleware; App types only the call)
            store.close()
        finally:
            backend.stop()
    return outcome


def print_trips(outcomes: list[Outcome]) -> None:
    print("\n== round trips per request, counted on the server or at a relay in front of it "
          "(the write request only\n   assigns a key: satchel updates without reading, Beaker "
          "loads then saves)")
    print(f"   {'store':10} {'counted as':20} {'':9} {'read':>5} {'write':>6} {'untouched':>10}")
    for o in outcomes:
        for i, who in enumerate(("satchel", f"beaker {o.beaker_type}")):
            label = o.store if i == 0 else ""
            unit = o.unit if i == 0 else ""
            cells = [f"{o.trips[s][i]:g}" for s in ("read", "write", "untouched")]
            print(f"   {label:10} {unit:20} {who[:7]:9} {cells[0]:>5} {cells[1]:>6} {cells[2]:>10}")


def print_verdict(outcomes: list[Outcome]) -> bool:
    print(f"\n== verdict: satchel overhead / Beaker overhead (target <= {TARGET:.3f}), "
          "and satchel's round trips")
    passed = True
    for o in outcomes:
        cells = []
        for scenario in ("read", "write"):
            ratio = o.ratio(scenario)
            ok = ratio <= TARGET
            passed &= ok
            verdict = "ok" if ok else f"MISSED (floor {o.floor(scenario):.3f})"
            cells.append(f"{scenario} {ratio:.3f} {verdict}")
        trips_ok = o.trips["untouched"][0] == 0
        passed &= trips_ok
        b, s, k = o.medians["untouched"]
        cells.append(f"untouched +{(s - b) * 1e6:.1f} µs (Beaker +{(k - b) * 1e6:.1f} µs), "
                     f"{o.trips['untouched'][0]:g} trips {'ok' if trips_ok else 'MISSED'}")
        print(f"   {o.store:10} " + "   ".join(cells))
    return passed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default=",".join(BACKENDS))
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--requests", type=int, default=200,
                        help="requests per round (x5 for the untouched scenario)")
    parser.add_argument("--profile", choices=("auto", "all", "none"), default="auto",
                        help="cProfile satchel's path: where a target is missed (auto), always, "
                             "or never")
    args = parser.parse_args(argv)
    names = [s for s in args.stores.split(",") if s]
    unknown = sorted(set(names) - set(BACKENDS))
    if unknown:
        parser.error(f"unknown store(s) {unknown}; choose from {', '.join(BACKENDS)}")
    backends = [make_backend(name) for name in names]
    began = time.monotonic()
    print(f"Python {sys.version.split()[0]}, {args.rounds} rounds x {args.requests} requests; "
          "times are medians per request, '+' is the overhead above the bare app")
    outcomes: list[Outcome] = []
    try:
        for backend in backends:
            outcomes.append(bench_backend(backend, args.rounds, args.requests, args.profile))
    finally:
        for backend in backends:  # any not reached, or left by an error
            backend.stop()
    print_trips(outcomes)
    passed = print_verdict(outcomes)
    print(f"\n   {'all targets met' if passed else 'some targets missed'}; "
          f"total {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
