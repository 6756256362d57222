"""Session3's ``Session``: Quixote's session as Session3 shaped it, kept by satchel."""

from __future__ import annotations

from typing import Any

from ...integrations.quixote import Session as _QuixoteSession

__all__ = ["Session"]


class Session(_QuixoteSession):
    """Session3's session: kept while ``user`` is set (``has_info()`` returns ``user``).

    Custom attributes are stored through satchel's codec; ``set_user`` rotates the id.
    """

    MAX_FORM_TOKENS = 32

    def has_info(self) -> Any:
        """Session3's rule: the session is worth keeping while it has a user."""
        return self.user

    def start_request(self) -> None:
        """Session3 sets nothing up at the start of a request."""
