"""A small Bottle application with satchel's WSGI middleware (the way for any WSGI framework
that has no session API of its own: Bottle, Falcon, CherryPy, a bare WSGI callable).

    pip install satchel bottle
    python examples/bottle_app.py        # serves http://127.0.0.1:8080/

Visit /, then /login/ann and /logout.
"""

from __future__ import annotations

import os

import bottle

import satchel

app = bottle.Bottle()


def session() -> satchel.Session:
    return bottle.request.environ["satchel.session"]  # type: ignore[no-any-return]


@app.get("/")
def index() -> str:
    s = session()
    s["visits"] = s.get("visits", 0) + 1
    notes = " ".join(message for _, message in s.pop_flashes())
    return f"visit {s['visits']}, logged in as {s.get('user', 'nobody')}. {notes}".strip()


@app.get("/login/<name>")
def login(name: str) -> None:
    s = session()
    s.rotate()                 # a new id at login: defeats session fixation
    s["user"] = s.user = name  # indexed: store.delete_user(name) logs out everywhere
    s.flash(f"Welcome, {name}.")
    bottle.redirect("/")


@app.get("/logout")
def logout() -> None:
    session().invalidate()
    bottle.redirect("/")


wsgi = satchel.SessionMiddleware(
    app, store=os.environ.get("SATCHEL_STORE", "sqlite:///bottle-sessions.sqlite3"),
    secret=os.environ.get("SATCHEL_SECRET"),
)

if __name__ == "__main__":
    bottle.run(wsgi, host="127.0.0.1", port=8080)
