"""Unsubscribes and bounces of a list, back into a warehouse table (the way back of the audience send)."""

from __future__ import annotations

import contextlib
import datetime as _dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.sdk import BaseOperator

from airflow_provider_activecampaign.audience.unsubscribes import UnsubscribesTable, unsubscribe_rows
from airflow_provider_activecampaign.compat import AirflowFailException
from airflow_provider_activecampaign.hooks.activecampaign import ActiveCampaignHook
from airflow_provider_activecampaign.sql_source import get_db_hook
from airflow_provider_activecampaign.statuses import ListStatus

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["ActiveCampaignUnsubscribesToSqlOperator"]


class ActiveCampaignUnsubscribesToSqlOperator(BaseOperator):
    """Write a list's unsubscribed and bounced members into a warehouse table, so upstream audiences can
    leave out the people who said no.

    The table has one row per ``(email, list_id)``: ``email``, ``list_id``, ``status`` (``unsubscribed``
    or ``bounced``), ``changed_at`` (the membership's last status change, ISO 8601, UTC when
    ActiveCampaign gives an offset) and ``changed_by`` (``sync``: the audience send unsubscribed them;
    ``contact``: they did, with a reason or through an email's link; ``other``: an automation, a user,
    a bounce, or nothing tells). Each run reads the list's status-2 and status-3 members (paged at the
    account's pace, 100 per request) and, in one transaction, inserts the new rows, rewrites the changed
    ones and removes the people who are no longer unsubscribed or bounced (re-subscribed, or deleted).
    Rows of other lists are never touched, and a run that changes nothing writes nothing. ActiveCampaign
    offers no documented filter for membership changes since a moment, so the read is always the list's
    whole unsubscribed and bounced population (N/100 requests); the writes are incremental.

    :param list_name: the ActiveCampaign list, by exact name (templated)
    :param sql_conn_id: an Airflow connection whose hook is a common.sql ``DbApiHook``: SQLite, Postgres,
        MySQL, Snowflake... (templated)
    :param table: the target table, ``name`` or ``schema.name`` (templated)
    :param create_table: create the table (``CREATE TABLE IF NOT EXISTS``) when it is missing; otherwise a
        missing table fails the task before reading ActiveCampaign
    :param activecampaign_conn_id: the ActiveCampaign connection (templated)
    :param include_bounced: also write status-3 (bounced) members
    :param state_uri: the audience send's run state folder, to recognise the sync's own unsubscribes
        (``changed_by="sync"``); default: the send's default, ``$AIRFLOW_HOME/activecampaign_state``. Where
        no state of the list is found, the sync's unsubscribes count as ``other``. (templated)
    :param state_conn_id: the connection for ``state_uri`` (object storage), if it needs one
    :param batch_size: rows per ``executemany`` round trip
    :param hook_params: keyword arguments for the SQL connection's hook
    """

    template_fields: Sequence[str] = ("list_name", "sql_conn_id", "table", "activecampaign_conn_id", "state_uri")
    ui_color = "#356ae6"

    def __init__(
        self,
        *,
        list_name: str,
        sql_conn_id: str,
        table: str,
        create_table: bool = False,
        activecampaign_conn_id: str = ActiveCampaignHook.default_conn_name,
        include_bounced: bool = True,
        state_uri: str | None = None,
        state_conn_id: str | None = None,
        batch_size: int = 1000,
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.list_name = list_name
        self.sql_conn_id = sql_conn_id
        self.table = table
        self.create_table = create_table
        self.activecampaign_conn_id = activecampaign_conn_id
        self.include_bounced = include_bounced
        self.state_uri = state_uri
        self.state_conn_id = state_conn_id
        self.batch_size = batch_size
        self.hook_params = hook_params

    def execute(self, context: Context) -> dict[str, Any]:
        try:
            table = UnsubscribesTable(self.table, batch_size=self.batch_size)
        except ValueError as error:
            raise AirflowFailException(str(error)) from error
        db_hook = get_db_hook(self.sql_conn_id, hook_params=self.hook_params)
        table.placeholder = getattr(db_hook, "placeholder", "?") or "?"
        self._prepare_table(db_hook, table)

        hook = ActiveCampaignHook(activecampaign_conn_id=self.activecampaign_conn_id)
        requests_before = sum(hook.request_counts.values())
        found = hook.find_list_by_name(self.list_name)
        if found is None:
            raise AirflowFailException(f"List {self.list_name!r} does not exist in ActiveCampaign ({hook.api_url}).")
        list_id = str(found["id"])
        statuses = [ListStatus.UNSUBSCRIBED] + ([ListStatus.BOUNCED] if self.include_bounced else [])
        ours = self._sync_unsubscribes(hook)
        rows: list[Any] = []
        for status in statuses:
            rows.extend(unsubscribe_rows(hook.iter_list_memberships(list_id, status=int(status)), list_id,
                                         status=int(status), sync_unsubscribes=ours))
        with contextlib.closing(db_hook.get_conn()) as conn:
            counts = table.write(conn, list_id, rows)
        result = {"list_id": list_id, "list_name": self.list_name, "table": self.table, "read": len(rows),
                  **counts.as_dict(), "api_requests": sum(hook.request_counts.values()) - requests_before}
        self.log.info(
            "List %s -> %s: %d unsubscribed/bounced read; %d inserted, %d updated, %d removed, %d unchanged "
            "(%s; changed by %s); %d API requests.", list_id, self.table, len(rows), counts.inserted,
            counts.updated, counts.removed, counts.unchanged, dict(counts.by_status), dict(counts.by_changed_by),
            result["api_requests"])
        return result

    def _prepare_table(self, db_hook: Any, table: UnsubscribesTable) -> None:
        """Create the table when asked; otherwise check it is there before any ActiveCampaign request."""
        with contextlib.closing(db_hook.get_conn()) as conn:
            cursor = conn.cursor()
            try:
                if self.create_table:
                    cursor.execute(table.create_sql())
                    conn.commit()
                    return
                try:
                    cursor.execute(f"SELECT email, list_id, status, changed_at, changed_by FROM {table.table} "
                                   "WHERE 1 = 0")
                    cursor.fetchall()
                except Exception as error:  # noqa: BLE001 - each driver has its own "no such table" class
                    raise AirflowFailException(
                        f"Table {table.table!r} is not readable on {self.sql_conn_id!r} ({error}); create it with "
                        "columns email, list_id, status, changed_at, changed_by, or set create_table=True."
                    ) from error
            finally:
                cursor.close()

    def _sync_unsubscribes(self, hook: ActiveCampaignHook) -> dict[str, _dt.datetime | None]:
        """email -> when the audience send unsubscribed them, from its run state (empty without one)."""
        from airflow.sdk import ObjectStoragePath

        from airflow_provider_activecampaign.audience.state import MemberStatus, StateStore
        from airflow_provider_activecampaign.operators.audience import _default_state_uri

        uri = self.state_uri or _default_state_uri()
        root = ObjectStoragePath(uri, conn_id=self.state_conn_id) if self.state_conn_id else ObjectStoragePath(uri)
        store = StateStore(root, account_key=urlsplit(hook.api_url).netloc, list_key=self.list_name)
        members, _info = store.load()
        ours: dict[str, _dt.datetime | None] = {}
        for email, member in members.items():
            if member.status is MemberStatus.UNSUBSCRIBED:
                at = getattr(member, "at", None)  # epoch seconds, when the state records it
                ours[email] = _dt.datetime.fromtimestamp(at, _dt.timezone.utc) if at else None
        return ours
