"""Beaker's session API and PasteDeploy filter over satchel.

Moving from Beaker is a change of imports (``from satchel.compat.beaker.middleware import
SessionMiddleware``) or of one ``use = egg:satchel#session`` line; the options keep their names.
"""

from __future__ import annotations

from .middleware import SessionMiddleware, session_filter_app_factory, session_filter_factory
from .session import Session, SessionObject

__all__ = [
    "Session",
    "SessionMiddleware",
    "SessionObject",
    "session_filter_app_factory",
    "session_filter_factory",
]
