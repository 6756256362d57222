"""A small FastAPI application: the session as a dependency, login and logout with id rotation,
and CSRF protection for the requests that change state.

    pip install 'satchel[fastapi]' uvicorn
    uvicorn examples.fastapi_app:app     # http://127.0.0.1:8000/docs shows the session cookie

A client first GETs /csrf, then sends the token in the X-CSRF-Token header of each POST.
"""

from __future__ import annotations

import os
from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException
from pydantic import BaseModel

import satchel
import satchel.fastapi
from satchel.asgi import SessionMiddleware

app = FastAPI(title="satchel example")
app.add_middleware(SessionMiddleware,
                   store=os.environ.get("SATCHEL_STORE", "sqlite:///sessions.db"))

SessionDep = satchel.fastapi.SessionDep


def checked(session: SessionDep,
            x_csrf_token: Annotated[str | None, Header()] = None) -> satchel.Session:
    """The session of a request that changes state: its CSRF token must match."""
    if not session.check_csrf(x_csrf_token):
        raise HTTPException(status_code=403, detail="missing or wrong CSRF token")
    return session


CheckedSession = Annotated[satchel.Session, Depends(checked)]


class Login(BaseModel):
    user: str


@app.get("/csrf")
async def csrf(session: SessionDep) -> dict[str, str]:
    return {"csrf": session.csrf_token}


@app.get("/me")
async def me(session: SessionDep) -> dict[str, str | None]:
    return {"user": session.user}


@app.post("/login")
async def login(body: Login, session: CheckedSession) -> dict[str, str]:
    session.rotate()          # a new id (and CSRF token) at login: defeats session fixation
    session.user = body.user  # indexed: store.delete_user(name) logs out everywhere
    return {"user": body.user}


@app.post("/logout")
async def logout(session: CheckedSession) -> dict[str, bool]:
    session.invalidate()      # delete the stored session, revoke the cookie
    return {"ok": True}
