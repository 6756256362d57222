"""Pesto's session API over satchel: ``satchel.compat.pesto`` stands where ``pesto`` stood.

Only the session part of Pesto is here (``pesto.session_middleware`` and ``pesto.session.*``);
change ``pesto`` to ``satchel.compat.pesto`` in the session imports and keep the rest.
"""

from __future__ import annotations

from .session import session_middleware

__all__ = ["session_middleware"]
