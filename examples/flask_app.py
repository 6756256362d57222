"""A small Flask application whose ``flask.session`` is kept by satchel.

    pip install 'satchel[flask]' flask-login
    flask --app examples/flask_app.py run

Visit /, then /login/ann and /logout: the session id changes at each (see the cookie).
"""

from __future__ import annotations

import os

import flask
import flask_login

from satchel.integrations.flask import Satchel

app = flask.Flask(__name__)
app.config["SECRET_KEY"] = os.environ.get("SECRET_KEY", "change-me-to-a-long-random-string")
Satchel(app, store=os.environ.get("SATCHEL_STORE", "sqlite:///flask-sessions.sqlite3"))

login_manager = flask_login.LoginManager(app)


class User(flask_login.UserMixin):
    def __init__(self, name: str) -> None:
        self.id = name


login_manager.user_loader(User)


@app.route("/")
def index() -> str:
    flask.session["visits"] = flask.session.get("visits", 0) + 1
    who = flask_login.current_user.get_id() or "nobody"
    notes = " ".join(flask.get_flashed_messages())
    return f"visit {flask.session['visits']}, logged in as {who}. {notes}".strip()


@app.route("/login/<name>")
def login(name: str) -> flask.Response:
    flask_login.login_user(User(name))   # satchel rotates the session id here
    flask.session.permanent = True       # a cookie for PERMANENT_SESSION_LIFETIME
    flask.flash(f"Welcome, {name}.")
    return flask.redirect("/")


@app.route("/logout")
def logout() -> flask.Response:
    flask_login.logout_user()            # and here
    flask.flash("Logged out.")
    return flask.redirect("/")
