"""The debug check that what a service sends is what the catalogue declares.

Turned on by `validate_replies` (`AISOPOD_VALIDATE_REPLIES=1`; the test suites set it):
`RpcServer` passes every handler's return value through `checked_result`, `Bus` passes
every event it publishes through `checked_event` (models: `catalogue.payloads`). A value
passes when it is an instance of the declared model (replies), its wire form validates
against that model, and neither it nor any nested model carries a field the model does not
declare (results tolerate extras on the read side, for compatibility; an owner must not
rely on that to send undeclared data).
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from aisopod import codec
from aisopod.catalogue import methods_for
from aisopod.catalogue.payloads import EVENT_PAYLOADS
from aisopod.catalogue.spec import MethodSpec
from aisopod.services import ServiceName


class Nonconformance(Exception):
    """A reply or event that does not match its declared model: a bug in its sender."""


def undeclared_fields(value: Any, path: str = "") -> list[str]:
    """The paths of fields that no model along the way declares (pydantic's `extra`)."""
    found: list[str] = []
    if isinstance(value, BaseModel):
        found.extend(f"{path}.{name}".lstrip(".") for name in value.model_extra or {})
        for name in type(value).model_fields:
            found.extend(undeclared_fields(getattr(value, name), f"{path}.{name}"))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found.extend(undeclared_fields(item, f"{path}[{index}]"))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            found.extend(undeclared_fields(item, f"{path}.{key}"))
    return found


def conform(model: type[BaseModel], value: Any, what: str) -> Any:
    """`value`'s wire form, or raise `Nonconformance` when it does not match `model`."""
    if not isinstance(value, model):
        raise Nonconformance(f"{what}: got {type(value).__name__}, declared {model.__name__}")
    return conform_wire(model, codec.to_wire(value), what)


def conform_wire(model: type[BaseModel], wire: Any, what: str) -> Any:
    """`wire` itself, or raise `Nonconformance` when it does not parse as `model` or
    carries fields `model` does not declare."""
    try:
        parsed = model.model_validate(wire)
    except ValidationError as exc:
        raise Nonconformance(f"{what}: the wire form breaks {model.__name__}: {exc}") from None
    extra = undeclared_fields(parsed)
    if extra:
        raise Nonconformance(f"{what}: fields not declared by {model.__name__}: {extra}")
    return wire


def checked_result(spec: MethodSpec, value: Any) -> Any:
    """The wire form of a handler's return value, checked against `spec.result`."""
    return conform(spec.result, value, f"reply of {spec.name}")


def checked_event(event: str, payload: Any) -> Any:
    """The wire form of an event's payload, checked against its model when it has one."""
    wire = codec.to_wire(payload)
    model = EVENT_PAYLOADS.get(event)
    return wire if model is None else conform_wire(model, wire, event)


def misdeclared_handlers(
    owner: ServiceName,
    handlers: Mapping[str, Callable[..., Any]],
    *,
    skip: frozenset[str] = frozenset(),
) -> list[str]:
    """The owner's methods whose handler is not annotated to return the method's result
    model (the static half of the check: mypy then holds each handler to its annotation)."""
    wrong = []
    for spec in methods_for(owner):
        if spec.name in skip:
            continue
        handler = handlers[spec.name]
        # A Replayable (rpc.py) answers first calls and repeats with two functions; it
        # and ClaimsFirst wrap the function in `handler`.
        first = handler
        while hasattr(first, "handler"):
            first = first.handler
        parts = [first, getattr(handler, "replay", None)]
        for part in filter(None, parts):
            declared = typing.get_type_hints(part).get("return")
            if declared is not spec.result:
                name = getattr(declared, "__name__", repr(declared))
                wrong.append(f"{spec.name} returns {name}, not {spec.result.__name__}")
    return wrong
