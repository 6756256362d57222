"""A Flask application and a Django project on one store read and write each other's sessions
(one cookie name for both, as behind one domain), over SQLite and Redis."""

from __future__ import annotations

from . import django_setup  # noqa: F401 -- configures Django before any of its models is imported

# isort: split

from collections.abc import Iterator
from pathlib import Path

import flask
import pytest
from django.test import Client, override_settings

from satchel.integrations import django as satchel_django
from satchel.integrations.flask import Satchel

from . import framework_stores

redis_server = framework_stores.redis_server


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared.db'}"
    else:
        server = request.getfixturevalue("redis_server")
        server.flush()
        url = server.url
    with override_settings(SATCHEL_STORE=url):
        yield url
    satchel_django.close()


def flask_app(store_url: str) -> flask.Flask:
    app = flask.Flask(__name__)
    app.config.update(SECRET_KEY=framework_stores.SECRET, SESSION_COOKIE_NAME="sessionid")
    Satchel(app, store=store_url)

    @app.route("/put")
    def put() -> str:
        flask.session["cart"] = ["apple", "pear"]
        flask.session["from"] = "flask"
        return "ok"

    @app.route("/get")
    def get() -> dict[str, object]:
        return {"from": flask.session.get("from"), "django": flask.session.get("django")}

    return app


def test_flask_and_django_share_sessions(store_url: str) -> None:
    app = flask_app(store_url)
    try:
        fclient = app.test_client()
        fclient.get("/put")
        cookie = fclient.get_cookie("sessionid")
        assert cookie is not None
        sid = cookie.value

        dclient = Client()
        dclient.cookies["sessionid"] = sid
        assert dclient.get("/read").json() == {"cart": ["apple", "pear"], "from": "flask"}
        assert dclient.get("/write", {"django": "was here"}).content == b"ok"
        assert dclient.cookies["sessionid"].value == sid  # the same session, not a new one

        assert fclient.get("/get").json == {"from": "flask", "django": "was here"}
    finally:
        app.extensions["satchel"].close()
