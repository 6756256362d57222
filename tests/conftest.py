"""Every test starts with a quiet ``satchel.security`` rate limit: one test's warnings must not
use up another's."""

from __future__ import annotations

import pytest

from satchel.logs import security_limit


@pytest.fixture(autouse=True)
def _quiet_security_log() -> None:
    security_limit.reset()
