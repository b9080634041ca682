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
    """Extra link "ActiveCampaign list": opens the list the task sent to.

    Airflow 3 computes a link once, on the worker when the task ends, with the task object that just
    ran, and stores the answer for the UI. So the link is the URL that task published (``list_url``),
    read from the task itself. Reading it back from XCom would make the Execution API log an error
    ("XCom not found ... activecampaign_list_url") for every task that never had a list to link to:
    dry runs on a new list, tries that failed before the list was found.
    """

    name = "ActiveCampaign list"

    def get_link(self, operator: BaseOperator, *, ti_key: Any) -> str:
        return getattr(operator, "list_url", None) or ""
