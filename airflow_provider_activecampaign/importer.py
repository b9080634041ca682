"""The bulk importer's facts: its limits, and request bodies measured on the exact bytes sent.

Plain Python (no Airflow imports), shared by the hook (transport) and the audience engine (planning).
ActiveCampaign's bulk importer takes at most 250 contacts per request and refuses payloads of 400,000
bytes or more ("less than 400K bytes (399,999 bytes or less)"), so a batch is sized on the bytes
:func:`encode_body` produces, which are the bytes the hook puts on the wire. It accepts up to 100
multi-contact and 20 single-contact import requests per minute.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

MAX_IMPORT_CONTACTS = 250
MAX_IMPORT_BYTES = 399_999  # the largest body accepted: "less than 400K bytes"
BULK_IMPORTS_PER_MINUTE = 100  # import requests carrying 2..250 contacts
SINGLE_IMPORTS_PER_MINUTE = 20  # import requests carrying one contact

__all__ = [
    "BULK_IMPORTS_PER_MINUTE",
    "MAX_IMPORT_BYTES",
    "MAX_IMPORT_CONTACTS",
    "SINGLE_IMPORTS_PER_MINUTE",
    "encode_body",
    "fits_one_import",
    "import_overhead",
    "split_import_batches",
]


def encode_body(obj: Any) -> bytes:
    """Compact UTF-8 JSON: the one serialization used for every request body.

    ``allow_nan=False``: NaN/Infinity are not JSON and would be refused by the API anyway; failing here
    names the problem instead of producing an opaque 400.
    """
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def import_overhead(extra: dict[str, Any] | None = None) -> int:
    """Bytes of a bulk import body with no contacts (``{"contacts":[]...}``): what every request costs
    on top of its contacts."""
    extra = dict(extra or {})
    if "contacts" in extra:
        raise ValueError("extra must not contain 'contacts': the batches go there")
    return len(encode_body({"contacts": [], **extra}))


def fits_one_import(contact_payload: dict[str, Any], *, extra: dict[str, Any] | None = None,
                    max_bytes: int = MAX_IMPORT_BYTES) -> bool:
    """Whether one contact, alone in a request, fits the importer's size limit.

    A contact that doesn't can never be sent by the bulk importer: the engine reports it as a reject
    at plan time instead of failing every run at the same batch.
    """
    return import_overhead(extra) + len(encode_body(contact_payload)) <= max_bytes


def split_import_batches(
    contacts: Iterable[dict[str, Any]],
    *,
    max_contacts: int = MAX_IMPORT_CONTACTS,
    max_bytes: int = MAX_IMPORT_BYTES,
    extra: dict[str, Any] | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Yield batches such that ``encode_body({"contacts": batch, **extra})`` is at most ``max_bytes``.

    Streaming and greedy: each contact is encoded once. With compact separators the body is exactly
    ``envelope + sum(len(contact)) + (n - 1)`` bytes (one comma between contacts), where ``envelope`` is
    the size of the body with an empty ``contacts`` list, so no batch is ever re-encoded.

    Raises ``ValueError`` naming the (0-based) index of a contact too big to fit in any request.
    """
    if max_contacts < 1:
        raise ValueError(f"max_contacts must be at least 1, got {max_contacts}")
    extra = dict(extra or {})
    # "contacts" first, as in the body the hook sends; the envelope is "{"contacts":[]...}".
    envelope = import_overhead(extra)
    if envelope >= max_bytes:
        raise ValueError(f"max_bytes={max_bytes} leaves no room for contacts "
                         f"(the envelope alone is {envelope} bytes)")

    # Fast path: encode a full candidate batch in one call (the C encoder; per-contact calls cost more
    # than the encoding). Only a batch that is too big is filled contact by contact.
    iterator = iter(contacts)
    carried: list[dict[str, Any]] = []
    consumed = 0  # index of the first contact of the candidate batch
    while True:
        chunk = carried + list(islice(iterator, max_contacts - len(carried)))
        carried = []
        if not chunk:
            return
        if len(encode_body({"contacts": chunk, **extra})) <= max_bytes:
            yield chunk
            consumed += len(chunk)
            continue
        batch: list[dict[str, Any]] = []
        size = envelope  # bytes of encode_body({"contacts": batch, **extra})
        for offset, contact in enumerate(chunk):
            length = len(encode_body(contact))
            if envelope + length > max_bytes:
                raise ValueError(
                    f"contact #{consumed + offset} alone encodes to {length} bytes; with the request envelope "
                    f"that is {envelope + length} bytes, over the {max_bytes}-byte limit of one bulk import request"
                )
            added = length + (1 if batch else 0)  # a comma before every contact but the first
            if batch and size + added > max_bytes:
                carried = chunk[offset:]
                break
            batch.append(contact)
            size += added
        yield batch
        consumed += len(batch)
