"""Hostile protobuf messages for fuzz tests, built from the contract's descriptors.

Two hypothesis strategies:

- :func:`mutated` takes a real request and changes 1..n fields picked at random anywhere in its
  tree: numbers to 0, negatives, extremes, NaN and infinities; strings to empty, very long
  (20 KB, 1 MB), quotes, backslashes, control characters, non-ASCII digits, an expression
  injection; enums to unknown numbers; repeated fields cleared, shortened, duplicated, grown
  by an empty element or by thousands of copies; messages cleared.
- :func:`arbitrary` builds a message of a descriptor from nothing, every field optionally set
  to one of those values (a few levels deep).

Used by the codec fuzzer (``tests/codecs/test_field_paths.py``, no network) and the live RPC
fuzzer (``tests/fuzz/test_rpc_fuzz.py``).
"""

from __future__ import annotations

import math

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

DOUBLES = [math.nan, math.inf, -math.inf, -1.0, 0.0, -1e-9, 1e-9, 0.5, 5e-324, 1e12, -1e12, 2.0**53,
           1e19, 1e300, -1e300]
INT32S = [-1, 0, 1, 2, 7, 2**31 - 1, -(2**31)]
INT64S = [-1, 0, 1, 2**40, -(2**40), 2**53 + 1, 2**63 - 1, -(2**63)]
UINT32S = [0, 1, 2**32 - 1]
UINT64S = [0, 1, 2**64 - 1]
STRINGS = ["", " ", "0", "x" * 300, "x" * 20_000, "O'Brien", 'a"b', "back\\slash", "line\nbreak", "nul\x00byte",
           "ünï", "²", "٣", "99999999999999999999", "-1", "../../etc/passwd", "zz'] or id not in ['d1",
           "\u202egnp.exe", "🗑️", "fuzz_unknown", "service_requests", "fill_level", "text_encoder"]
HUGE_STRING = "y" * (1 << 20)
BYTES = [b"", b"\x00", b"\xff" * 100]
UNKNOWN_ENUMS = [999, -1]
#: Copies of an element when a repeated field is grown by "many" ...
MANY = 5_000
#: ... but never more than this many bytes of copies (a 1 MB element is copied once or twice),
#: so one mutation grows a request by at most ~2 MB and the fuzzer itself stays small.
MANY_BYTES = 2_000_000

_INT_TYPES = {
    FieldDescriptor.TYPE_INT32: INT32S, FieldDescriptor.TYPE_SINT32: INT32S, FieldDescriptor.TYPE_SFIXED32: INT32S,
    FieldDescriptor.TYPE_INT64: INT64S, FieldDescriptor.TYPE_SINT64: INT64S, FieldDescriptor.TYPE_SFIXED64: INT64S,
    FieldDescriptor.TYPE_UINT32: UINT32S, FieldDescriptor.TYPE_FIXED32: UINT32S,
    FieldDescriptor.TYPE_UINT64: UINT64S, FieldDescriptor.TYPE_FIXED64: UINT64S,
}


def is_repeated(field: FieldDescriptor) -> bool:
    """True for a repeated field (maps included), across protobuf versions."""
    repeated = getattr(field, "is_repeated", None)
    return bool(repeated) if repeated is not None else field.label == FieldDescriptor.LABEL_REPEATED


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def hostile_scalar(draw: st.DrawFn, field: FieldDescriptor, huge_strings: bool = True) -> object:
    """A hostile value of a scalar ``field``'s type (always one protobuf accepts)."""
    t = field.type
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        value = draw(st.sampled_from(DOUBLES))
        return value if t == FieldDescriptor.TYPE_DOUBLE or not math.isfinite(value) or abs(value) < 3e38 else math.inf
    if t in _INT_TYPES:
        return draw(st.sampled_from(_INT_TYPES[t]))
    if t == FieldDescriptor.TYPE_STRING:
        if huge_strings and draw(st.integers(0, 19)) == 0:
            return HUGE_STRING
        return draw(st.sampled_from(STRINGS))
    if t == FieldDescriptor.TYPE_BYTES:
        return draw(st.sampled_from(BYTES))
    if t == FieldDescriptor.TYPE_BOOL:
        return draw(st.booleans())
    if t == FieldDescriptor.TYPE_ENUM:
        return draw(st.sampled_from([v.number for v in field.enum_type.values] + UNKNOWN_ENUMS))
    raise AssertionError(f"unexpected scalar type {t}")


