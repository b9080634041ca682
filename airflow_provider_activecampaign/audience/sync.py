"""The audience engine: make an ActiveCampaign list match a query's rows, sending only what changed.

Plain Python with no Airflow imports. It talks to ActiveCampaign through a client with the hook's API
(see docs/ARCHITECTURE.md) and keeps its memory of what ActiveCampaign confirmed in a StateStore.

One run: resolve the list, group and custom fields -> read and validate every row, merge duplicates,
compare with the known membership (state, or the list read back from ActiveCampaign) -> check the guards
-> send adds/updates/removals with the bulk importer (or per contact for a handful) -> confirm each batch
through import/info and commit it to the state journal -> compact the state and write the rejects report.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import IO, Any, Literal, Protocol

from airflow_provider_activecampaign.audience.batching import split_import_batches
from airflow_provider_activecampaign.audience.records import (
    AudienceContact,
    InvalidRow,
    RowMapper,
    fingerprint,
    mask_email,
    to_import_contact,
    to_sync_contact,
)
from airflow_provider_activecampaign.audience.state import MemberState, MemberStatus, StateStore, gc_paused
from airflow_provider_activecampaign.exceptions import (
    ActiveCampaignBulkImportRejectedError,
    ActiveCampaignValidationError,
)

Mode = Literal["mirror", "upsert"]
EmptyAction = Literal["fail", "skip", "proceed"]

ACTIVE, UNSUBSCRIBED = 1, 2
# ActiveCampaign advises contact/sync instead of the bulk importer below 10 contacts.
BULK_MINIMUM = 10
SPOOL_CHUNK = 10_000
REFUSED_REASON = "refused by ActiveCampaign (unsubscribed, excluded, bounced or over the contact limit)"


class AudienceSyncError(Exception):
    """The run was stopped before (or instead of) writing, for a reason the user must act on."""


class ActiveCampaignClient(Protocol):
    """The part of ActiveCampaignHook the engine uses (kept as a protocol so tests can fake it)."""

    @property
    def api_url(self) -> str: ...  # read-only on the hook
    request_counts: Counter

    def find_list_by_name(self, name: str) -> dict | None: ...
    def create_list(self, name: str, *, sender_url: str, sender_reminder: str, **fields: Any) -> dict: ...
    def find_user_group(self, name: str) -> dict | None: ...
    def add_list_to_group(self, list_id: str, group_id: str) -> dict: ...
    def iter_list_contacts(self, list_id: str, status: int | None = 1) -> Iterator[dict]: ...
    def find_contact_by_email(self, email: str) -> dict | None: ...
    def sync_contact(self, contact: dict) -> dict: ...
    def set_list_status(self, contact_id: str, list_id: str, status: int) -> dict: ...
    def get_contact_lists(self, contact_id: str) -> list[dict]: ...
    def get_custom_fields(self) -> dict[str, dict]: ...
    def create_custom_field(self, title: str, *, perstag: str, field_type: str = "text") -> dict: ...
    def bulk_import(self, contacts: list[dict]) -> dict: ...
    def get_import_status(self, batch_id: str) -> dict: ...


@dataclass
class SyncOptions:
    """What one run should do. Defaults are the safe choice."""

    list_name: str
    group_name: str | None = None
    mode: Mode = "mirror"
    create_list: bool = True
    create_custom_fields: bool = True
    max_invalid_ratio: float = 0.05
    max_removal_ratio: float = 0.2
    action_on_empty: EmptyAction = "fail"
    dry_run: bool = False
    full_refresh: bool = False
    exclude_automations: bool = True
    email_column: str = "email"
    sender_url: str = "https://www.example.com"
    sender_reminder: str = "You are receiving this email because you are a customer of ours."
    import_timeout: float = 1800.0
    progress_interval: float = 10.0
    example_count: int = 3


@dataclass
class SyncSummary:
    """What a run did (or, for a dry run or verification, would do). Returned as XCom."""

    list_id: str | None
    list_name: str
    mode: str
    dry_run: bool = False
    list_created: bool = False
    rows_read: int = 0
    valid: int = 0
    invalid: int = 0
    duplicates: int = 0
    to_add: int = 0
    to_update: int = 0
    unchanged: int = 0
    to_unsubscribe: int = 0
    added: int = 0
    updated: int = 0
    unsubscribed: int = 0
    rejected: int = 0
    skipped_unsubscribed: int = 0
    previously_refused: int = 0  # refused by ActiveCampaign on an earlier run, unchanged since
    api_requests: int = 0
    requests_by_endpoint: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    membership_source: str = "state"
    rejects_report: str | None = None
    examples: dict[str, list[str]] = field(default_factory=dict)
    # Verification (list sync): contacts missing from the list / on the list but not in the audience.
    missing: int = 0
    unexpected: int = 0
    state_warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Pending:
    """A bulk import batch waiting for ActiveCampaign to process it."""

    batch_id: str
    kind: str  # "upsert" or "remove"
    members: list[tuple[str, str, str]]  # (email, fingerprint, category)
    submitted_at: float
    next_poll_at: float
    polls: int = 0


class AudienceSync:
    """One engine per run. ``plan()`` reads and decides; ``execute()`` writes; ``run()`` does both."""

    def __init__(
        self,
        client: ActiveCampaignClient,
        options: SyncOptions,
        *,
        store: StateStore | None = None,
        run_id: str = "manual",
        log: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        spool_dir: str | None = None,
    ) -> None:
        self.client = client
        self.options = options
        self.store = store
        self.run_id = run_id
        self.log = log or logging.getLogger(__name__)
        self.clock = clock
        self.sleep = sleep
        self.spool_dir = spool_dir
        self._started = clock()
        self._requests_before = Counter(getattr(client, "request_counts", Counter()))
        self.summary = SyncSummary(list_id=None, list_name=options.list_name, mode=options.mode,
                                   dry_run=options.dry_run)
        self.list_id: str | None = None
        self.field_ids: dict[str, str] = {}
        self._state: dict[str, MemberState] = {}
        self._members: set[str] = set()  # who is on the list now (active), per state or ActiveCampaign
        self._self_unsubscribed: set[str] = set()  # unsubscribed on ActiveCampaign, not by us
        self._audience: dict[str, str] = {}  # email -> fingerprint of every valid audience contact
        self._rejects: list[tuple[str, str]] = []
        self._spool: IO[bytes] | None = None
        self._removals: list[str] = []
        self._confirmed: dict[str, MemberState] = {}
        self._missing_fields: list[str] = []
        self._group: dict | None = None
        self._reconcile = False  # list sync: membership read back from ActiveCampaign is the truth
        self._adopted: dict[str, MemberState] = {}  # on the list already, field values unknown
        self._planned = False

    # ------------------------------------------------------------------ run
    def run(self, columns: Sequence[str], rows: Iterable[Sequence[Any] | Mapping[str, Any]],
            *, membership: Literal["state", "activecampaign"] = "state") -> SyncSummary:
        """Plan, check the guards, and (unless a dry run) send. Returns the summary."""
        lock = (self.store.lock(self.run_id) if self.store is not None and not self.options.dry_run
                else contextlib.nullcontext())
        with lock:
            self.plan(columns, rows, membership=membership)
            if self.summary.valid == 0 and self.options.action_on_empty == "skip":
                self.log.info("The audience is empty and action_on_empty='skip': nothing sent.")
                return self.finish()
            if not self.options.dry_run:
                self.execute()
            return self.finish()

    # ----------------------------------------------------------------- plan
    def plan(self, columns: Sequence[str], rows: Iterable[Sequence[Any] | Mapping[str, Any]],
             *, membership: Literal["state", "activecampaign"] = "state") -> SyncSummary:
        """Resolve ids, read every row and decide what to send. Writes nothing to ActiveCampaign."""
        opts = self.options
        mapper = RowMapper(columns, email_column=opts.email_column)
        self._resolve_destination(mapper.custom_field_tags)
        self._load_membership(membership)
        with gc_paused():  # a million-entry audience dict makes every collection walk the heap
            self._read_audience(mapper, rows)
        self._plan_removals()
        self._check_guards()
        self._planned = True
        return self.summary

    def _resolve_destination(self, perstags: list[str]) -> None:
        """Find the group, list and custom fields; fail before any write if something is wrong."""
        opts, client = self.options, self.client
        group = None
        if opts.group_name:
            group = client.find_user_group(opts.group_name)
            if group is None:
                raise AudienceSyncError(
                    f"Invalid group name {opts.group_name!r}: no such user group in ActiveCampaign "
                    f"({client.api_url}). Create it under Settings > Users, or fix group_name."
                )
        fields = client.get_custom_fields() if perstags else {}
        self.field_ids = {tag: str(fields[tag]["id"]) for tag in perstags if tag in fields}
        self._missing_fields = [tag for tag in perstags if tag not in fields]
        if self._missing_fields and not opts.create_custom_fields:
            raise AudienceSyncError(
                "These columns have no custom field in ActiveCampaign (personalization tags "
                f"{', '.join(self._missing_fields)}); create them or set create_custom_fields=True."
            )
        found = client.find_list_by_name(opts.list_name)
        if found is None and not opts.create_list:
            raise AudienceSyncError(f"List {opts.list_name!r} does not exist and create_list=False.")
        self._group = group
        self.list_id = str(found["id"]) if found is not None else None
        self.summary.list_id = self.list_id

    def _load_membership(self, membership: str) -> None:
        """Who is on the list now: the state's memory, or the list read back from ActiveCampaign."""
        opts = self.options
        if self.store is not None and not opts.full_refresh:
            self._state, info = self.store.load()
            self.summary.state_warnings = list(info.warnings)
        if self.list_id is None:
            self._members, self.summary.membership_source = set(), "new list"
            return
        if membership == "state" and self._state:
            self._members = {e for e, s in self._state.items() if s.status is MemberStatus.SUBSCRIBED}
            self.summary.membership_source = "state"
            return
        # No memory (first run on an existing list, full refresh, or list sync): ask ActiveCampaign.
        self._reconcile = membership == "activecampaign"
        self._members = self._list_emails(ACTIVE)
        ours = {e for e, s in self._state.items() if s.status is MemberStatus.UNSUBSCRIBED}
        self._self_unsubscribed = self._list_emails(UNSUBSCRIBED) - ours
        self.summary.membership_source = "activecampaign"

    def _list_emails(self, status: int) -> set[str]:
        """Emails on the list with this status, read back from ActiveCampaign (paged by id)."""
        return {c["email"].strip().lower() for c in self.client.iter_list_contacts(self.list_id, status)}

    def _read_audience(self, mapper: RowMapper, rows: Iterable[Sequence[Any] | Mapping[str, Any]]) -> None:
        """One pass over the rows: validate, merge duplicates, classify, spool what must be sent."""
        summary, state, members = self.summary, self._state, self._members
        list_sync = self._reconcile
        examples: dict[str, list[str]] = {"add": [], "update": [], "invalid": [], "unsubscribe": []}
        self._spool = tempfile.TemporaryFile(dir=self.spool_dir)  # noqa: SIM115 - closed in finish()
        # What must be sent waits on disk, not in memory, pickled in chunks (one call per chunk is far
        # cheaper than one per contact).
        chunk: list[tuple] = []
        audience = self._audience
        row_number = 0
        for row_number, row in enumerate(rows, start=1):
            mapped = mapper.map(row, row_number)
            if isinstance(mapped, InvalidRow):
                summary.invalid += 1
                self._rejects.append((mapped.email or "", f"invalid: {mapped.reason}"))
                if len(examples["invalid"]) < self.options.example_count:
                    examples["invalid"].append(mask_email(mapped.email))
                continue
            email = mapped.email
            if email in audience:
                summary.duplicates += 1
                continue
            fp = fingerprint(mapped)
            audience[email] = fp
            known = state.get(email)
            if email in members:
                if known is not None and known.status is MemberStatus.SUBSCRIBED and known.fingerprint == fp:
                    summary.unchanged += 1
                    continue
                if list_sync and (known is None or known.status is not MemberStatus.SUBSCRIBED):
                    # On the list already; we don't know its field values, so the state records "".
                    summary.unchanged += 1
                    audience[email] = ""
                    self._adopted[email] = MemberState("", MemberStatus.SUBSCRIBED)
                    continue
                category = "update"
            elif email in self._self_unsubscribed:
                # They unsubscribed themselves: never re-subscribe them.
                summary.skipped_unsubscribed += 1
                self._rejects.append((email, "unsubscribed from the list themselves; not re-subscribed"))
                continue
            elif known is not None and known.status is MemberStatus.UNSUBSCRIBED:
                category = "resubscribe"  # we removed them earlier; they are back in the audience
            elif known is not None and known.status is MemberStatus.REFUSED and known.fingerprint == fp:
                summary.unchanged += 1  # refused before and nothing changed: don't ask again
                summary.previously_refused += 1
                continue
            else:
                category = "add"
            if category == "update":
                summary.to_update += 1
            else:
                summary.to_add += 1
            bucket = "update" if category == "update" else "add"
            if len(examples[bucket]) < self.options.example_count:
                examples[bucket].append(mask_email(email))
            chunk.append((category, fp, mapped.email, mapped.first_name, mapped.last_name, mapped.phone,
                          mapped.customer_acct_name, mapped.tags, mapped.fields))
            if len(chunk) >= SPOOL_CHUNK:
                pickle.dump(chunk, self._spool, protocol=pickle.HIGHEST_PROTOCOL)
                chunk = []
        if chunk:
            pickle.dump(chunk, self._spool, protocol=pickle.HIGHEST_PROTOCOL)
        summary.rows_read = row_number
        summary.valid = len(audience)
        summary.examples = examples

    def _plan_removals(self) -> None:
        if self.options.mode != "mirror":
            return
        self._removals = sorted(self._members - self._audience.keys())
        self.summary.to_unsubscribe = len(self._removals)
        self.summary.examples["unsubscribe"] = [mask_email(e) for e in
                                                self._removals[: self.options.example_count]]

    def _check_guards(self) -> None:
        """Refuse, before any contact is written, a run that looks broken."""
        opts, s = self.options, self.summary
        if s.valid == 0 and opts.action_on_empty == "skip":
            return  # nothing will be sent at all
        if s.valid == 0 and opts.action_on_empty == "fail":
            raise AudienceSyncError(
                f"The audience is empty ({s.rows_read} rows read, {s.invalid} invalid): refusing to "
                f"{'unsubscribe the whole list' if opts.mode == 'mirror' else 'continue'}. "
                "Set action_on_empty='skip' or 'proceed' if this is expected."
            )
        if s.rows_read and s.invalid / s.rows_read > opts.max_invalid_ratio:
            self._write_rejects()
            raise AudienceSyncError(
                f"{s.invalid} of {s.rows_read} rows ({s.invalid / s.rows_read:.1%}) have no valid email, "
                f"more than max_invalid_ratio={opts.max_invalid_ratio:.1%}. Nothing was sent. "
                f"Rejects report: {s.rejects_report}"
            )
        base = len(self._members)
        if s.to_unsubscribe and base and s.to_unsubscribe / base > opts.max_removal_ratio:
            raise AudienceSyncError(
                f"This run would unsubscribe {s.to_unsubscribe} of the list's {base} members "
                f"({s.to_unsubscribe / base:.1%}), more than max_removal_ratio={opts.max_removal_ratio:.1%}. "
                "Nothing was sent. If the audience really shrank, raise max_removal_ratio for one run."
            )

    # -------------------------------------------------------------- execute
    def execute(self) -> SyncSummary:
        """Send the plan. Every confirmed batch is committed to the state before the next is trusted."""
        if not self._planned:
            raise RuntimeError("plan() must run before execute()")
        self._create_destination()
        self._progress_total = self.summary.to_add + self.summary.to_update + self.summary.to_unsubscribe
        self._progress_done = 0
        self._last_progress = self.clock()
        upserts = self._iter_spool()
        small = self.summary.to_add + self.summary.to_update < BULK_MINIMUM
        bulk_items: Iterator[tuple[str, str, AudienceContact]]
        resubscribes: list[tuple[str, AudienceContact]] = []

        def bulk_source() -> Iterator[tuple[str, str, AudienceContact]]:
            for category, fp, contact in upserts:
                if category == "resubscribe":
                    resubscribes.append((fp, contact))
                elif small:
                    self._upsert_one(contact, fp, category)
                else:
                    yield category, fp, contact

        bulk_items = bulk_source()
        self._send_bulk_upserts(bulk_items)
        for fp, contact in resubscribes:
            self._upsert_one(contact, fp, "resubscribe")
        self._send_removals()
        if self.store is not None:
            members = dict(self._state)
            if self._reconcile:  # forget members the list no longer has
                for email in [e for e, m in members.items() if m.status is MemberStatus.SUBSCRIBED
                              and e not in self._members]:
                    del members[email]
            members.update(self._adopted)
            members.update(self._confirmed)
            self.store.compact(members)
        return self.summary

    def _create_destination(self) -> None:
        """The first writes of a run, made only once every guard has passed."""
        opts, client = self.options, self.client
        for tag in self._missing_fields:
            created = client.create_custom_field(tag.replace("_", " ").title(), perstag=tag)
            self.field_ids[tag] = str(created["id"])
            self.log.info("Created custom field %s (id %s).", tag, created["id"])
        if self.list_id is None:
            created = client.create_list(opts.list_name, sender_url=opts.sender_url,
                                         sender_reminder=opts.sender_reminder)
            self.list_id = self.summary.list_id = str(created["id"])
            self.summary.list_created = True
            self.log.info("Created list %r (id %s).", opts.list_name, self.list_id)
            if self._group is not None:
                client.add_list_to_group(self.list_id, str(self._group["id"]))
                self.log.info("Tied list %s to user group %r.", self.list_id, opts.group_name)

    def _iter_spool(self) -> Iterator[tuple[str, str, AudienceContact]]:
        assert self._spool is not None
        self._spool.seek(0)
        while True:
            try:
                chunk = pickle.load(self._spool)
            except EOFError:
                return
            for category, fp, email, first, last, phone, acct, tags, fields in chunk:
                yield category, fp, AudienceContact(email=email, first_name=first, last_name=last, phone=phone,
                                                    customer_acct_name=acct, tags=tags, fields=fields)

    def _send_bulk_upserts(self, items: Iterator[tuple[str, str, AudienceContact]]) -> None:
        meta: dict[str, tuple[str, str]] = {}

        def payloads() -> Iterator[dict]:
            for category, fp, contact in items:
                meta[contact.email] = (fp, category)
                yield to_import_contact(contact, field_ids=self.field_ids, subscribe_list_id=int(self.list_id),
                                        exclude_automations=self.options.exclude_automations)

        self._pipeline(payloads(), meta, kind="upsert")

    def _send_removals(self) -> None:
        if not self._removals:
            return
        # Someone who already unsubscribed themselves must not be recorded as removed by us: that
        # record is what later allows re-subscribing them. One paged read finds them.
        self_unsubscribed = self._list_emails(UNSUBSCRIBED)
        for email in [e for e in self._removals if e in self_unsubscribed]:
            known = self._state.get(email)
            self.summary.skipped_unsubscribed += 1
            self._commit({email: MemberState(known.fingerprint if known else "", MemberStatus.REFUSED,
                                             known.contact_id if known else None)})
        self._removals = [e for e in self._removals if e not in self_unsubscribed]
        if not self._removals:
            return
        if len(self._removals) < BULK_MINIMUM:
            for email in self._removals:
                self._unsubscribe_one(email)
            return
        meta = {email: (self._state[email].fingerprint if email in self._state else "", "remove")
                for email in self._removals}
        payloads = ({"email": e, "unsubscribe": [{"listid": int(self.list_id)}],
                     "exclude_automations": self.options.exclude_automations} for e in self._removals)
        self._pipeline(payloads, meta, kind="remove")

    def _pipeline(self, payloads: Iterator[dict], meta: dict[str, tuple[str, str]], *, kind: str) -> None:
        """Submit batches at the importer's pace; poll the oldest pending batch between submissions.

        The hook's bulk limiter spaces imports 0.6 s apart; one poll fits in each gap, so polls never
        push the account past its 5 requests/second.
        """
        pending: deque[_Pending] = deque()
        try:
            for batch in split_import_batches(payloads):
                self._poll_due(pending, meta)
                self._submit(batch, meta, kind, pending)
        except Exception:
            # Batches already queued by ActiveCampaign will be processed: confirm them before failing,
            # so a retry does not send them again.
            with contextlib.suppress(Exception):
                self._drain(pending, meta)
            raise
        self._drain(pending, meta)

    def _drain(self, pending: deque[_Pending], meta: dict[str, tuple[str, str]]) -> None:
        while pending:
            wait = pending[0].next_poll_at - self.clock()
            if wait > 0:
                self.sleep(wait)
            self._poll_due(pending, meta)

    def _submit(self, batch: list[dict], meta: dict[str, tuple[str, str]], kind: str,
                pending: deque[_Pending]) -> None:
        try:
            answer = self.client.bulk_import(batch)
        except ActiveCampaignBulkImportRejectedError as error:
            self._repair_rejected_batch(batch, error, meta, kind, pending)
            return
        batch_id = str(answer.get("batchId") or answer.get("batchid") or "")
        members = []
        for contact in batch:
            fp, category = meta.pop(contact["email"])
            members.append((contact["email"], fp, category))
        now = self.clock()
        pending.append(_Pending(batch_id, kind, members, now, now + 1.0))

    def _repair_rejected_batch(self, batch: list[dict], error: ActiveCampaignBulkImportRejectedError,
                               meta: dict[str, tuple[str, str]], kind: str, pending: deque[_Pending]) -> None:
        """A batch refused whole: set aside the contacts it names, resend the rest, try those alone.

        The docs don't say whether failureReasons[].contact is 0- or 1-based, so both neighbours are
        suspects; each suspect goes through contact/sync, which names exactly what is wrong.
        """
        suspects: set[int] = set()
        for reason in error.failure_reasons:
            if isinstance(reason, dict) and str(reason.get("contact", "")).isdigit():
                index = int(reason["contact"])
                suspects.update(i for i in (index, index - 1) if 0 <= i < len(batch))
        if not suspects or len(suspects) >= len(batch):
            if len(batch) == 1:
                email = batch[0]["email"]
                fp, _category = meta.pop(email)
                self._reject(email, f"import refused: {error.api_message or error}",
                             remember=MemberState(fp, MemberStatus.REFUSED))
                return
            middle = len(batch) // 2  # no usable hint: bisect
            for half in (batch[:middle], batch[middle:]):
                self._submit(half, meta, kind, pending)
            return
        self.log.warning("A batch of %d was refused whole (%s); retrying without %d suspect contact(s).",
                         len(batch), error.api_message, len(suspects))
        rest = [c for i, c in enumerate(batch) if i not in suspects]
        if rest:
            self._submit(rest, meta, kind, pending)
        for i in sorted(suspects):
            email = batch[i]["email"]
            fp, category = meta.pop(email)
            if kind == "remove":
                self._unsubscribe_one(email)
            else:
                self._upsert_one(self._contact_from_payload(batch[i]), fp, category)

    def _contact_from_payload(self, payload: dict) -> AudienceContact:
        ids_to_tag = {v: k for k, v in self.field_ids.items()}
        fields = tuple(sorted((ids_to_tag[str(f["id"])], f["value"]) for f in payload.get("fields", [])))
        return AudienceContact(
            email=payload["email"], first_name=payload.get("first_name"), last_name=payload.get("last_name"),
            phone=payload.get("phone"), customer_acct_name=payload.get("customer_acct_name"),
            tags=tuple(payload.get("tags", ())), fields=fields,
        )

    def _poll_due(self, pending: deque[_Pending], meta: dict[str, tuple[str, str]]) -> None:
        if not pending or pending[0].next_poll_at > self.clock():
            return
        head = pending[0]
        status = self.client.get_import_status(head.batch_id)
        head.polls += 1
        state = status.get("status")
        if state in ("failed", "interrupted"):
            pending.popleft()
            for email, _fp, _category in head.members:
                self._reject(email, f"ActiveCampaign import batch {state}")  # not remembered: retried
            return
        if state != "completed":
            if self.clock() - head.submitted_at > self.options.import_timeout:
                raise AudienceSyncError(
                    f"Import batch {head.batch_id} not processed after {self.options.import_timeout:.0f}s "
                    f"(status {state!r}); confirmed batches are saved, a retry resumes from there."
                )
            head.next_poll_at = self.clock() + min(10.0, 1.0 * 2 ** min(head.polls, 4))
            return
        pending.popleft()
        failed = {str(e).strip().lower() for e in status.get("failure") or []}
        confirmed: dict[str, MemberState] = {}
        for email, fp, category in head.members:
            if email in failed:
                self._reject(email, REFUSED_REASON)
                if head.kind == "remove":
                    continue
                confirmed[email] = MemberState(fp, MemberStatus.REFUSED)
                continue
            if head.kind == "remove":
                confirmed[email] = MemberState(fp, MemberStatus.UNSUBSCRIBED)
                self.summary.unsubscribed += 1
            else:
                confirmed[email] = MemberState(fp, MemberStatus.SUBSCRIBED)
                self._count_done(category)
        self._commit(confirmed)
        self._progress(len(head.members))

    def _count_done(self, category: str) -> None:
        if category == "update":
            self.summary.updated += 1
        else:
            self.summary.added += 1

    def _reject(self, email: str, reason: str, *, remember: MemberState | None = None) -> None:
        """Count and report a contact ActiveCampaign refused; ``remember`` it so an unchanged contact
        is not offered again next run."""
        self.summary.rejected += 1
        self._rejects.append((email, reason))
        if remember is not None:
            self._commit({email: remember})

    def _upsert_one(self, contact: AudienceContact, fp: str, category: str) -> None:
        """contact/sync + contactLists, for a handful of contacts or re-subscribing one we removed."""
        try:
            synced = self.client.sync_contact(to_sync_contact(contact, field_ids=self.field_ids))
        except ActiveCampaignValidationError as error:
            self._reject(contact.email, f"contact refused: {error.api_message or error}",
                         remember=MemberState(fp, MemberStatus.REFUSED))
            return
        contact_id = str(synced["id"])
        known = self._state.get(contact.email)
        removed_by_us = known is not None and known.status is MemberStatus.UNSUBSCRIBED
        if not removed_by_us:
            # contactLists status 1 WOULD re-subscribe someone who unsubscribed themselves: look first.
            for membership in self.client.get_contact_lists(contact_id):
                if str(membership.get("list")) == self.list_id and str(membership.get("status")) == "2":
                    self.summary.skipped_unsubscribed += 1
                    self._rejects.append((contact.email, "unsubscribed from the list themselves; "
                                          "not re-subscribed"))
                    self._commit({contact.email: MemberState(fp, MemberStatus.REFUSED, contact_id)})
                    return
        self.client.set_list_status(contact_id, self.list_id, ACTIVE)
        self._count_done(category)
        self._commit({contact.email: MemberState(fp, MemberStatus.SUBSCRIBED, contact_id)})
        self._progress(1)

    def _unsubscribe_one(self, email: str) -> None:
        known = self._state.get(email)
        contact_id = known.contact_id if known is not None else None
        if not contact_id:
            found = self.client.find_contact_by_email(email)
            if found is None:
                self._commit({email: MemberState("", MemberStatus.UNSUBSCRIBED)})
                return
            contact_id = str(found["id"])
        self.client.set_list_status(contact_id, self.list_id, UNSUBSCRIBED)
        self.summary.unsubscribed += 1
        fp = known.fingerprint if known is not None else ""
        self._commit({email: MemberState(fp, MemberStatus.UNSUBSCRIBED, contact_id)})
        self._progress(1)

    def _commit(self, entries: dict[str, MemberState]) -> None:
        """The commit point: what ActiveCampaign confirmed is written before anything else is trusted."""
        if not entries:
            return
        self._confirmed.update(entries)
        if self.store is not None:
            self.store.record(entries, run_id=self.run_id)

    def _progress(self, done: int) -> None:
        self._progress_done += done
        now = self.clock()
        if now - self._last_progress < self.options.progress_interval:
            return
        self._last_progress = now
        elapsed = max(now - self._started, 1e-6)
        rate = self._progress_done / elapsed
        left = self._progress_total - self._progress_done
        eta = left / rate if rate else float("inf")
        self.log.info("Progress: %d/%d contacts confirmed, %.0f contacts/s, ETA %.0fs.",
                      self._progress_done, self._progress_total, rate, eta)

    # --------------------------------------------------------------- finish
    def _write_rejects(self) -> None:
        if self.store is None or not self._rejects or self.summary.rejects_report:
            return
        path = self.store.write_rejects(self.run_id, self._rejects)
        self.summary.rejects_report = str(path)

    def finish(self) -> SyncSummary:
        """Write the rejects report, release the spool and total the requests and time."""
        self._write_rejects()
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        s = self.summary
        delta = Counter(getattr(self.client, "request_counts", Counter()))
        delta.subtract(self._requests_before)
        s.requests_by_endpoint = {k: v for k, v in sorted(delta.items()) if v > 0}
        s.api_requests = sum(s.requests_by_endpoint.values())
        s.seconds = round(self.clock() - self._started, 3)
        return s

    def verification(self, tolerance: float) -> tuple[bool, str]:
        """After a plan against ActiveCampaign's membership: does the list match the audience?"""
        s = self.summary
        s.missing = s.to_add
        s.unexpected = s.to_unsubscribe
        differences = s.missing + s.unexpected
        ratio = differences / max(1, s.valid)
        ok = ratio <= tolerance
        message = (f"list {s.list_name!r}: {s.valid} audience contacts, {s.missing} missing from the list, "
                   f"{s.unexpected} on the list but not in the audience; not counted: {s.skipped_unsubscribed} "
                   f"unsubscribed themselves, {s.previously_refused} refused by ActiveCampaign (see the rejects "
                   f"report of the send) ({ratio:.2%} different, tolerance {tolerance:.2%})")
        return ok, message
