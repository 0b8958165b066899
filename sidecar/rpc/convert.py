"""Wire structs to protobuf messages and back, driven by the proto descriptors.

The proto mirrors the wire contract field for field, with three regular differences that
this module applies generically, so that no message is converted by hand:

* an amount ``x`` (decimal string of credits) is ``x_nanos`` (int64 nano-credits);
* a closed string (``reason``, ``result``, ``period``, ``mode``) is an enum whose value
  names are the string upper-cased behind the enum's prefix (``ok`` -> ``REASON_OK``);
  the zero value (``..._UNSPECIFIED``) means absent;
* a map of price tables is a map of ``UnitPrices`` messages.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec
from google.protobuf.message import Message

from sidecar.errors import InvalidInput
from sidecar.locate import locate
from sidecar.money import format_credits, parse_signed_credits

__all__ = ["from_proto", "to_proto"]

T = TypeVar("T")
M = TypeVar("M", bound=Message)
NANOS = "_nanos"
_ONEOF_VALUE = {"int_value", "string_value"}
# protobuf's descriptor classes differ between its pure-Python and upb builds.
Descriptor = Any
EnumDescriptor = Any
FieldDescriptor = Any


def _prefix(enum: EnumDescriptor) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_"


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _map_value(field: FieldDescriptor) -> FieldDescriptor:
    return field.message_type.fields_by_name["value"]


def _wrapped(descriptor: Descriptor) -> str | None:
    """The single map field of a wrapper message like UnitPrices, if it is one."""
    fields = descriptor.fields
    return fields[0].name if len(fields) == 1 and _is_map(fields[0]) else None


def _scalar_out(field: FieldDescriptor, value: Any) -> Any:
    if field.enum_type is not None:
        if value == 0:
            return None
        known = field.enum_type.values_by_number
        if value not in known:  # proto3 enums are open: any int32 arrives
            names = ", ".join(v.name for v in field.enum_type.values if v.number)
            raise InvalidInput(field.name, f"unknown value {value}; use one of {names}")
        return known[value].name[len(_prefix(field.enum_type)) :].lower()
    if field.message_type is not None:
        wrapped = _wrapped(field.message_type)
        return dict(getattr(value, wrapped)) if wrapped else _to_dict(value)
    if field.name.endswith(NANOS):
        return format_credits(value)
    return value


def _to_dict(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        name = field.name
        if field.has_presence and not message.HasField(name):
            continue
        value = getattr(message, name)
        if value == "" and not field.has_presence:
            continue  # proto3 cannot tell an empty string from an absent one: absent
        key = name[: -len(NANOS)] if name.endswith(NANOS) else name
        if name in _ONEOF_VALUE:
            key = "value"
        if _is_map(field):
            inner = _map_value(field)
            converted: Any = {k: _scalar_out(inner, v) for k, v in value.items()}
            if inner.name.endswith(NANOS) or name.endswith(NANOS):
                converted = {k: format_credits(v) for k, v in value.items()}
        elif field.is_repeated:
            converted = [_scalar_out(field, v) for v in value]
        else:
            converted = _scalar_out(field, value)
        if converted is not None:
            out[key] = converted
    return out


def from_proto(message: Message, kind: type[T], *, without: tuple[str, ...] = ()) -> T:
    """The wire struct ``kind`` that ``message`` mirrors (fields in ``without`` dropped)."""
    data = _to_dict(message)
    for name in without:
        data.pop(name, None)
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as error:
        path, problem = locate(data, kind)
        message_text = "is required" if problem == "missing required field" else problem
        raise InvalidInput(path or "request", message_text or str(error)) from None


def _field(descriptor: Descriptor, key: str) -> FieldDescriptor | None:
    fields = descriptor.fields_by_name
    if key == "value":
        return None
    return fields.get(key) or fields.get(key + NANOS)


def _scalar_in(field: FieldDescriptor, value: Any, where: str) -> Any:
    if field.enum_type is not None:
        return field.enum_type.values_by_name[_prefix(field.enum_type) + str(value).upper()].number
    if field.name.endswith(NANOS):
        return parse_signed_credits(value, where)
    return value


def _fill(message: Message, data: dict[str, Any]) -> None:
    descriptor = message.DESCRIPTOR
    for key, value in data.items():
        if value is None:
            continue
        if key == "value":
            name = "string_value" if isinstance(value, str) else "int_value"
            setattr(message, name, value)
            continue
        field = _field(descriptor, key)
        if field is None:
            continue  # a field the proto does not carry
        target = getattr(message, field.name)
        if _is_map(field):
            inner = _map_value(field)
            wrapped = inner.message_type and _wrapped(inner.message_type)
            for k, v in value.items():
                if wrapped:
                    getattr(target[k], wrapped).update(v)
                elif inner.message_type is not None:
                    _fill(target[k], v)
                else:
                    nanos = field.name.endswith(NANOS)
                    target[k] = parse_signed_credits(v, f"{key}.{k}") if nanos else v
        elif field.is_repeated:
            for item in value:
                if field.message_type is not None:
                    _fill(target.add(), item)
                else:
                    target.append(_scalar_in(field, item, key))
        elif field.message_type is not None:
            _fill(target, value)
        else:
            setattr(message, field.name, _scalar_in(field, value, key))


def to_proto(value: Any, kind: type[M], **extra: Any) -> M:
    """The protobuf message ``kind`` mirroring the wire struct ``value`` (plus ``extra``)."""
    message = kind()
    _fill(message, {**msgspec.to_builtins(value), **extra})
    return message
