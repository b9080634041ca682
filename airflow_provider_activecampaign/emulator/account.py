"""One emulated ActiveCampaign account: the state behind the emulator's HTTP API.

Everything an ActiveCampaign account holds that the provider touches lives in an ``Account`` (lists,
contacts, list memberships, custom fields, tags, user groups, exclusions, bulk import batches), plus
the request log and the rate limiters. The HTTP layer (``app.py``) only parses requests and renders
answers; the rules (validation, limits, import semantics) live here so tests can drive them without
HTTP too. Each concern has its own module, stacked in one line of inheritance:
``base.AccountBase`` (state, limits gate, request log) -> ``catalog.Catalog`` (groups, lists, fields,
tags) -> ``contacts.Contacts`` -> ``memberships.Memberships`` (statuses, events, deletions,
exclusions) -> ``imports.ImportQueue`` (the bulk importer) -> ``Account`` (snapshots).

Thread safety: one re-entrant lock guards all state. The server's event loop thread and the test
thread both go through the public methods, which take the lock. Objects returned to callers are the
live records: read them, do not mutate them (use the methods instead).

Bulk imports are processed lazily: a batch becomes due ``import_delay`` seconds after it was queued,
and due batches are applied (in queue order) by the next call that looks at state, whether that call
comes from an HTTP request or from a test. That keeps the emulator deterministic and thread-free.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from airflow_provider_activecampaign.emulator.imports import ImportQueue
from airflow_provider_activecampaign.emulator.records import (
    ACTIVE,
    STATUS_NAMES,
    Contact,
)


class Account(ImportQueue):
    """All state of one emulated ActiveCampaign account. See the module docstring for thread safety."""

    # ---- snapshot ------------------------------------------------------------------------------

    def snapshot(self, *, include_contacts: bool = True, include_requests: bool = False) -> dict[str, Any]:
        """Everything as JSON-ready data, for ``GET /_emulator/state`` and for debugging tests."""
        with self.lock:
            self.process_imports()
            memberships: Counter[str] = Counter()
            for (_, status), ids in self._list_by_status.items():
                memberships[STATUS_NAMES.get(status, str(status))] += len(ids)
            data: dict[str, Any] = {
                "summary": {
                    "lists": len(self._lists),
                    "contacts": len(self._contacts),
                    "memberships": {k: v for k, v in sorted(memberships.items()) if v},
                    "fields": len(self._fields),
                    "tags": len(self._tags),
                    "imports": len(self._imports),
                    "imports_pending": len(self._pending),
                    "requests": len(self._requests),
                },
                "config": self.config.to_json(),
                "blocked": self.blocked,
                "user": self.user.to_json(),
                "groups": [g.to_json() for g in self._groups.values()],
                "listGroups": [lg.to_json() for lg in self._list_groups.values()],
                "lists": [
                    {
                        **lst.to_json(),
                        "active": len(self._list_by_status.get((lst.id, ACTIVE), [])),
                        "members": len(self._list_members[lst.id]),
                    }
                    for lst in self._lists.values()
                ],
                "fields": [f.to_json() for f in self._fields.values()],
                "fieldRels": [r.to_json() for r in self._field_rels.values()],
                "fieldOptions": [o.to_json() for o in self._field_options.values()],
                "groupLimits": [g.limits_json() for g in self._groups.values()],
                "tags": [t.to_json() for t in self._tags.values()],
                "exclusions": [x.to_json() for x in self._exclusions.values()],
                "imports": [b.to_json() for b in self._imports.values()],
                "contact_count": len(self._contacts),
                "faults": [f.to_json() for f in self.faults.pending()],
                "requests": {
                    "total": len(self._requests),
                    "by_endpoint": dict(Counter(r.endpoint for r in self._requests)),
                    "by_status": {str(k): v for k, v in Counter(r.status for r in self._requests).items()},
                },
            }
            if include_contacts:
                data["contacts"] = [
                    {
                        "id": c.id,
                        "email": c.email,
                        "firstName": c.first_name,
                        "lastName": c.last_name,
                        "phone": c.phone,
                        "orgname": c.orgname,
                        "fields": {self._fields[f].perstag: v.value for f, v in c.field_values.items()},
                        "tags": sorted(self._tags[t].tag for t in c.tag_ids),
                        "lists": {
                            lid: {"status": m.status, "changed_by": m.changed_by, "udate": m.udate}
                            for lid, m in c.memberships.items()
                        },
                    }
                    for c in self._contacts.values()
                ]
            if include_requests:
                data["requests"]["log"] = [r.to_json() for r in self._requests]
            return data

    def iter_contacts(self) -> Iterator[Contact]:
        """All contacts in id order (a snapshot)."""
        with self.lock:
            self.process_imports()
            return iter(list(self._contacts.values()))
