"""The bulk importer's facts: encode_body(), split_import_batches(), fits_one_import(), on the exact bytes sent."""

from __future__ import annotations

import itertools
import json
import math

import pytest

from airflow_provider_activecampaign.importer import (
    MAX_IMPORT_BYTES,
    MAX_IMPORT_CONTACTS,
    encode_body,
    fits_one_import,
    import_overhead,
    split_import_batches,
)


def contact(i: int, pad: int = 0) -> dict:
    return {"email": f"user{i}@example.com", "first_name": "Zoë" + "x" * pad, "subscribe": [{"listid": 7}]}


def body_size(batch: list[dict], extra: dict | None = None) -> int:
    return len(encode_body({"contacts": batch, **(extra or {})}))


def test_limits_match_the_documented_ones() -> None:
    assert MAX_IMPORT_CONTACTS == 250
    assert MAX_IMPORT_BYTES == 399_999  # "less than 400K bytes (399,999 bytes or less)"


def test_encode_body_is_compact_utf8_json() -> None:
    data = encode_body({"a": [1, 2], "name": "Zoë 😀"})
    assert data == '{"a":[1,2],"name":"Zoë 😀"}'.encode()
    assert json.loads(data) == {"a": [1, 2], "name": "Zoë 😀"}
    assert len(data) == len('{"a":[1,2],"name":"Zoë 😀"}'.encode())  # bytes, not characters


def test_encode_body_refuses_nan() -> None:
    with pytest.raises(ValueError):
        encode_body({"value": math.nan})


def test_splits_by_count() -> None:
    batches = list(split_import_batches(contact(i) for i in range(600)))
    assert [len(b) for b in batches] == [250, 250, 100]
    assert [c["email"] for b in batches for c in b] == [f"user{i}@example.com" for i in range(600)]


def test_custom_max_contacts() -> None:
    assert [len(b) for b in split_import_batches([contact(i) for i in range(7)], max_contacts=3)] == [3, 3, 1]


def test_empty_input_yields_nothing() -> None:
    assert list(split_import_batches([])) == []


@pytest.mark.parametrize("extra", [None, {"callback": {"url": "https://example.com/cb", "requestType": "POST",
                                                        "detailed_results": "true"}}])
def test_splits_by_bytes_exactly_and_greedily(extra: dict | None) -> None:
    contacts = [contact(i, pad=(i * 37) % 1500) for i in range(400)]
    max_bytes = 20_000
    batches = list(split_import_batches(contacts, max_bytes=max_bytes, extra=extra))
    assert sum(len(b) for b in batches) == 400
    position = 0
    for batch in batches:
        assert body_size(batch, extra) <= max_bytes
        position += len(batch)
        if position < len(contacts):  # greedy: the next contact would not have fitted
            assert body_size(batch + [contacts[position]], extra) > max_bytes


def test_batch_of_exactly_max_bytes_is_allowed() -> None:
    two = [contact(1), contact(2)]
    exact = body_size(two)
    assert [len(b) for b in split_import_batches(two + [contact(3)], max_bytes=exact)] == [2, 1]


def test_real_limit_with_large_contacts() -> None:
    big = [contact(i, pad=3_000) for i in range(300)]  # ~3 KB each: bytes bind before the count does
    batches = list(split_import_batches(big))
    assert len(batches) > 2
    assert all(body_size(b) <= MAX_IMPORT_BYTES for b in batches)
    assert all(len(b) <= MAX_IMPORT_CONTACTS for b in batches)


def test_multibyte_characters_count_as_bytes() -> None:
    emoji = [{"email": f"u{i}@example.com", "first_name": "😀" * 100} for i in range(10)]
    one = len(encode_body(emoji[0]))
    assert one > 400  # 4 bytes per emoji
    max_bytes = body_size(emoji[:3])
    assert [len(b) for b in split_import_batches(emoji, max_bytes=max_bytes)] == [3, 3, 3, 1]


def test_single_contact_too_big_names_its_index() -> None:
    huge = {"email": "huge@example.com", "first_name": "x" * 500_000}
    contacts = [contact(0), contact(1), contact(2), huge]
    with pytest.raises(ValueError, match=r"contact #3 .*399999"):
        list(split_import_batches(contacts))


def test_streams_without_consuming_everything() -> None:
    endless = (contact(i) for i in itertools.count())
    first = next(split_import_batches(endless, max_contacts=5))
    assert [c["email"] for c in first] == [f"user{i}@example.com" for i in range(5)]


def test_extra_must_not_hold_contacts() -> None:
    with pytest.raises(ValueError, match="contacts"):
        list(split_import_batches([contact(1)], extra={"contacts": []}))


def test_invalid_limits() -> None:
    with pytest.raises(ValueError):
        list(split_import_batches([contact(1)], max_contacts=0))
    with pytest.raises(ValueError, match="envelope"):
        list(split_import_batches([contact(1)], max_bytes=10))


def test_fits_one_import_agrees_with_the_batcher_at_the_byte_limit() -> None:
    overhead = import_overhead()
    assert overhead == len(encode_body({"contacts": []}))
    base = contact(1)
    room = MAX_IMPORT_BYTES - overhead - len(encode_body(base))
    just_fits = contact(1, pad=room)  # ASCII padding: one byte per character
    assert overhead + len(encode_body(just_fits)) == MAX_IMPORT_BYTES
    too_big = contact(1, pad=room + 1)
    assert fits_one_import(just_fits)
    assert list(split_import_batches([just_fits])) == [[just_fits]]
    assert not fits_one_import(too_big)
    with pytest.raises(ValueError, match="contact #0 alone"):
        list(split_import_batches([too_big]))


def test_fits_one_import_counts_the_callback_envelope() -> None:
    extra = {"callback": {"url": "https://example.com/hook", "requestType": "POST"}}
    room = MAX_IMPORT_BYTES - import_overhead() - len(encode_body(contact(1)))
    fits_alone = contact(1, pad=room)
    assert fits_one_import(fits_alone)
    assert not fits_one_import(fits_alone, extra=extra)


def test_neutral_modules_import_without_airflow() -> None:
    import subprocess
    import sys

    code = ("import sys\n"
            "import airflow_provider_activecampaign.importer\n"
            "import airflow_provider_activecampaign.masking\n"
            "import airflow_provider_activecampaign.statuses\n"
            "import airflow_provider_activecampaign.audience.batching\n"
            "bad = [m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)
