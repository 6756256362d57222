"""Web session management under Pesto's name (``pesto.session``)."""

from __future__ import annotations

from .base import session_middleware

__all__ = ["session_middleware"]
