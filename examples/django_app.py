"""A one-file Django project whose sessions are kept by satchel.

    pip install 'satchel[django]'
    python examples/django_app.py runserver 127.0.0.1:8000

Visit /, then /login/ann (the session key changes: Django's cycle_key is satchel's rotation)
and /logout.  In a real project only the two SESSION_ENGINE/SATCHEL_STORE lines are new.
"""

from __future__ import annotations

import os
import sys

from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=True,
        SECRET_KEY=os.environ.get("SECRET_KEY", "change-me-to-a-long-random-string"),
        ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=["127.0.0.1", "localhost", "testserver"],
        INSTALLED_APPS=["django.contrib.sessions", "django.contrib.messages"],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
        MESSAGE_STORAGE="django.contrib.messages.storage.session.SessionStorage",
        SESSION_ENGINE="satchel.integrations.django",
        SATCHEL_STORE=os.environ.get("SATCHEL_STORE", "sqlite:///django-sessions.sqlite3"),
    )

from django.contrib import messages  # after settings, as Django requires
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path


def index(request: HttpRequest) -> HttpResponse:
    request.session["visits"] = request.session.get("visits", 0) + 1
    who = request.session.get("name", "nobody")
    notes = " ".join(str(m) for m in messages.get_messages(request))
    return HttpResponse(f"visit {request.session['visits']}, logged in as {who}. {notes}".strip())


def login(request: HttpRequest, name: str) -> HttpResponse:
    request.session.cycle_key()              # a new session key for the same data
    request.session["name"] = name
    request.session.set_expiry(14 * 86400)   # "remember me": a two-week persistent cookie
    messages.info(request, f"Welcome, {name}.")
    return HttpResponseRedirect("/")


def logout(request: HttpRequest) -> HttpResponse:
    request.session.flush()                  # deletes the stored session
    return HttpResponseRedirect("/")


urlpatterns = [path("", index), path("login/<name>", login), path("logout", logout)]

if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
