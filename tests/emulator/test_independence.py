"""The emulator is the check the product is held against: it imports nothing else from the package."""

from __future__ import annotations

import ast
from pathlib import Path

import airflow_provider_activecampaign.emulator as emulator_package

EMULATOR_DIR = Path(emulator_package.__file__).parent
PACKAGE = "airflow_provider_activecampaign"


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_emulator_imports_nothing_else_from_the_product() -> None:
    modules = sorted(EMULATOR_DIR.glob("*.py"))
    assert len(modules) > 10
    outside = {
        f"{path.name}: {name}"
        for path in modules
        for name in imported_modules(path)
        if name.startswith(PACKAGE) and not name.startswith(f"{PACKAGE}.emulator")
    }
    assert outside == set()


def test_no_emulator_module_is_over_700_lines() -> None:
    sizes = {path.name: len(path.read_text(encoding="utf-8").splitlines()) for path in EMULATOR_DIR.glob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 700} == {}
