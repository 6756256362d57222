"""Ids and secrets."""

from __future__ import annotations

import pytest

from satchel import ConfigurationError, Secret, is_valid_id, new_id


def test_new_ids_are_256_bit_urlsafe_and_distinct() -> None:
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(is_valid_id(i) and len(i) == 43 for i in ids)


@pytest.mark.parametrize("bad", [None, "", "short", "a" * 42, "a" * 44, "a" * 42 + "/",
                                 "../" + "a" * 40, "a" * 42 + "\n", 42, b"a" * 43])
def test_malformed_ids_are_rejected(bad: object) -> None:
    assert not is_valid_id(bad)


def test_secret_repr_hides_keys() -> None:
    secret = Secret(["k" * 20, "o" * 20])
    assert "k" * 20 not in repr(secret) and "k" * 20 not in str(secret)
    assert len(secret.keys) == 2


def test_secret_derivation_is_purpose_bound_and_cached() -> None:
    secret = Secret("k" * 32)
    a = secret.derive("one")
    assert a == secret.derive("one") and a is secret.derive("one")
    assert a != secret.derive("two")
    assert len(a[0]) == 32


@pytest.mark.parametrize("bad", ["short", [], [b"x" * 32, "tiny"], [3]])
def test_bad_secrets(bad: object) -> None:
    with pytest.raises(ConfigurationError):
        Secret(bad)  # type: ignore[arg-type]
