"""Field paths of error details resolved against the protobuf descriptors of the contract.

``field_exists(SolveRequest.DESCRIPTOR, "problem.stops[3].time_windows[0].end_s")`` is True when
every step names a field of the message at that point (an index only after a repeated field,
a key only after a map), so a test can check that an error names a field a caller can find.
"""

from __future__ import annotations

import re

from google.protobuf.descriptor import Descriptor, FieldDescriptor

_STEP = re.compile(r"^(?P<name>[a-z_][a-z0-9_]*)(?P<subs>(\[[^\]]+\])*)$")


def _is_repeated(field: FieldDescriptor) -> bool:
    is_repeated = getattr(field, "is_repeated", None)
    if is_repeated is not None:
        return bool(is_repeated)
    return field.label == FieldDescriptor.LABEL_REPEATED


def field_exists(descriptor: Descriptor, path: str) -> bool:
    """True when ``path`` (dots between fields, ``[i]`` after repeated ones, ``['key']`` after
    maps) walks existing fields of ``descriptor`` (a message's ``DESCRIPTOR``)."""
    message: Descriptor | None = descriptor
    steps = path.split(".")
    for n, step in enumerate(steps):
        if message is None:
            return False
        m = _STEP.match(step)
        if m is None:
            return False
        field = message.fields_by_name.get(m.group("name"))
        if field is None:
            return False
        subs = re.findall(r"\[([^\]]+)\]", m.group("subs"))
        is_map = field.message_type is not None and field.message_type.GetOptions().map_entry
        if subs:
            if len(subs) != 1 or not _is_repeated(field):
                return False
            if is_map:
                value = field.message_type.fields_by_name["value"]
                message = value.message_type
                continue
            if not subs[0].isdigit():
                return False
        elif _is_repeated(field) and n < len(steps) - 1:
            return False  # a repeated field is named whole ("bins") or by an element ("bins[3]")
        message = field.message_type
    return True
