"""satchel's logging: silent by default, and a flood of tampered cookies cannot flood the log."""

from __future__ import annotations

import logging
import subprocess
import sys
from typing import Any

import pytest

from satchel import MemoryStore, SessionMiddleware
from satchel.logs import PER_WINDOW, security_limit

from .wsgi_util import call


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    environ["satchel.session"].get("x")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_flood_of_tampered_cookies_logs_a_bounded_count(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(security_limit, "clock", clock)
    middleware = SessionMiddleware(app, store=MemoryStore())
    with caplog.at_level(logging.WARNING, logger="satchel.security"):
        for n in range(500):
            assert call(middleware, cookie=f"satchel=tampered{n}").status == "200 OK"
        flood = [r.getMessage() for r in caplog.records if r.name == "satchel.security"]
        assert flood == ["ignored a malformed session id from a client"] * PER_WINDOW

        caplog.clear()
        clock.now += 61  # the next minute: one more gets through, with the count of the rest
        call(middleware, cookie="satchel=tampered")
        after = [r.getMessage() for r in caplog.records if r.name == "satchel.security"]
        assert after == [f"ignored a malformed session id from a client ({500 - PER_WINDOW} "
                         "more like this suppressed in the last 60 s)"]


def test_kinds_are_limited_apart(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("satchel.security")
    with caplog.at_level(logging.WARNING, logger="satchel.security"):
        for _ in range(3 * PER_WINDOW):
            log.warning("kind one %s", "x")
            log.warning("kind two")
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("kind one x") == PER_WINDOW
    assert messages.count("kind two") == PER_WINDOW


def test_a_library_user_without_logging_set_up_sees_nothing() -> None:
    code = ("import logging, satchel\n"
            "logging.getLogger('satchel').error('should not print')\n"
            "logging.getLogger('satchel.security').warning('nor this')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=30, check=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
