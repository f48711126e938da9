"""CollectionPlanner servicer: decode, run ``planning.planner``, encode (``codecs.planning``).

Decoding the request (its sizes checked against the planner's limits first) and encoding the
plan run in a worker thread (``asyncio.to_thread``), never on the event loop; the planner runs
its own request-sized stages off the loop too.
"""

from __future__ import annotations

import asyncio
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
        day = await asyncio.to_thread(request_from_proto, request, self._planner.limits)
        # aclosing: a call that ends early (cancelled, deadline) closes the planner at once,
        # which cancels its solve and persists nothing
        async with contextlib.aclosing(self._planner.plan_day(day)) as items:
            async for item in items:
                if isinstance(item, StageProgress):
                    yield progress_to_proto(item)
                else:
                    yield planning_pb2.PlanDayResponse(plan=await asyncio.to_thread(plan_to_proto, item))
