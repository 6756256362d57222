"""Beaker's option names onto satchel's settings: every option honoured or refused by name."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pytest
from webtest import TestApp

from satchel import ConfigurationError, MemoryStore
from satchel.compat.beaker import Session, SessionMiddleware, SessionObject
from satchel.compat.beaker import session as beaker_session_module
from satchel.compat.beaker.options import collect, translate
from satchel.stores.file import FileStore
from satchel.stores.sqlite import SQLiteStore


def _store(**options: Any) -> str:
    return str(translate(options).settings["store"])


def test_prefixes_and_where_options_come_from() -> None:
    config = {"beaker.session.key": "a", "session.type": "memory", "cache_dir": "/x",
              "here": "/etc", "debug": "true"}
    # From a shared configuration only prefixed keys; from keywords bare ones too.
    assert collect(config, {}) == {"key": "a", "type": "memory"}
    assert collect(config, {"key": "b", "session.timeout": "60"}) == {
        "key": "b", "type": "memory", "timeout": "60"}


def test_defaults_follow_beaker() -> None:
    settings = translate({}).settings
    assert settings["store"] == "memory://"
    assert settings["cookie_name"] == "beaker.session.id"
    assert settings["cookie_path"] == "/"
    assert settings["explicit_save"] is True  # without auto, only save() saves
    assert settings["idle_timeout"] is None  # Beaker's timeout defaults to none
    assert settings["absolute_timeout"] == 86400


def test_ini_strings_are_coerced() -> None:
    settings = translate({"auto": "true", "timeout": "3600", "httponly": "false",
                          "secure": "true", "cookie_expires": "false", "samesite": "Strict",
                          "cookie_domain": ".example.com", "use_cookies": "no",
                          "save_accessed_time": "true", "invalidate_corrupt": "true",
                          "crypto_type": "cryptography", "log_file": "none",
                          "lock_dir": "/tmp/locks"}).settings
    assert settings["explicit_save"] is False
    assert settings["idle_timeout"] == 3600
    assert settings["cookie_httponly"] is False
    assert settings["cookie_secure"] is True
    assert settings["persistent"] is True
    assert settings["cookie_samesite"] == "Strict"
    assert settings["cookie_domain"] == ".example.com"
    assert settings["transport"] == "none"
    assert translate({"legacy_ids": "true"}).settings["legacy_ids"] is True


def test_samesite_none_is_the_attribute_and_python_none_is_none() -> None:
    assert translate({"samesite": "None"}).settings["cookie_samesite"] == "None"
    assert translate({"samesite": None}).settings["cookie_samesite"] is None
    assert translate({"samesite": ""}).settings["cookie_samesite"] is None
    mw = SessionMiddleware(_ok, samesite="None")
    try:
        assert mw.core.transport.secure is True  # SameSite=None needs Secure
    finally:
        mw.close()


def test_python_values_are_accepted() -> None:
    settings = translate({"auto": True, "timeout": 60, "secure": False,
                          "cookie_expires": dt.timedelta(days=1)}).settings
    assert settings["explicit_save"] is False and settings["idle_timeout"] == 60
    assert settings["cookie_secure"] is None  # Secure still set on https requests
    assert settings["persistent"] is True


def test_long_timeouts_lift_the_absolute_limit() -> None:
    assert translate({"timeout": "604800"}).settings["absolute_timeout"] is None
    settings = translate({"timeout": "600", "absolute_timeout": "7200"}).settings
    assert settings["absolute_timeout"] == 7200


@pytest.mark.parametrize(("options", "url"), [
    ({"type": "memory"}, "memory://"),
    ({"type": "ext:redis", "url": "redis://127.0.0.1:6390/2"}, "redis://127.0.0.1:6390/2"),
    ({"type": "ext:redis", "url": "127.0.0.1:6390"}, "redis://127.0.0.1:6390"),
    ({"type": "ext:rediscluster", "url": "redis://h1:7000,redis://h2:7001/0"},
     "redis+cluster://h1:7000,h2:7001"),
    ({"type": "ext:memcached", "url": "h1:11211;h2:11212"}, "memcached://h1:11211,h2:11212"),
    ({"type": "ext:database", "url": "postgresql+psycopg2://u:p@db/app"},
     "postgresql://u:p@db/app"),
    ({"type": "ext:database", "url": "postgresql://u@db/app", "table_name": "sess"},
     "postgresql://u@db/app?table=sess"),
    ({"type": "ext:database", "url": "mysql+pymysql://u:p@db/app?charset=utf8mb4",
      "table_name": "sess"}, "mysql://u:p@db/app?charset=utf8mb4&table=sess"),
    ({"type": "ext:database", "url": "sqlite:////var/app/s.db"}, "sqlite:////var/app/s.db"),
    ({"type": "redis://127.0.0.1:6390/1"}, "redis://127.0.0.1:6390/1"),
    ({"type": "cookie", "validate_key": "k" * 20}, "cookie://"),
])
def test_types_map_to_store_urls(options: dict[str, str], url: str) -> None:
    assert _store(**options) == url


def test_file_and_dbm_live_in_data_dir(tmp_path: Path) -> None:
    assert _store(data_dir=str(tmp_path)) == f"file://{tmp_path}"  # Beaker: data_dir -> file
    assert _store(type="dbm", data_dir=str(tmp_path / "d")) == (
        f"sqlite:///{tmp_path}/d/sessions.sqlite3")
    for kind, cls in (("file", FileStore), ("dbm", SQLiteStore)):
        mw = SessionMiddleware(_ok, type=kind, data_dir=str(tmp_path / kind))
        try:
            assert isinstance(mw.store, cls)
        finally:
            mw.close()


def test_cookie_keys_feed_the_secret_list() -> None:
    settings = translate({"type": "cookie", "encrypt_key": "e" * 16,
                          "validate_key": "v" * 16}).settings
    assert settings["secret"] == ["e" * 16, "v" * 16]


def test_short_keys_are_stretched_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="satchel.security"):
        settings = translate({"type": "cookie", "validate_key": "hoobermas"}).settings
    (key,) = settings["secret"]
    assert isinstance(key, bytes) and len(key) == 32 and b"hoobermas" not in key
    assert "validate_key" in caplog.text and "hoobermas" not in caplog.text


@pytest.mark.parametrize(("options", "named"), [
    ({"bogus": "1"}, "bogus"),
    ({"id": "abc"}, "id"),
    ({"id_generator": "myapp:make_id"}, "id_generator"),
    ({"encrypt_nonce_bits": "48"}, "encrypt_nonce_bits"),
    ({"invalidate_corrupt": "false"}, "invalidate_corrupt"),
    ({"crypto_type": "nss"}, "crypto_type"),
    ({"log_file": "/var/log/beaker"}, "log_file"),
    ({"namespace_class": "x"}, "namespace_class"),
    ({"session_class": "x"}, "session_class"),
    ({"type": "ext:google"}, "type"),
    ({"type": "file"}, "data_dir"),
    ({"type": "ext:redis"}, "url"),
    ({"type": "ext:database", "url": "oracle://db"}, "url"),
    ({"type": "ext:database", "url": "sqlite:///s.db", "table_name": "t"}, "table_name"),
    ({"type": "memory", "table_name": "t"}, "table_name"),
    ({"type": "ext:memcached", "url": "h:1", "memcache_module": "pylibmc"}, "memcache_module"),
    ({"type": "memory", "memcache_module": "pylibmc"}, "memcache_module"),
    ({"type": "memory", "encrypt_key": "e" * 16}, "encrypt_key"),
    ({"type": "cookie"}, "validate_key"),
    ({"type": "cookie", "validate_key": "v" * 16, "use_cookies": "false"}, "use_cookies"),
    ({"timeout": "60", "save_accessed_time": "false"}, "save_accessed_time"),
    ({"timeout": "soon"}, "timeout"),
    ({"auto": "maybe"}, "auto"),
    ({"data_serializer": "yaml"}, "data_serializer"),
    ({"cookie_expires": dt.datetime(2030, 1, 1)}, "cookie_expires"),
    ({"cookie_expires": "-5"}, "cookie_expires"),
])
def test_unsupported_options_are_refused_by_name(options: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        translate(options)


def test_pickle_is_opted_into_by_name_and_signed() -> None:
    with pytest.raises(ConfigurationError, match="secret"):
        SessionMiddleware(_ok, data_serializer="pickle")
    mw = SessionMiddleware(_ok, data_serializer="pickle", secret="s" * 32)
    try:
        assert mw.engine.codec.name == "pickle"
    finally:
        mw.close()
    assert translate({}).settings.get("pickle") is None  # JSON unless pickle is named


def test_middleware_errors_name_beaker_options() -> None:
    with pytest.raises(ConfigurationError, match="bogus"):
        SessionMiddleware(_ok, {"beaker.session.bogus": "1"})
    # Keys without the prefix in a shared configuration belong to other components.
    SessionMiddleware(_ok, {"bogus": "1", "sqlalchemy.url": "sqlite://"}).close()


def test_module_paths_match_beakers() -> None:
    import satchel.compat.beaker.middleware as middleware

    assert middleware.SessionMiddleware is SessionMiddleware
    assert beaker_session_module.SessionObject is SessionObject
    assert beaker_session_module.Session is Session


def _ok(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def test_session_object_api() -> None:
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = environ["beaker.session"]
        step = environ["PATH_INFO"]
        if step == "/new":
            seen["accessed_before"] = session.accessed()
            session["a"] = 1
            session.save()
            seen.update(is_new=session.is_new, last=session.last_accessed,
                        dirty=session.dirty(), timeout=session.timeout,
                        domain=session.domain, path=session.path, has=session.has_key("a"))
        elif step == "/regenerate":
            seen["old"] = session.id
            session.regenerate_id()
            seen["new"] = session.id
        elif step == "/read":
            seen.update(a=session.get("a"), is_new=session.is_new, copy=session.copy(),
                        created=session.created, last=session.last_accessed,
                        keys=sorted(session))
        elif step == "/delete":
            session.delete()
        start_response("200 OK", [])
        return [b""]

    mw = SessionMiddleware(app, type="memory", timeout=600)
    store = mw.store
    assert isinstance(store, MemoryStore)
    client = TestApp(mw)
    client.get("/new")
    assert seen["accessed_before"] is False and seen["is_new"] is True
    assert seen["last"] is None and seen["dirty"] is True and seen["timeout"] == 600
    assert (seen["domain"], seen["path"], seen["has"]) == (None, "/", True)
    client.get("/read")
    assert seen["a"] == 1 and seen["is_new"] is False and seen["last"] >= seen["created"]
    assert seen["keys"] == ["a"] and seen["copy"] == {"a": 1}
    client.get("/regenerate")
    assert seen["new"] != seen["old"]
    assert store.load(seen["old"]) is None  # the old id is dead: no fixation
    client.get("/read")
    assert seen["a"] == 1
    client.get("/delete")
    assert store.count() == 0
    client.get("/read")
    assert seen["a"] is None and seen["is_new"] is True


def test_sessions_reached_by_id_write_at_once() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        sessions = environ["beaker.session"]
        step, _, sid = environ["PATH_INFO"].strip("/").partition("/")
        if step == "new":
            session = environ["beaker.get_session"]()
            session["n"] = 1
            session.save()
            body = session.id
        else:
            found = sessions.get_by_id(sid)
            assert found is not None
            if step == "bump":
                found["n"] += 1
                found.save()
            else:
                found.delete()
            body = "done"
        start_response("200 OK", [])
        return [body.encode()]

    mw = SessionMiddleware(app, type="memory")
    store = mw.store
    client = TestApp(mw)
    res = client.get("/new")
    sid = res.text
    assert res.headers.getall("Set-Cookie") == [] and store.load(sid) is not None
    client.get(f"/bump/{sid}")
    assert mw.get_by_id(sid)["n"] == 2
    client.get(f"/delete/{sid}")
    assert store.load(sid) is None and mw.get_by_id(sid) is None
