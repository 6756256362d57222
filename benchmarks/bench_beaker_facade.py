"""The drop-in measured: one Beaker application, unchanged, under Beaker 1.14 and under
satchel.compat.beaker with the same options, in-process, per store.

    .venv/bin/python benchmarks/bench_beaker_facade.py [--stores memory,file,sqlite,cookie]

The application is bench_wsgi's (read one key of ten, or write one and ``save()``); the two
middlewares get the identical Beaker option dict.  Reported as in bench_wsgi: the overhead above
the bare application, and the ratio of the facade's overhead to Beaker's (lower is better).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_wsgi import (
    EXPECTED_READ,
    SECRET,
    bare_app,
    beaker_app,
    check_equals,
    check_written,
    dispatch,
    store_pairs,
)
from harness import App, Contender, compare, cookie_from, request, us
from satchel.compat.beaker.middleware import SessionMiddleware


def facade_app(options: dict[str, Any]) -> App:
    inner = dispatch(lambda environ: environ["beaker.session"], lambda session: session.save())
    return SessionMiddleware(inner, {"session.key": "beaker", "session.secret": SECRET,
                                     **options})


def bench(name: str, options: dict[str, Any], rounds: int, n: int) -> dict[str, float]:
    # The same options, but a directory or database of its own.
    own = {k: v.replace("beaker", "facade") if k in ("session.data_dir", "session.url",
                                                     "session.lock_dir") else v
           for k, v in options.items()}
    ours, theirs, bare = facade_app(own), beaker_app(options), bare_app()
    our_cookie = cookie_from(request(ours, path="/setup")[1])
    their_cookie = cookie_from(request(theirs, path="/setup")[1])
    print(f"\n== {name} ({options['session.type']}): same application, same options")
    print(f"   {'scenario':10} {'bare':>11} {'facade':>11} {'beaker':>11} "
          f"{'facade+':>11} {'beaker+':>11}  ratio")
    ratios = {}
    for scenario in ("read", "write"):
        check = check_equals(EXPECTED_READ) if scenario == "read" else check_written
        contenders = [Contender("bare", bare, None, check, f"/{scenario}"),
                      Contender("facade", ours, our_cookie, check, f"/{scenario}"),
                      Contender("beaker", theirs, their_cookie, check, f"/{scenario}")]
        compare(contenders, rounds, n)
        b, s, k = (c.median for c in contenders)
        ratios[scenario] = (s - b) / (k - b)
        print(f"   {scenario:10} {us(b)} {us(s)} {us(k)} {us(s - b)} {us(k - b)}  "
              f"{ratios[scenario]:.3f}")
    ours.close()
    return ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default="memory,file,sqlite,cookie")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=400, help="requests per round")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="satchel-bench-"))
    try:
        pairs = store_pairs(tmp)
        ratios = {name: bench(name, pairs[name][1], args.rounds, args.requests)
                  for name in args.stores.split(",") if name}
        print("\n== verdict (facade overhead / Beaker overhead)")
        for name, r in ratios.items():
            print(f"   {name:8} read {r['read']:.3f}  write {r['write']:.3f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
