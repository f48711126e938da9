"""RouteOptimizer servicer: decode, call ``routing.service``, encode (``codecs.routing``).

Jobs store their ``SubmitJobRequest`` (deterministic bytes) as the job's payload, so GetJob and
WatchJob show the label and options of any job in the store, also after a restart.
"""

from __future__ import annotations

import grpc

from wasteml.v1 import routing_pb2, routing_pb2_grpc
from wasteml_server.codecs.routing import (
    job_to_proto,
    options_from_proto,
    problem_from_proto,
    solution_to_proto,
    watch_event_to_proto,
)
from wasteml_server.core.errors import under
from wasteml_server.routing.options import SolveOptions
from wasteml_server.routing.problem import Problem
from wasteml_server.routing.service import RoutingService


def _inputs(request: routing_pb2.SolveRequest | routing_pb2.SubmitJobRequest) -> tuple[Problem, SolveOptions]:
    with under("problem"):
        problem = problem_from_proto(request.problem)
    with under("options"):
        options = options_from_proto(request.options)
    return problem, options


class RouteOptimizerServicer(routing_pb2_grpc.RouteOptimizerServicer):
    """``wasteml.v1.RouteOptimizer`` over a :class:`RoutingService`."""

    def __init__(self, service: RoutingService) -> None:
        self._service = service

    async def Solve(self, request: routing_pb2.SolveRequest, context: grpc.aio.ServicerContext):
        solution = await self._service.solve(*_inputs(request))
        return routing_pb2.SolveResponse(solution=solution_to_proto(solution))

    async def SubmitJob(self, request: routing_pb2.SubmitJobRequest, context: grpc.aio.ServicerContext):
        problem, options = _inputs(request)
        snap = await self._service.submit(problem, options,
                                          request_bytes=request.SerializeToString(deterministic=True),
                                          request_id=request.request_id)
        return routing_pb2.SubmitJobResponse(job=job_to_proto(snap))

    async def GetJob(self, request: routing_pb2.GetJobRequest, context: grpc.aio.ServicerContext):
        return routing_pb2.GetJobResponse(job=job_to_proto(await self._service.get(request.job_id)))

    async def WatchJob(self, request: routing_pb2.WatchJobRequest, context: grpc.aio.ServicerContext):
        async for snap in self._service.watch(request.job_id):
            yield watch_event_to_proto(snap)

    async def CancelJob(self, request: routing_pb2.CancelJobRequest, context: grpc.aio.ServicerContext):
        return routing_pb2.CancelJobResponse(job=job_to_proto(await self._service.cancel(request.job_id)))
