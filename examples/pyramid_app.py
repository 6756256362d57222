"""A small Pyramid application whose ``request.session`` is kept by satchel.

    pip install 'satchel[pyramid]'
    python examples/pyramid_app.py       # serves http://127.0.0.1:6543/

In an .ini file the same is ``pyramid.includes = satchel.integrations.pyramid`` with
``satchel.store = redis://127.0.0.1:6379/0`` (any ``satchel.<option>``).
"""

from __future__ import annotations

import os
from typing import Any

from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPFound
from pyramid.request import Request
from pyramid.response import Response


def index(request: Request) -> Response:
    s = request.session
    s["visits"] = s.get("visits", 0) + 1
    notes = " ".join(s.pop_flash())
    return Response(f"visit {s['visits']}, logged in as {s.get('user', 'nobody')}. {notes}".strip())


def login(request: Request) -> Any:
    s = request.session
    s.rotate()                   # satchel's API through request.session: a new id at login
    s["user"] = request.matchdict["name"]
    s.flash(f"Welcome, {s['user']}.")
    return HTTPFound("/")


def logout(request: Request) -> Any:
    request.session.invalidate()
    return HTTPFound("/")


def make_app() -> Any:
    settings = {"satchel.store": os.environ.get("SATCHEL_STORE",
                                                "sqlite:///pyramid-sessions.sqlite3")}
    with Configurator(settings=settings) as config:
        config.include("satchel.integrations.pyramid")
        config.add_route("index", "/")
        config.add_route("login", "/login/{name}")
        config.add_route("logout", "/logout")
        config.add_view(index, route_name="index")
        config.add_view(login, route_name="login")
        config.add_view(logout, route_name="logout")
        return config.make_wsgi_app()


if __name__ == "__main__":
    from wsgiref.simple_server import make_server

    make_server("127.0.0.1", 6543, make_app()).serve_forever()
