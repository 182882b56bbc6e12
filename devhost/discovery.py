"""Find the app's functions: every folder holding a ``function.json``.

Only the folder layout and the JSON are read here; importing the code and checking ``main``'s
parameters against the bindings happens in the worker processes (see ``loader``), as in the real
worker. ``%NAME%`` binding values are resolved from app settings, as the real host does.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devhost.settings import is_true

logger = logging.getLogger(__name__)

HTTP_TRIGGER = "httptrigger"
QUEUE_TRIGGER = "queuetrigger"
TIMER_TRIGGER = "timertrigger"
SUPPORTED_TRIGGERS = {HTTP_TRIGGER, QUEUE_TRIGGER, TIMER_TRIGGER}
SUPPORTED_OUTPUTS = {"http", "queue"}
RETURN_BINDING = "$return"
_SETTING_REFERENCE = re.compile(r"%([^%]+)%")
_SKIPPED_DIRS = {".venv", "node_modules", "__pycache__", ".git", ".python_packages"}


class FunctionLoadError(Exception):
    """A function folder cannot be loaded; start-up stops with this message."""


@dataclass(frozen=True)
class Binding:
    name: str
    type: str  # lower-cased, e.g. "httptrigger", "queue"
    direction: str  # "in" or "out"
    properties: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return next((v for k, v in self.properties.items() if k.lower() == key.lower()), default)


@dataclass(frozen=True)
class FunctionSpec:
    """Everything a worker needs to load and call one function (picklable)."""

    name: str
    directory: str
    app_root: str
    module_name: str
    entry_point: str
    trigger: Binding
    outputs: tuple[Binding, ...]

    @property
    def parameter_bindings(self) -> tuple[Binding, ...]:
        return tuple(b for b in (self.trigger, *self.outputs) if b.name != RETURN_BINDING)

    @property
    def return_binding(self) -> Binding | None:
        return next((b for b in self.outputs if b.name == RETURN_BINDING), None)


def function_in_error(name: str, message: str) -> None:
    """Log a function the host cannot run; the host goes on with the others, as the real host does."""
    logger.error("The '%s' function is in error: %s", name, message)


def discover(app_dir: Path, environ: Mapping[str, str]) -> list[FunctionSpec]:
    """All enabled, supported functions of the app, sorted by name.

    A folder that cannot be read as a function (bad JSON, missing script, unresolved setting, ...) is
    logged as in error and left out, and the host starts with the others (the real host indexes each
    function on its own and marks a broken one as in error).
    """
    app_root = app_dir.resolve()
    specs: list[FunctionSpec] = []
    for function_json in sorted(app_root.glob("*/function.json")):
        folder = function_json.parent
        if folder.name in _SKIPPED_DIRS or folder.name.startswith("."):
            continue
        try:
            spec = load_function(folder, app_root, environ)
        except FunctionLoadError as exc:
            function_in_error(folder.name, str(exc))
            continue
        if spec is None:
            continue
        if is_true(environ.get(f"AzureWebJobs.{spec.name}.Disabled")):
            logger.info("Function '%s' is disabled (AzureWebJobs.%s.Disabled)", spec.name, spec.name)
            continue
        specs.append(spec)
    return specs


def load_function(folder: Path, app_root: Path, environ: Mapping[str, str]) -> FunctionSpec | None:
    name = folder.name
    try:
        config = json.loads((folder / "function.json").read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise FunctionLoadError(f"function '{name}': cannot read function.json: {exc}") from exc
    if not isinstance(config, dict) or not isinstance(config.get("bindings"), list):
        raise FunctionLoadError(f"function '{name}': function.json needs a 'bindings' list")
    if config.get("disabled") is True:
        logger.info("Function '%s' is disabled in its function.json", name)
        return None
    bindings = [_binding(name, raw, environ) for raw in config["bindings"]]
    triggers = [b for b in bindings if b.type.endswith("trigger")]
    if len(triggers) != 1:
        raise FunctionLoadError(f"function '{name}': expected exactly one trigger binding, found {len(triggers)}")
    trigger = triggers[0]
    outputs = tuple(b for b in bindings if b is not trigger)
    unsupported = [b.type for b in bindings if b is not trigger and b.type not in SUPPORTED_OUTPUTS]
    if trigger.type not in SUPPORTED_TRIGGERS or unsupported:
        logger.warning(
            "Function '%s' skipped: devhost runs http, queue and timer triggers with http/queue outputs only (%s)",
            name,
            ", ".join([trigger.type, *unsupported]),
        )
        return None
    for binding in outputs:
        if binding.direction != "out":
            raise FunctionLoadError(f"function '{name}': binding '{binding.name}' must have direction 'out'")
    names = [b.name for b in bindings]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise FunctionLoadError(f"function '{name}': duplicate binding names {duplicates}")
    script = (folder / str(config.get("scriptFile") or "__init__.py")).resolve()
    if not script.is_file():
        raise FunctionLoadError(f"function '{name}': script file not found: {script.name}")
    return FunctionSpec(
        name=name,
        directory=str(folder),
        app_root=str(app_root),
        module_name=_module_name(name, script, app_root),
        entry_point=str(config.get("entryPoint") or "main"),
        trigger=trigger,
        outputs=outputs,
    )


def _binding(function: str, raw: object, environ: Mapping[str, str]) -> Binding:
    if not isinstance(raw, dict):
        raise FunctionLoadError(f"function '{function}': each binding must be an object")
    name, kind = raw.get("name"), raw.get("type")
    if not isinstance(name, str) or not name or not isinstance(kind, str) or not kind:
        raise FunctionLoadError(f"function '{function}': every binding needs a 'name' and a 'type'")
    direction = str(raw.get("direction", "in")).lower()
    properties = {k: _resolve(function, name, v, environ) for k, v in raw.items()}
    return Binding(name=name, type=kind.lower(), direction=direction, properties=properties)


def _resolve(function: str, binding: str, value: Any, environ: Mapping[str, str]) -> Any:
    if not isinstance(value, str):
        return value

    def setting(match: re.Match[str]) -> str:
        found = environ.get(match.group(1))
        if found is None:
            raise FunctionLoadError(
                f"function '{function}', binding '{binding}': app setting '{match.group(1)}' "
                f"referenced as '%{match.group(1)}%' is not set"
            )
        return found

    return _SETTING_REFERENCE.sub(setting, value)


def _module_name(function: str, script: Path, app_root: Path) -> str:
    try:
        relative = script.relative_to(app_root)
    except ValueError as exc:
        raise FunctionLoadError(f"function '{function}': scriptFile must be inside the app folder") from exc
    if script.suffix != ".py":
        raise FunctionLoadError(f"function '{function}': scriptFile must be a .py file")
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    if not parts or not all(part.isidentifier() for part in parts):
        raise FunctionLoadError(f"function '{function}': '{relative}' is not importable as a module")
    return ".".join(parts)
