"""RouteOptimizer servicer: protobuf <-> ``wasteml_server.routing.service`` (through
``routing_convert`` only).

Jobs store their ``SubmitJobRequest`` (deterministic bytes) as the job's payload, so GetJob and
WatchJob can show the label and options of any job in the store, also after a restart; the
solution is stored as ``wasteml.v1.Solution`` bytes. A job failed by a server restart is shown
as ``JOB_STATUS_INTERRUPTED`` with the store's reason.
"""

from __future__ import annotations

import logging
import math

import grpc
from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from wasteml.v1 import routing_pb2, routing_pb2_grpc
from wasteml_server.adapters.storage import JobStatus
from wasteml_server.codecs.routing import (
    options_from_proto,
    problem_from_proto,
    solution_to_proto,
)
from wasteml_server.routing.problem import Problem, Solution
from wasteml_server.routing.service import JobProgress, JobSnapshot, RoutingService

logger = logging.getLogger(__name__)

_STATUS = {
    JobStatus.QUEUED: routing_pb2.JOB_STATUS_QUEUED,
    JobStatus.RUNNING: routing_pb2.JOB_STATUS_RUNNING,
    JobStatus.SUCCEEDED: routing_pb2.JOB_STATUS_SUCCEEDED,
    JobStatus.FAILED: routing_pb2.JOB_STATUS_FAILED,
    JobStatus.CANCELLED: routing_pb2.JOB_STATUS_CANCELLED,
}
_ENGINES = {"ortools": routing_pb2.ENGINE_ORTOOLS, "pyvrp": routing_pb2.ENGINE_PYVRP,
            "portfolio": routing_pb2.ENGINE_PORTFOLIO}


def encode_solution(solution: Solution, problem: Problem) -> bytes:
    """A solution as stored with its job: ``wasteml.v1.Solution`` bytes."""
    return solution_to_proto(solution, problem).SerializeToString()


def _timestamp(instant) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(instant)
    return ts


def job_status(snap: JobSnapshot) -> int:
    """The contract's ``JobStatus`` of a job (INTERRUPTED for a job failed by a restart)."""
    return routing_pb2.JOB_STATUS_INTERRUPTED if snap.interrupted else _STATUS[snap.record.status]


def _progress(p: JobProgress) -> routing_pb2.SolveProgress:
    out = routing_pb2.SolveProgress(engine=_ENGINES.get(p.engine, routing_pb2.ENGINE_UNSPECIFIED),
                                    elapsed_s=p.elapsed_s, solutions_found=p.solutions_found)
    if p.best_objective is not None and math.isfinite(p.best_objective):
        out.best_objective = p.best_objective
    return out


def _stored_request(snap: JobSnapshot) -> routing_pb2.SubmitJobRequest:
    request = routing_pb2.SubmitJobRequest()
    if snap.record.problem:
        try:
            request.ParseFromString(snap.record.problem)
        except DecodeError:  # a job stored by other code: show it without label and options
            logger.warning("job %s: stored request is not a SubmitJobRequest", snap.record.id)
            request.Clear()
    return request


def _solution(snap: JobSnapshot) -> routing_pb2.Solution | None:
    if not snap.record.result:
        return None
    return routing_pb2.Solution.FromString(snap.record.result)


def job_to_proto(snap: JobSnapshot) -> routing_pb2.Job:
    """A job snapshot -> ``wasteml.v1.Job``."""
    r = snap.record
    request = _stored_request(snap)
    job = routing_pb2.Job(job_id=str(r.id), status=job_status(snap), label=request.label,
                          options=request.options, created_at=_timestamp(r.submitted_at),
                          error_message=(r.failure_reason or "") if r.status is not JobStatus.SUCCEEDED
                          else "")
    if r.started_at is not None:
        job.started_at.CopyFrom(_timestamp(r.started_at))
    if r.finished_at is not None:
        job.finished_at.CopyFrom(_timestamp(r.finished_at))
    if snap.progress is not None:
        job.progress.CopyFrom(_progress(snap.progress))
    solution = _solution(snap)
    if solution is not None:
        job.solution.CopyFrom(solution)
    return job


class RouteOptimizerServicer(routing_pb2_grpc.RouteOptimizerServicer):
    """``wasteml.v1.RouteOptimizer`` over a :class:`RoutingService`."""

    def __init__(self, service: RoutingService) -> None:
        self._service = service

    def _inputs(self, request):
        problem = problem_from_proto(request.problem, "problem")
        options = options_from_proto(request.options, self._service.max_time_limit_s, "options")
        return problem, options

    async def Solve(self, request: routing_pb2.SolveRequest, context: grpc.aio.ServicerContext):
        problem, options = self._inputs(request)
        solution = await self._service.solve(problem, options)
        return routing_pb2.SolveResponse(solution=solution_to_proto(solution, problem))

    async def SubmitJob(self, request: routing_pb2.SubmitJobRequest, context: grpc.aio.ServicerContext):
        problem, options = self._inputs(request)
        snap = await self._service.submit(problem, options,
                                          request_bytes=request.SerializeToString(deterministic=True),
                                          request_id=request.request_id)
        return routing_pb2.SubmitJobResponse(job=job_to_proto(snap))

    async def GetJob(self, request: routing_pb2.GetJobRequest, context: grpc.aio.ServicerContext):
        return routing_pb2.GetJobResponse(job=job_to_proto(await self._service.get(request.job_id)))

    async def WatchJob(self, request: routing_pb2.WatchJobRequest, context: grpc.aio.ServicerContext):
        async for snap in self._service.watch(request.job_id):
            event = routing_pb2.WatchJobResponse(job_id=str(snap.record.id), status=job_status(snap))
            if snap.progress is not None:
                event.progress.CopyFrom(_progress(snap.progress))
            if snap.final:
                solution = _solution(snap)
                if solution is not None:
                    event.solution.CopyFrom(solution)
                if snap.record.status is not JobStatus.SUCCEEDED:
                    event.error_message = snap.record.failure_reason or ""
            yield event

    async def CancelJob(self, request: routing_pb2.CancelJobRequest, context: grpc.aio.ServicerContext):
        return routing_pb2.CancelJobResponse(job=job_to_proto(await self._service.cancel(request.job_id)))
