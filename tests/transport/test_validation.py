"""The generic enum check: unknown values are found wherever they are, and subtrees that cannot
hold an enum are skipped (so a large request of readings is not walked)."""

from __future__ import annotations

import pytest
from google.protobuf import descriptor_pool
from google.protobuf.message_factory import GetMessageClass

from wasteml.v1 import forecasting_pb2, planning_pb2, routing_pb2
from wasteml_server.core.errors import InvalidArgumentError
from wasteml_server.transport.validation import check_enums, may_hold_enums


def _holds_enum_by_walk(descriptor, seen=None) -> bool:
    seen = set() if seen is None else seen
    if descriptor.full_name in seen:
        return False
    seen.add(descriptor.full_name)
    return any(f.enum_type is not None or (f.message_type is not None and _holds_enum_by_walk(f.message_type, seen))
               for f in descriptor.fields)


def test_may_hold_enums_agrees_with_a_plain_walk_for_every_contract_message() -> None:
    """For every message type of the contract, the cached answer equals a direct search."""
    pool = descriptor_pool.Default()
    names = [m.full_name for module in (forecasting_pb2, planning_pb2, routing_pb2)
             for m in module.DESCRIPTOR.message_types_by_name.values()]
    assert names
    for name in names:
        d = pool.FindMessageTypeByName(name)
        assert may_hold_enums(d) == _holds_enum_by_walk(d), name
    assert not may_hold_enums(routing_pb2.TravelMatrix.DESCRIPTOR)
    assert may_hold_enums(routing_pb2.SolveRequest.DESCRIPTOR)


def test_an_unknown_enum_deep_in_a_large_request_is_named() -> None:
    """Thousands of enum-free elements are skipped; the unknown value behind them is still found."""
    request = planning_pb2.PlanDayRequest()
    for i in range(2000):
        request.bins.add(bin_id=f"b{i}")
    request.facilities.add(id="dump", kind=77)
    with pytest.raises(InvalidArgumentError) as err:
        check_enums(GetMessageClass(request.DESCRIPTOR).FromString(request.SerializeToString()))
    assert err.value.field == "facilities[0].kind"
