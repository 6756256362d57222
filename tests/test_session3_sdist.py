"""Session3's own test application, taken from its source distribution on PyPI at test time,
with only its imports changed to ``satchel.compat.session3``.

``test/test_session3.py`` in the sdist is the Quixote application Session3's twill scripts
drove (its ``use_volatile``, ``use_directory`` and ``use_shelve`` publisher factories, a
session class whose ``has_info()`` is a ``keep`` flag, a counter, failing pages).  The twill
scripts themselves are not in the sdist; their checks (increment, increment+fail, logout,
logout+fail, logout+nokeep, session_id) are ported below, one function each.
"""

from __future__ import annotations

import contextlib
import importlib.util
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
import quixote

from satchel.integrations.quixote import wsgi_app

from .e2e_util import Client, Response, serve_app

SDIST = "session3==3.4.1"
MEMBER = "test/test_session3.py"


@pytest.fixture(scope="module")
def session3_app(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """The sdist's test application, imports pointed at the facade and nothing else."""
    cache = tmp_path_factory.mktemp("session3-sdist")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
         "--no-binary", ":all:", "--dest", str(cache), SDIST],
        check=True, capture_output=True, timeout=300,
    )
    (archive,) = cache.glob("session3-*.tar.gz")
    with tarfile.open(archive) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("/" + MEMBER))
        extracted = tar.extractfile(member)
        assert extracted is not None
        source = extracted.read().decode("utf-8")
    changed = source.replace("from session3.", "from satchel.compat.session3.")
    differing = [(a, b) for a, b in zip(source.splitlines(), changed.splitlines()) if a != b]
    assert differing and all(a.startswith(("from session3.", "    from session3."))
                             for a, _ in differing), differing
    path = cache / "session3_test_app.py"
    path.write_text(changed)
    spec = importlib.util.spec_from_file_location("session3_test_app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Browser:
    """Enough of twill: go, reload, follow a link by its text, back, and the last page."""

    def __init__(self, base: str) -> None:
        self.client = Client(base)
        self.history: list[str] = []
        self.url = base + "/"
        self.page: Response | None = None

    def go(self, url: str) -> str:
        url = urljoin(self.url, url)
        response = self.client.get(_path(url))
        for _ in range(5):
            if response.status not in (301, 302, 303):
                break
            assert response.location is not None
            url = urljoin(url, response.location)
            response = self.client.get(_path(url))
        if self.page is not None:
            self.history.append(self.url)
        self.url, self.page = url, response
        return response.text

    def reload(self) -> str:
        return self.go(self.url)

    def follow(self, text: str) -> str:
        assert self.page is not None
        marker = f">{text}</a>"
        before = self.page.text.split(marker, 1)[0]
        href = before.rsplit('href="', 1)[1].split('"', 1)[0]
        return self.go(href)

    def back(self) -> str:
        return self.go(self.history.pop())

    @property
    def code(self) -> int:
        assert self.page is not None
        return self.page.status


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


# -- the twill scripts, ported -------------------------------------------------------------------


def increment(b: Browser) -> None:
    assert "Counter is at 0." in b.go("/keep")
    assert "Counter is at 0." in b.reload()
    assert "Counter is at 1." in b.follow("increment")
    assert "Counter is at 2." in b.follow("increment")


def increment_fail(b: Browser) -> None:
    assert "Counter is at 0." in b.go("/keep")
    assert "Counter is at 0." in b.reload()
    assert "Counter is at 1." in b.follow("increment")
    b.follow("increment+error")
    assert b.code == 500
    assert "Counter is at 1." in b.back()  # the failed request saved nothing


def logout(b: Browser) -> None:
    assert "Your session ID is None" in b.go("/")
    assert "Your session ID is None" not in b.follow("assign session")
    b.follow("log out")
    assert b.code == 200
    assert "Your session ID is None" in b.page.text  # type: ignore[union-attr]
    b.follow("log out")
    assert b.code == 200


def logout_fail(b: Browser) -> None:
    assert "Your session ID is None" in b.go("/")
    assert "Your session ID is None" not in b.follow("assign session")
    b.follow("logout+error")
    assert b.code == 500
    assert "Your session ID is None" not in b.back()  # the failed logout kept the session


def logout_nokeep(b: Browser) -> None:
    assert "Your session ID is None" in b.go("/")
    b.follow("log out")
    assert b.code == 200


def session_id(b: Browser) -> None:
    assert "Your session ID is None" in b.go("/")
    assert "Your session ID is None" not in b.follow("assign session")


SCRIPTS: list[Callable[[Browser], None]] = [
    increment, increment_fail, logout, logout_fail, logout_nokeep, session_id,
]


@pytest.fixture
def served(session3_app: ModuleType, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Any]:
    monkeypatch.chdir(tmp_path)  # the factories keep their stores in relative paths

    @contextlib.contextmanager
    def serve(factory: str) -> Iterator[str]:
        quixote.cleanup()
        stdout = sys.stdout
        publisher = None
        try:
            publisher = getattr(session3_app, factory)()  # the sdist's own factory
            with serve_app(wsgi_app(publisher)) as base:
                yield base
        finally:
            sys.stdout = stdout  # Quixote's default logger redirects it
            if publisher is not None:
                publisher.session_manager.store.close()
            quixote.cleanup()

    return serve


@pytest.mark.parametrize("factory", ["use_volatile", "use_directory", "use_shelve"])
def test_session3s_test_application_from_its_sdist(factory: str, served: Any,
                                                  tmp_path: Path) -> None:
    with served(factory) as base:
        for script in SCRIPTS:
            script(Browser(base))  # a fresh browser per script, as twill ran them
    if factory == "use_directory":
        names = [p.name for p in (tmp_path / "sessiondir").iterdir()]
        assert names and all(len(n) == 43 for n in names)  # session files only
