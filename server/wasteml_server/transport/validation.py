"""Generic request checks that every RPC gets from the interceptor chain.

proto3 enums are open: a client (or a stale stub) can send a number that the server's
schema does not define, and protobuf keeps it silently. ``check_enums`` walks a request
and rejects such values with INVALID_ARGUMENT naming the field, so no servicer has to
remember to.
"""

from __future__ import annotations

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from wasteml_server.core.errors import FieldViolation, InvalidArgumentError

_MAX_VIOLATIONS = 20


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
        if field.type == FieldDescriptor.TYPE_ENUM:
            values = value if _is_repeated(field) else [value]
            for i, v in enumerate(values):
                if field.enum_type.values_by_number.get(v) is None:
                    where = f"{path}[{i}]" if _is_repeated(field) else path
                    violations.append(
                        FieldViolation(
                            where,
                            f"unknown {field.enum_type.name} value {v}; expected one of "
                            + ", ".join(x.name for x in field.enum_type.values),
                        )
                    )
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type.GetOptions().map_entry:
                value_field = field.message_type.fields_by_name["value"]
                if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                    for key, item in value.items():
                        violations += unknown_enum_values(item, f"{path}[{key!r}].")
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
    return field.label == FieldDescriptor.LABEL_REPEATED
