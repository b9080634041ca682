"""Moved to :mod:`airflow_provider_activecampaign.importer` (shared with the hook); kept as an alias."""

from airflow_provider_activecampaign.importer import (  # noqa: F401  (re-exported)
    MAX_IMPORT_BYTES,
    MAX_IMPORT_CONTACTS,
    encode_body,
    split_import_batches,
)

__all__ = ["MAX_IMPORT_BYTES", "MAX_IMPORT_CONTACTS", "encode_body", "split_import_batches"]
