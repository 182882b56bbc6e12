"""The import-linter contract for function folders must name every shared module it means to forbid.

The contract lists forbidden modules one by one (import-linter has no "all but these"), so a new
module in shared/ is silently allowed until someone adds it. This keeps the list complete: every
module of shared/ is either one the function folders are meant to import (the adapter and the use
cases) or on the forbidden list.
"""

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FUNCTION_CONTRACT = "function folders reach shared only through the adapter and the use cases"


def _contract() -> dict[str, list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    return next(c for c in contracts if c["name"] == FUNCTION_CONTRACT)


def _shared_imports_of_function_folders(folders: list[str]) -> set[str]:
    imported = set()
    for folder in folders:
        tree = ast.parse((ROOT / folder / "__init__.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "shared":
                imported.update(f"shared.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("shared."):
                imported.add(str(node.module))
            elif isinstance(node, ast.Import):
                imported.update(a.name for a in node.names if a.name.startswith("shared."))
    return imported


def test_every_function_folder_is_a_source_of_the_contract() -> None:
    folders = {p.parent.name for p in ROOT.glob("*/function.json")}
    assert folders == set(_contract()["source_modules"])


def test_every_shared_module_is_either_used_by_function_folders_or_forbidden_to_them() -> None:
    contract = _contract()
    modules = {f"shared.{p.stem}" for p in (ROOT / "shared").glob("*.py") if p.stem != "__init__"}
    used = _shared_imports_of_function_folders(contract["source_modules"])
    forbidden = set(contract["forbidden_modules"])
    assert not used & forbidden, "a function folder imports a module its contract forbids"
    unclassified = sorted(modules - used - forbidden)
    assert not unclassified, f"add to the contract's forbidden_modules in pyproject.toml: {unclassified}"
    assert not forbidden - modules, f"the contract names modules that no longer exist: {sorted(forbidden - modules)}"
