"""The README's login, "remember me" and "log out my other devices" example, run as copied."""

from __future__ import annotations

from typing import Any

from .test_readme import section
from .wsgi_util import call


def test_login_remember_me_and_other_devices_run_as_copied() -> None:
    names: dict[str, Any] = {"__name__": "identity_example"}
    (code,) = section("Login, \"remember me\"")
    exec(code, names)
    app, store = names["app"], names["store"]
    try:
        phone = call(app, "/login")
        laptop = call(app, "/login", query="remember=1")
        phone_sid, laptop_sid = phone.cookies["satchel"], laptop.cookies["satchel"]
        assert "Max-Age" not in (phone.header("Set-Cookie") or "")
        max_age = int((laptop.header("Set-Cookie") or "").split("Max-Age=")[1].split(";")[0])
        assert 30 * 86400 - 5 <= max_age <= 30 * 86400  # remembered for 30 days
        assert sorted(store.user_sessions("ada")) == sorted([phone_sid, laptop_sid])
        assert call(app, "/", cookie=f"satchel={phone_sid}").body == b"user: ada"
        call(app, "/logout-others", cookie=f"satchel={laptop_sid}")
        assert store.user_sessions("ada") == [laptop_sid]
        assert call(app, "/", cookie=f"satchel={phone_sid}").body == b"user: None"
        out = call(app, "/logout", cookie=f"satchel={laptop_sid}")
        assert out.cookies["satchel"] == "" and store.user_sessions("ada") == []
    finally:
        app.close()
