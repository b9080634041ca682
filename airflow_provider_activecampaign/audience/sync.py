"""The audience engine: make an ActiveCampaign list match a query's rows, sending only what changed.

Plain Python with no Airflow imports. It talks to ActiveCampaign through a client with the hook's API
(:mod:`.client`) and keeps a verified cache of what ActiveCampaign confirmed in a StateStore.

One run: resolve the list, group and custom fields -> load the state, resolve batches an earlier attempt
left in flight, check the state against the list (:mod:`.membership`; read the list back on drift, a
stale copy, a recreated list or every ``reconcile_every``) -> read and validate every row, merge
duplicates, classify, spool what must be sent -> check the guards -> an :class:`AudiencePlan`.
``execute(plan)``: re-subscribe members this sync removed, when consent allows (:mod:`.consent`) ->
every add and update through the bulk importer -> removals of contacts that still exist -> compact.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import itertools
import logging
import marshal
import operator
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import IO, Any, Literal

from airflow_provider_activecampaign.audience.client import ActiveCampaignClient
from airflow_provider_activecampaign.audience.compact_state import CompactState
from airflow_provider_activecampaign.audience.consent import resubscribe_verdict
from airflow_provider_activecampaign.audience.destination import (
    DestinationError,
    find_or_create_list,
    resolve_group,
)
from airflow_provider_activecampaign.audience.field_types import FieldPlan, FieldTypeError
from airflow_provider_activecampaign.audience.membership import (
    ceil_now,
    check_removals,
    drift_reason,
    read_back,
    state_counts,
    unsubscribe_ledger,
    unsubscribe_stamp,
    wait_for_next_second,
)
from airflow_provider_activecampaign.audience.pipeline import Batch, ImportPipeline, Journal, Member
from airflow_provider_activecampaign.audience.plan import (
    AudiencePlan,
    AudienceSyncError,
    AudienceSyncRetryableError,
    EmptyAction,
    Mode,
    SyncOptions,
    SyncSummary,
)
from airflow_provider_activecampaign.audience.records import (
    AudienceContact,
    ContactRecord,
    InvalidRow,
    RowMapper,
    fingerprint,
    mask_email,
    to_import_contact,
)
from airflow_provider_activecampaign.audience.refusals import RefusalReasons
from airflow_provider_activecampaign.audience.resolve import resolve_in_flight
from airflow_provider_activecampaign.audience.state import (
    LoadInfo,
    MemberState,
    MemberStatus,
    StateMeta,
    StateStore,
    gc_paused,
)
from airflow_provider_activecampaign.importer import MAX_IMPORT_BYTES, fits_one_import

__all__ = [
    "ActiveCampaignClient",
    "AudiencePlan",
    "AudienceSync",
    "AudienceSyncError",
    "AudienceSyncRetryableError",
    "EmptyAction",
    "Mode",
    "SyncOptions",
    "SyncSummary",
]

S, U, ELSEWHERE, R = (MemberStatus.SUBSCRIBED, MemberStatus.UNSUBSCRIBED,
                      MemberStatus.UNSUBSCRIBED_ELSEWHERE, MemberStatus.REFUSED)
ACTIVE = 1
SPOOL_CHUNK = 10_000
# A contact whose text is under this many characters surely fits in one import request: UTF-8 takes at
# most 4 bytes a character, JSON adds quotes and names. Longer ones are measured exactly.
_SURELY_FITS = (MAX_IMPORT_BYTES - 10_000) // 6
_second = operator.itemgetter(1)


class AudienceSync:
    """One engine per run. ``plan()`` reads and decides; ``execute(plan)`` writes; ``run()`` does both."""

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
        self.user_id: str | None = None
        self._state: dict[str, MemberState] = {}  # Mapping-like: get/in/items/len/update only
        self._info = LoadInfo()
        self._reconciled_at: str | None = None
        self._read_back = False
        self._audience: set[str] = set()  # the email of every valid audience contact
        self._rejects: list[tuple[str, str]] = []
        self._spool: IO[bytes] | None = None
        self._resubscribes: list[tuple[str, AudienceContact]] = []  # (fingerprint, contact): few, in memory
        self._removals: list[str] = []
        self._dropped: set[str] = set()  # contacts gone from ActiveCampaign: forgotten at compaction
        self._missing_fields: list[str] = []
        self._existing_fields: Mapping[str, Mapping[str, Any]] = {}
        self._field_plan = FieldPlan({})  # typed custom fields of this run (plain text unless typed)
        self._group: dict | None = None
        self._plan: AudiencePlan | None = None
        self._reoffered = 0
        self._reasons = RefusalReasons(client, self.log)
        self.unsubscribes: dict[str, int] | None = None  # the ledger to publish after a commit
        self.journal = Journal(store if not options.dry_run else None, run_id)
        self.pipeline = ImportPipeline(client, self.journal, self._outcome, clock=clock, sleep=sleep,
                                       import_timeout=options.import_timeout, log=self.log,
                                       on_rejected=self._rejected_in_request)

    # ------------------------------------------------------------------ run
    def run(self, columns: Sequence[str], rows: Iterable[Sequence[Any] | Mapping[str, Any]],
            *, membership: Literal["state", "activecampaign"] = "state") -> SyncSummary:
        """Plan, check the guards, and (unless a dry run) send. Returns the summary."""
        lock = (self.store.lock(self.run_id) if self.store is not None and not self.options.dry_run
                else contextlib.nullcontext())
        with lock:
            plan = self.plan(columns, rows, membership=membership)
            if self.summary.valid == 0 and self.options.action_on_empty == "skip":
                self.log.info("The audience is empty and action_on_empty='skip': nothing sent.")
                return self.finish()
            if not self.options.dry_run:
                self.execute(plan)
            return self.finish()

    # ----------------------------------------------------------------- plan
    def plan(self, columns: Sequence[str], rows: Iterable[Sequence[Any] | Mapping[str, Any]],
             *, membership: Literal["state", "activecampaign"] = "state") -> AudiencePlan:
        """Resolve ids, verify the state, read every row and decide. Writes nothing to ActiveCampaign."""
        mapper = RowMapper(columns, email_column=self.options.email_column)
        self._resolve_destination(mapper.custom_field_tags)
        mapper = self._typed_mapper(columns, mapper)
        self._load_membership(membership)
        try:
            with gc_paused():  # a million-entry audience dict makes every collection walk the heap
                self._read_audience(mapper, rows)
        except FieldTypeError as error:  # e.g. a dropdown column with thousands of distinct values
            raise AudienceSyncError(f"{error} Nothing was sent.") from error
        self._plan_removals()
        self._check_guards()
        s = self.summary
        self._plan = AudiencePlan(
            list_name=self.options.list_name, list_id=self.list_id, mode=self.options.mode,
            field_ids=tuple(sorted(self.field_ids.items())), missing_fields=tuple(self._missing_fields),
            field_types=tuple(sorted(self._field_plan.describe().items())),
            to_add=s.to_add, to_update=s.to_update, to_resubscribe=len(self._resubscribes),
            to_unsubscribe=s.to_unsubscribe, unchanged=s.unchanged, invalid=s.invalid,
            duplicates=s.duplicates, skipped_unsubscribed=s.skipped_unsubscribed,
            removals=tuple(self._removals), spool=str(getattr(self._spool, "name", "(temporary file)")),
            state_generation=self._info.generation_id, membership_source=s.membership_source,
            membership_reason=s.membership_reason, dry_run=self.options.dry_run,
        )
        self.log.info("%s", self._plan)
        return self._plan

    def _typed_mapper(self, columns: Sequence[str], mapper: RowMapper) -> RowMapper:
        """Typed custom fields (field_types.py): each column's type, checked against the existing fields
        before any write; values are then written in their field's format by the row mapper."""
        by_perstag = {role[len("field:"):]: column for column, role in mapper.roles.items()
                      if role.startswith("field:")}
        if not by_perstag:
            return mapper
        try:
            self._field_plan = FieldPlan.resolve(self.client, by_perstag, self.options.field_types,
                                                 self._existing_fields)
        except FieldTypeError as error:
            raise AudienceSyncError(str(error)) from error
        if not self._field_plan.typed:
            return mapper
        return RowMapper(columns, email_column=self.options.email_column, formatters=self._field_plan.formatters)

    def _resolve_destination(self, perstags: list[str]) -> None:
        """Find the group, list and custom fields; fail before any write if something is wrong."""
        opts, client = self.options, self.client
        try:
            group = resolve_group(client, opts.group_name)
        except DestinationError as error:
            raise AudienceSyncError(str(error)) from error
        fields = client.get_custom_fields() if perstags else {}
        self._existing_fields = fields
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
        """Who is on the list now: the verified state, or the list read back from ActiveCampaign."""
        opts, s = self.options, self.summary
        if self.store is not None:
            self._state, self._info = self.store.load()
            s.state_warnings = list(self._info.warnings)
            self.user_id = str(self.client.get_current_user().get("id") or "") or None
        meta = self._info.meta
        self._reconciled_at = meta.reconciled_at if meta is not None else None
        reason = self._state_problem(membership)
        if meta is not None and reason is not None and (
                meta.list_id != self.list_id or meta.api_url != self.client.api_url
                or meta.user_id != self.user_id):
            self._drop_membership()  # another list (or account): its memberships mean nothing here
            self._info = LoadInfo(generation=self._info.generation, generation_id=self._info.generation_id)
        if self._info.in_flight:
            if opts.dry_run:
                reason = reason or "batches of an earlier attempt are in flight"
            else:
                self._resolve_in_flight()
        if self.list_id is None:
            self._drop_membership()
            self._reconciled_at = _now_iso()  # an empty new list is known whole
            s.membership_source, s.membership_reason = "new list", "the list does not exist yet"
            return
        if reason is None:
            reason = drift_reason(self.client, self.list_id, self._state)
        if reason is None:
            s.membership_source = "state"
            s.membership_reason = "verified: the list's id and member counts match the state"
            return
        self.log.info("Reading list %s back from ActiveCampaign: %s.", self.list_id, reason)
        rebuilt: dict[str, MemberState] = {}
        read_back(self.client, self.list_id, self._state, rebuilt, ledger=opts.published_unsubscribes)
        if opts.full_refresh:  # resend every member's data; consent and refusal records stay
            rebuilt = {e: m._replace(fingerprint="") if m[1] is S else m for e, m in rebuilt.items()}
        self._state = rebuilt
        self._read_back = True
        self._reconciled_at = _now_iso()
        s.membership_source, s.membership_reason = "activecampaign", reason

    def _state_problem(self, membership: str) -> str | None:
        """Why the state cannot be trusted without reading the list back (None: check the counts)."""
        opts, meta = self.options, self._info.meta
        if membership == "activecampaign":
            return "list sync reads the list"
        if self.store is None or (not self._state and meta is None):
            return "no state yet"
        if meta is None:
            return "the state records no verified list id (written by an older version)"
        if meta.api_url != self.client.api_url or meta.user_id != self.user_id:
            return "the state belongs to another account"
        if self.list_id is not None and meta.list_id != self.list_id:
            return f"the list was recreated (id {meta.list_id} -> {self.list_id})"
        if opts.full_refresh:
            return "full_refresh"
        if opts.published_generation and opts.published_generation != self._info.generation_id:
            return (f"stale copy: this worker's state is generation {self._info.generation_id}, the last "
                    f"committed run's is {opts.published_generation}")
        if not self._reconciled_at:
            return "the list was never read back whole"
        last = _dt.datetime.fromisoformat(self._reconciled_at)
        if _dt.datetime.now(_dt.timezone.utc) - last >= opts.reconcile_every:
            return f"reconcile_every ({opts.reconcile_every}) has passed since {self._reconciled_at}"
        return None

    def _drop_membership(self) -> None:
        """Forget memberships (another list now); keep refusals, which concern contacts, not a list."""
        self._state = {e: m for e, m in self._state.items() if m.status is R}

    def _resolve_in_flight(self) -> None:
        """Batches an earlier attempt journaled but never confirmed: poll or read, never guess."""
        entries = resolve_in_flight(self.client, self.pipeline, self.journal, self._info.in_flight,
                                    self._state, self.list_id, self.log)
        self._state.update(entries)
        self.summary.in_flight_resolved = len(self._info.in_flight)
        self.journal.flush()

    def _read_audience(self, mapper: RowMapper, rows: Iterable[Sequence[Any] | Mapping[str, Any]]) -> None:
        """One pass over the rows: validate, merge duplicates, classify, spool what must be sent."""
        summary, state, opts = self.summary, self._state, self.options
        examples: dict[str, list[str]] = {"add": [], "update": [], "invalid": [], "unsubscribe": []}
        self._spool = tempfile.TemporaryFile(dir=self.spool_dir)  # noqa: SIM115 - closed in finish()
        # What must be sent waits on disk, in marshal chunks: one call per chunk, and marshal writes
        # these plain tuples 4x faster than pickle (the spool never leaves this process).
        chunk: list[tuple] = []
        audience = self._audience
        reoffer_all = self._read_back  # a full read-back also re-offers long-refused contacts
        row_number = 0
        # Per row: a plain tuple (no object), and a fingerprint only where the state has something to
        # compare it with; a new contact's is computed when it is sent (see _iter_spool).
        map_record, state_get = mapper.map_record, state.get
        for row_number, row in enumerate(rows, start=1):
            mapped = map_record(row, row_number)
            if isinstance(mapped, InvalidRow):
                summary.invalid += 1
                self._rejects.append((mapped.email or "", f"invalid: {mapped.reason}"))
                if len(examples["invalid"]) < opts.example_count:
                    examples["invalid"].append(mask_email(mapped.email))
                continue
            email = mapped[0]
            if email in audience:
                summary.duplicates += 1
                continue
            audience.add(email)
            known = state_get(email) if state else None
            if known is None:
                category, fp = "add", None
            else:
                fp = fingerprint(mapped)
                status = known[1]
                if status is S:
                    if known[0] == fp:
                        summary.unchanged += 1
                        continue
                    category = "update"
                elif status is U:
                    summary.to_add += 1
                    self._resubscribes.append((fp, AudienceContact(*mapped)))  # consent is read before any write
                    continue
                elif status is ELSEWHERE:
                    summary.skipped_unsubscribed += 1
                    self._rejects.append((email, f"not re-subscribed: {known.note or 'unsubscribed elsewhere'}"))
                    continue
                elif known[0] == fp and known.attempts >= opts.max_refusal_attempts and not reoffer_all:
                    summary.unchanged += 1  # refused too often with the same data: wait for a read-back
                    summary.previously_refused += 1
                    continue
                else:
                    category = "add"
                    if known[0] == fp:
                        self._reoffered += 1  # refused before, offered again
                        summary.previously_refused += 1
            if not self._fits_one_import(mapped):
                summary.rejected += 1
                self._rejects.append((email, f"too large for one bulk import request (over "
                                             f"{MAX_IMPORT_BYTES} bytes); shorten its fields or tags"))
                continue
            if category == "update":
                summary.to_update += 1
            else:
                summary.to_add += 1
            if len(examples[category]) < opts.example_count:
                examples[category].append(mask_email(email))
            chunk.append((category, fp, *mapped))
            if len(chunk) >= SPOOL_CHUNK:
                marshal.dump(chunk, self._spool)
                chunk = []
        if chunk:
            marshal.dump(chunk, self._spool)
        summary.rows_read = row_number
        summary.valid = len(audience)
        summary.examples = examples

    def _fits_one_import(self, record: ContactRecord) -> bool:
        email, first, last, phone, acct, tags, fields = record
        size = len(email) + len(first or "") + len(last or "") + len(phone or "") + len(acct or "")
        if tags:
            size += sum(map(len, tags))
        if fields:
            size += 16 * len(fields) + sum(map(len, map(_second, fields)))
        if size < _SURELY_FITS:
            return True
        contact = AudienceContact(*record)
        # Placeholder ids as long as any real one, so the measure holds once fields are created.
        ids = {tag: 999_999_999 for tag, _v in contact.fields}
        payload = to_import_contact(contact, field_ids=ids, subscribe_list_id=999_999_999)
        return fits_one_import(payload)

    def _plan_removals(self) -> None:
        if self.options.mode != "mirror":
            return
        audience = self._audience
        members = (self._state.emails_with_status(S) if isinstance(self._state, CompactState)
                   else (e for e, m in self._state.items() if m[1] is S))
        self._removals = sorted(e for e in members if e not in audience)
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
        base = state_counts(self._state)[0]
        if s.to_unsubscribe and base and s.to_unsubscribe / base > opts.max_removal_ratio:
            raise AudienceSyncError(
                f"This run would unsubscribe {s.to_unsubscribe} of the list's {base} members "
                f"({s.to_unsubscribe / base:.1%}), more than max_removal_ratio={opts.max_removal_ratio:.1%}. "
                "Nothing was sent. If the audience really shrank, raise max_removal_ratio for one run."
            )

    # -------------------------------------------------------------- execute
    def execute(self, plan: AudiencePlan | None = None) -> SyncSummary:
        """Send the plan. Refuses a plan this engine did not make or whose state has changed since."""
        if self._plan is None:
            raise RuntimeError("plan() must run before execute()")
        plan = plan or self._plan
        if plan is not self._plan:
            raise AudienceSyncError("This plan was not made by this engine: plan again, then execute it.")
        if self.store is not None:
            current = self.store.peek_generation_id()
            if current != plan.state_generation:
                raise AudienceSyncError(
                    f"The state changed since the plan was made (generation {plan.state_generation} -> "
                    f"{current}): another run wrote it. Plan again.")
        self._create_destination()
        self._progress_total = plan.to_add + plan.to_update + plan.to_unsubscribe
        self._progress_done = 0
        self._last_progress = self.clock()
        resubscribed = self._resubscribe()
        self._send_upserts(itertools.chain(resubscribed, self._iter_spool()))
        self._send_removals()
        if self.store is not None:
            # Updated in place when packed: a copy of a million members would double the state's memory,
            # and nothing reads the loaded state after this.
            members = self._state if isinstance(self._state, CompactState) else dict(self._state)
            members.update(self.journal.confirmed)
            for email in self._dropped:
                members.pop(email, None)
            self.store.compact(members, meta=self._meta(members))
            self.summary.state_generation = self.store.generation_id
            self.unsubscribes = unsubscribe_ledger(members)
        return self.summary

    def _meta(self, members: Mapping[str, MemberState]) -> StateMeta:
        active, unsubscribed = state_counts(members)
        return StateMeta(api_url=self.client.api_url, user_id=self.user_id, list_id=str(self.list_id),
                         list_name=self.options.list_name, active=active, unsubscribed=unsubscribed,
                         reconciled_at=self._reconciled_at)

    def _create_destination(self) -> None:
        """The first writes of a run, made only once every guard has passed."""
        opts, client = self.options, self.client
        for tag in self._missing_fields:
            created = self._field_plan.create_field(client, tag, tag.replace("_", " ").title())
            self.field_ids[tag] = str(created["id"])
            self.log.info("Created custom field %s (id %s, %s).", tag, created["id"], self._field_plan.field_type(tag))
        for tag, options in self._field_plan.create_missing_options(client, self.field_ids).items():
            self.log.info("Added %d option(s) to custom field %s.", len(options), tag)
        if self.list_id is None:
            found, list_created = find_or_create_list(client, opts.list_name, group=self._group, create=True,
                                                      sender_url=opts.sender_url,
                                                      sender_reminder=opts.sender_reminder)
            self.list_id = self.summary.list_id = str(found["id"])
            self.summary.list_created = list_created
            self.log.info("%s list %r (id %s)%s.", "Created" if list_created else "Found", opts.list_name,
                          self.list_id, f", tied to user group {opts.group_name!r}" if list_created and self._group
                          else "")

    def _iter_spool(self) -> Iterator[tuple[str, str, AudienceContact]]:
        assert self._spool is not None
        self._spool.seek(0)
        while True:
            try:
                chunk = marshal.load(self._spool)
            except EOFError:
                return
            for category, fp, *record in chunk:
                contact = AudienceContact(*record)
                yield category, fingerprint(contact) if fp is None else fp, contact

    def _resubscribe(self) -> list[tuple[str, str, AudienceContact]]:
        """Members this sync removed who are back: re-subscribe them only while it is still the sync's
        own unsubscribe (``contactLists`` status 1, which may start "subscribes to list" automations:
        the API offers no other way back). Returns what the bulk importer then sends them."""
        if not self._resubscribes:
            return []
        key = self.journal.new_key()
        self.journal.intent(key, "resubscribe", ((c.email, fp) for fp, c in self._resubscribes))
        self.journal.flush()
        to_import: list[tuple[str, str, AudienceContact]] = []
        entries: dict[str, MemberState] = {}
        for fp, contact in self._resubscribes:
            known = self._state.get(contact.email)
            contact_id = known.contact_id if known is not None else None
            if not contact_id:
                found = self.client.find_contact_by_email(contact.email)
                contact_id = str(found["id"]) if found is not None else None
            membership = (self.client.get_contact_membership(contact_id, str(self.list_id))
                          if contact_id else None)
            verdict = resubscribe_verdict(membership, known.at if known is not None else None)
            if verdict.action == "skip":
                self.summary.to_add -= 1
                self.summary.skipped_unsubscribed += 1
                self._rejects.append((contact.email, f"not re-subscribed: {verdict.reason}"))
                entries[contact.email] = MemberState(fp, ELSEWHERE, contact_id, ceil_now(), verdict.reason)
                continue
            if verdict.action == "resubscribe":
                assert contact_id is not None
                self.client.set_list_status(contact_id, str(self.list_id), ACTIVE)
                self.summary.resubscribed += 1
                entries[contact.email] = MemberState("", S, contact_id)  # fields follow by import
            to_import.append(("resubscribe", fp, contact))
        self.journal.done(key, entries)
        self._state.update(entries)
        return to_import

    def _send_upserts(self, items: Iterator[tuple[str, str, AudienceContact]]) -> None:
        """Every add and update, on every path, through the bulk importer: same fields, tags, account
        name and ``exclude_automations`` (one-contact imports have their own 20/minute budget)."""
        meta: dict[str, tuple[str, str]] = {}
        list_id, field_ids = int(str(self.list_id)), self.field_ids
        exclude = self.options.exclude_automations

        def payloads() -> Iterator[dict]:
            for category, fp, contact in items:
                meta[contact.email] = (fp, category)
                yield to_import_contact(contact, field_ids=field_ids, subscribe_list_id=list_id,
                                        exclude_automations=exclude)

        self.pipeline.send(payloads(), meta, kind="upsert")

    def _send_removals(self) -> None:
        if not self._removals:
            return
        send, gone, found = check_removals(self.client, self._removals, self._state)
        for email in gone:
            self._dropped.add(email)  # deleted in ActiveCampaign: an unsubscribe would create them again
        self.summary.removals_dropped = len(gone)
        for email, contact_id in found.items():
            known = self._state.get(email)
            if known is not None and known.contact_id != contact_id:
                self._state[email] = known._replace(contact_id=contact_id)
        if not send:
            return
        meta = {email: (self._state[email].fingerprint if email in self._state else "", "remove")
                for email in send}
        list_id, exclude = int(str(self.list_id)), self.options.exclude_automations
        payloads = ({"email": e, "unsubscribe": [{"listid": list_id}], "exclude_automations": exclude}
                    for e in send)
        self.pipeline.send(payloads, meta, kind="remove")
        if self.summary.unsubscribed:
            wait_for_next_second()  # see unsubscribe_stamp(): a later change by anyone else is told apart

    # ------------------------------------------------------------- outcomes
    def _outcome(self, batch: Batch, failed: set[str], failure_status: str) -> dict[str, MemberState]:
        """What a processed batch means for each member (the pipeline journals it)."""
        entries: dict[str, MemberState] = {}
        now = ceil_now()
        s = self.summary
        for email, fp, category in batch.members:
            known = self._state.get(email)
            contact_id = known.contact_id if known is not None else None
            if email in failed:
                if failure_status:  # the whole batch failed: nothing recorded, the next run sends again
                    self._reject(email, failure_status)
                    continue
                reason = self._reasons.reason(email)
                if batch.kind == "upsert" and category != "update":
                    entries[email] = self._refusal(email, fp, known, reason, now)
                else:  # still on the list as before; the next run offers the change again
                    self._reject(email, reason)
                continue
            if batch.kind == "remove":
                entries[email] = MemberState(known.fingerprint if known else "", U, contact_id,
                                             unsubscribe_stamp())
                s.unsubscribed += 1
            else:
                entries[email] = MemberState(fp, S, contact_id)
                if category == "update":
                    s.updated += 1
                elif category in ("add", "resubscribe"):
                    s.added += 1
        self._progress(len(batch.members))
        return entries

    def _refusal(self, email: str, fp: str, known: MemberState | None, reason: str, now: int) -> MemberState:
        attempts = known.attempts + 1 if known is not None and known.status is R and known.fingerprint == fp else 1
        self._reject(email, reason)
        self.summary.refused += 1
        self.summary.refusals[reason] = self.summary.refusals.get(reason, 0) + 1
        return MemberState(fp, R, known.contact_id if known else None, now, reason, attempts)

    def _rejected_in_request(self, member: Member, reason: str) -> None:
        """A contact the importer refused in the request itself (the batch was never queued)."""
        email, fp, category = member
        if category == "remove":
            self._reject(email, reason)
            return
        entry = self._refusal(email, fp, self._state.get(email), reason, ceil_now())
        self.journal.done(None, {email: entry})

    def _reject(self, email: str, reason: str) -> None:
        self.summary.rejected += 1
        self._rejects.append((email, reason))

    def _progress(self, done: int) -> None:
        self._progress_done = getattr(self, "_progress_done", 0) + done
        now = self.clock()
        if now - getattr(self, "_last_progress", now) < self.options.progress_interval:
            return
        self._last_progress = now
        elapsed = max(now - self._started, 1e-6)
        rate = self._progress_done / elapsed
        left = getattr(self, "_progress_total", 0) - self._progress_done
        eta = left / rate if rate else float("inf")
        self.log.info("Progress: %d/%d contacts confirmed, %.0f contacts/s, ETA %.0fs.",
                      self._progress_done, getattr(self, "_progress_total", 0), rate, eta)

    # --------------------------------------------------------------- finish
    def _write_rejects(self) -> None:
        if self.store is None or not self._rejects or self.summary.rejects_report:
            return
        path = str(self.store.write_rejects(self.run_id, self._rejects))
        # A local report is named by its plain path, which a person can open (not "file:/...").
        for prefix in ("file://", "file:"):
            if path.startswith(prefix):
                path = path[len(prefix):]
                break
        self.summary.rejects_report = path

    def finish(self) -> SyncSummary:
        """Write the rejects report, release the spool and total the requests and time."""
        self._write_rejects()
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        s = self.summary
        if s.state_generation is None:
            s.state_generation = self._info.generation_id
        delta = Counter(getattr(self.client, "request_counts", Counter()))
        delta.subtract(self._requests_before)
        s.requests_by_endpoint = {k: v for k, v in sorted(delta.items()) if v > 0}
        s.api_requests = sum(s.requests_by_endpoint.values())
        s.seconds = round(self.clock() - self._started, 3)
        return s

    def verification(self, tolerance: float) -> tuple[bool, str]:
        """After a plan against ActiveCampaign's membership: does the list match the audience?"""
        s = self.summary
        s.missing = s.to_add - self._reoffered  # refused by ActiveCampaign earlier: not the sync's gap
        s.unexpected = s.to_unsubscribe
        differences = s.missing + s.unexpected
        ratio = differences / max(1, s.valid)
        ok = ratio <= tolerance
        refused = s.previously_refused
        message = (f"list {s.list_name!r}: {s.valid} audience contacts, {s.missing} missing from the list, "
                   f"{s.unexpected} on the list but not in the audience; not counted: {s.skipped_unsubscribed} "
                   f"unsubscribed by anyone but this sync, {refused} refused by ActiveCampaign "
                   f"(see the rejects report of the send) ({ratio:.2%} different, tolerance {tolerance:.2%})")
        return ok, message


def _now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
