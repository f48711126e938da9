"""CollectionPlanner servicer: decode, run ``planning.planner``, encode (``codecs.planning``)."""

from __future__ import annotations

import contextlib

import grpc

from wasteml.v1 import planning_pb2, planning_pb2_grpc
from wasteml_server.codecs.planning import plan_to_proto, progress_to_proto, request_from_proto
from wasteml_server.planning.plan import StageProgress
from wasteml_server.planning.planner import CollectionPlanner


class CollectionPlannerServicer(planning_pb2_grpc.CollectionPlannerServicer):
    """``wasteml.v1.CollectionPlanner`` over a :class:`CollectionPlanner`."""

    def __init__(self, planner: CollectionPlanner) -> None:
        self._planner = planner

    async def PlanDay(self, request: planning_pb2.PlanDayRequest, context: grpc.aio.ServicerContext):
        # aclosing: a call that ends early (cancelled, deadline) closes the planner at once,
        # which cancels its solve and persists nothing
        async with contextlib.aclosing(self._planner.plan_day(request_from_proto(request))) as items:
            async for item in items:
                if isinstance(item, StageProgress):
                    yield progress_to_proto(item)
                else:
                    yield planning_pb2.PlanDayResponse(plan=plan_to_proto(item))
