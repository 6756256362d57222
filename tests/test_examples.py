"""The example applications under examples/ run as the README says."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ModuleType:
    """Import examples/<name>.py with its store in ``tmp_path``."""
    monkeypatch.setenv("SATCHEL_STORE", f"sqlite:///{tmp_path / 'example.db'}")
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
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
