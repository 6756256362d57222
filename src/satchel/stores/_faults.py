"""How a store reports a failure: a setting the store refuses, or an outage, in the driver's words.

A wrong password, an unknown database, a bad option or a directory the process may not write
is not an outage: retrying will not help, and the operator must be told what to fix.  Each
store names the driver errors that mean such a fault and raises :class:`StoreMisconfigured`;
everything else stays :class:`StoreUnavailable`.  Both messages carry the driver's reason, on
one line, with the store's secrets masked (drivers do not echo passwords, but nothing here
relies on it).
"""

from __future__ import annotations

import errno
from collections.abc import Iterable

from ..errors import StoreMisconfigured, StoreUnavailable

__all__ = ["PERMISSION_ERRNOS", "misconfigured", "reason", "unavailable"]

MAX_REASON = 300

# OS errors that mean the process may not use the path it was given, however often it retries.
PERMISSION_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR})


def reason(exc: BaseException, secrets: Iterable[str | None] = ()) -> str:
    """The driver's message for ``exc`` on one line, bounded, with ``secrets`` masked."""
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    elif len(exc.args) == 2 and isinstance(exc.args[0], int):  # DB-API drivers: (code, text)
        text = f"{exc.args[1]} (error {exc.args[0]})"
    else:
        text = str(exc)
    text = " ".join(text.split()) or type(exc).__name__
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."


def misconfigured(where: str, exc: BaseException,
                  secrets: Iterable[str | None] = ()) -> StoreMisconfigured:
    """``where`` refuses the settings; the reason says which (never a secret)."""
    return StoreMisconfigured(f"{where} refuses satchel's settings: {reason(exc, secrets)}")


def unavailable(where: str, exc: BaseException,
                secrets: Iterable[str | None] = ()) -> StoreUnavailable:
    """``where`` cannot be used right now (an outage); the reason is the driver's."""
    return StoreUnavailable(f"{where} is unavailable: {reason(exc, secrets)}")
