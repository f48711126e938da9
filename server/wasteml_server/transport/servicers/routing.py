"""RouteOptimizer servicer: decode, call ``routing.service``, encode (``codecs.routing``).

Jobs store their ``SubmitJobRequest`` (deterministic bytes) as the job's payload, so GetJob and
WatchJob show the label and options of any job in the store, also after a restart.

Request-sized work never runs on the event loop: decoding a problem (its sizes checked against
the service's limits first, then its stops, matrices or haversine matrices), serialising the
stored request and encoding solutions and stored jobs run in a worker thread
(``asyncio.to_thread``), so health checks and other calls keep being answered meanwhile.
"""

from __future__ import annotations

import asyncio

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
from wasteml_server.routing.limits import ProblemLimits
from wasteml_server.routing.options import SolveOptions
from wasteml_server.routing.problem import Problem
from wasteml_server.routing.service import RoutingService


def decode_inputs(request: routing_pb2.SolveRequest | routing_pb2.SubmitJobRequest,
                  limits: ProblemLimits) -> tuple[Problem, SolveOptions]:
    """The problem and options of a Solve/SubmitJob request (blocking: CPU work proportional to
    the request; call it in a thread).

    Raises:
        InvalidArgumentError: under ``problem`` or ``options``.
    """
    with under("options"):
        options = options_from_proto(request.options)
    with under("problem"):
        problem = problem_from_proto(request.problem, limits)
    return problem, options


class RouteOptimizerServicer(routing_pb2_grpc.RouteOptimizerServicer):
    """``wasteml.v1.RouteOptimizer`` over a :class:`RoutingService`."""

    def __init__(self, service: RoutingService) -> None:
        self._service = service

    async def Solve(self, request: routing_pb2.SolveRequest, context: grpc.aio.ServicerContext):
        problem, options = await asyncio.to_thread(decode_inputs, request, self._service.limits)
        solution = await self._service.solve(problem, options)
        return routing_pb2.SolveResponse(solution=await asyncio.to_thread(solution_to_proto, solution))

    async def SubmitJob(self, request: routing_pb2.SubmitJobRequest, context: grpc.aio.ServicerContext):
        def decode() -> tuple[Problem, SolveOptions, bytes]:
            problem, options = decode_inputs(request, self._service.limits)
            return problem, options, request.SerializeToString(deterministic=True)

        problem, options, request_bytes = await asyncio.to_thread(decode)
        snap = await self._service.submit(problem, options, request_bytes=request_bytes,
                                          request_id=request.request_id)
        return routing_pb2.SubmitJobResponse(job=await asyncio.to_thread(job_to_proto, snap))

    async def GetJob(self, request: routing_pb2.GetJobRequest, context: grpc.aio.ServicerContext):
        snap = await self._service.get(request.job_id)
        return routing_pb2.GetJobResponse(job=await asyncio.to_thread(job_to_proto, snap))

    async def WatchJob(self, request: routing_pb2.WatchJobRequest, context: grpc.aio.ServicerContext):
        async for snap in self._service.watch(request.job_id):
            yield await asyncio.to_thread(watch_event_to_proto, snap)

    async def CancelJob(self, request: routing_pb2.CancelJobRequest, context: grpc.aio.ServicerContext):
        snap = await self._service.cancel(request.job_id)
        return routing_pb2.CancelJobResponse(job=await asyncio.to_thread(job_to_proto, snap))
