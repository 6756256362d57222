"""Session3's ``DictSession``: a session that is also a dictionary."""

from __future__ import annotations

from collections import UserDict
from typing import Any

from .Session import Session

__all__ = ["DictSession"]


class DictSession(UserDict[Any, Any], Session):
    """A session whose items (``session["cart"]``) are kept like its attributes.

    Keys and attributes are distinct; the items live in the attribute ``data``.
    """

    def __init__(self, id: str | None) -> None:
        Session.__init__(self, id)
        UserDict.__init__(self)
