"""Bottle (any WSGI framework) with satchel's middleware, through a real WSGI server on
loopback, over SQLite, Redis and cookie stores: the documented example application itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from . import framework_stores
from .e2e_util import Client, serve_app
from .framework_stores import SECRET
from .test_examples import load_example

store_url = framework_stores.store_url
redis_server = framework_stores.redis_server


def test_bottle_example_over_a_real_server(store_url: str, monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    monkeypatch.setenv("SATCHEL_SECRET", SECRET)
    example = load_example("bottle_app", monkeypatch, tmp_path, store=store_url)
    with serve_app(example.wsgi) as base:
        client = Client(base)
        first = client.get("/")
        assert first.text == "visit 1, logged in as nobody."
        assert "HttpOnly" in (first.header("Set-Cookie") or "")
        before = client.cookies["satchel"]
        login = client.follow(client.get("/login/ann"))
        assert login.text == "visit 2, logged in as ann. Welcome, ann."
        assert client.cookies["satchel"] != before  # rotated at login
        if store_url != "cookie://":
            sid = client.cookies["satchel"]
            assert example.wsgi.store.user_sessions("ann") == [sid]
        out = client.follow(client.get("/logout"))
        assert out.text == "visit 1, logged in as nobody."
        stranger = Client(base)
        assert stranger.get("/").text == "visit 1, logged in as nobody."
