"""Sending an audience: what every audience task shares (source, list, state, guards, lineage) and
ActiveCampaignAudienceSendOperator, the orchestration's send."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar, cast, get_args
from urllib.parse import urlsplit

from airflow.sdk import BaseHook, BaseOperator, ObjectStoragePath

from airflow_provider_activecampaign.audience.state import StateLockedError, StateStore
from airflow_provider_activecampaign.audience.sync import (
    AudienceSync,
    AudienceSyncError,
    AudienceSyncRetryableError,
    EmptyAction,
    Mode,
    SyncOptions,
)
from airflow_provider_activecampaign.compat import AirflowException, AirflowFailException
from airflow_provider_activecampaign.hooks.activecampaign import ActiveCampaignHook
from airflow_provider_activecampaign.lineage import list_dataset, tables_in_sql
from airflow_provider_activecampaign.links import LIST_URL_XCOM_KEY, ActiveCampaignListLink, list_web_url
from airflow_provider_activecampaign.operators.arguments import check_choice, check_positive_int, check_ratio
from airflow_provider_activecampaign.operators.connection import DEFAULT_CONN_ID
from airflow_provider_activecampaign.sql_source import open_sql_rows

if TYPE_CHECKING:
    import jinja2
    from airflow.sdk import Context

    _OperatorBase = BaseOperator  # the mixin is only ever mixed into operators and sensors
else:
    _OperatorBase = object

__all__ = [
    "STATE_GENERATION_XCOM_KEY",
    "AUDIENCE_PARAMS_DOC",
    "ActiveCampaignAudienceSendOperator",
    "AudienceTaskMixin",
    "BaseAudienceOperator",
    "documented_with_audience_params",
]

# The committed state generation, pushed by the send task and read back (include_prior_dates) by its
# next run on any worker: Airflow's metadata database is what every worker shares. (Airflow 3.3's
# task_state_store is scoped to one task instance, so it cannot carry a value from run to run.)
STATE_GENERATION_XCOM_KEY = "activecampaign_state_generation"
# With it, the sync's own unsubscribes as {one-way email key: epoch seconds} (never an address): a
# worker whose copy is stale still knows which unsubscribes the sync made and may undo.
UNSUBSCRIBES_XCOM_KEY = "activecampaign_sync_unsubscribes"

AUDIENCE_TEMPLATE_FIELDS: tuple[str, ...] = (
    "activecampaign_conn_id", "list_name", "group_name", "sql", "sql_conn_id", "parameters", "records",
    "state_uri", "sample_size", "max_invalid_ratio", "max_removal_ratio", "action_on_empty",
)

AUDIENCE_PARAMS_DOC = """
    :param list_name: the ActiveCampaign list, found by exact name (created when missing by the tasks
        that may create it). (templated)
    :param activecampaign_conn_id: the ActiveCampaign connection. (templated)
    :param group_name: the ActiveCampaign user group a new list is tied to; it must exist. (templated)
    :param sql: the audience query, one row per contact; may be a path ending in ``.sql``. (templated)
    :param sql_conn_id: the Airflow connection of the database to query: any common.sql connection
        (Postgres, MySQL, Snowflake, BigQuery, SQLite...). (templated)
    :param sql_hook_params: keyword arguments for that connection's hook
        (``Connection.get_hook(hook_params=...)``), e.g. ``{"schema": "marketing"}``.
    :param parameters: bind parameters for ``sql``. (templated)
    :param records: the audience as a list of dicts, instead of ``sql``. (templated)
    :param email_column: the column that holds the email address.
    :param fetch_size: rows fetched per round trip to the database (at least 1).
    :param sample_size: use only the first N rows, e.g. a sandbox sample. (templated)
    :param state_uri: folder of the run state, any ObjectStoragePath URI (``file://``, ``s3://``...);
        default ``$AIRFLOW_HOME/activecampaign_state``. (templated)
    :param state_conn_id: the connection ObjectStoragePath uses for ``state_uri`` (e.g. an AWS one).
    :param create_custom_fields: create the custom fields of columns that have none.
    :param field_types: column name -> custom field type (``text``, ``textarea``, ``date``, ``datetime``,
        ``dropdown``, ``radio``, ``checkbox``, ``listbox``, ``hidden``). Other columns take the existing
        field's type, or, for a field to create, one inferred from their values (date, datetime,
        list -> listbox, else text). A field that exists with another type stops the run before any write.
    :param max_invalid_ratio: refuse the run when more than this share (0 to 1) of the rows have no
        valid email. (templated)
    :param max_removal_ratio: refuse to unsubscribe more than this share (0 to 1) of the list in one
        run. (templated)
    :param action_on_empty: what an audience without one valid contact does: ``"fail"`` (default: an
        empty query never wipes a list), ``"skip"`` (send nothing) or ``"proceed"``. (templated)
    :param exclude_automations: add contacts without starting the list's automations.
    :param sender_url: the sender URL a new list is created with (ActiveCampaign requires one).
    :param sender_reminder: the permission reminder a new list is created with.
    :param source_conn_id: deprecated alias of ``sql_conn_id`` (0.1); still works, with a warning.
