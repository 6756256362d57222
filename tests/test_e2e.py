"""End to end: real servers on loopback, a real HTTP client keeping cookies, real stores on disk.

The demo application runs either in a threading wsgiref server inside the test process or as
its own process (``python -m satchel demo``), which is stopped by pid and started again to
prove that sessions outlive the server.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

import satchel
from satchel.demo import DEMO_PASSWORD, make_app
from satchel.ids import is_valid_id

from .e2e_util import Client, DemoProcess, Response, csrf_token, serve_app


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/sessions.db"


@pytest.fixture
def demo(store_url: str) -> Iterator[str]:
    app = make_app(store_url)
    with serve_app(app) as base:
        yield base


def sid_of(client: Client) -> str:
    return client.cookies["satchel"]


def visits(response: Response) -> int:
    found = re.search(r'id="visits">(\d+)<', response.text)
    assert found is not None, response.text
    return int(found.group(1))


def log_in(client: Client, name: str = "ada") -> Response:
    """Log in through the form; return the page the login redirects to."""
    token = csrf_token(client.get("/login").text)
    response = client.post("/login", {"username": name, "password": DEMO_PASSWORD,
                                      "csrf_token": token})
    assert response.status == 303 and response.location == "/secure-area"
    return client.follow(response)


# -- the demo application ------------------------------------------------------------------------


def test_visit_counter_increments(demo: str) -> None:
    client = Client(demo)
    first = client.get("/")
    assert first.status == 200
    cookie = first.header("Set-Cookie")
    assert cookie is not None and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert [visits(client.get("/")) for _ in range(3)] == [2, 3, 4]
    assert visits(first) == 1
    # A stranger's count is their own.
    assert visits(Client(demo).get("/")) == 1


def test_login_rotates_the_id_and_the_old_id_is_dead(demo: str) -> None:
    client = Client(demo)
    client.get("/")
    client.get("/")
    before = sid_of(client)
    page = log_in(client, "ada")
    after = sid_of(client)
    assert after != before and is_valid_id(after)
    assert "Welcome to the secure area, <strong>ada</strong>" in page.text
    assert "2</dd>" in page.text  # the data survived the rotation (two home visits)

    # Replaying the pre-login cookie gets a fresh anonymous session, not the logged-in one.
    attacker = Client(demo, cookies={"satchel": before})
    denied = attacker.get("/secure-area")
    assert denied.status == 303 and denied.location == "/login"
    assert sid_of(attacker) not in (before, after)
    assert visits(Client(demo, cookies={"satchel": before}).get("/")) == 1
    # The rotated id still works.
    assert client.get("/secure-area").status == 200


def test_secure_area_needs_login(demo: str) -> None:
    client = Client(demo)
    response = client.get("/secure-area")
    assert response.status == 303 and response.location == "/login"
    login = client.follow(response)
    assert login.status == 200 and "Please log in to see the secure area." in login.text
    assert 'name="csrf_token"' in login.text


def test_wrong_password_is_refused_with_a_flash(demo: str) -> None:
    client = Client(demo)
    token = csrf_token(client.get("/login").text)
    response = client.post("/login", {"username": "ada", "password": "nope",
                                      "csrf_token": token})
    assert response.status == 303 and response.location == "/login"
    assert "Wrong username or password" in client.follow(response).text
    assert client.get("/secure-area").status == 303


def test_flash_appears_once(demo: str) -> None:
    client = Client(demo)
    page = log_in(client, "grace")
    assert page.text.count("Welcome, grace: you are logged in.") == 1
    again = client.get("/secure-area")
    assert again.status == 200 and "you are logged in." not in again.text


def test_page_content_is_escaped(demo: str) -> None:
    client = Client(demo)
    page = log_in(client, "<script>alert(1)</script>")
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


def test_csrf_token_is_required(demo: str) -> None:
    client = Client(demo)
    client.get("/login")
    form = {"username": "mallory", "password": DEMO_PASSWORD}
    assert client.post("/login", form).status == 403
    assert client.post("/login", {**form, "csrf_token": "forged"}).status == 403
    assert client.get("/secure-area").status == 303  # still not logged in

    # The same for logout: a forged logout does not end the session.
    log_in(client, "ada")
    assert client.post("/logout", {}).status == 403
    assert client.get("/secure-area").status == 200


def test_logout_revokes_the_session(demo: str) -> None:
    client = Client(demo)
    page = log_in(client, "ada")
    logged_in = sid_of(client)
    response = client.post("/logout", {"csrf_token": csrf_token(page.text)})
    assert response.status == 303 and response.location == "/"
    assert sid_of(client) != logged_in  # the flash lives in a fresh session
    home = client.follow(response)
    assert "You have been logged out" in home.text and "not logged in" in home.text
    assert client.get("/secure-area").status == 303
    replay = Client(demo, cookies={"satchel": logged_in})
    assert replay.get("/secure-area").status == 303


def test_wrong_method_and_unknown_path(demo: str) -> None:
    client = Client(demo)
    response = client.request("DELETE", "/secure-area")
    assert response.status == 405 and response.header("Allow") == "GET"
    assert "<h1>Method not allowed</h1>" in response.text
    assert response.header("Set-Cookie") is None  # no session is made for it
    missing = client.get("/nowhere")
    assert missing.status == 404 and "<h1>Page not found</h1>" in missing.text
    assert missing.header("Set-Cookie") is None
    logout = client.get("/logout")  # a page, which starts no session for a visitor
    assert logout.status == 200 and "nothing to log out of" in logout.text
    assert logout.header("Set-Cookie") is None


# -- the demo as a process -----------------------------------------------------------------------


def test_sessions_survive_a_restart_of_the_demo_process(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path}/sessions.db"
    server = DemoProcess(store_url)
    try:
        server.start()
        client = Client(server.base)
        log_in(client, "ada")
        proc = server.proc
        assert proc is not None
        server.stop(signal.SIGTERM)
        assert proc.returncode == 0  # a clean shutdown, not a kill
        assert "satchel demo: stopped" in server.output()

        server.start()
        page = client.get("/secure-area")
        assert page.status == 200
        assert "Welcome to the secure area, <strong>ada</strong>" in page.text
        out = client.post("/logout", {"csrf_token": csrf_token(page.text)})
        assert out.status == 303
        assert client.get("/secure-area").status == 303
        server.stop(signal.SIGTERM)
        output = server.output()
    finally:
        server.cleanup()
    assert output.count(f"serving on http://127.0.0.1:{server.port}/") == 2
    assert output.count(f"sessions kept in {store_url}") == 2
    assert "Traceback" not in output


# -- transports through a real server ------------------------------------------------------------


def counter_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    session = environ["satchel.session"]
    if environ["PATH_INFO"] == "/logout":
        session.invalidate()
        body = "bye"
    else:
        session["n"] = session.get("n", 0) + 1
        body = f"n={session['n']} id={session.id}"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]


def parse_counter(response: Response) -> tuple[int, str]:
    found = re.fullmatch(r"n=(\d+) id=(\S+)", response.text)
    assert found is not None, response.text
    return int(found.group(1)), found.group(2)


def test_querystring_transport_redirects_then_follows_the_links(store_url: str) -> None:
    app = satchel.SessionMiddleware(counter_app, store=store_url, transport="querystring")
    with serve_app(app) as base:
        client = Client(base)
        response = client.get("/page?x=1")
        assert response.status == 302
        location = response.location
        assert location is not None and location.startswith("/page?x=1&satchel_session=")
        assert is_valid_id(location.rsplit("=", 1)[1])
        assert client.cookies == {}

        n, sid = parse_counter(client.get(location))
        assert n == 1
        # The application puts session.id into its links; following them keeps the session.
        for expected in (2, 3):
            n, next_sid = parse_counter(client.get(f"/page?satchel_session={sid}"))
            assert (n, next_sid) == (expected, sid)
        # A POST without an id is not redirected (only GETs are).
        assert client.request("POST", "/page").status == 200


def test_querystring_redirect_id_is_the_session_id(store_url: str) -> None:
    app = satchel.SessionMiddleware(counter_app, store=store_url, transport="querystring")
    with serve_app(app) as base:
        client = Client(base)
        location = client.get("/").location
        assert location is not None
        redirect_id = location.rsplit("=", 1)[1]
        _, sid = parse_counter(client.get(location))
        assert sid == redirect_id
        assert parse_counter(client.get(location)) == (2, redirect_id)


def test_querystring_transport_without_strict_mode_adopts_the_redirect_id(store_url: str) -> None:
    app = satchel.SessionMiddleware(counter_app, store=store_url, transport="querystring",
                                    strict=False)
    with serve_app(app) as base:
        client = Client(base)
        location = client.get("/").location
        assert location is not None
        redirect_id = location.rsplit("=", 1)[1]
        assert parse_counter(client.get(location)) == (1, redirect_id)
        assert parse_counter(client.get(location)) == (2, redirect_id)


def test_header_transport(store_url: str) -> None:
    app = satchel.SessionMiddleware(counter_app, store=store_url, transport="header")
    with serve_app(app) as base:
        client = Client(base)
        first = client.get("/")
        sid = first.header("X-Session-Id")
        assert sid is not None and is_valid_id(sid)
        assert parse_counter(first) == (1, sid)
        assert first.header("Set-Cookie") is None
        assert "X-Session-Id" in (first.header("Vary") or "")

        second = client.get("/", headers={"X-Session-Id": sid})
        assert parse_counter(second) == (2, sid)
        assert second.header("X-Session-Id") is None  # nothing new to tell the client

        bye = client.get("/logout", headers={"X-Session-Id": sid})
        assert bye.header("X-Session-Id") == ""
        assert parse_counter(client.get("/", headers={"X-Session-Id": sid}))[0] == 1


# -- streaming and concurrency -------------------------------------------------------------------


def streaming_app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    """A generator application that changes its session before and after the body starts."""
    session = environ["satchel.session"]
    path = environ["PATH_INFO"]
    if path == "/show":
        body = json.dumps(dict(session), sort_keys=True).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        yield body
        return
    if path == "/stream":
        session["before"] = "set before start_response"
        start_response("200 OK", [("Content-Type", "text/plain")])
    else:  # /late-start: the session changes between start_response and the first chunk
        start_response("200 OK", [("Content-Type", "text/plain")])
        session["before"] = "set after start_response, before the first chunk"
    yield b"first chunk\n"
    session["during"] = "set after the headers were sent"
    yield b"second chunk\n"


@pytest.mark.parametrize(("path", "before"), [
    ("/stream", "set before start_response"),
    ("/late-start", "set after start_response, before the first chunk"),
])
def test_streaming_response_saves_changes_made_during_the_body(store_url: str, path: str,
                                                               before: str) -> None:
    app = satchel.SessionMiddleware(streaming_app, store=store_url)
    with serve_app(app) as base:
        client = Client(base)
        response = client.get(path)
        assert response.text == "first chunk\nsecond chunk\n"
        assert response.header("Set-Cookie") is not None
        shown = json.loads(client.get("/show").text)
        assert shown == {"before": before, "during": "set after the headers were sent"}


def concurrent_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    session = environ["satchel.session"]
    path = environ["PATH_INFO"]
    if path == "/write":
        key = environ["QUERY_STRING"]
        session.get("start")  # load now, then let the other requests load the same state
        time.sleep(0.05)
        session[key] = key.upper()
        body = b"ok"
    elif path == "/start":
        session["start"] = True
        body = b"started"
    else:
        body = json.dumps(sorted(session)).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


@pytest.mark.parametrize("scheme", ["sqlite", "file"])
def test_concurrent_requests_writing_different_keys_lose_nothing(tmp_path: Path,
                                                                 scheme: str) -> None:
    url = (f"sqlite:///{tmp_path}/sessions.db" if scheme == "sqlite"
           else f"file://{tmp_path}/sessions")
    app = satchel.SessionMiddleware(concurrent_app, store=url)
    keys = [f"key{i}" for i in range(8)]
    with serve_app(app) as base:
        client = Client(base)
        client.get("/start")
        cookies = dict(client.cookies)
        barrier = threading.Barrier(len(keys), timeout=10)
        statuses: list[int] = []

        def write(key: str) -> None:
            barrier.wait()
            statuses.append(Client(base, cookies=dict(cookies)).get(f"/write?{key}").status)

        threads = [threading.Thread(target=write, args=(k,)) for k in keys]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert statuses == [200] * len(keys)
        stored = json.loads(client.get("/dump").text)
        assert stored == sorted(["start", *keys])
