"""Side-by-side WSGI benchmarks: satchel and Beaker in the same run, interleaved, as ratios.

The machines these run on are shared and noisy, so absolute times mean little.  Each round runs
the bare application, the satchel-wrapped one and the Beaker-wrapped one back to back (in a
rotating order), and the figure reported is the median per-request time over the rounds.
A layer's *overhead* is its time minus the bare application's; the verdict is the ratio of
satchel's overhead to Beaker's.  Every response is checked, so a broken layer cannot look fast.
"""

from __future__ import annotations

import gc
import io
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

App = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

KEYS = [f"k{i}" for i in range(10)]
VALUE = "v" * 100
READ_KEY = "k3"

ENVIRON: dict[str, Any] = {
    "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": "/", "QUERY_STRING": "",
    "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
    "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""),
    "wsgi.errors": sys.stderr, "wsgi.multithread": False, "wsgi.multiprocess": False,
    "wsgi.run_once": False,
}


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return None


def request(app: App, cookie: str | None = None, path: str = "/") -> tuple[bytes, list[Any]]:
    """One in-process request; returns the body and the response headers."""
    seen: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen.append(status)
        seen.append(headers)
        return None

    environ = dict(ENVIRON, PATH_INFO=path)
    if cookie:
        environ["HTTP_COOKIE"] = cookie
    result = app(environ, start_response)
    body = b"".join(result)
    close = getattr(result, "close", None)
    if close is not None:
        close()
    if not seen or not seen[0].startswith("200"):
        raise AssertionError(f"unexpected response {seen[:1]} from {app!r}")
    return body, seen[1]


def cookie_from(headers: list[tuple[str, str]]) -> str:
    for name, value in headers:
        if name.lower() == "set-cookie":
            return value.strip().split(";", 1)[0]
    raise AssertionError("no Set-Cookie in the response that created the session")


def run_batch(app: App, cookie: str | None, n: int, check: Callable[[bytes, int], None],
              path: str = "/") -> float:
    """Run ``n`` requests; return seconds per request.  Every body is checked."""
    template = dict(ENVIRON, PATH_INFO=path)
    if cookie:
        template["HTTP_COOKIE"] = cookie
    bodies: list[bytes] = []
    append = bodies.append
    start = time.perf_counter()
    for _ in range(n):
        result = app(dict(template), _start_response)
        append(b"".join(result))
        close = getattr(result, "close", None)
        if close is not None:
            close()
    elapsed = time.perf_counter() - start
    for i, body in enumerate(bodies):
        check(body, i)
    return elapsed / n


@dataclass
class Contender:
    """One way to serve the scenario: the bare app, or the app under a session layer."""

    name: str
    app: App
    cookie: str | None
    check: Callable[[bytes, int], None]
    path: str = "/"
    times: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def compare(contenders: list[Contender], rounds: int, n: int) -> None:
    """Interleave the contenders for ``rounds`` rounds of ``n`` requests each."""
    for c in contenders:  # warm-up: caches, imports, first-touch costs
        run_batch(c.app, c.cookie, max(10, n // 10), c.check, c.path)
    gc.collect()
    for r in range(rounds):
        order = contenders[r % len(contenders):] + contenders[:r % len(contenders)]
        for c in order:
            c.times.append(run_batch(c.app, c.cookie, n, c.check, c.path))


def rss_kib() -> int:
    """Resident set size of this process, in KiB (Linux)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    import resource

    return pages * resource.getpagesize() // 1024


def us(seconds: float) -> str:
    return f"{seconds * 1e6:8.1f} µs"
