"""A list's member states packed into a few flat arrays: ~75 bytes a member instead of ~390.

A dict of a million :class:`~airflow_provider_activecampaign.audience.state.MemberState` tuples costs
about 390 bytes a member (the email and fingerprint strings, the tuple, the contact id string and the
dict slot). :class:`CompactState` holds the same mapping as

* every email once, UTF-8, in one ``bytearray``, with its end offset in an ``array("Q")``;
* its ``hash()`` in an ``array("q")`` and an open-addressing index (``array("q")``, at most half full)
  from which a lookup finds it;
* the fingerprint as 6 bytes (12 hex digits), the status as one byte, the contact id as an unsigned
  64-bit integer (0: unknown);
* anything that does not fit that shape (a refusal's time, note and attempts, an unsubscribe time, a
  contact id that is not a plain number, a fingerprint of another shape) whole in a small side dict:
  those entries are rare, and they keep every field of MemberState representable.

It is a ``MutableMapping[str, MemberState]``: ``get``, ``in``, ``[]``, ``len``, iteration, ``items``,
``values``, ``update`` and ``del`` behave as on the dict it replaces; values are rebuilt on each access
(equal, not identical, to what was stored). Deleting leaves a tombstone; re-adding the email reuses its
slot, so it keeps its first place in the iteration order (a dict would move it last). Lookups hash with
Python's ``hash()``: the index only lives in memory, in one process.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any

from airflow_provider_activecampaign.audience.state import MemberState, MemberStatus

__all__ = ["CompactState"]

_STATUSES: tuple[MemberStatus, ...] = tuple(MemberStatus)
_STATUS_CODE: dict[Any, int] = {status: code for code, status in enumerate(_STATUSES)}
_EMPTY_FP = 0x40  # flag on the status byte: the fingerprint is "" (adopted from the list, values unknown)
_SIDE = 0xFE  # the whole value lives in the side dict
_DELETED = 0xFF
_FP_BYTES = 6
_HEX12 = re.compile(r"[0-9a-f]{12}")
_MAX_ID = (1 << 64) - 1
_MAKE = MemberState._make
_DEFAULT_TAIL = tuple(MemberState._field_defaults[name] for name in MemberState._fields[3:])


class CompactState(MutableMapping[str, MemberState]):
    """``email -> MemberState`` in flat arrays (see the module docstring)."""

    def __init__(self, entries: Mapping[str, MemberState] | Iterable[tuple[str, MemberState]] = ()) -> None:
        self._emails = bytearray()
        self._ends = array("Q")
        self._hashes = array("q")
        self._fps = bytearray()
        self._codes = bytearray()
        self._ids = array("Q")
        self._side: dict[str, MemberState] = {}
        self._live = 0
        self._table = array("q", bytes(8 * 8))
        self._mask = 7
        if entries:
            self.update(entries)

    # ------------------------------------------------------------------------------------ lookup
    def _find(self, email: str, hashed: int) -> int:
        """The index of ``email`` (live or deleted), or -1."""
        table, hashes, mask = self._table, self._hashes, self._mask
        slot = hashed & mask
        while True:
            found = table[slot]
            if not found:
                return -1
            index = found - 1
            if hashes[index] == hashed and self._email(index) == email:
                return index
            slot = (slot + 1) & mask

    def _email(self, index: int) -> str:
        start = self._ends[index - 1] if index else 0
        return self._emails[start:self._ends[index]].decode("utf-8", "surrogatepass")

    def _value(self, index: int, email: str | None = None) -> MemberState:
        code = self._codes[index]
        if code == _SIDE:
            return self._side[self._email(index) if email is None else email]
        at = index * _FP_BYTES
        fingerprint = "" if code & _EMPTY_FP else self._fps[at:at + _FP_BYTES].hex()
        contact = self._ids[index]
        return _MAKE((fingerprint, _STATUSES[code & 0x3F], str(contact) if contact else None, *_DEFAULT_TAIL))

    def get(self, email: str, default: Any = None) -> Any:
        index = self._find(email, hash(email)) if type(email) is str else -1
        if index < 0 or self._codes[index] == _DELETED:
            return default
        return self._value(index, email)

    def __getitem__(self, email: str) -> MemberState:
        value = self.get(email, _MISSING)
        if value is _MISSING:
            raise KeyError(email)
        return value

    def __contains__(self, email: object) -> bool:
        if type(email) is not str:
            return False
        index = self._find(email, hash(email))
        return index >= 0 and self._codes[index] != _DELETED

    def __len__(self) -> int:
        return self._live

    def __iter__(self) -> Iterator[str]:
        for index, code in enumerate(self._codes):
            if code != _DELETED:
                yield self._email(index)

    def items(self) -> Iterator[tuple[str, MemberState]]:  # type: ignore[override]
        """Every (email, state) pair, in insertion order (a generator, like iterating a dict's items)."""
        for index, code in enumerate(self._codes):
            if code != _DELETED:
                email = self._email(index)
                yield email, self._value(index, email)

    def values(self) -> Iterator[MemberState]:  # type: ignore[override]
        for index, code in enumerate(self._codes):
            if code != _DELETED:
                yield self._value(index)

    # ----------------------------------------------------------------------------------- writing
    def __setitem__(self, email: str, state: MemberState) -> None:
        hashed = hash(email)
        index = self._find(email, hashed)
        if index < 0:
            index = self._append(email, hashed)
        elif self._codes[index] == _DELETED:
            self._live += 1
        elif self._codes[index] == _SIDE:
            del self._side[email]
        self._store(index, email, state)

    def _store(self, index: int, email: str, state: MemberState) -> None:
        fingerprint, status, contact_id = state[0], state[1], state[2]
        code = _STATUS_CODE.get(status)
        number = 0
        packable = code is not None and tuple(state[3:]) == _DEFAULT_TAIL
        if packable and contact_id is not None:
            text = str(contact_id)
            packable = text.isdigit() and text.isascii() and str(int(text)) == text and int(text) <= _MAX_ID
            number = int(text) if packable else 0
            packable = packable and number != 0
        if packable and fingerprint == "":
            code |= _EMPTY_FP  # type: ignore[operator]
        elif packable and type(fingerprint) is str and _HEX12.fullmatch(fingerprint):
            self._fps[index * _FP_BYTES:(index + 1) * _FP_BYTES] = bytes.fromhex(fingerprint)
        else:
            packable = False
        if not packable:
            self._side[email] = _MAKE(tuple(state))
            code = _SIDE
        self._codes[index] = code  # type: ignore[assignment]
        self._ids[index] = number

    def _append(self, email: str, hashed: int) -> int:
        index = len(self._codes)
        self._emails += email.encode("utf-8", "surrogatepass")
        self._ends.append(len(self._emails))
        self._hashes.append(hashed)
        self._fps += bytes(_FP_BYTES)
        self._codes.append(_DELETED)
        self._ids.append(0)
        self._live += 1
        if 2 * len(self._codes) > len(self._table):
            self._grow()
        else:
            self._place(index, hashed)
        return index

    def _place(self, index: int, hashed: int) -> None:
        table, mask = self._table, self._mask
        slot = hashed & mask
        while table[slot]:
            slot = (slot + 1) & mask
        table[slot] = index + 1

    def _grow(self, upto: int | None = None) -> None:
        """A bigger index; re-places entries ``0 .. upto-1`` (all by default)."""
        size = len(self._table)
        while 2 * len(self._codes) > size:
            size *= 4 if size < (1 << 20) else 2
        self._table = array("q", bytes(8 * size))
        self._mask = size - 1
        for index in range(len(self._hashes) if upto is None else upto):
            self._place(index, self._hashes[index])

    def __delitem__(self, email: str) -> None:
        index = self._find(email, hash(email)) if type(email) is str else -1
        if index < 0 or self._codes[index] == _DELETED:
            raise KeyError(email)
        if self._codes[index] == _SIDE:
            del self._side[email]
        self._codes[index] = _DELETED
        self._ids[index] = 0
        self._live -= 1

    def update(self, other: Any = (), /, **kwargs: MemberState) -> None:
        if isinstance(other, Mapping) and len(other) > 64 and not isinstance(other, CompactState):
            self.extend(other)
        else:
            for email, state in (other.items() if isinstance(other, Mapping) else other):
                self[email] = state
        for email, state in kwargs.items():
            self[email] = state

    def extend(self, block: Mapping[str, MemberState]) -> None:
        """``update(block)`` in bulk: the columns are packed with a few C-level passes, and only
        entries of an unusual shape (and emails already present) take the one-by-one path."""
        emails = [e for e in block if type(e) is str]
        if len(emails) != len(block):
            raise TypeError("CompactState keys are emails (str)")
        if not emails:
            return
        states = list(block.values())
        hashes = array("q", map(hash, emails))
        start = len(self._codes)
        count = len(emails)
        columns = list(zip(*states, strict=True))
        fingerprints, statuses, contact_ids = columns[0], columns[1], columns[2]
        odd: set[int] = set()  # positions for the one-by-one path
        for column, default in zip(columns[3:], _DEFAULT_TAIL, strict=True):
            if column.count(default) != count:
                odd.update(i for i, value in enumerate(column) if value != default)
        try:
            codes = bytearray(map(_STATUS_CODE.__getitem__, statuses))
        except (KeyError, TypeError):
            codes = bytearray(_STATUS_CODE.get(status, 0) for status in statuses)
            odd.update(i for i, status in enumerate(statuses) if status not in _STATUS_CODE)
        text = "".join([fp if type(fp) is str and len(fp) == 12 else "000000000000" for fp in fingerprints])
        try:  # fromhex skips whitespace: a short result means some piece was not 12 hex digits
            packed_fps = bytes.fromhex(text) if text.isascii() and text == text.lower() else b""
        except ValueError:
            packed_fps = b""
        if len(packed_fps) != _FP_BYTES * count:  # sort the odd fingerprints out one by one
            packed_fps = bytes(_FP_BYTES * count)
            odd.update(range(count))
        else:
            for i, fp in enumerate(fingerprints):
                if type(fp) is not str or len(fp) != 12:
                    if fp == "":
                        codes[i] |= _EMPTY_FP
                    else:
                        odd.add(i)
        try:
            numbers = array("Q", [0 if cid is None else int(cid) for cid in contact_ids])
            if [None if n == 0 else str(n) for n in numbers] != list(contact_ids):
                raise ValueError("a contact id that is not a canonical number")
        except (ValueError, TypeError, OverflowError):
            numbers = array("Q", bytes(8 * count))
            odd.update(range(count))
        encoded = [e.encode("utf-8", "surrogatepass") for e in emails]
        self._emails += b"".join(encoded)
        offset = self._ends[-1] if self._ends else 0
        for size in map(len, encoded):
            offset += size
            self._ends.append(offset)
        self._hashes.extend(hashes)
        self._fps += packed_fps
        self._codes += codes
        self._ids.extend(numbers)
        self._live += count
        if 2 * len(self._codes) > len(self._table):
            self._grow(start)
        repeated = self._place_block(start, count)
        for i in sorted(odd | repeated):
            if i in repeated:
                continue
            self._store(start + i, emails[i], states[i])
        for i in sorted(repeated):  # already present: drop the new copy, set the old one
            self._codes[start + i] = _DELETED
            self._live -= 1
            self[emails[i]] = states[i]

    def _place_block(self, start: int, count: int) -> set[int]:
        """Index entries ``start .. start+count-1``; returns the positions whose email was already there."""
        table, mask, hashes = self._table, self._mask, self._hashes
        repeated: set[int] = set()
        for index in range(start, start + count):
            hashed = hashes[index]
            slot = hashed & mask
            while True:
                found = table[slot]
                if not found:
                    table[slot] = index + 1
                    break
                if hashes[found - 1] == hashed and self._email(found - 1) == self._email(index):
                    repeated.add(index - start)
                    break
                slot = (slot + 1) & mask
        return repeated

    def status_counts(self) -> tuple[dict[MemberStatus, int], list[MemberState]]:
        """Packed members counted by status (one C-level ``count`` per status byte), and the side dict's
        members, whose other fields (notes) the caller may need to weigh."""
        codes = self._codes
        counts = {status: codes.count(code) + codes.count(code | _EMPTY_FP) for code, status in enumerate(_STATUSES)}
        return counts, list(self._side.values())

    def emails_with_status(self, status: MemberStatus) -> Iterator[str]:
        """The emails of members with ``status``, without building their states."""
        code = _STATUS_CODE[status]
        empty = code | _EMPTY_FP
        for index, found in enumerate(self._codes):
            if found in (code, empty):
                yield self._email(index)
        for email, state in self._side.items():
            if state[1] is status:
                yield email

    def copy(self) -> CompactState:
        """An independent copy (arrays copied whole, not entry by entry)."""
        clone = CompactState.__new__(CompactState)
        clone._emails, clone._ends, clone._hashes = bytearray(self._emails), array("Q", self._ends), array(
            "q", self._hashes)
        clone._fps, clone._codes, clone._ids = bytearray(self._fps), bytearray(self._codes), array("Q", self._ids)
        clone._side, clone._live = dict(self._side), self._live
        clone._table, clone._mask = array("q", self._table), self._mask
        return clone

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping) or len(other) != len(self):
            return False
        return all(other.get(email, _MISSING) == state for email, state in self.items())

    __hash__ = None  # type: ignore[assignment]  # mutable, like dict

    def __repr__(self) -> str:
        return f"CompactState({len(self)} members, {len(self._side)} in the side dict)"

    def nbytes(self) -> int:
        """The arrays' size in bytes (the side dict's entries not counted)."""
        return (len(self._emails) + self._ends.itemsize * len(self._ends) + 8 * len(self._hashes)
                + len(self._fps) + len(self._codes) + 8 * len(self._ids) + 8 * len(self._table))


_MISSING: Any = object()
