"""Reads infra/*.bicep offline through pycep-parser (no Bicep compiler can be installed here).

pycep returns a dict per file (parameters, variables, resources, modules, outputs). A reference to
a parameter or variable comes back as its bare name, a literal as its text, and an interpolated
string as the source text ('${name}-poison'); ``resolve`` follows names through main.bicep's module
calls to the defaults of main's parameters, which is all the tests need.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN = INFRA / "main.bicep"
# The one list of app settings: what each means, its default and whether Azure needs it set.
SETTINGS_REGISTRY = INFRA / "app-settings.json"

_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@cache
def parse(path: Path) -> dict[str, Any]:
    parsed: dict[str, Any] = BicepParser().parse(text=path.read_text(encoding="utf-8"))
    return parsed


def unquote(key: str) -> str:
    return key[1:-1] if len(key) >= 2 and key[0] == key[-1] == "'" else key


def resource_body(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource's properties block, looking through a ``[for ...]`` loop or an ``if``."""
    config: dict[str, Any] = resource["config"]
    if "loop_type" in config or "condition" in config:
        inner: dict[str, Any] = config["config"]
        return inner
    return config


def resources(path: Path, type_: str) -> dict[str, dict[str, Any]]:
    """The file's resources of one type (child types spelled in full, e.g. .../queues)."""
    return {name: res for name, res in parse(path)["resources"].items() if res["type"] == type_}


def only_resource(path: Path, type_: str) -> dict[str, Any]:
    found = resources(path, type_)
    assert len(found) == 1, f"{path.name}: expected one {type_}, found {sorted(found)}"
    return resource_body(next(iter(found.values())))


def module_calls() -> dict[str, dict[str, Any]]:
    """main.bicep's module calls by the module file they call (path relative to infra/)."""
    calls = {}
    for module in parse(MAIN)["modules"].values():
        config = module["config"]
        if "condition" in config:  # module ... = if (...) {...}
            config = config["config"]
        calls[module["detail"]["path"]] = config.get("params", {})
    return calls


def module_path(path: Path) -> str:
    return path.relative_to(INFRA).as_posix()


def resolve(value: Any, path: Path) -> Any:
    """Evaluate a parameter or variable reference, or an interpolated string, of ``path`` to a literal.

    A module parameter is followed to the value main.bicep passes it, and a main parameter to its
    default. What cannot be resolved offline (outputs of other modules, functions) stays as text.
    """
    if not isinstance(value, str):
        return value
    document = parse(path)
    parameters = document.get("parameters", {})
    variables = document.get("variables", {})
    if value in variables:
        return resolve(variables[value]["value"], path)
    if value in parameters:
        if path != MAIN:
            passed = module_calls().get(module_path(path), {})
            if value in passed:
                return resolve(passed[value], MAIN)
        return parameters[value].get("default", value)
    return _INTERPOLATION.sub(lambda match: str(resolve(match.group(1), path)), value)


FUNCTION_APP = INFRA / "modules" / "functionapp.bicep"
STORAGE = INFRA / "modules" / "storage.bicep"


def app_settings() -> dict[str, Any]:
    """The Function App's app settings as the template writes them, names unquoted."""
    configs = [
        resource_body(res)
        for res in resources(FUNCTION_APP, "Microsoft.Web/sites/config").values()
        if resource_body(res).get("name") == "appsettings"
    ]
    assert len(configs) == 1, "functionapp.bicep must declare exactly one appsettings config"
    return {unquote(key): value for key, value in configs[0]["properties"].items()}


def settings_registry() -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads(SETTINGS_REGISTRY.read_text(encoding="utf-8"))["settings"]
    return entries
