"""Session3's API over satchel: change ``session3`` to ``satchel.compat.session3`` in imports.

Module paths mirror Session3's (``...session3.SessionManager``, ``...session3.Session``,
``...session3.store.DirectorySessionStore``, ...).  What behaves differently, and why, is in the
README's "Moving from Session3" section: ids are 256-bit and validated before any path or key
is built from them, nothing is unpickled, the id is rotated at login, and saves merge per key.
"""

from .DictSession import DictSession
from .Session import Session
from .SessionManager import SessionManager

__all__ = ["DictSession", "Session", "SessionManager"]
