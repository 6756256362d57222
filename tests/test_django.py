"""Django: SESSION_ENGINE = "satchel.integrations.django" under Django's test client, with
django.contrib.auth login/logout, messages and CSRF, over SQLite and Redis."""

from __future__ import annotations

from . import django_setup  # configures Django before any of its models is imported

# isort: split

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.contrib.sessions.backends.base import UpdateError
from django.test import Client, override_settings

import satchel
from satchel import Changes, SessionMeta
from satchel.errors import SessionTooLarge
from satchel.integrations import django as satchel_django

from . import framework_stores

redis_server = framework_stores.redis_server


SERVER_SIDE = pytest.mark.parametrize("store_url", ["sqlite", "redis"], indirect=True)


@pytest.fixture(params=["sqlite", "redis", "cookie"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    options = {}
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'sessions.db'}"
    elif request.param == "redis":
        server = request.getfixturevalue("redis_server")
        server.flush()
        url = server.url
    else:
        url = "cookie://"
        options = {"secret": framework_stores.SECRET}
    with override_settings(SATCHEL_STORE=url, SATCHEL_OPTIONS=options):
        yield url
    satchel_django.close()


@pytest.fixture(scope="module")
def users() -> None:
    django_setup.migrate()
    for name in ("ann", "bob"):
        if not User.objects.filter(username=name).exists():
            User.objects.create_user(name, password=f"{name}-password")


def log_in(client: Client, name: str) -> None:
    assert client.post("/login", {"username": name, "password": f"{name}-password"}).content \
        == b"in"


def test_session_persists_through_djangos_middleware(store_url: str) -> None:
    client = Client()
    assert [client.get("/count").content for _ in range(3)] == [b"1", b"2", b"3"]
    key = client.cookies["sessionid"].value
    if store_url == "cookie://":
        assert not satchel.is_valid_id(key) and len(key) > 60  # the sealed session itself
    else:
        assert satchel.is_valid_id(key) and satchel_django.engine().store.exists(key)


@SERVER_SIDE
def test_login_rotates_the_key_logout_ends_the_session(store_url: str, users: None) -> None:
    client = Client()
    client.get("/count")
    before = client.cookies["sessionid"].value
    log_in(client, "ann")
    after = client.cookies["sessionid"].value
    store = satchel_django.engine().store
    assert after != before and not store.exists(before)
    seen = client.get("/me").json()
    assert seen["user"] == "ann" and seen["messages"] == ["Welcome, ann"]
    assert client.get("/me").json()["messages"] == []  # a message is shown once
    assert client.get("/count").content == b"2"  # data kept across login
    # django.contrib.auth's user is satchel's indexed user: "log out everywhere" works.
    user_id = str(User.objects.get(username="ann").pk)
    assert store.user_sessions(user_id) == [after]
    client.get("/logout")
    assert not store.exists(after)
    assert client.get("/me").json()["user"] is None


@SERVER_SIDE
def test_log_out_everywhere_from_the_store(store_url: str, users: None) -> None:
    first, second = Client(), Client()
    log_in(first, "bob")
    log_in(second, "bob")
    user_id = str(User.objects.get(username="bob").pk)
    assert satchel_django.engine().store.delete_user(user_id) == 2
    assert first.get("/me").json()["user"] is None
    assert second.get("/me").json()["user"] is None


def test_csrf_token_lives_in_the_session_cookie_flow(store_url: str) -> None:
    client = Client(enforce_csrf_checks=True)
    token = client.get("/form").content.decode()
    assert client.post("/post", {"csrfmiddlewaretoken": token}).status_code == 200
    assert client.post("/post", {"csrfmiddlewaretoken": "x" * 64}).status_code == 403


@SERVER_SIDE
def test_set_expiry_gives_a_persistent_cookie_and_a_lifetime(store_url: str) -> None:
    client = Client()
    client.get("/remember", {"seconds": "3600"})
    morsel = client.cookies["sessionid"]
    assert morsel["max-age"] == 3600
    record = satchel_django.engine().store.load(morsel.value)
    assert record is not None
    assert 3590 < record.expires - record.accessed <= 3600
    client.get("/remember", {"seconds": "0"})
    assert client.cookies["sessionid"]["max-age"] == ""  # expires at browser close


@SERVER_SIDE
def test_concurrent_logout_interrupts_a_save(store_url: str) -> None:
    first = satchel_django.SessionStore()
    first["a"] = 1
    first.save()
    other = satchel_django.SessionStore(first.session_key)
    other.delete()
    first["a"] = 2
    with pytest.raises(UpdateError):
        first.save()


@SERVER_SIDE
def test_a_session_deleted_meanwhile_is_session_interrupted(
        store_url: str, caplog: pytest.LogCaptureFixture) -> None:
    client = Client()
    client.get("/count")
    key = client.cookies["sessionid"].value
    # Django's middleware turns the store's UpdateError into SessionInterrupted: a 400.
    assert client.get("/race").status_code == 400
    assert "session was deleted before the request completed" in caplog.text
    assert not satchel_django.engine().store.exists(key)  # not brought back


def test_async_methods(store_url: str) -> None:
    async def scenario() -> tuple[object, object, bool]:
        s = satchel_django.SessionStore()
        await s.aset("k", "v")
        await s.asave()
        old = s.session_key
        await s.acycle_key()
        fresh = satchel_django.SessionStore(s.session_key)
        value = await fresh.aget("k")
        await s.aflush()
        return value, old != s.session_key, await s.aexists(old)

    assert asyncio.run(scenario()) == ("v", True, False)


@SERVER_SIDE  # a sealed cookie stays valid until it expires (Django's signed cookies too)
def test_a_past_expiry_ends_the_session_at_save(store_url: str) -> None:
    s = satchel_django.SessionStore()
    s["x"] = 1
    s.save()
    key = s.session_key
    s.set_expiry(-10)
    s.save()
    assert "x" not in satchel_django.SessionStore(key)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_clearsessions_purges_expired_sessions(store_url: str) -> None:
    from django.core.management import call_command

    store = satchel_django.engine().store
    now = time.time()
    store.save(satchel.new_id(), Changes({"a": "1"}), SessionMeta(now - 100, now - 100, now - 1))
    live = satchel.new_id()
    store.save(live, Changes({"a": "1"}), SessionMeta(now, now, now + 100))
    call_command("clearsessions")  # Django's command: SessionStore.clear_expired()
    assert list(store.ids()) == [live]


@SERVER_SIDE
def test_an_empty_session_stores_nothing(store_url: str) -> None:
    # satchel's rule (Django's db backend would write an empty row): no data, no record.
    s = satchel_django.SessionStore()
    s.save()
    assert s.session_key is None
    assert satchel_django.engine().store.count() == 0


def test_cookie_store_login_and_size_limit(users: None) -> None:
    options = {"secret": framework_stores.SECRET}
    with override_settings(SATCHEL_STORE="cookie://", SATCHEL_OPTIONS=options):
        client = Client()
        client.get("/count")
        before = client.cookies["sessionid"].value
        log_in(client, "ann")
        assert client.cookies["sessionid"].value != before
        assert client.get("/me").json()["user"] == "ann"
        assert client.get("/count").content == b"2"
        client.get("/logout")
        assert client.get("/me").json()["user"] is None
        # Too big for a cookie once Django's cookie attributes are counted: refused, never a
        # cookie the browser would drop.
        with pytest.raises(SessionTooLarge):
            client.get("/write", {"big": "x" * 4000})
    satchel_django.close()