def targets(msg: Message, depth: int = 0) -> list[tuple[Message, FieldDescriptor, int | None]]:
    """Every (message, field, element index) reachable in ``msg``: all fields of the messages
    that are set (unset ones too, so they can be set), a few levels deep, maps skipped."""
    out: list[tuple[Message, FieldDescriptor, int | None]] = []
    if depth > 6:
        return out
    for field in msg.DESCRIPTOR.fields:
        if _is_map(field):
            continue
        value = getattr(msg, field.name)
        if is_repeated(field):
            out.append((msg, field, None))
            for i in range(min(len(value), 4)):
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    out.extend(targets(value[i], depth + 1))
                else:
                    out.append((msg, field, i))
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            out.append((msg, field, None))
            if msg.HasField(field.name):
                out.extend(targets(value, depth + 1))
        else:
            out.append((msg, field, None))
    return out


def _copies(element_bytes: int) -> int:
    return max(1, min(MANY, MANY_BYTES // max(element_bytes, 1)))


@st.composite
def mutated(draw: st.DrawFn, base: Message, max_changes: int = 3, huge: bool = True) -> Message:
    """A copy of ``base`` with 1..``max_changes`` hostile changes (``huge``: 1 MB strings and
    thousands of repeated elements may be drawn)."""
    msg = type(base)()
    msg.CopyFrom(base)
    for _ in range(draw(st.integers(1, max_changes))):
        parent, field, index = draw(st.sampled_from(targets(msg)))
        value = getattr(parent, field.name)
        if is_repeated(field) and index is None:
            actions = ["clear", "drop", "duplicate", "add"] + (["many"] if huge else [])
            action = draw(st.sampled_from(actions))
            if action == "clear":
                parent.ClearField(field.name)
            elif action == "drop" and len(value):
                del value[draw(st.integers(0, len(value) - 1))]
            elif action == "duplicate" and len(value):
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    value.add().CopyFrom(value[draw(st.integers(0, len(value) - 1))])
                else:
                    value.append(value[0])
            elif action == "many":
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    template = value[0] if len(value) else None
                    size = template.ByteSize() if template is not None else 0
                    for _ in range(_copies(size)):
                        element = value.add()
                        if template is not None:
                            element.CopyFrom(template)
                else:
                    element = value[0] if len(value) else hostile_scalar(draw, field, huge_strings=False)
                    size = len(element) if isinstance(element, str | bytes) else 8
                    value.extend([element] * _copies(size))
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                value.add()
            else:
                value.append(hostile_scalar(draw, field, huge))
        elif is_repeated(field):
            value[index] = hostile_scalar(draw, field, huge)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            parent.ClearField(field.name)
        else:
            setattr(parent, field.name, hostile_scalar(draw, field, huge))
    return msg


@st.composite
def arbitrary(draw: st.DrawFn, descriptor: Descriptor, depth: int = 0, max_depth: int = 4) -> Message:
    """A message of ``descriptor`` built from nothing: each field unset or hostile (maps left
    empty; repeated fields get 0..3 elements; nesting stops at ``max_depth``)."""
    msg = GetMessageClass(descriptor)()
    for field in descriptor.fields:
        if _is_map(field) or not draw(st.booleans()):
            continue
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth >= max_depth:
                continue
            if is_repeated(field):
                for _ in range(draw(st.integers(0, 3))):
                    getattr(msg, field.name).add().CopyFrom(
                        draw(arbitrary(field.message_type, depth + 1, max_depth)))
            else:
                getattr(msg, field.name).CopyFrom(draw(arbitrary(field.message_type, depth + 1, max_depth)))
        elif is_repeated(field):
            getattr(msg, field.name).extend(
                hostile_scalar(draw, field, huge_strings=False) for _ in range(draw(st.integers(0, 3))))
        else:
            if field.containing_oneof is not None and msg.WhichOneof(field.containing_oneof.name):
                continue
            setattr(msg, field.name, hostile_scalar(draw, field, huge_strings=False))
    return msg
