"""Generic request checks that every RPC gets from the interceptor chain.

proto3 enums are open: a client (or a stale stub) can send a number that the server's
schema does not define, and protobuf keeps it silently. ``check_enums`` walks a request
and rejects such values with INVALID_ARGUMENT naming the field, so no servicer has to
remember to.
"""

from __future__ import annotations

from functools import cache

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from wasteml_server.core.errors import FieldViolation, InvalidArgumentError, shown

_MAX_VIOLATIONS = 20


@cache
def may_hold_enums(descriptor: Descriptor) -> bool:
    """True when a message of this type has an enum field anywhere below it (so a walk of a
    large request skips the subtrees that cannot hold one, e.g. thousands of readings)."""
    seen: set[str] = set()
    todo = [descriptor]
    while todo:
        d = todo.pop()
        if d.full_name in seen:
            continue
        seen.add(d.full_name)
        for field in d.fields:
            if field.type == FieldDescriptor.TYPE_ENUM:
                return True
            if field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type is not None:
                todo.append(field.message_type)
    return False


def unknown_enum_values(message: Message, prefix: str = "") -> list[FieldViolation]:
    """Every enum field of ``message`` (recursively) whose value is not defined in its enum.

    Args:
        message: a protobuf message.
        prefix: dotted path of ``message`` inside the request ("" for the request itself).

    Returns:
        One violation per bad value, with paths like ``"stops[2].kind"`` (at most 20).
    """
    violations: list[FieldViolation] = []
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        if field.type == FieldDescriptor.TYPE_ENUM and field.enum_type is not None:
            enum = field.enum_type
            values = value if _is_repeated(field) else [value]
            for i, v in enumerate(values):
                if enum.values_by_number.get(v) is None:
                    where = f"{path}[{i}]" if _is_repeated(field) else path
                    violations.append(
                        FieldViolation(
                            where,
                            f"unknown {enum.name} value {v}; expected one of "
                            + ", ".join(x.name for x in enum.values),
                        )
                    )
        elif (field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type is not None
              and may_hold_enums(field.message_type)):
            if field.message_type.GetOptions().map_entry:
                value_field = field.message_type.fields_by_name["value"]
                if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                    for key, item in value.items():
                        violations += unknown_enum_values(item, f"{path}[{shown(key)}].")
            elif _is_repeated(field):
                for i, item in enumerate(value):
                    violations += unknown_enum_values(item, f"{path}[{i}].")
            else:
                violations += unknown_enum_values(value, f"{path}.")
        if len(violations) >= _MAX_VIOLATIONS:
            break
    return violations[:_MAX_VIOLATIONS]


def check_enums(message: Message) -> None:
    """Raise ``InvalidArgumentError`` if any enum field of ``message`` holds an undefined value.

    Raises:
        InvalidArgumentError: naming every bad field (dotted path).
    """
    violations = unknown_enum_values(message)
    if violations:
        first, *more = violations
        raise InvalidArgumentError(first.field, first.description, *more)


def _is_repeated(field: FieldDescriptor) -> bool:
    # ``label`` is deprecated in newer protobuf releases in favour of ``is_repeated``.
    is_repeated = getattr(field, "is_repeated", None)
    if is_repeated is not None:
        return bool(is_repeated)
    return bool(getattr(field, "label", None) == FieldDescriptor.LABEL_REPEATED)
