"""FastAPI: the session as a dependency, its cookie declared in the OpenAPI schema.

    from fastapi import Depends, FastAPI
    import satchel.fastapi
    from satchel.asgi import SessionMiddleware

    app = FastAPI()
    app.add_middleware(SessionMiddleware, store="sqlite:///sessions.db")

    @app.get("/")
    async def index(session: satchel.fastapi.SessionDep) -> dict:
        ...  # or: session: Annotated[satchel.Session, Depends(satchel.fastapi.session)]

The dependency reads the session without blocking the event loop (``await session.load()``),
so ``async def`` endpoints may touch it at once.  The middleware does the rest.
"""

# No ``from __future__ import annotations``: FastAPI reads these annotations at run time, and
# the cookie scheme they name is a local of session_dependency.
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyCookie

from .session import Session

__all__ = ["SessionDep", "session", "session_dependency"]


def session_dependency(cookie_name: str = "satchel") -> Callable[..., Awaitable[Session]]:
    """A dependency giving the request's session, read, for a middleware whose cookie is
    ``cookie_name`` (its ``cookie_name`` option); the cookie appears in the OpenAPI schema as
    an API-key cookie, optional (a first visit has none)."""
    scheme = APIKeyCookie(name=cookie_name, auto_error=False, scheme_name="satchel session",
                          description="The satchel session id, set by the server.")

    async def session(request: Request,
                      _cookie: Annotated[str | None, Security(scheme)] = None) -> Session:
        found = request.scope.get("session")
        if not isinstance(found, Session):
            raise RuntimeError("satchel.fastapi.session needs satchel.asgi.SessionMiddleware")
        return await found.load()

    return session


#: The session of a middleware with the default cookie name (``satchel``).
session = session_dependency()

#: ``session: SessionDep`` in an endpoint's parameters: the session, read.
SessionDep = Annotated[Session, Depends(session)]
