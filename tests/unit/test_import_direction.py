"""Imports flow one way: the transport below the domain, the engine free of Airflow, the emulator apart.

Every module of the package is parsed (not imported) and every import statement counted, including
those inside functions and ``if TYPE_CHECKING:`` blocks: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "airflow_provider_activecampaign"
ROOT = Path(__file__).resolve().parents[2] / PACKAGE
NEUTRAL = ("masking", "importer", "statuses", "exceptions")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Absolute names of every module ``source`` imports (relative imports resolved against ``module``)."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return found


MODULES = {module_name(p): imports_of(p.read_text(), module_name(p), is_package=p.name == "__init__.py")
           for p in sorted(ROOT.rglob("*.py"))}


def _in(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def offenders(area: str, forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> dict[str, list[str]]:
    bad = {}
    for module, names in MODULES.items():
        if not _in(module, f"{PACKAGE}.{area}" if area else PACKAGE):
            continue
        hits = sorted(n for n in names if any(_in(n, f) for f in forbidden) and not any(_in(n, a) for a in allowed))
        if hits:
            bad[module] = hits
    return bad


def test_the_walker_sees_every_kind_of_import() -> None:
    source = """
import airflow.sdk
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from ..hooks.activecampaign import ActiveCampaignHook
def lazy():
    from airflow_provider_activecampaign import audience
"""
    names = imports_of(source, f"{PACKAGE}.audience.sync")
    assert {"airflow.sdk", f"{PACKAGE}.hooks.activecampaign", f"{PACKAGE}.audience"} <= names
    assert len(MODULES) > 30 and f"{PACKAGE}.hooks.activecampaign" in MODULES


def test_hooks_never_import_the_audience_engine_or_the_operators() -> None:
    assert offenders("hooks", (f"{PACKAGE}.audience", f"{PACKAGE}.operators", f"{PACKAGE}.sensors")) == {}


def test_the_audience_engine_imports_neither_airflow_nor_the_hook() -> None:
    assert offenders("audience", ("airflow", f"{PACKAGE}.hooks", f"{PACKAGE}.operators")) == {}


def test_the_emulator_imports_nothing_else_of_the_product() -> None:
    assert offenders("emulator", (PACKAGE,), allowed=(f"{PACKAGE}.emulator",)) == {}


@pytest.mark.parametrize("neutral", NEUTRAL)
def test_neutral_modules_import_no_layer_above_them(neutral: str) -> None:
    names = MODULES[f"{PACKAGE}.{neutral}"]
    layers = ("airflow", f"{PACKAGE}.hooks", f"{PACKAGE}.audience", f"{PACKAGE}.operators", f"{PACKAGE}.emulator")
    assert sorted(n for n in names if any(_in(n, layer) for layer in layers)) == []
