"""The switch from Beaker to satchel.compat.beaker on a live Pylons-style site: sessions written
by the real Beaker 1.14 (with the ``secret`` every Pylons .ini sets, so its cookies are signed),
copied by ``satchel migrate``, and served by the facade with ``legacy_ids``: a browser that
comes back with its signed Beaker cookie is still logged in, once, and moves to a satchel id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from beaker.middleware import SessionMiddleware as RealBeaker
from webtest import TestApp

from satchel.cli import main
from satchel.compat.beaker.middleware import SessionMiddleware, unsign_cookie

SECRET = "somesecret"  # the seed's Pylons .ini value


def login_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    session = environ["beaker.session"]
    if environ["PATH_INFO"] == "/login":
        session["logged_in"] = True
        session["user"] = environ["QUERY_STRING"]
        session.save()
    start_response("200 OK", [("Content-type", "text/plain")])
    return [str(session.get("user", "nobody")).encode()]


def test_signed_beaker_cookies_survive_the_switch(tmp_path: Path) -> None:
    beaker_dir = tmp_path / "data" / "sessions"
    options = {"beaker.session.key": "my_project_key", "beaker.session.secret": SECRET,
               "beaker.session.data_dir": str(beaker_dir)}
    browser = TestApp(RealBeaker(login_app, options))
    assert browser.get("/login?ann").text == "ann"
    old_cookie = browser.cookies["my_project_key"]
    assert len(old_cookie) == 72  # Beaker's signature, then its id

    target = f"file://{tmp_path / 'satchel'}"
    assert main(["migrate", "--no-progress", "--from", f"beaker-file:{beaker_dir}",
                 "--to", target]) == 0

    site = SessionMiddleware(login_app, {**options, "beaker.session.type": target,
                                         "beaker.session.legacy_ids": "true"})
    try:
        first = TestApp(site).get("/", headers={"Cookie": f"my_project_key={old_cookie}"})
        assert first.text == "ann"
        new_cookie = first.headers["Set-Cookie"].split(";")[0]
        assert new_cookie.startswith("my_project_key=") and old_cookie not in new_cookie
        # The old cookie worked once; the new one keeps the user logged in.
        again = TestApp(site).get("/", headers={"Cookie": f"my_project_key={old_cookie}"})
        assert again.text == "nobody"
        assert TestApp(site).get("/", headers={"Cookie": new_cookie}).text == "ann"
    finally:
        site.close()


def test_only_a_valid_signature_is_unwrapped() -> None:
    import hashlib
    import hmac

    old_id = "0123456789abcdef0123456789abcdef"
    signed = hmac.new(b"k", old_id.encode(), hashlib.sha1).hexdigest() + old_id
    header = f"other=1; key={signed}; more=2"
    assert unsign_cookie(header, "key=", b"k") == f"other=1; key={old_id}; more=2"
    assert unsign_cookie(header, "key=", b"another key") == header
    forged = "0" * 40 + old_id
    assert unsign_cookie(f"key={forged}", "key=", b"k") == f"key={forged}"
    # Without legacy_ids the facade leaves cookies alone.
    mw = SessionMiddleware(login_app, {"beaker.session.secret": SECRET})
    try:
        assert mw._legacy_secret is None
    finally:
        mw.close()
