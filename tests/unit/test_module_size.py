"""One concern per module: no module of the package grows past 700 lines."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "airflow_provider_activecampaign"
LIMIT = 700


def test_no_module_is_over_700_lines() -> None:
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in ROOT.rglob("*.py")}
    assert len(sizes) > 30
    assert {name: n for name, n in sizes.items() if n > LIMIT} == {}
