"""Worker side: check ``main``'s type annotations against its bindings, as the Python worker does.

azure-functions-python-worker (``functions.py``, ``Registry.add_function``) asks the azure-functions
library's converter for each binding type whether an annotation fits
(``check_input_type_annotation`` for triggers and inputs, ``check_output_type_annotation`` for the
``T`` of ``func.Out[T]`` and for the return annotation of ``$return``) and refuses to load the
function otherwise: ``func.QueueMessage`` on an httpTrigger parameter is a load error, not a surprise
at the first call. Parameters without annotations are not checked.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

import azure.functions as func
from azure.functions import meta

from devhost.discovery import RETURN_BINDING, FunctionSpec

_JSON_TYPE = {"httptrigger": "httpTrigger", "queuetrigger": "queueTrigger", "timertrigger": "timerTrigger"}


def annotation_problems(spec: FunctionSpec, entry: Callable[..., Any]) -> list[str]:
    try:
        hints = typing.get_type_hints(entry)
    except Exception:  # unresolvable string annotations: the worker cannot check them either
        return []
    registry = meta.get_binding_registry()  # type: ignore[no-untyped-call]
    problems = []
    for binding in (spec.trigger, *spec.outputs):
        converter = registry.get(_JSON_TYPE.get(binding.type, binding.type)) if registry else None
        if converter is None:
            continue
        key = "return" if binding.name == RETURN_BINDING else binding.name
        if key not in hints:
            continue
        annotation = hints[key]
        if binding.direction == "out" and binding.name != RETURN_BINDING:
            if typing.get_origin(annotation) is not func.Out:
                problems.append(f"binding {binding.name} is an output binding: its annotation must be func.Out[...]")
                continue
            (annotation,) = typing.get_args(annotation) or (Any,)
            fits = _check(converter.check_output_type_annotation, annotation)
        elif binding.direction == "out":
            fits = _check(converter.check_output_type_annotation, annotation)
        else:
            fits = _check(converter.check_input_type_annotation, annotation)
        if not fits:
            problems.append(
                f'type of {binding.name} binding in function.json "{binding.get("type")}" does not match its Python '
                f'annotation "{getattr(annotation, "__name__", annotation)}"'
            )
    return problems


def _check(check: Callable[[Any], bool], annotation: Any) -> bool:
    if annotation is Any or annotation is inspect.Parameter.empty:
        return True
    try:
        return bool(check(annotation))
    except TypeError:  # e.g. a typing construct the converter cannot inspect
        return True
