"""HTTP routes: ``routePrefix`` + each function's route template, matched like ASP.NET routing.

Templates take parameters with constraints (``{id:guid}``, ``{n:int}``, ``{s:alpha}``), optional
parameters (``{name?}``), catch-alls (``{*rest}``) and default to the function's name. Literal
segments match case-insensitively. A path that matches a route whose ``methods`` exclude the
request's method is a 405; no route at all is a 404.
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
    literal_segments: int

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
    literal_segments = 0
    for index, segment in enumerate(template.split("/") if template else []):
        separator = "/" if index else ""
        pieces: list[str] = []
        cursor = 0
        optional = False
        for found in _PARAMETER.finditer(segment):
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
            pieces.append(f"(?P<{name}>{'.*' if catch_all else '[^/]+'})")
            optional = optional or catch_all
        pieces.append(re.escape(segment[cursor:]))
        if cursor == 0:
            literal_segments += 1
        body = "".join(pieces)
        regex_parts.append(f"(?:{separator}{body})?" if optional else f"{separator}{body}")
    methods_raw = spec.trigger.get("methods")
    methods = frozenset(str(m).upper() for m in methods_raw) if methods_raw else None
    try:
        pattern = re.compile("".join(regex_parts), re.IGNORECASE)
    except re.error as exc:
        raise FunctionLoadError(f"{where}: route '{route}' cannot be compiled: {exc}") from exc
    return Route(spec, template, pattern, constraints, methods, literal_segments)


@dataclass(frozen=True)
class RouteMatch:
    route: Route | None  # None: no route matched the path
    route_params: dict[str, str]
    method_allowed: bool


class Router:
    def __init__(self, specs: list[FunctionSpec], route_prefix: str) -> None:
        routes = [compile_route(spec, route_prefix) for spec in specs]
        # More literal segments first, so "items/special" wins over "items/{id}".
        self.routes = sorted(routes, key=lambda r: (-r.literal_segments, r.template))

    def match(self, method: str, path: str) -> RouteMatch:
        path = path.strip("/")
        path_matched: Route | None = None
        for route in self.routes:
            params = route.match(path)
            if params is None:
                continue
            if route.methods is None or method.upper() in route.methods:
                return RouteMatch(route, params, True)
            path_matched = path_matched or route
        return RouteMatch(path_matched, {}, path_matched is None)
