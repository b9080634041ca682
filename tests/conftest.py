"""Test-wide Airflow environment. Set before anything imports airflow."""

from __future__ import annotations

import os
import pathlib
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[1]

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="ac_test_airflow_home_"))
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ.setdefault("AIRFLOW__CORE__TEST_CONNECTION", "Enabled")