"""

_Documented = TypeVar("_Documented", bound=type)


def documented_with_audience_params(cls: _Documented) -> _Documented:
    """Append the shared audience ``:param:`` lines to a class's own (one text, no drift)."""
    cls.__doc__ = (cls.__doc__ or "").rstrip() + "\n" + AUDIENCE_PARAMS_DOC
    return cls


class AudienceTaskMixin(_OperatorBase):
    """What every audience task shares: the source, the list, the state, the guards and the lineage.

    Mixed into a BaseOperator or a BaseSensorOperator (it has no execute()). Arguments are checked
    when the DAG is parsed, and again once their templates are rendered.
    """

    template_fields: Sequence[str] = AUDIENCE_TEMPLATE_FIELDS
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers = {"sql": "sql", "records": "json", "parameters": "json"}
    operator_extra_links = (ActiveCampaignListLink(),)
    ui_color = "#356ae6"

    def __init__(
        self,
        *,
        list_name: str,
        activecampaign_conn_id: str = DEFAULT_CONN_ID,
        group_name: str | None = None,
        sql: str | None = None,
        sql_conn_id: str | None = None,
        sql_hook_params: Mapping[str, Any] | None = None,
        parameters: Mapping[str, Any] | Sequence[Any] | None = None,
        records: Iterable[Mapping[str, Any]] | None = None,
        email_column: str = "email",
        fetch_size: int = 5000,
        sample_size: int | str | None = None,
        state_uri: str | None = None,
        state_conn_id: str | None = None,
        create_custom_fields: bool = True,
        field_types: Mapping[str, str] | None = None,
        max_invalid_ratio: float = 0.05,
        max_removal_ratio: float = 0.2,
        action_on_empty: EmptyAction = "fail",
        exclude_automations: bool = True,
        sender_url: str = SyncOptions.sender_url,
        sender_reminder: str = SyncOptions.sender_reminder,
        source_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if source_conn_id is not None:
            warnings.warn("source_conn_id is deprecated: use sql_conn_id (same meaning).",
                          DeprecationWarning, stacklevel=3)
            if sql_conn_id is not None and sql_conn_id != source_conn_id:
                raise ValueError("Give sql_conn_id or its old name source_conn_id, not both.")
            sql_conn_id = source_conn_id
        if sql is not None and records is not None:
            raise ValueError("Give either sql (with sql_conn_id) or records, not both.")
        if sql is not None and not sql_conn_id:
            raise ValueError("sql needs sql_conn_id: the Airflow connection of the database to query.")
        self.activecampaign_conn_id = activecampaign_conn_id
        self.list_name = list_name
        self.group_name = group_name
        self.sql = sql
        self.sql_conn_id = sql_conn_id
        self.sql_hook_params = dict(sql_hook_params) if sql_hook_params else None
        self.parameters = parameters
        self.records = records
        self.email_column = email_column
        self.fetch_size = fetch_size
        self.sample_size = sample_size
        self.state_uri = state_uri
        self.state_conn_id = state_conn_id
        self.create_custom_fields = create_custom_fields
        self.field_types = dict(field_types) if field_types else None
        self.max_invalid_ratio = max_invalid_ratio
        self.max_removal_ratio = max_removal_ratio
        self.action_on_empty = action_on_empty
        self.exclude_automations = exclude_automations
        self.sender_url = sender_url
        self.sender_reminder = sender_reminder
        self._list_id: str | None = None
        self._account_url: str | None = None
        self.list_url: str | None = None  # published by publish_list(); the extra link reads it
        self.check_arguments()

    @property
    def source_conn_id(self) -> str | None:
        """Deprecated name of ``sql_conn_id`` (0.1)."""
        return self.sql_conn_id

    def check_arguments(self) -> None:
        """Fail on a wrong value, naming the parameter; a template waits until it is rendered."""
        templated = set(self.template_fields)
        self.fetch_size = check_positive_int("fetch_size", self.fetch_size)
        self.sample_size = check_positive_int("sample_size", self.sample_size, optional=True,
                                              templated="sample_size" in templated)
        self.action_on_empty = check_choice("action_on_empty", self.action_on_empty, get_args(EmptyAction),
                                            templated="action_on_empty" in templated)
        for name in ("max_invalid_ratio", "max_removal_ratio"):
            setattr(self, name, check_ratio(name, getattr(self, name), templated=name in templated))

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        super().render_template_fields(context, jinja_env)
        try:
            self.check_arguments()  # the rendered values are known now (and may arrive as strings)
        except ValueError as error:
            raise AirflowFailException(str(error)) from error  # a retry would render the same values

    # -- source -------------------------------------------------------------
    def has_source(self) -> bool:
        return self.sql is not None or self.records is not None

    @contextlib.contextmanager
    def open_source(self) -> Iterator[tuple[list[str], Iterator[Any]]]:
        """Column names and a row iterator. SQL is read in chunks; cursor and connection close on exit."""
        with contextlib.ExitStack() as stack:
            if self.records is not None:
                records = [dict(r) for r in self.records]
                columns = list(dict.fromkeys(k for r in records for k in r))
                rows: Iterator[Any] = iter(records)
            elif self.sql is not None and self.sql_conn_id:
                columns, rows = stack.enter_context(open_sql_rows(
                    self.sql_conn_id, self.sql, parameters=self.parameters, hook_params=self.sql_hook_params,
                    fetch_size=self.fetch_size))
            else:
                raise ValueError("No audience source: give sql + sql_conn_id, or records.")
            if self.sample_size not in (None, ""):
                rows = itertools.islice(rows, int(self.sample_size))
            yield columns, rows

    # -- shared plumbing ----------------------------------------------------
    def state_store(self, hook: ActiveCampaignHook) -> StateStore:
        uri = self.state_uri or _default_state_uri()
        root = ObjectStoragePath(uri, conn_id=self.state_conn_id) if self.state_conn_id else ObjectStoragePath(uri)
        account = urlsplit(hook.api_url).netloc
        return StateStore(root, account_key=account, list_key=self.list_name)

    def sync_options(self, **overrides: Any) -> SyncOptions:
        options = SyncOptions(
            list_name=self.list_name, group_name=self.group_name, email_column=self.email_column,
            create_custom_fields=self.create_custom_fields, field_types=self.field_types,
            max_invalid_ratio=self.max_invalid_ratio,
            max_removal_ratio=self.max_removal_ratio, action_on_empty=self.action_on_empty,
            exclude_automations=self.exclude_automations, sender_url=self.sender_url,
            sender_reminder=self.sender_reminder,
        )
        for key, value in overrides.items():
            setattr(options, key, value)
        return options

    def publish_list(self, context: Context, hook: ActiveCampaignHook, list_id: str | None) -> None:
        """Remember the list for lineage and the extra link; XCom ``activecampaign_list_url`` when known."""
        self._list_id, self._account_url = list_id, hook.api_url
        if list_id:
            self.list_url = list_web_url(hook, list_id)
            context["ti"].xcom_push(key=LIST_URL_XCOM_KEY, value=self.list_url)

    @staticmethod
    def run_key(context: Context) -> str:
        """Stable across Airflow retries of the same run, so a retry resumes (and may take the lock)."""
        ti = context["ti"]
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{ti.dag_id}.{ti.task_id}.{ti.run_id}")

    def log_summary(self, summary: dict[str, Any]) -> None:
        keys = ("list_id", "membership_source", "membership_reason", "rows_read", "invalid", "duplicates",
                "to_add", "to_update", "unchanged", "to_unsubscribe", "added", "updated", "resubscribed",
                "unsubscribed", "rejected", "refused", "skipped_unsubscribed", "removals_dropped",
                "api_requests", "seconds")
        self.log.info("Summary: %s", ", ".join(f"{k}={summary.get(k)}" for k in keys))
        if summary.get("rejects_report"):
            self.log.info("Rejects report (email, reason): %s", summary["rejects_report"])

    # -- OpenLineage ----------------------------------------------------------
    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Inputs: the tables the query reads; output: the list, named as ``lineage.list_asset_uri``."""
        from airflow.providers.common.compat.openlineage.facet import (
            Dataset,
            DocumentationDatasetFacet,
            SQLJobFacet,
        )
        from airflow.providers.openlineage.extractors import OperatorLineage

        inputs: list[Any] = []
        job_facets: dict[str, Any] = {}
        if self.sql is not None and self.sql_conn_id:
            job_facets["sql"] = SQLJobFacet(query=self.sql)
            try:  # lineage never fails a task: a connection that cannot be read just gives no inputs
                conn = BaseHook.get_connection(self.sql_conn_id)
                namespace = f"{conn.conn_type}://{conn.host or ''}{':' + str(conn.port) if conn.port else ''}"
                tables = tables_in_sql(self.sql, conn.conn_type) or ["query"]
                inputs = [Dataset(namespace=namespace, name=table) for table in tables]
            except Exception as error:
                self.log.debug("No lineage inputs: %s", error)
        namespace, name = list_dataset(self.activecampaign_conn_id, self.list_name)
        where = f" (id {self._list_id})" if self._list_id else ""
        account = f" on {urlsplit(self._account_url).netloc}" if self._account_url else ""
        facets: dict[str, Any] = {"documentation": DocumentationDatasetFacet(
            description=f"ActiveCampaign list {self.list_name!r}{where}{account}")}
        outputs = [Dataset(namespace=namespace, name=name, facets=facets)]
        return OperatorLineage(inputs=inputs, outputs=outputs, job_facets=job_facets)


class BaseAudienceOperator(AudienceTaskMixin, BaseOperator):
    """The base of the audience operators (send, list sync): AudienceTaskMixin on a BaseOperator."""


@documented_with_audience_params
class ActiveCampaignAudienceSendOperator(BaseAudienceOperator):
    """Send a query's audience to an ActiveCampaign list: the orchestration's send.

    ``mode="mirror"`` makes the list match the audience (people who left are unsubscribed, never
    deleted); ``mode="upsert"`` only adds and updates. Only new, changed and departed contacts are sent,
    thanks to the run state at ``state_uri``. ``dry_run=True`` returns the plan and writes nothing.
    Returns a summary (counts, requests, seconds, which membership source was used and why) as XCom.

    The state is a verified cache: each run checks the list's id and member counts against it (three
    requests), and reads the list back on drift, on a stale copy (another worker committed since; the
    committed generation is this task's XCom ``activecampaign_state_generation``) and every
    ``reconcile_every``. Members this sync removed who come back are re-subscribed through
    ``contactLists`` (the only way back, which may start "subscribes to list" automations) when they
    are still the sync's own unsubscribe; anyone unsubscribed by someone else stays unsubscribed.

    :param mode: ``"mirror"`` (the list matches the audience) or ``"upsert"`` (add and update only).
    :param dry_run: plan and report, write nothing to ActiveCampaign.
    :param full_refresh: read the list back from ActiveCampaign and resend every member's data (the
        consent and refusal records of the state are kept).
    :param import_timeout: seconds to wait for ActiveCampaign to process one bulk import; past it the
        task fails as retryable and the retry resumes from the journal.
    :param reconcile_every: read the whole list back at least this often, even without drift
        (a ``timedelta``, default 7 days).
    """

    def __init__(self, *, mode: Mode = "mirror", dry_run: bool = False, full_refresh: bool = False,
                 import_timeout: float = 1800.0, reconcile_every: timedelta = timedelta(days=7),
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mode = check_choice("mode", mode, get_args(Mode))
        if not isinstance(reconcile_every, timedelta) or reconcile_every < timedelta(0):
            raise ValueError(f"reconcile_every must be a non-negative timedelta, not {reconcile_every!r}")
        # The public name (0.1) shadows BaseOperator.dry_run(), which only renders the templates.
        self.dry_run = dry_run  # type: ignore[method-assign,assignment]
        self.full_refresh = full_refresh
        self.import_timeout = import_timeout
        self.reconcile_every = reconcile_every

    def execute(self, context: Context) -> dict[str, Any]:
        hook = ActiveCampaignHook(activecampaign_conn_id=self.activecampaign_conn_id)
        options = self.sync_options(mode=self.mode, dry_run=self.dry_run, full_refresh=self.full_refresh,
                                    import_timeout=self.import_timeout, reconcile_every=self.reconcile_every,
                                    published_generation=self.published(context, STATE_GENERATION_XCOM_KEY),
                                    published_unsubscribes=self.published(context, UNSUBSCRIBES_XCOM_KEY))
        engine = AudienceSync(hook, options, store=self.state_store(hook), run_id=self.run_key(context),
                              log=task_logger(self))
        try:
            with self.open_source() as (columns, rows):
                summary = engine.run(columns, rows).as_dict()
        except AudienceSyncError as error:
            # Deterministic refusals (guards, bad group): retrying cannot help.
            self.publish_list(context, hook, engine.list_id)
            raise AirflowFailException(str(error)) from error
        except StateLockedError as error:
            # A live run holds the list; a dead one's lease lapses within minutes: a retry may pass.
            self.publish_list(context, hook, engine.list_id)
            raise AirflowException(str(error)) from error
        except AudienceSyncRetryableError:
            self.publish_list(context, hook, engine.list_id)
            raise  # an import still processing: the retry resumes from the journal
        self.publish_list(context, hook, summary["list_id"])
        if engine.unsubscribes is not None and summary.get("state_generation"):
            context["ti"].xcom_push(key=STATE_GENERATION_XCOM_KEY, value=summary["state_generation"])
            context["ti"].xcom_push(key=UNSUBSCRIBES_XCOM_KEY, value=engine.unsubscribes)
        self.log_summary(summary)
        return summary

    def published(self, context: Context, key: str) -> Any:
        """What the last committed run of this task published under ``key`` (any worker, any run)."""
        ti = context["ti"]
        try:
            value = ti.xcom_pull(task_ids=ti.task_id, key=key, include_prior_dates=True)
        except Exception as error:  # never fail a send over it: the count check still runs
            self.log.warning("Could not read %s published by earlier runs: %s", key, error)
            return None
        if isinstance(value, list):
            value = value[-1] if value else None
        return value or None


def task_logger(task: BaseOperator) -> logging.Logger:
    """The task's logger for the engine: Airflow's structlog logger has logging.Logger's methods."""
    return cast("logging.Logger", task.log)


def _default_state_uri() -> str:
    # The same rule Airflow uses to find its home: $AIRFLOW_HOME, else ~/airflow.
    home = os.path.expanduser(os.environ.get("AIRFLOW_HOME", "~/airflow"))
    return f"file://{home.rstrip('/')}/activecampaign_state"
