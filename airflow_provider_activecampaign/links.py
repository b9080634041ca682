"""The "ActiveCampaign list" extra link: where a task's list lives in ActiveCampaign's web app."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, BaseOperatorLink

if TYPE_CHECKING:
    from airflow_provider_activecampaign.hooks.activecampaign import ActiveCampaignHook

__all__ = ["LIST_URL_XCOM_KEY", "ActiveCampaignListLink", "list_web_url"]

LIST_URL_XCOM_KEY = "activecampaign_list_url"


def list_web_url(hook: ActiveCampaignHook, list_id: str) -> str:
    """The list's page in ActiveCampaign's web app.

    The web app lives on https://ACCOUNT.activehosted.com, not on the API host (the hook derives it,
    and the connection option ``web_url`` overrides it). /app/contacts?listid=ID&status=1 is the
    address the web app itself shows for a list's active contacts (Contacts > Lists > a list); it is
    not a documented API contract, hence the override.
    """
    return f"{hook.web_url.rstrip('/')}/app/contacts?listid={list_id}&status=1"


class ActiveCampaignListLink(BaseOperatorLink):
    """Extra link "ActiveCampaign list": opens the list the task sent to."""

    name = "ActiveCampaign list"

    def get_link(self, operator: BaseOperator, *, ti_key: Any) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        return XCom.get_value(ti_key=ti_key, key=LIST_URL_XCOM_KEY) or ""
