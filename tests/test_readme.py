"""The README's examples stay true: its Python examples compile, the quickstart, login and
cookie-session ones run as copied, and CI runs the commands the README says it runs."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest

import satchel

from .wsgi_util import Response, call, environ

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def python_blocks() -> list[tuple[str, str]]:
    """(the section's heading, the code) of every ```python block, in order."""
    blocks, heading = [], ""
    for match in re.finditer(r"^(#{2,3} [^\n]*)$|^( *)```python\n(.*?)^\2```$", README,
                             re.MULTILINE | re.DOTALL):
        if match.group(1):
            heading = match.group(1).lstrip("# ")
        else:
            indent = len(match.group(2))
            code = "\n".join(line[indent:] for line in match.group(3).splitlines())
            blocks.append((heading, code))
    return blocks


def section(title: str) -> list[str]:
    found = [code for heading, code in python_blocks() if heading.startswith(title)]
    assert found, f"no python example under {title!r}"
    return found


def test_every_python_example_compiles() -> None:
    blocks = python_blocks()
    assert len(blocks) >= 3
    for heading, code in blocks:
        compile(code, f"README.md ({heading})", "exec")


def post(app: Any, path: str, form: str, cookie: str | None) -> Response:
    body = form.encode()
    env = environ(path, method="POST", cookie=cookie)
    env.update({"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)),
                "CONTENT_TYPE": "application/x-www-form-urlencoded"})
    return call(lambda _env, start: app(env, start))


def test_quickstart_login_and_cookie_examples_run_as_copied(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    names: dict[str, Any] = {"__name__": "quickstart"}
    quickstart, login = section("Quickstart")
    exec(quickstart, names)
    app = names["app"]
    try:
        first = call(app, "/")
        assert first.body == b"visit number 1"
        cookie = f"satchel={first.cookies['satchel']}"
        assert call(app, "/", cookie=cookie).body == b"visit number 2"
        assert (tmp_path / "sessions.db").exists()  # sqlite:///sessions.db: the current dir
    finally:
        app.close()

    exec(login, names)
    store = satchel.MemoryStore()

    def site(env: dict[str, Any], start: Any) -> Any:
        route = {"/login": names["login"], "/logout": names["logout"]}.get(env["PATH_INFO"])
        if route is not None:
            return route(env, start)
        flashes = env["satchel.session"].pop_flashes()
        start("200 OK", [("Content-Type", "text/plain")])
        return [repr(flashes).encode()]

    middleware = satchel.SessionMiddleware(site, store=store)
    try:
        anonymous = call(middleware, "/", cookie=None)
        logged_in = post(middleware, "/login", "username=ada&password=pw", None)
        assert logged_in.status == "303 See Other"
        sid = logged_in.cookies["satchel"]
        assert store.user_sessions("ada") == [sid]
        assert b"Welcome, ada" in call(middleware, "/", cookie=f"satchel={sid}").body
        logged_out = post(middleware, "/logout", "", f"satchel={sid}")
        assert logged_out.status == "303 See Other" and logged_out.cookies["satchel"] == ""
        assert store.user_sessions("ada") == []
        assert anonymous.body == b"[]"
    finally:
        middleware.close()

    (cookie_example,) = section("Cookie sessions")
    exec(cookie_example, names)
    app = names["app"]
    try:
        first = call(app, "/")
        assert first.body == b"visit number 1"
        sealed = first.cookies["satchel"]
        assert "visits" not in sealed and len(sealed) > 43  # the session itself, encrypted
        assert call(app, "/", cookie=f"satchel={sealed}").body == b"visit number 2"
    finally:
        app.close()


def test_ci_runs_what_the_readme_says() -> None:
    said = README.split("CI runs `.ci/run`, which is exactly:", 1)[1]
    block = re.search(r"```sh\n(.*?)```", said, re.DOTALL)
    assert block is not None
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    commands = [line for line in ci if line and not line.startswith(("#", "set ", "cd "))]
    assert commands == block.group(1).strip().splitlines()
    assert commands[0].startswith("./scripts/test")
