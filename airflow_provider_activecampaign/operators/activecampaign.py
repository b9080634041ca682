"""Where DAGs have imported the operators from since 0.1: kept so those imports keep working.

Each operator lives in the module named after its concern (``operators.connection``,
``operators.audience``, ``operators.list_sync``) and the list link in ``links``.
"""

from __future__ import annotations

from airflow_provider_activecampaign.links import LIST_URL_XCOM_KEY, ActiveCampaignListLink, list_web_url
from airflow_provider_activecampaign.operators.audience import (
    ActiveCampaignAudienceSendOperator,
    BaseAudienceOperator,
)
from airflow_provider_activecampaign.operators.connection import (
    DEFAULT_CONN_ID,
    ActiveCampaignTestConnectionOperator,
)
from airflow_provider_activecampaign.operators.list_sync import ActiveCampaignListSyncOperator

__all__ = [
    "DEFAULT_CONN_ID",
    "LIST_URL_XCOM_KEY",
    "ActiveCampaignAudienceSendOperator",
    "ActiveCampaignListLink",
    "ActiveCampaignListSyncOperator",
    "ActiveCampaignTestConnectionOperator",
    "BaseAudienceOperator",
    "list_web_url",
]
