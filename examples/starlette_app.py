"""A small Starlette application with satchel's ASGI middleware: code written for Starlette's own
SessionMiddleware (``request.session``), with a server-side store, rotation and expiry.

    pip install 'satchel[asgi]' uvicorn
    uvicorn examples.starlette_app:app   # serves http://127.0.0.1:8000/

Visit /, then /login/ann and /logout.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse
from starlette.routing import Route

from satchel.asgi import SessionMiddleware


async def index(request: Request) -> PlainTextResponse:
    session = await request.session.load()  # read without blocking the event loop
    session["visits"] = session.get("visits", 0) + 1
    notes = " ".join(message for _, message in session.pop_flashes())
    text = f"visit {session['visits']}, logged in as {session.get('user', 'nobody')}. {notes}"
    return PlainTextResponse(text.strip())


async def login(request: Request) -> RedirectResponse:
    session = await request.session.load()
    name = request.path_params["name"]
    session.rotate()                       # a new id at login: defeats session fixation
    session["user"] = session.user = name  # indexed: store.delete_user(name) logs out everywhere
    session.flash(f"Welcome, {name}.")
    return RedirectResponse("/", status_code=303)


async def logout(request: Request) -> RedirectResponse:
    session = await request.session.load()
    session.invalidate()                   # delete the stored session, revoke the cookie
    session.flash("Logged out.")           # ...and start a fresh one for the message
    return RedirectResponse("/", status_code=303)


app = Starlette(
    routes=[Route("/", index), Route("/login/{name}", login), Route("/logout", logout)],
    middleware=[Middleware(SessionMiddleware,
                           store=os.environ.get("SATCHEL_STORE", "sqlite:///sessions.db"))],
)
