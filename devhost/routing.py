"""HTTP routes: ``routePrefix`` + each function's route template, matched like ASP.NET routing.

Templates take parameters with constraints (``{id:guid}``, ``{n:int}``, ``{s:alpha}``), optional
parameters (``{name?}``), catch-alls (``{*rest}``) and default to the function's name. Literal
segments match case-insensitively. A route whose ``methods`` exclude the request's method does not
match, so the request falls to the next route or to a 404 (the real host registers ``methods`` as an
HTTP method route constraint, not as a 405 handler). Routes are tried in ASP.NET Core's inbound
precedence (``RoutePrecedence.ComputeInbound`` in dotnet/aspnetcore ``src/Http/Routing/src/Template/
RoutePrecedence.cs``): segment by segment, literal 1, constrained parameter or multi-part 2, parameter 3,
constrained catch-all 4, catch-all 5; then the template, case-insensitively.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from devhost.discovery import FunctionLoadError, FunctionSpec

_PARAMETER = re.compile(r"\{([^{}]+)\}")
_ARGUMENT = re.compile(r"^(\w+)\((.*)\)$")


def _is_int(value: str) -> bool:
    return re.fullmatch(r"[+-]?\d+", value) is not None


def _is_float(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


_SIMPLE_CONSTRAINTS: dict[str, Callable[[str], bool]] = {
    "int": _is_int,
    "long": _is_int,
    "float": _is_float,
    "double": _is_float,
    "decimal": _is_float,
    "bool": lambda v: v.lower() in {"true", "false"},
    "guid": _is_guid,
    "alpha": lambda v: re.fullmatch(r"[A-Za-z]+", v) is not None,
    "datetime": _is_datetime,
}


def _constraint(text: str, where: str) -> Callable[[str], bool]:
    simple = _SIMPLE_CONSTRAINTS.get(text.lower())
    if simple is not None:
        return simple
    match = _ARGUMENT.match(text)
    if match is None:
        raise FunctionLoadError(f"{where}: unknown route constraint '{text}'")
    name, argument = match.group(1).lower(), match.group(2)
    try:
        if name == "regex":
            pattern = re.compile(argument)
            return lambda v: pattern.fullmatch(v) is not None
        numbers = [int(part) for part in argument.split(",")]
    except (re.error, ValueError) as exc:
        raise FunctionLoadError(f"{where}: bad route constraint '{text}'") from exc
    if name == "minlength":
        return lambda v: len(v) >= numbers[0]
    if name == "maxlength":
        return lambda v: len(v) <= numbers[0]
    if name == "length":
        return lambda v: numbers[0] <= len(v) <= numbers[-1]
    if name == "min":
        return lambda v: _is_int(v) and int(v) >= numbers[0]
    if name == "max":
        return lambda v: _is_int(v) and int(v) <= numbers[0]
    if name == "range":
        return lambda v: _is_int(v) and numbers[0] <= int(v) <= numbers[-1]
    raise FunctionLoadError(f"{where}: unknown route constraint '{text}'")


@dataclass(frozen=True)
class Route:
    spec: FunctionSpec
    template: str  # the full path template, prefix included, without leading "/"
    pattern: re.Pattern[str]
    constraints: dict[str, list[Callable[[str], bool]]]
    methods: frozenset[str] | None  # None: every method
    precedence: tuple[int, ...]  # one ASP.NET precedence digit a segment; lower is tried first

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.fullmatch(path)
        if found is None:
            return None
        values = {name: value for name, value in found.groupdict().items() if value is not None}
        for name, checks in self.constraints.items():
            if name in values and not all(check(values[name]) for check in checks):
                return None
        return values


def compile_route(spec: FunctionSpec, route_prefix: str) -> Route:
    where = f"function '{spec.name}'"
    route = str(spec.trigger.get("route") or spec.name).strip("/")
    template = "/".join(part for part in (route_prefix.strip("/"), route) if part)
    constraints: dict[str, list[Callable[[str], bool]]] = {}
    regex_parts: list[str] = []
    precedence: list[int] = []
    for index, segment in enumerate(template.split("/") if template else []):
        separator = "/" if index else ""
        pieces: list[str] = []
        cursor = 0
        optional = False
        parameters = list(_PARAMETER.finditer(segment))
        for found in parameters:
            pieces.append(re.escape(segment[cursor : found.start()]))
            cursor = found.end()
            name, *checks = found.group(1).split(":")
            catch_all = name.startswith("*")
            name = name.lstrip("*")
            if name.endswith("?"):
                name, optional = name[:-1], True
            if checks and checks[-1].endswith("?"):
                checks[-1], optional = checks[-1][:-1], True
            if not name.isidentifier():
                raise FunctionLoadError(f"{where}: route parameter '{name}' is not a valid name")
            constraints[name] = [_constraint(check, where) for check in checks]
            if len(parameters) == 1 and found.start() == 0 and found.end() == len(segment):
                precedence.append((5 if catch_all else 3) - (1 if checks else 0))
            else:
                precedence.append(2)  # a multi-part segment such as "v{version}"
            pieces.append(f"(?P<{name}>{'.*' if catch_all else '[^/]+'})")
            optional = optional or catch_all
        pieces.append(re.escape(segment[cursor:]))
        if not parameters:
            precedence.append(1)
        body = "".join(pieces)
        regex_parts.append(f"(?:{separator}{body})?" if optional else f"{separator}{body}")
    methods_raw = spec.trigger.get("methods")
    methods = frozenset(str(m).upper() for m in methods_raw) if methods_raw else None
    try:
        pattern = re.compile("".join(regex_parts), re.IGNORECASE)
    except re.error as exc:
        raise FunctionLoadError(f"{where}: route '{route}' cannot be compiled: {exc}") from exc
    return Route(spec, template, pattern, constraints, methods, tuple(precedence))


@dataclass(frozen=True)
class RouteMatch:
    route: Route | None  # None: no route matched the path and method (a 404)
    route_params: dict[str, str]


class Router:
    def __init__(self, specs: list[FunctionSpec], route_prefix: str) -> None:
        routes = [compile_route(spec, route_prefix) for spec in specs]
        width = max((len(r.precedence) for r in routes), default=0)
        # ComputeInbound sums digit / 10**i, so a shorter template compares as if padded with zeros.
        self.routes = sorted(
            routes, key=lambda r: (r.precedence + (0,) * (width - len(r.precedence)), r.template.lower())
        )

    def match(self, method: str, path: str) -> RouteMatch:
        path = path.strip("/")
        for route in self.routes:
            if route.methods is not None and method.upper() not in route.methods:
                continue
            params = route.match(path)
            if params is not None:
                return RouteMatch(route, params)
        return RouteMatch(None, {})
