"""CompactState behaves as the dict of MemberState it replaces, in a fraction of the memory."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_activecampaign.audience.compact_state import CompactState
from airflow_provider_activecampaign.audience.state import MemberState, MemberStatus

TAIL = len(MemberState._fields) - 3  # lifecycle's MemberState carries when/why/attempts after these three


def member(fp: str = "0123456789ab", status: MemberStatus = MemberStatus.SUBSCRIBED, cid: str | None = "17",
           *tail: object) -> MemberState:
    return MemberState(fp, status, cid, *tail[:TAIL])


_EMAILS = st.sampled_from(["a@b.co", "ann@example.com", "josé@exämple.de", "x" * 64 + "@y.io", "z@z.zz",
                           "a@b.c0", "b@b.co", "c@b.co"]) | st.text(min_size=1, max_size=8)
_STATES = st.builds(
    lambda fp, status, cid, tail: MemberState(fp, status, cid, *tail[:TAIL]),
    st.sampled_from(["", "0123456789ab", "ffffffffffff", "000000000000", "ABCDEF012345", "short", "é" * 12]),
    st.sampled_from(list(MemberStatus)),
    st.sampled_from([None, "1", "17", "0", "007", "18446744073709551615", "18446744073709551616", "abc", "٣"]),
    st.sampled_from([(), (None, None, 0), (1700000000, None, 0), (1700000000, "excluded", 2), (None, None, 1)]),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["set", "del", "get"]), _EMAILS, _STATES), max_size=60))
def test_behaves_like_a_dict(operations):
    compact, reference = CompactState(), {}
    for operation, email, state in operations:
        if operation == "set":
            compact[email] = state
            reference[email] = state
        elif operation == "del":
            if email in reference:
                del compact[email]
                del reference[email]
            else:
                with pytest.raises(KeyError):
                    del compact[email]
        assert compact.get(email) == reference.get(email)
        assert (email in compact) == (email in reference)
    assert len(compact) == len(reference)
    assert dict(compact.items()) == reference
    assert sorted(compact) == sorted(reference)  # (an email deleted and set again keeps its first place)
    assert Counter(compact.values()) == Counter(reference.values())
    assert compact == reference and compact.copy() == reference


def test_values_keep_every_field_and_type():
    state = CompactState({"a@b.co": member(), "c@d.co": member("", MemberStatus.UNSUBSCRIBED, None)})
    value = state["a@b.co"]
    assert value == member() and isinstance(value, MemberState) and value.status is MemberStatus.SUBSCRIBED
    assert state["c@d.co"].fingerprint == "" and state["c@d.co"].contact_id is None
    assert state.get("nobody@b.co") is None and "nobody@b.co" not in state and 3 not in state
    with pytest.raises(KeyError):
        state["nobody@b.co"]


def test_many_members_grow_the_index_and_stay_small():
    """A million-member state must fit in memory next to the audience: ~75 bytes a member here."""
    count = 50_000
    state = CompactState({f"customer.{i}@example.com": member(f"{i:012x}", cid=str(i + 1)) for i in range(count)})
    assert len(state) == count
    assert state["customer.49999@example.com"] == member(f"{49999:012x}", cid="50000")
    assert all(state.get(f"customer.{i}@example.com").contact_id == str(i + 1) for i in range(0, count, 997))
    assert "customer.50000@example.com" not in state
    assert state.nbytes() / count < 100
    assert not state._side  # plain members are all packed


def test_update_and_copy_are_independent():
    state = CompactState({"a@b.co": member()})
    clone = state.copy()
    clone.update({"a@b.co": member(cid="18"), "n@b.co": member()})
    assert state == {"a@b.co": member()}
    assert clone == {"a@b.co": member(cid="18"), "n@b.co": member()}


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_EMAILS, _STATES, max_size=80), st.dictionaries(_EMAILS, _STATES, max_size=80))
def test_bulk_extend_is_update(first, second):
    """The loader's bulk path gives what one-by-one updates give, odd entries and repeats included."""
    bulk, single = CompactState(), CompactState()
    bulk.extend(first)
    bulk.extend(second)
    for block in (first, second):
        for email, state in block.items():
            single[email] = state
    reference = {**first, **second}
    assert bulk == reference and single == reference and len(bulk) == len(reference)
    assert all(bulk[email] == state for email, state in reference.items())


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_EMAILS, _STATES, max_size=80), st.lists(_EMAILS, max_size=10))
def test_status_shortcuts_agree_with_walking_the_values(entries, deleted):
    """The engine's counts (drift check, removal guard) and removal scan read the status bytes."""
    from airflow_provider_activecampaign.audience.membership import state_counts

    state = CompactState(entries)
    reference = dict(entries)
    for email in deleted:
        if email in reference:
            del state[email], reference[email]
    assert state_counts(state) == state_counts(reference)
    for status in MemberStatus:
        assert sorted(state.emails_with_status(status)) == sorted(e for e, m in reference.items() if m[1] is status)
