"""The provider registers with Airflow: schema-valid info (a bad one breaks every CLI command)."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from importlib.resources import files
from pathlib import Path

import jsonschema

from airflow_provider_activecampaign import get_provider_info
from airflow_provider_activecampaign.hooks.activecampaign import ActiveCampaignHook


def test_provider_info_matches_airflows_schema_and_distribution() -> None:
    (entry,) = [e for e in entry_points(group="apache_airflow_provider")
                if e.value.startswith("airflow_provider_activecampaign")]
    info = entry.load()()
    schema = json.loads(files("airflow").joinpath("provider_info.schema.json").read_text())
    jsonschema.validate(info, schema)
    assert info["package-name"] == entry.dist.name == "airflow-provider-activecampaign"


def test_connection_type_agrees_with_the_hook() -> None:
    (conn_type,) = get_provider_info()["connection-types"]
    assert conn_type["connection-type"] == ActiveCampaignHook.conn_type == "activecampaign"
    assert conn_type["hook-name"] == ActiveCampaignHook.hook_name
    behaviour = conn_type["ui-field-behaviour"]
    assert behaviour["relabeling"] == {"host": "API URL", "password": "API key"}
    assert set(behaviour["hidden-fields"]) == {"schema", "port", "login", "extra"}
    legacy = ActiveCampaignHook.get_ui_field_behaviour()
    assert legacy["relabeling"] == behaviour["relabeling"]
    assert sorted(legacy["hidden_fields"]) == sorted(behaviour["hidden-fields"])
    for name, spec in conn_type["conn-fields"].items():
        assert spec["label"] and spec["schema"]["type"], name


def test_airflow_cli_lists_provider_and_hook(tmp_path: Path) -> None:
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}
    airflow = str(Path(sys.executable).parent / "airflow")
    providers = subprocess.run([airflow, "providers", "list"], env=env, capture_output=True, text=True)
    hooks = subprocess.run([airflow, "providers", "hooks"], env=env, capture_output=True, text=True)
    assert "airflow-provider-activecampaign" in providers.stdout, providers.stderr[-2000:]
    line = next(li for li in hooks.stdout.splitlines() if li.startswith("activecampaign "))
    assert "ActiveCampaignHook" in line and "activecampaign_conn_id" in line and "Error" not in line


def test_every_module_and_link_the_provider_info_names_imports() -> None:
    info = get_provider_info()
    modules = [m for key in ("hooks", "operators", "sensors", "triggers", "transfers")
               for entry in info.get(key, []) for m in entry.get("python-modules", [])]
    modules += [entry["python-module"] for entry in info.get("transfers", [])]
    assert {"airflow_provider_activecampaign.operators.audience", "airflow_provider_activecampaign.sensors.list",
            "airflow_provider_activecampaign.triggers.list"} <= set(modules)
    for module in modules:
        importlib.import_module(module)
    for path in info["extra-links"]:
        module, _, name = path.rpartition(".")
        link = getattr(importlib.import_module(module), name)
        assert link.name == "ActiveCampaign list"


def test_dags_written_for_0_1_still_import_the_operators_from_the_old_module() -> None:
    from airflow_provider_activecampaign import links
    from airflow_provider_activecampaign.operators import activecampaign, audience, connection, list_sync

    assert activecampaign.ActiveCampaignAudienceSendOperator is audience.ActiveCampaignAudienceSendOperator
    assert activecampaign.ActiveCampaignListSyncOperator is list_sync.ActiveCampaignListSyncOperator
    assert activecampaign.ActiveCampaignTestConnectionOperator is connection.ActiveCampaignTestConnectionOperator
    assert activecampaign.ActiveCampaignListLink is links.ActiveCampaignListLink
    assert activecampaign.list_web_url is links.list_web_url
    assert set(activecampaign.__all__) <= set(dir(activecampaign))


def test_transfers_are_listed_and_importable() -> None:
    (transfer,) = get_provider_info()["transfers"]
    module = importlib.import_module(transfer["python-module"])
    assert module.ActiveCampaignUnsubscribesToSqlOperator.__doc__
