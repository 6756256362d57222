"""One Django configuration for the Django tests: settings are process-wide, so they are made
once, with SESSION_ENGINE pointing at satchel and the session store in a private directory."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import django
from django.conf import settings

SECRET = "django-tests-secret-0123456789abcdef"

WORKDIR = Path(tempfile.mkdtemp(prefix="satchel-django-"))
atexit.register(shutil.rmtree, WORKDIR, True)
SQLITE_STORE = f"sqlite:///{WORKDIR / 'sessions.db'}"

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY=SECRET,
        ROOT_URLCONF="tests.django_app",
        ALLOWED_HOSTS=["testserver", "127.0.0.1", "localhost"],
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3",
                               "NAME": str(WORKDIR / "django.db")}},
        SESSION_ENGINE="satchel.integrations.django",
        SATCHEL_STORE=SQLITE_STORE,
        MESSAGE_STORAGE="django.contrib.messages.storage.session.SessionStorage",
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    )
    django.setup()


def migrate() -> None:
    """Create the auth tables (once per process)."""
    from django.core.management import call_command

    if not getattr(migrate, "done", False):
        call_command("migrate", verbosity=0, interactive=False)
        migrate.done = True  # type: ignore[attr-defined]
