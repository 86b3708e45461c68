"""The payload converter: Temporal's default JSON, with dataclasses handled faster.

Temporal's JSON converter rebuilds a dataclass from its JSON object by asking
`typing.get_type_hints` for the class's field types on every value it decodes, and
our workflow's payloads are deep dataclasses (a case snapshot holds clocks, parcels,
a resolution, triage; every projection carries one). With the annotations written as
strings (`from __future__ import annotations`) that lookup compiles and evaluates each
field's annotation again each time: about 8 % of a worker's CPU in the lifecycle
benchmark (docs/benchmarks.md). This converter plugs into the converter's own
extension point (`JSONTypeConverter`) and resolves each class's field types once; the
JSON on the wire and the objects decoded are the same as the default's. Encoding skips
`dataclasses.asdict`'s deep copy the same way.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from temporalio.converter import (
    AdvancedJSONEncoder,
    CompositePayloadConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
    JSONTypeConverter,
    value_to_type,
)

_Field = tuple[str, Any, bool]  # name, type, passed to __init__
# Per class, shared by every converter instance: Temporal builds converters per
# workflow and per serialization context, so a cache held by one would start empty.
_FIELDS: dict[type, list[_Field]] = {}


class DataclassConverter(JSONTypeConverter):
    """Decodes a JSON object into a dataclass as `value_to_type` does (unknown keys
    ignored, missing required fields refused by the constructor, `init=False` fields
    restored after it), with the field types of each class resolved once."""

    def __init__(self) -> None:
        self._converters = [self]

    @staticmethod
    def fields(klass: type) -> list[_Field]:
        plan = _FIELDS.get(klass)
        if plan is None:
            hints = typing.get_type_hints(klass)
            plan = [(f.name, hints[f.name], f.init) for f in dataclasses.fields(klass)]
            _FIELDS[klass] = plan
        return plan

    def to_typed_value(self, hint: type, value: Any) -> Any:
        if not (isinstance(hint, type) and dataclasses.is_dataclass(hint)):
            return JSONTypeConverter.Unhandled
        if not isinstance(value, dict):
            raise TypeError(f"Cannot convert to dataclass {hint}, value is "
                            f"{type(value)} not dict")
        init: dict[str, Any] = {}
        later: dict[str, Any] = {}
        for name, field_type, in_init in self.fields(hint):
            if name not in value:
                continue
            try:
                converted = value_to_type(field_type, value[name], self._converters)
            except Exception as err:
                raise TypeError(f"Failed converting field {name} on dataclass "
                                f"{hint}") from err
            (init if in_init else later)[name] = converted
        obj = hint(**init)
        for name, converted in later.items():
            object.__setattr__(obj, name, converted)
        return obj


def decode(hint: Any, value: Any) -> Any:
    """`value` (JSON-shaped: dicts, lists, ISO strings) as an instance of `hint`, the way
    the payload converter decodes it; the web layer builds action inputs and reads the
    stored case state with it."""
    return value_to_type(hint, value, _SHARED)


class DataclassJSONEncoder(AdvancedJSONEncoder):
    """Temporal's encoder, but a dataclass becomes a shallow dict of its fields (the
    encoder comes back here for nested ones) instead of `dataclasses.asdict`'s deep
    copy of everything below it. The same JSON, byte for byte."""

    def default(self, o: Any) -> Any:
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return {f.name: getattr(o, f.name) for f in dataclasses.fields(o)}
        return super().default(o)


_SHARED = [DataclassConverter()]


class PayloadConverter(CompositePayloadConverter):
    """Temporal's default encodings in their usual order; JSON with the faster
    dataclass decoding. Instantiated without arguments, also inside the workflow
    sandbox."""

    def __init__(self) -> None:
        json = JSONPlainPayloadConverter(encoder=DataclassJSONEncoder,
                                         custom_type_converters=[DataclassConverter()])
        super().__init__(*(
            json if isinstance(c, JSONPlainPayloadConverter) else c
            for c in DefaultPayloadConverter.default_encoding_payload_converters))
