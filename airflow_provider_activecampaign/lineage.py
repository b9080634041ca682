"""Lineage of an audience task: the tables its query reads and the list it writes.

The list's dataset is named after what a DAG states, the ActiveCampaign connection and the list's
name (a list's id changes when it is deleted and recreated; its name is what the DAG manages), so the
Asset a DAG declares with ``list_asset_uri()`` and the OpenLineage output are the same identifier.
Lineage never fails a task: the SQL parser's errors fall back to a plain FROM/JOIN scan.
"""

from __future__ import annotations

import logging
import re

__all__ = ["list_asset_uri", "list_dataset", "tables_in_sql"]

log = logging.getLogger(__name__)

# OpenLineage's SQL parser dialects, by Airflow connection type.
_DIALECTS = {
    "postgres": "postgres", "postgresql": "postgres", "redshift": "redshift", "mysql": "mysql",
    "sqlite": "sqlite", "snowflake": "snowflake", "bigquery": "bigquery", "gcpbigquery": "bigquery",
    "mssql": "mssql", "trino": "trino", "hive": "hive", "databricks": "databricks", "oracle": "oracle",
}
_TABLE_RE = re.compile(r"\b(?:from|join)\s+([A-Za-z_][\w.]*)", re.IGNORECASE)


def list_dataset(activecampaign_conn_id: str, list_name: str) -> tuple[str, str]:
    """The list's OpenLineage (namespace, name): ``activecampaign://CONN_ID``, ``lists/list-name``."""
    slug = re.sub(r"[^a-z0-9]+", "-", list_name.lower()).strip("-") or "list"
    return f"activecampaign://{activecampaign_conn_id}", f"lists/{slug}"


def list_asset_uri(activecampaign_conn_id: str, list_name: str) -> str:
    """The Asset URI of a list, equal to its lineage dataset: declare ``Asset(uri=list_asset_uri(...))``."""
    namespace, name = list_dataset(activecampaign_conn_id, list_name)
    return f"{namespace}/{name}"


def tables_in_sql(sql: str, conn_type: str | None = None) -> list[str]:
    """The tables ``sql`` reads, qualified as written (``schema.table``), in order of appearance.

    OpenLineage's SQL parser when it is installed and understands the query; else table names after
    FROM/JOIN, which is enough for a single SELECT.
    """
    try:
        from openlineage.common.sql import parse

        meta = parse([sql], dialect=_DIALECTS.get((conn_type or "").lower(), "generic"))
        tables = [table.qualified_name for table in (meta.in_tables if meta is not None else [])]
        if tables:
            return list(dict.fromkeys(tables))
    except Exception as error:  # lineage must never fail the task
        log.debug("OpenLineage's SQL parser could not read the query (%s); scanning FROM/JOIN.", error)
    return list(dict.fromkeys(_TABLE_RE.findall(sql)))
