"""Django's own session-backend tests, run unchanged against satchel's SessionStore.

``SessionTestsMixin`` and ``SessionMiddlewareTests`` are taken at test time from Django's source
distribution on PyPI (the version installed here), downloaded once per virtualenv, and run over
SQLite, Redis and the cookie store.  The cases left out, and why:

- ``test_save``, ``test_save_async``: save an empty new session and expect a stored record.
  satchel keeps no record (and Django's middleware sets no cookie) for a session that holds
  nothing; ``test_django.py::test_an_empty_session_stores_nothing`` checks that rule instead.
- With the cookie store,
  ``test_session_save_does_not_resurrect_session_logged_out_in_other_context`` and its async
  twin: a session held by the client cannot be deleted from another request, so the save has
  nothing to be interrupted by (Django skips them for its signed-cookie backend too).
- ``SessionMiddlewareTests.test_empty_session_saved``: reads the row back through Django's
  database model (``Session.objects.get``), which only the db backend writes; satchel deletes
  a session emptied of data instead of keeping an empty record.
"""

from __future__ import annotations

from . import django_setup  # configures Django before any of its models is imported

# isort: split

import ast
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django
import pytest
from django.test import SimpleTestCase, override_settings

from satchel.integrations.django import SessionStore

from . import framework_stores

redis_server = framework_stores.redis_server

LEFT_OUT = {
    "test_save", "test_save_async",
    "test_empty_session_saved",
}


def django_tests_source() -> str:
    """``tests/sessions_tests/tests.py`` from the sdist of the installed Django."""
    version = django.__version__
    cache = Path(sys.prefix) / "satchel-test-sources"
    sdist = cache / f"django-{version}.tar.gz"
    if not sdist.exists():
        cache.mkdir(exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--no-binary", ":all:", f"django=={version}", "-d", str(cache)],
            check=True, timeout=300,
        )
    with tarfile.open(sdist) as tar:
        member = tar.extractfile(f"django-{version}/tests/sessions_tests/tests.py")
        assert member is not None
        return member.read().decode()


def load_django_classes(*names: str) -> dict[str, Any]:
    """Execute the module's imports and the named classes, unchanged, in a namespace."""
    tree = ast.parse(django_tests_source())
    keep: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if isinstance(node, ast.ImportFrom) and node.level:  # its test models: not needed
                continue
            keep.append(node)
        elif isinstance(node, ast.ClassDef) and node.name in names:
            keep.append(node)
    namespace: dict[str, Any] = {"__name__": "django_sessions_tests"}
    exec(compile(ast.Module(body=keep, type_ignores=[]), "sessions_tests/tests.py", "exec"),
         namespace)
    return namespace


# Kept in a dict, not module names: pytest would collect Django's own test case as it stands.
DJANGO = load_django_classes("SessionTestsMixin", "SessionMiddlewareTests")
SessionTestsMixin = DJANGO["SessionTestsMixin"]
_left_out = {name: None for name in LEFT_OUT}
COOKIE_LEFT_OUT = {
    "test_session_save_does_not_resurrect_session_logged_out_in_other_context",
    "test_session_asave_does_not_resurrect_session_logged_out_in_other_context",
}


@pytest.fixture(scope="class")
def redis_store(request: pytest.FixtureRequest) -> Iterator[None]:
    server = request.getfixturevalue("redis_server")
    server.flush()
    with override_settings(SATCHEL_STORE=server.url):
        yield


class TestSatchelSessionSQLite(SessionTestsMixin, SimpleTestCase):  # type: ignore[misc,valid-type]
    backend = SessionStore
    locals().update(_left_out)

    def test_runs_on_the_store_it_names(self) -> None:
        assert type(SessionStore()._engine.store).__name__ == "SQLiteStore"


@pytest.mark.usefixtures("redis_store")
class TestSatchelSessionRedis(SessionTestsMixin, SimpleTestCase):  # type: ignore[misc,valid-type]
    backend = SessionStore
    locals().update(_left_out)

    def test_runs_on_the_store_it_names(self) -> None:
        assert type(SessionStore()._engine.store).__name__ == "RedisStore"


@override_settings(SATCHEL_STORE="cookie://", SATCHEL_OPTIONS={"secret": framework_stores.SECRET})
class TestSatchelSessionCookie(SessionTestsMixin, SimpleTestCase):  # type: ignore[misc,valid-type]
    backend = SessionStore
    locals().update(_left_out)
    locals().update(dict.fromkeys(COOKIE_LEFT_OUT))

    def test_runs_on_the_store_it_names(self) -> None:
        assert type(SessionStore()._engine.store).__name__ == "CookieStore"


class TestDjangoSessionMiddleware(DJANGO["SessionMiddlewareTests"]):  # type: ignore[misc,valid-type]
    locals().update(_left_out)

    @classmethod
    def setUpClass(cls) -> None:
        django_setup.migrate()
        super().setUpClass()


def test_the_mixin_ran_what_it_says() -> None:
    # Guard against an upstream rename making the left-out list silently stale.
    cases = {n for n in dir(SessionTestsMixin) if n.startswith("test_")}
    middleware = {n for n in dir(DJANGO["SessionMiddlewareTests"]) if n.startswith("test_")}
    assert cases | middleware >= LEFT_OUT
    assert len(cases) >= 60 and len(middleware) >= 10
