"""The example applications under examples/ run as the README says."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                 store: str | None = None) -> ModuleType:
    """Import examples/<name>.py with its store ``store`` (default: SQLite in ``tmp_path``)."""
    monkeypatch.setenv("SATCHEL_STORE", store or f"sqlite:///{tmp_path / 'example.db'}")
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # Pyramid looks its caller up there
    spec.loader.exec_module(module)
    return module


def test_flask_example(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    example = load_example("flask_app", monkeypatch, tmp_path)
    try:
        client = example.app.test_client()
        assert client.get("/").text == "visit 1, logged in as nobody."
        page = client.get("/login/ann", follow_redirects=True).text
        assert page == "visit 2, logged in as ann. Welcome, ann."
        assert client.get("/logout", follow_redirects=True).text == (
            "visit 3, logged in as nobody. Logged out."
        )
    finally:
        example.app.extensions["satchel"].close()


DJANGO_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
import django, django_app
django.setup()
from django.test import Client
c = Client()
print(c.get("/").content.decode())
first = c.cookies["sessionid"].value
print(c.get("/login/ann", follow=True).content.decode())
print(c.cookies["sessionid"].value != first, c.cookies["sessionid"]["max-age"])
print(c.get("/logout", follow=True).content.decode())
"""


def test_django_example(tmp_path: Path) -> None:
    # A subprocess: the example configures Django's process-wide settings its own way.
    env = {**os.environ, "SATCHEL_STORE": f"sqlite:///{tmp_path / 'example.db'}"}
    out = subprocess.run([sys.executable, "-c", DJANGO_SCRIPT, str(EXAMPLES)], env=env,
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.splitlines() == [
        "visit 1, logged in as nobody.",
        "visit 2, logged in as ann. Welcome, ann.",
        "True 1209600",
        "visit 1, logged in as nobody.",
    ]


def test_pyramid_example(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import webtest

    example = load_example("pyramid_app", monkeypatch, tmp_path)
    app = webtest.TestApp(example.make_app())
    assert app.get("/").text == "visit 1, logged in as nobody."
    before = app.cookies["satchel"]
    assert app.get("/login/ann").follow().text == "visit 2, logged in as ann. Welcome, ann."
    assert app.cookies["satchel"] != before
    assert app.get("/logout").follow().text == "visit 1, logged in as nobody."
    from pyramid.interfaces import ISessionFactory

    app.app.registry.queryUtility(ISessionFactory).close()


def test_starlette_example(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    example = load_example("starlette_app", monkeypatch, tmp_path)
    with TestClient(example.app) as client:
        assert client.get("/").text == "visit 1, logged in as nobody."
        first = client.cookies["satchel"]
        assert client.get("/login/ann").text == "visit 2, logged in as ann. Welcome, ann."
        assert client.cookies["satchel"] != first  # rotated at login
        assert client.get("/logout").text == "visit 1, logged in as nobody. Logged out."


def test_fastapi_example(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    example = load_example("fastapi_app", monkeypatch, tmp_path)
    with TestClient(example.app) as client:
        schema = client.get("/openapi.json").json()
        cookie = schema["components"]["securitySchemes"]["satchel session"]
        assert cookie == {"type": "apiKey", "in": "cookie", "name": "satchel",
                          "description": "The satchel session id, set by the server."}
        assert {"satchel session": []} in schema["paths"]["/me"]["get"]["security"]

        assert client.get("/me").json() == {"user": None}
        token = client.get("/csrf").json()["csrf"]
        assert client.post("/login", json={"user": "ann"}).status_code == 403
        assert client.post("/login", json={"user": "ann"},
                           headers={"X-CSRF-Token": "forged"}).status_code == 403
        before = client.cookies["satchel"]
        answer = client.post("/login", json={"user": "ann"}, headers={"X-CSRF-Token": token})
        assert answer.json() == {"user": "ann"}
        assert client.cookies["satchel"] != before  # rotated
        assert client.get("/me").json() == {"user": "ann"}
        # The token seen before login is worthless after it.
        assert client.post("/logout", headers={"X-CSRF-Token": token}).status_code == 403
        token = client.get("/csrf").json()["csrf"]
        assert client.post("/logout", headers={"X-CSRF-Token": token}).json() == {"ok": True}
        assert client.get("/me").json() == {"user": None}
