"""Host side checks of each discovered function before it is registered, one function at a time.

The real host indexes functions independently: one that fails a check is logged as in error and the
others start (Azure/azure-functions-host ``ScriptHost`` ``ValidateFunction`` / function errors). Checked:

- bindings outside the built-in http and timer ones need an extension bundle in host.json; without one
  the real host reports "The binding type(s) '...' are not registered" for that function (Python apps
  get the Storage extension only through the bundle);
- a queue binding's connection setting and ``queueName``;
- the HTTP route template (constraints);
- a timer's schedule expression.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from devhost.discovery import (
    HTTP_TRIGGER,
    QUEUE_TRIGGER,
    TIMER_TRIGGER,
    FunctionLoadError,
    FunctionSpec,
    function_in_error,
)
from devhost.ncrontab import parse_schedule
from devhost.queue_io import QueueClients
from devhost.routing import compile_route
from devhost.settings import SettingsError, lookup

BUILT_IN_BINDINGS = {HTTP_TRIGGER, "http", TIMER_TRIGGER}
_DISPLAY = {QUEUE_TRIGGER: "queueTrigger", "queue": "queue"}


def registrable(
    specs: list[FunctionSpec], host_json: Mapping[str, Any], clients: QueueClients, route_prefix: str
) -> list[FunctionSpec]:
    """The functions that pass every check; the others are logged as in error."""
    has_bundle = lookup(host_json, "extensionBundle") is not None
    kept = []
    for spec in specs:
        try:
            _check(spec, has_bundle, clients, route_prefix)
        except (FunctionLoadError, SettingsError) as exc:
            function_in_error(spec.name, str(exc))
            continue
        kept.append(spec)
    return kept


def _check(spec: FunctionSpec, has_bundle: bool, clients: QueueClients, route_prefix: str) -> None:
    bindings = (spec.trigger, *spec.outputs)
    if not has_bundle:
        missing = [_DISPLAY.get(b.type, b.type) for b in bindings if b.type not in BUILT_IN_BINDINGS]
        if missing:
            raise FunctionLoadError(
                f"The binding type(s) '{', '.join(missing)}' are not registered. Please ensure the type is correct "
                "and the binding extension is installed (host.json has no extensionBundle)."
            )
    for binding in bindings:
        if binding.type in (QUEUE_TRIGGER, "queue"):
            clients.check(spec.name, binding)
    if spec.trigger.type == HTTP_TRIGGER:
        compile_route(spec, route_prefix)
    if spec.trigger.type == TIMER_TRIGGER:
        parse_schedule(str(spec.trigger.get("schedule") or ""))
