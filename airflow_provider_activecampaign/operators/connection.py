"""ActiveCampaignTestConnectionOperator: one cheap real call that says plainly what is wrong."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_activecampaign.compat import AirflowException
from airflow_provider_activecampaign.hooks.activecampaign import ActiveCampaignHook

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["DEFAULT_CONN_ID", "ActiveCampaignTestConnectionOperator"]

DEFAULT_CONN_ID = ActiveCampaignHook.default_conn_name


class ActiveCampaignTestConnectionOperator(BaseOperator):
    """Check that the connection reaches ActiveCampaign with a valid key (GET /api/3/users/me).

    Transient answers (429/503 with Retry-After, other 5xx, dropped connections) are retried, bounded,
    like any other call of the hook. Fails the task with the reason (key rejected, wrong URL, host
    unreachable, plain http, account blocked). Returns the account URL and the user as XCom, never the key.

    :param activecampaign_conn_id: the ActiveCampaign connection to check. (templated)
    """

    template_fields: Sequence[str] = ("activecampaign_conn_id",)
    ui_color = "#356ae6"

    def __init__(self, *, activecampaign_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.activecampaign_conn_id = activecampaign_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        hook = ActiveCampaignHook(activecampaign_conn_id=self.activecampaign_conn_id)
        # A task retries what passes (a 429 burst on a shared account); the UI's Test button does not.
        ok, message = hook.test_connection(retry_transient=True)
        if not ok:
            raise AirflowException(f"ActiveCampaign connection {self.activecampaign_conn_id!r}: {message}")
        self.log.info("%s", message)
        user = hook.last_user or {}
        return {
            "conn_id": self.activecampaign_conn_id,
            "api_url": hook.api_url,
            "user_id": user.get("id"),
            "username": user.get("username"),
            "message": message,
        }
