"""The session mapping: laziness, change tracking, rotation, invalidation, flashes, CSRF."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from satchel import Action, Changes, CookieOp, MemoryStore, SessionMeta, new_id

from .harness import Harness


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def load(self, sid: str) -> Any:
        self.calls.append("load")
        return super().load(sid)

    def save(self, sid: str, changes: Changes, meta: SessionMeta) -> bool:
        self.calls.append("save")
        self.last_changes = changes
        return super().save(sid, changes, meta)

    def touch(self, sid: str, accessed: float, expires: float) -> bool:
        self.calls.append("touch")
        return super().touch(sid, accessed, expires)

    def delete(self, sid: str) -> bool:
        self.calls.append("delete")
        return super().delete(sid)


@pytest.fixture
def h() -> Harness:
    return Harness(CountingStore())


def test_untouched_session_does_no_io(h: Harness) -> None:
    sid = h.new_session(a=1)
    h.store.calls.clear()
    h.loads = 0
    s = h.request(sid)
    decision = h.finish(s)
    assert decision.action is Action.NOTHING and not decision.vary
    assert h.store.calls == [] and h.loads == 0


def test_load_happens_once_on_first_touch(h: Harness) -> None:
    sid = h.new_session(a=1, b=2)
    h.store.calls.clear()
    s = h.request(sid)
    assert s["a"] == 1 and s.get("b") == 2 and "a" in s and len(s) == 2
    assert h.store.calls == ["load"]


def test_full_mutable_mapping_api(h: Harness) -> None:
    sid = h.new_session(a=1, b=2, c=3)
    s = h.request(sid)
    assert s.setdefault("d", 4) == 4 and s.setdefault("a", 9) == 1
    assert s.pop("b") == 2 and s.pop("zz", None) is None
    s.update({"e": 5}, f=6)
    assert sorted(s.keys()) == ["a", "c", "d", "e", "f"]
    assert sorted(s.items()) == [("a", 1), ("c", 3), ("d", 4), ("e", 5), ("f", 6)]
    assert sorted(s.values()) == [1, 3, 4, 5, 6]
    del s["c"]
    with pytest.raises(KeyError):
        s["c"]
    with pytest.raises(KeyError):
        del s["nope"]
    h.finish(s)
    again = h.request(sid)
    assert dict(again) == {"a": 1, "d": 4, "e": 5, "f": 6}


def test_only_changed_keys_are_sent(h: Harness) -> None:
    sid = h.new_session(a=1, b="x" * 100, c=[1])
    s = h.request(sid)
    s["a"] = 2
    del s["b"]
    _ = s["c"]  # read, not changed
    h.finish(s)
    changes = h.store.last_changes
    assert changes.set == {"a": "2"} and changes.deleted == {"b"} and not changes.cleared
    assert changes.create is False


def test_in_place_mutation_is_saved(h: Harness) -> None:
    sid = h.new_session(cart=["apple"], prefs={"theme": "dark"})
    s = h.request(sid)
    s["cart"].append("pear")
    s["prefs"]["theme"] = "light"
    decision = h.finish(s)
    assert decision.action is Action.SAVE
    assert set(h.store.last_changes.set) == {"cart", "prefs"}
    again = h.request(sid)
    assert again["cart"] == ["apple", "pear"] and again["prefs"] == {"theme": "light"}


def test_reading_mutable_values_without_change_saves_nothing(h: Harness) -> None:
    sid = h.new_session(cart=["apple"], when=dt.date(2024, 1, 1))
    h.store.calls.clear()
    s = h.request(sid)
    assert s["cart"] == ["apple"] and s["when"].year == 2024
    decision = h.finish(s)
    assert decision.action is Action.NOTHING and decision.vary
    assert h.store.calls == ["load"]


def test_unstorable_value_raises_at_assignment_naming_the_key(h: Harness) -> None:
    s = h.request()
    with pytest.raises(TypeError, match="'thing'"):
        s["thing"] = object()
    with pytest.raises(TypeError, match="keys must be str"):
        s[1] = "x"  # type: ignore[index]


def test_unstorable_nested_value_raises_at_save_and_saves_nothing(h: Harness) -> None:
    sid = h.new_session(a=1)
    s = h.request(sid)
    s["a"] = 2
    s["deep"] = [object()]
    with pytest.raises(TypeError, match="'deep'"):
        h.finish(s)
    assert dict(h.request(sid)) == {"a": 1}


def test_new_visitor_without_data_gets_no_record_and_no_cookie(h: Harness) -> None:
    s = h.request()
    assert s.get("anything") is None and s.is_new
    decision = h.finish(s)
    assert decision.action is Action.NOTHING and decision.cookie is CookieOp.KEEP
    assert h.store.calls == [] and h.store.count() == 0


def test_new_session_with_data_is_saved_and_cookie_set(h: Harness) -> None:
    s = h.request()
    s["user"] = "ana"
    decision = h.finish(s)
    assert decision.action is Action.SAVE and decision.cookie is CookieOp.SET
    assert decision.sid is not None and decision.sid == s.id
    assert h.store.load(decision.sid) is not None


def test_id_of_new_session_is_stable_and_used_for_save(h: Harness) -> None:
    s = h.request()
    early = s.id
    s["x"] = 1
    assert h.finish(s).sid == early


def test_malformed_client_id_never_reaches_the_store(h: Harness) -> None:
    s = h.request("../../etc/passwd")
    assert s.is_new
    assert h.store.calls == []


def test_strict_mode_never_adopts_unknown_ids(h: Harness) -> None:
    planted = new_id()
    s = h.request(planted)
    s["x"] = 1
    decision = h.finish(s)
    assert decision.sid != planted and decision.cookie is CookieOp.SET


def test_lenient_mode_adopts_well_formed_unknown_ids() -> None:
    h = Harness(strict=False)
    planted = new_id()
    s = h.request(planted)
    s["x"] = 1
    assert h.finish(s).sid == planted


def test_unknown_id_without_data_revokes_the_stale_cookie(h: Harness) -> None:
    s = h.request(new_id())
    assert len(s) == 0
    assert h.finish(s).cookie is CookieOp.REVOKE


def test_idle_timeout_expires(h: Harness) -> None:
    h = Harness(idle_timeout=100, absolute_timeout=None)
    sid = h.new_session(a=1)
    h.clock.advance(99)
    assert h.request(sid).get("a") == 1  # and touches (touch_interval 60 passed)
    s = h.request(sid)
    s.get("a")
    h.finish(s)
    h.clock.advance(101)
    expired = h.request(sid)
    assert expired.get("a") is None and expired.is_new


def test_access_slides_idle_expiry_via_touch() -> None:
    h = Harness(idle_timeout=100, absolute_timeout=None, touch_interval=10)
    sid = h.new_session(a=1)
    for _ in range(5):
        h.clock.advance(60)
        s = h.request(sid)
        assert s["a"] == 1
        assert h.finish(s).action is Action.TOUCH
    assert h.request(sid)["a"] == 1  # alive 300 s after creation with a 100 s idle timeout


def test_touch_is_throttled() -> None:
    h = Harness(touch_interval=60)
    sid = h.new_session(a=1)
    h.clock.advance(30)
    s = h.request(sid)
    s.get("a")
    assert h.finish(s).action is Action.NOTHING
    h.clock.advance(31)
    s = h.request(sid)
    s.get("a")
    assert h.finish(s).action is Action.TOUCH


def test_absolute_timeout_expires_even_a_busy_session() -> None:
    h = Harness(idle_timeout=100, absolute_timeout=250, touch_interval=0)
    sid = h.new_session(a=1)
    for _ in range(4):
        h.clock.advance(60)
        s = h.request(sid)
        s["a"] += 1
        h.finish(s)
    h.clock.advance(20)  # 260 s after creation, 20 s after last write
    assert h.request(sid).get("a") is None


def test_failed_request_saves_nothing(h: Harness) -> None:
    sid = h.new_session(a=1)
    s = h.request(sid)
    s["a"] = 2
    assert h.finish(s, failed=True).action is Action.NOTHING
    assert h.request(sid)["a"] == 1


def test_rotate_keeps_data_changes_id_and_deletes_old(h: Harness) -> None:
    sid = h.new_session(a=1, cart=[1, 2])
    s = h.request(sid)
    s.rotate()
    s["user"] = "ana"
    decision = h.finish(s)
    assert decision.sid != sid and decision.cookie is CookieOp.SET
    assert h.store.load(sid) is None
    assert dict(h.request(decision.sid)) == {"a": 1, "cart": [1, 2], "user": "ana"}


def test_rotate_a_new_session(h: Harness) -> None:
    s = h.request()
    s["a"] = 1
    s.rotate()
    decision = h.finish(s)
    assert decision.action is Action.SAVE and h.store.load(decision.sid) is not None


def test_invalidate_deletes_and_revokes(h: Harness) -> None:
    sid = h.new_session(user="ana")
    s = h.request(sid)
    s.invalidate()
    assert len(s) == 0
    decision = h.finish(s)
    assert decision.cookie is CookieOp.REVOKE
    assert h.store.load(sid) is None


def test_invalidate_then_write_starts_fresh_session(h: Harness) -> None:
    sid = h.new_session(user="ana")
    s = h.request(sid)
    s.invalidate()
    s.flash("bye")
    decision = h.finish(s)
    assert decision.cookie is CookieOp.SET and decision.sid != sid
    assert h.store.load(sid) is None
    assert h.request(decision.sid).pop_flashes() == [("message", "bye")]


def test_emptied_session_is_deleted(h: Harness) -> None:
    sid = h.new_session(a=1)
    s = h.request(sid)
    s.clear()
    decision = h.finish(s)
    assert decision.action is Action.DELETE and decision.cookie is CookieOp.REVOKE
    assert h.store.load(sid) is None


def test_clear_then_set_replaces_everything(h: Harness) -> None:
    sid = h.new_session(a=1, b=2)
    s = h.request(sid)
    s.clear()
    s["c"] = 3
    h.finish(s)
    assert h.store.last_changes.cleared
    assert dict(h.request(sid)) == {"c": 3}


def test_concurrent_requests_writing_different_keys_both_survive(h: Harness) -> None:
    sid = h.new_session(seed=0)
    first, second = h.request(sid), h.request(sid)
    first["a"] = 1
    second["b"] = 2
    h.finish(first)
    h.finish(second)
    assert dict(h.request(sid)) == {"seed": 0, "a": 1, "b": 2}


def test_save_after_concurrent_logout_does_not_resurrect(h: Harness) -> None:
    sid = h.new_session(user="ana")
    slow, logout = h.request(sid), h.request(sid)
    assert slow["user"] == "ana"
    slow["cart"] = [1]
    logout.invalidate()
    h.finish(logout)
    decision = h.finish(slow)
    assert decision.cookie is CookieOp.REVOKE
    assert h.store.load(sid) is None


def test_blind_write_after_concurrent_logout_starts_a_fresh_anonymous_session(h: Harness) -> None:
    sid = h.new_session(user="ana")
    slow, logout = h.request(sid), h.request(sid)
    slow["cart"] = [1]  # never reads the session
    logout.invalidate()
    h.finish(logout)
    decision = h.finish(slow)
    assert decision.action is Action.SAVE and decision.cookie is CookieOp.SET
    assert decision.sid != sid and h.store.load(sid) is None
    assert dict(h.request(decision.sid)) == {"cart": [1]}


def test_user_is_indexed_for_logout_everywhere(h: Harness) -> None:
    ids = []
    for _ in range(3):
        s = h.request()
        s["x"] = 1
        s.user = "ana"
        ids.append(h.finish(s).sid)
    assert sorted(h.store.user_sessions("ana")) == sorted(ids)
    assert h.request(ids[0]).user == "ana"
    assert h.store.delete_user("ana") == 3


def test_metadata_times(h: Harness) -> None:
    start = h.clock.now
    sid = h.new_session(a=1)
    h.clock.advance(70)
    s = h.request(sid)
    assert s.created == start and s.accessed == start and not s.is_new
    h.finish(s)


def test_flash_messages(h: Harness) -> None:
    s = h.request()
    s.flash("saved")
    s.flash("careful", "warning")
    sid = h.finish(s).sid
    nxt = h.request(sid)
    assert nxt.pop_flashes("warning") == [("warning", "careful")]
    assert nxt.pop_flashes() == [("message", "saved")]
    assert nxt.pop_flashes() == []


def test_csrf_token_is_stable_and_checked_in_constant_time(h: Harness) -> None:
    s = h.request()
    token = s.csrf_token
    assert token == s.csrf_token and len(token) >= 32
    assert s.check_csrf(token)
    assert not s.check_csrf(token[:-1] + ("A" if token[-1] != "A" else "B"))
    assert not s.check_csrf(None) and not s.check_csrf("")
    sid = h.finish(s).sid
    assert h.request(sid).check_csrf(token)


def test_corrupt_stored_value_reads_as_absent(h: Harness) -> None:
    sid = new_id()
    now = h.clock.now
    h.store.save(sid, Changes(set={"good": "1", "bad": "{not json"}),
                 SessionMeta(now, now, now + 1000))
    s = h.request(sid)
    assert s.get("bad") is None and s["good"] == 1
    assert "bad" not in s


def test_second_commit_sends_only_news(h: Harness) -> None:
    sid = h.new_session(a=1)
    s = h.request(sid)
    assert s["a"] == 1
    s["a"] = 2
    assert h.finish(s).action is Action.SAVE
    assert h.finish(s).action is Action.NOTHING
    s["b"] = 3
    h.finish(s)
    assert h.store.last_changes.set == {"b": "3"}


def test_rotate_renews_the_csrf_token(h: Harness) -> None:
    s = h.request()
    before = s.csrf_token
    s.rotate()
    after = s.csrf_token
    assert after != before
    assert not s.check_csrf(before)
    sid = h.finish(s).sid
    assert h.request(sid).check_csrf(after)


def test_minted_ids_are_adopted_in_strict_mode_and_others_are_not() -> None:
    h = Harness(mint_key=b"k" * 32)
    minted = h.manager.mint_id(h.clock())
    assert len(minted) == 43
    s = h.request(minted)
    s["x"] = 1
    assert h.finish(s).sid == minted
    planted = new_id()
    s = h.request(planted)
    s["x"] = 1
    assert h.finish(s).sid != planted
    foreign = Harness(mint_key=b"o" * 32).manager.mint_id(h.clock())
    s = h.request(foreign)
    s["x"] = 1
    assert h.finish(s).sid != foreign


def test_write_only_request_updates_without_reading(h: Harness) -> None:
    sid = h.new_session(a=1, user_name="ana")
    first = h.request(sid)
    first.user = "ana"
    h.finish(first)
    assert first.id != sid  # naming a user rotated the id
    sid = first.id
    h.store.calls.clear()
    h.loads = 0
    h.clock.advance(10)
    s = h.request(sid)
    s["a"] = 2
    s.update(b=3)
    decision = h.finish(s)
    assert decision.action is Action.UPDATE and decision.cookie is CookieOp.KEEP
    assert h.store.calls == [] and h.loads == 0  # MemoryStore updates natively: no load, no save
    s["c"] = 4  # a late change (a streamed body) is a second update with only the news
    assert h.finish(s).action is Action.UPDATE
    record = h.store.load(sid)
    assert record is not None and record.user == "ana"
    again = h.request(sid)
    assert dict(again) == {"a": 2, "b": 3, "c": 4, "user_name": "ana"}
    assert again.created < h.clock.now  # the stored creation time was kept


def test_blind_write_then_read_sees_the_write_over_stored_data(h: Harness) -> None:
    sid = h.new_session(a=1, b=1)
    s = h.request(sid)
    s["a"] = 2
    assert s["b"] == 1 and s["a"] == 2 and len(s) == 2
    assert h.finish(s).action is Action.SAVE
    assert dict(h.request(sid)) == {"a": 2, "b": 1}


def test_blind_write_to_unknown_id_starts_new_session(h: Harness) -> None:
    planted = new_id()
    s = h.request(planted)
    s["x"] = 1
    decision = h.finish(s)
    assert decision.action is Action.SAVE and decision.sid != planted
    assert decision.cookie is CookieOp.SET


def test_blind_write_respects_absolute_lifetime() -> None:
    h = Harness(idle_timeout=100, absolute_timeout=150, touch_interval=0)
    sid = h.new_session(a=1)
    h.clock.advance(90)
    s = h.request(sid)
    s["a"] = 2
    assert h.finish(s).action is Action.UPDATE
    record = h.store.load(sid)
    assert record is not None and record.expires == record.created + 150


def test_a_user_without_keys_is_a_session_worth_keeping(h: Harness) -> None:
    s = h.request()
    s.user = "ana"
    decision = h.finish(s)
    assert decision.action is Action.SAVE and decision.cookie is CookieOp.SET
    assert decision.sid is not None
    again = h.request(decision.sid)
    assert again.user == "ana" and dict(again) == {} and not again.is_new
    assert h.store.user_sessions("ana") == [decision.sid]
    # its last key going does not end it while the user stays ...
    again["a"] = 1
    h.finish(again)
    third = h.request(decision.sid)
    del third["a"]
    assert h.finish(third).action is Action.SAVE
    fourth = h.request(decision.sid)
    assert fourth.user == "ana" and dict(fourth) == {}
    # ... and dropping the user of a session with no keys ends it
    fourth.user = None
    assert h.finish(fourth).action is Action.DELETE
    assert h.store.load(decision.sid) is None


# -- what cannot be stored is refused where it is given --------------------------------------


@pytest.mark.parametrize("key", ["\ud800", "a\udfffb", "nul\x00key"])
def test_keys_no_store_can_keep_are_refused_at_assignment(h: Harness, key: str) -> None:
    s = h.request()
    with pytest.raises(ValueError, match="session key") as caught:
        s[key] = 1
    assert repr(key) in str(caught.value)
    with pytest.raises(ValueError, match="session key"):
        s.update({key: 1})
    assert key not in s and len(s) == 0


def test_values_with_lone_surrogates_are_refused_naming_the_key(h: Harness) -> None:
    s = h.request()
    with pytest.raises(ValueError, match="'note'.*surrogate"):
        s["note"] = "\ud800"
    s["cart"] = ["fine", "\udc80"]  # nested: found when the request saves, as for types
    with pytest.raises(ValueError, match="'cart'.*surrogate"):
        h.finish(s)


@pytest.mark.parametrize("user", ["\ud800", "ana\x00", "x" * 256])
def test_users_no_store_can_keep_are_refused(h: Harness, user: str) -> None:
    s = h.request()
    with pytest.raises(ValueError, match="session.user"):
        s.user = user
    assert s.user is None
    s.user = "x" * 255  # the longest a store must keep
    assert s.user == "x" * 255


@pytest.mark.parametrize("token", ["\ud800", "é", "a\x00"])
def test_check_csrf_of_text_that_is_no_token_is_false(h: Harness, token: str) -> None:
    s = h.request()
    assert s.csrf_token
    assert s.check_csrf(token) is False


# -- values the codec cannot read drop their key alone ---------------------------------------


def _stored_with(h: Harness, **raw: str) -> str:
    """A stored session holding ``raw`` encoded texts as they are (no codec)."""
    sid = new_id()
    now = h.clock()
    h.store.save(sid, Changes(set={"ok": '"fine"', **raw}), SessionMeta(now, now, now + 600))
    return sid


BAD_TEXTS = {"tag": '{" b": 1}', "uuid": '{" u": 5}', "garbage": "{", "surrogate": '"\\ud800"'}


@pytest.mark.parametrize("how", ["dict", "items", "values", "keys", "len", "in", "iter", "get"])
def test_undecodable_values_drop_their_key_alone_however_read(
        h: Harness, how: str, caplog: pytest.LogCaptureFixture) -> None:
    sid = _stored_with(h, **BAD_TEXTS)
    s = h.request(sid)
    with caplog.at_level("WARNING", logger="satchel.security"):
        if how == "dict":
            assert dict(s) == {"ok": "fine"}
        elif how == "items":
            assert list(s.items()) == [("ok", "fine")]
        elif how == "values":
            assert list(s.values()) == ["fine"]
        elif how == "keys":
            assert list(s.keys()) == ["ok"]
        elif how == "len":
            assert len(s) == 1
        elif how == "in":
            assert "tag" not in s and "uuid" not in s and "ok" in s
        elif how == "iter":
            assert list(s) == ["ok"]
        else:
            assert s.get("garbage") is None and s.get("ok") == "fine"
    assert dict(s) == {"ok": "fine"} and len(s) == 1 and list(s) == ["ok"]
    dropped = [r for r in caplog.records if r.name == "satchel.security"]
    assert dropped and all("\\ud800" not in r.getMessage() and '" b"' not in r.getMessage()
                           for r in dropped)
    h.finish(s)  # the unreadable keys are removed from the store; the good one stays
    record = h.store.load(sid)
    assert record is not None and record.data == {"ok": '"fine"'}


def test_values_signed_with_a_retired_pickle_secret_drop_their_key_alone() -> None:
    from satchel import PickleCodec, SessionEngine

    old, new = "old-secret-0123456789", "new-secret-0123456789"
    h = Harness()
    sid = _stored_with(h, cart=PickleCodec(old).encode("cart", [1, 2]),
                       seen=PickleCodec(new).encode("seen", {3}))
    h.engine = SessionEngine(h.store, h.manager, PickleCodec(new), clock=h.clock)
    s = h.request(sid)
    assert sorted(s) == ["seen"]  # "ok" is JSON, not signed pickle: dropped too
    assert dict(s) == {"seen": {3}} and len(s) == 1 and "cart" not in s


# -- minted ids: adoptable briefly, in one spelling, and never once their session is gone ----


def _adopted(h: Harness, sid: str) -> bool:
    s = h.request(sid)
    s["x"] = 1
    return h.finish(s).sid == sid


def test_a_minted_id_is_adopted_only_within_its_window() -> None:
    from satchel.manager import MINT_WINDOW

    h = Harness(mint_key=b"k" * 32)
    assert h.manager.mint_window == MINT_WINDOW
    early = h.manager.mint_id(h.clock())
    late = h.manager.mint_id(h.clock())
    h.clock.advance(MINT_WINDOW - 1)
    assert _adopted(h, early)
    h.clock.advance(2)
    assert not _adopted(h, late)  # harvested from a redirect, planted in a link later: refused
    # minted "in the future" by a clock far ahead of ours: refused too
    ahead = h.manager.mint_id(h.clock() + 3600)
    assert not _adopted(h, ahead)


def test_a_minted_id_whose_session_expired_is_never_adopted_again() -> None:
    h = Harness(mint_key=b"k" * 32, idle_timeout=20, absolute_timeout=None)
    assert h.manager.mint_window <= 10  # below the shortest lifetime a session can be given
    minted = h.manager.mint_id(h.clock())
    assert _adopted(h, minted)
    h.clock.advance(20)  # its session dies: the earliest moment the store can forget it
    assert h.store.load(minted) is None or h.manager.accept(h.store.load(minted),
                                                            h.clock()) is None
    assert not _adopted(h, minted)
    assert not h.manager.adopts(minted, h.clock())


def test_a_minted_id_is_accepted_in_exactly_one_spelling() -> None:
    import base64

    from satchel.ids import minted_age

    key = b"k" * 32
    h = Harness(mint_key=key)
    for _ in range(50):
        minted = h.manager.mint_id(h.clock())
        raw = base64.urlsafe_b64decode(minted + "=")
        spellings = {minted[:-1] + c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                     "0123456789-_" if base64.urlsafe_b64decode(minted[:-1] + c + "=") == raw}
        assert len(spellings) == 4 and minted in spellings
        assert [sp for sp in spellings if minted_age(sp, key, h.clock()) is not None] == [minted]


def test_ids_minted_before_the_stamp_are_not_adopted() -> None:
    import base64
    import hashlib
    import hmac
    import secrets as _secrets

    key = b"k" * 32
    h = Harness(mint_key=key)
    nonce = _secrets.token_bytes(24)  # the former layout: nonce and a tag over it alone
    old = base64.urlsafe_b64encode(nonce + hmac.new(key, nonce, hashlib.sha256).digest()[:8])
    assert not _adopted(h, old.decode().rstrip("="))


def test_mint_window_must_be_positive() -> None:
    from satchel import ConfigurationError, SessionManager

    with pytest.raises(ConfigurationError, match="mint_window"):
        SessionManager(mint_window=0)


def test_keep_predicate_decides_in_place_of_having_data(h: Harness) -> None:
    # A front door whose framework decides what is worth keeping (Quixote's has_info()).
    s = h.request()
    s["counter"] = 0
    s.keep = lambda: s.get("user_name") is not None
    d = h.finish(s)
    assert d.action is Action.NOTHING and d.cookie is CookieOp.KEEP
    assert h.store.calls == []

    s = h.request()
    s["counter"] = 0
    s["user_name"] = "ada"
    s.keep = lambda: s.get("user_name") is not None
    d = h.finish(s)
    assert d.action is Action.SAVE and d.cookie is CookieOp.SET
    sid = d.sid
    assert sid is not None

    s = h.request(sid)
    del s["user_name"]  # data is left, but nothing the predicate wants kept
    s.keep = lambda: s.get("user_name") is not None
    assert dict(s) == {"counter": 0}
    d = h.finish(s)
    assert d.action is Action.DELETE and d.cookie is CookieOp.REVOKE
    assert not h.store.exists(sid)


def test_keep_predicate_keeps_a_session_without_data_or_user(h: Harness) -> None:
    s = h.request()
    s.keep = lambda: True
    assert "x" not in s
    d = h.finish(s)
    assert d.action is Action.SAVE and d.sid is not None
    record = h.store.load(d.sid)
    assert record is not None and record.data == {} and record.user is None
