"""Routing protobuf <-> domain: ``wasteml.v1`` routing messages field by field.

Decoding converts units once, at the edge: proto times are seconds as doubles, the domain works
in whole seconds, so window starts are rounded up, window ends down (a served time always lies
inside the caller's window) and durations up; proto3 zero/unset scalars become the domain's
"unset" (None) where the contract gives them a meaning. Everything else (the location model,
default shifts, depot hours, what the server supports) is the domain's: the problem builder
(``routing.builder``) and the value types validate and name fields by their contract paths.
Callers wrap a decode in ``under(<path of the message in the request>)``.

Sizes first: every repeated field is checked against the server's :class:`~wasteml_server.
routing.limits.ProblemLimits` on its length before its elements are decoded, and the matrix
on ``size`` against the values actually sent, so a small request that declares a huge problem
is refused before anything of that size is allocated. Decoding is CPU work proportional to
the request: the servicers run it off the event loop.

Encoding copies the fields of the domain's solution, which carries every number the contract
shows (``routing.schedule`` computes them once).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence

import numpy as np
from google.protobuf.message import DecodeError

from wasteml.v1 import routing_pb2
from wasteml_server.codecs.common import (
    duration,
    duration_s,
    each,
    fallback_to_proto,
    point_from_proto,
    point_to_proto,
    timestamp,
)
from wasteml_server.core.errors import InvalidArgumentError, under
from wasteml_server.routing.builder import SpeedModel, TravelMatrix, build_problem
from wasteml_server.routing.jobs import JobRecord, JobStatus
from wasteml_server.routing.limits import DEFAULT_LIMITS, ProblemLimits, at_most
from wasteml_server.routing.options import (
    EngineName,
    FirstSolutionStrategy,
    LocalSearchMetaheuristic,
    SolveOptions,
)
from wasteml_server.routing.problem import (
    ROUTING_FIELDS,
    CapacityDimension,
    Depot,
    Facility,
    FacilityKind,
    Problem,
    ProblemFields,
    Stop,
    TimeWindow,
    VehicleType,
)
from wasteml_server.routing.service import JobProgress, JobSnapshot
from wasteml_server.routing.solution import (
    EngineRun,
    Route,
    Solution,
    SolveStatus,
    UnassignedReason,
    Visit,
    VisitKind,
)

ENGINE_FROM_PROTO = {
    routing_pb2.ENGINE_UNSPECIFIED: EngineName.AUTO,
    routing_pb2.ENGINE_ORTOOLS: EngineName.ORTOOLS,
    routing_pb2.ENGINE_PYVRP: EngineName.PYVRP,
    routing_pb2.ENGINE_PORTFOLIO: EngineName.PORTFOLIO,
}
ENGINE_TO_PROTO = {v: k for k, v in ENGINE_FROM_PROTO.items()}
_FIRST_FROM_PROTO = {
    routing_pb2.FIRST_SOLUTION_STRATEGY_UNSPECIFIED: FirstSolutionStrategy.PARALLEL_CHEAPEST_INSERTION,
    **{getattr(routing_pb2, f"FIRST_SOLUTION_STRATEGY_{s.name}"): s for s in FirstSolutionStrategy},
}
_FIRST_TO_PROTO = {s: getattr(routing_pb2, f"FIRST_SOLUTION_STRATEGY_{s.name}") for s in FirstSolutionStrategy}
_META_FROM_PROTO = {
    routing_pb2.LOCAL_SEARCH_METAHEURISTIC_UNSPECIFIED: LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH,
    **{getattr(routing_pb2, f"LOCAL_SEARCH_METAHEURISTIC_{m.name}"): m for m in LocalSearchMetaheuristic},
}
_META_TO_PROTO = {m: getattr(routing_pb2, f"LOCAL_SEARCH_METAHEURISTIC_{m.name}") for m in LocalSearchMetaheuristic}
STATUS_TO_PROTO = {s: getattr(routing_pb2, f"SOLUTION_STATUS_{s.name}") for s in SolveStatus}
_VISIT_TO_PROTO = {k: getattr(routing_pb2, f"VISIT_KIND_{k.name}") for k in VisitKind}
_REASON_TO_PROTO = {r: getattr(routing_pb2, f"UNASSIGNED_REASON_{r.name}") for r in UnassignedReason}
_FACILITY_KIND = {
    routing_pb2.FACILITY_KIND_UNSPECIFIED: FacilityKind.DUMP,
    **{getattr(routing_pb2, f"FACILITY_KIND_{k.name}"): k for k in FacilityKind},
}
_FACILITY_KIND_TO_PROTO = {k: getattr(routing_pb2, f"FACILITY_KIND_{k.name}") for k in FacilityKind}

logger = logging.getLogger(__name__)


# --- decoding ----------------------------------------------------------------------------------


def _finite(field: str, value: float) -> float:
    if not math.isfinite(value):
        raise InvalidArgumentError(field, f"must be a finite number, got {value!r}")
    return value


def seconds_up(field: str, value: float) -> int:
    """Whole seconds >= ``value`` (durations, window starts)."""
    return int(math.ceil(_finite(field, value) - 1e-9))


def seconds_down(field: str, value: float) -> int:
    """Whole seconds <= ``value`` (window ends)."""
    return int(math.floor(_finite(field, value) + 1e-9))


def window_from_proto(tw: routing_pb2.TimeWindow) -> TimeWindow:
    """``TimeWindow`` -> whole seconds, the start rounded up and the end down.

    Raises:
        InvalidArgumentError: non-finite bounds, or a window narrower than a whole second.
    """
    start, end = seconds_up("start_s", tw.start_s), seconds_down("end_s", tw.end_s)
    if tw.end_s >= tw.start_s and end < start:
        raise InvalidArgumentError("", f"[{tw.start_s}, {tw.end_s}] holds no whole second")
    return TimeWindow(start, end)


def windows_from_proto(windows: Iterable[routing_pb2.TimeWindow], field: str = "time_windows") -> tuple[TimeWindow, ...]:
    """Repeated ``TimeWindow`` -> tuple, each named ``<field>[k]``."""
    out = []
    for k, tw in enumerate(windows):
        with under(f"{field}[{k}]"):
            out.append(window_from_proto(tw))
    return tuple(out)


def depot_from_proto(d: routing_pb2.Depot) -> Depot:
    """``Depot`` -> domain depot."""
    window = None
    if d.HasField("time_window"):
        with under("time_window"):
            window = window_from_proto(d.time_window)
    return Depot(id=d.id, location=point_from_proto(d.location) if d.HasField("location") else None,
                 location_index=d.location_index if d.HasField("location_index") else None,
                 time_window=window)


def facility_from_proto(f: routing_pb2.Facility, limits: ProblemLimits = DEFAULT_LIMITS) -> Facility:
    """``Facility`` -> domain facility (at most ``limits.max_time_windows`` windows)."""
    limits.check_windows("time_windows", len(f.time_windows))
    return Facility(
        id=f.id, location=point_from_proto(f.location) if f.HasField("location") else None,
        location_index=f.location_index if f.HasField("location_index") else None,
        kind=_FACILITY_KIND[f.kind], service_duration_s=seconds_up("service_duration_s", f.service_duration_s),
        time_windows=windows_from_proto(f.time_windows),
    )


def vehicle_type_from_proto(v: routing_pb2.VehicleType, limits: ProblemLimits = DEFAULT_LIMITS) -> VehicleType:
    """``VehicleType`` -> domain vehicle type (unset ``cost_per_km`` is 1.0, as the contract says;
    ``capacity`` and ``reload_facility_indices`` within ``limits``)."""
    limits.check_dimensions("capacity", len(v.capacity))
    limits.check_reloads("reload_facility_indices", len(v.reload_facility_indices))
    shift = None
    if v.HasField("shift"):
        with under("shift"):
            shift = window_from_proto(v.shift)
    return VehicleType(
        id=v.id, count=v.count, capacity=tuple(v.capacity), shift=shift,
        start_depot_index=v.start_depot_index,
        end_depot_index=v.end_depot_index if v.HasField("end_depot_index") else None,
        fixed_cost=_finite("fixed_cost", v.fixed_cost),
        cost_per_km=_finite("cost_per_km", v.cost_per_km) if v.HasField("cost_per_km") else 1.0,
        cost_per_hour=_finite("cost_per_hour", v.cost_per_hour),
        max_route_duration_s=seconds_down("max_route_duration_s", v.max_route_duration_s)
        if v.HasField("max_route_duration_s") else None,
        max_route_distance_m=v.max_route_distance_m if v.HasField("max_route_distance_m") else None,
        reload_facility_indices=tuple(v.reload_facility_indices),
        max_reloads=v.max_reloads if v.HasField("max_reloads") else None,
        end_empty=v.end_empty,
    )


def stop_from_proto(s: routing_pb2.Stop, limits: ProblemLimits = DEFAULT_LIMITS) -> Stop:
    """``Stop`` -> domain stop (``demand``, ``time_windows`` within ``limits``)."""
    limits.check_dimensions("demand", len(s.demand))
    limits.check_windows("time_windows", len(s.time_windows))
    at_most("allowed_vehicle_type_indices", len(s.allowed_vehicle_type_indices), limits.max_vehicles,
            "vehicle types")
    return Stop(
        id=s.id, location=point_from_proto(s.location) if s.HasField("location") else None,
        location_index=s.location_index if s.HasField("location_index") else None,
        demand=tuple(s.demand), service_duration_s=seconds_up("service_duration_s", s.service_duration_s),
        time_windows=windows_from_proto(s.time_windows), optional_visit=s.optional_visit,
        skip_penalty=_finite("skip_penalty", s.skip_penalty) if s.optional_visit else 0.0,
        allowed_vehicle_type_indices=tuple(s.allowed_vehicle_type_indices),
    )


def matrix_from_proto(m: routing_pb2.TravelMatrix) -> TravelMatrix | None:
    """``TravelMatrix`` -> domain matrix; None when unset (size 0 and no values)."""
    if m.size == 0 and not len(m.distances_m):
        return None
    return TravelMatrix(m.size, np.asarray(m.distances_m, dtype=np.float64),
                        np.asarray(m.durations_s, dtype=np.float64))


def speed_model_from_proto(sm: routing_pb2.SpeedModel) -> SpeedModel:
    """``SpeedModel`` -> domain speed model (0 = unset = the server default)."""
    return SpeedModel(sm.speed_m_per_s if sm.speed_m_per_s != 0 else None,
                      sm.detour_factor if sm.detour_factor != 0 else None)


def check_sizes(depots: Sequence[routing_pb2.Depot], vehicle_types: Sequence[routing_pb2.VehicleType],
                stops: int, facilities: Sequence[routing_pb2.Facility], dimensions: int,
                matrix: routing_pb2.TravelMatrix, limits: ProblemLimits, fields: ProblemFields) -> None:
    """The sizes of a request's routing part against ``limits``, on the parsed message alone
    (counts, the fleet's sum of ``count``, the matrix's ``size`` against the values sent or the
    sites whose matrices would be computed from coordinates).

    Raises:
        InvalidArgumentError: the first size beyond a limit, named by ``fields``.
    """
    limits.check_parts(depots=len(depots), vehicle_types=len(vehicle_types), stops=stops,
                       facilities=len(facilities), dimensions=dimensions, fields=fields)
    limits.check_fleet((v.count for v in vehicle_types), fields)
    if matrix.size != 0 or len(matrix.distances_m):
        limits.check_matrix(matrix.size, len(matrix.distances_m), len(matrix.durations_s), fields)
    else:
        limits.check_coordinate_sites(len(depots), len(facilities), stops, fields)


def problem_from_proto(p: routing_pb2.Problem, limits: ProblemLimits = DEFAULT_LIMITS) -> Problem:
    """``wasteml.v1.Problem`` -> a built domain :class:`Problem` (``routing.builder``).

    Sizes are checked against ``limits`` (:func:`check_sizes`) before any element is decoded.

    Raises:
        InvalidArgumentError: a bad or unsupported field, or a size beyond ``limits``, named by
            its path in the message (e.g. ``stops[3].location_index``, ``stops``,
            ``matrix.size``); wrap the call in ``under("problem")``.
    """
    f = ROUTING_FIELDS
    check_sizes(p.depots, p.vehicle_types, len(p.stops), p.facilities, len(p.dimensions), p.matrix, limits, f)
    return build_problem(
        depots=each(p.depots, f.depots, depot_from_proto),
        vehicle_types=each(p.vehicle_types, f.vehicle_types, lambda v: vehicle_type_from_proto(v, limits)),
        stops=each(p.stops, f.stops, lambda s: stop_from_proto(s, limits)),
        facilities=each(p.facilities, f.facilities, lambda x: facility_from_proto(x, limits)),
        matrix=matrix_from_proto(p.matrix), speed_model=speed_model_from_proto(p.speed_model),
        dimensions=tuple(CapacityDimension(d.name, d.unit) for d in p.dimensions), name=p.name, fields=f,
        limits=limits,
    )


def sites_from_proto(
    depots: Iterable[routing_pb2.Depot], vehicle_types: Iterable[routing_pb2.VehicleType],
    facilities: Iterable[routing_pb2.Facility], fields: ProblemFields,
    limits: ProblemLimits = DEFAULT_LIMITS,
) -> tuple[list[Depot], list[VehicleType], list[Facility]]:
    """The routing parts of another request (``PlanDayRequest``), named by ``fields`` (sizes
    checked by the caller with :func:`check_sizes`)."""
    return (each(depots, fields.depots, depot_from_proto),
            each(vehicle_types, fields.vehicle_types, lambda v: vehicle_type_from_proto(v, limits)),
            each(facilities, fields.facilities, lambda x: facility_from_proto(x, limits)))


def options_from_proto(o: routing_pb2.SolveOptions) -> SolveOptions:
    """``wasteml.v1.SolveOptions`` -> domain options (``time_limit`` unset = None: the domain
    applies this server's default and maximum).

    Raises:
        InvalidArgumentError: an option the domain cannot honour (``no_improvement_limit``, a
            strategy it does not offer), or a time limit that is not positive; wrap the call in
            ``under("options")``.
    """
    return SolveOptions(
        time_limit_s=duration_s(o.time_limit, "time_limit") if o.HasField("time_limit") else None,
        engine=ENGINE_FROM_PROTO[o.engine],
        first_solution_strategy=_FIRST_FROM_PROTO[o.first_solution_strategy],
        local_search_metaheuristic=_META_FROM_PROTO[o.local_search_metaheuristic],
        seed=int(o.seed),
        no_improvement_limit_s=duration_s(o.no_improvement_limit, "no_improvement_limit") if o.HasField("no_improvement_limit") else None,
    )


def options_to_proto(o: SolveOptions) -> routing_pb2.SolveOptions:
    """Domain options -> ``wasteml.v1.SolveOptions`` (for Job replies)."""
    out = routing_pb2.SolveOptions(
        engine=ENGINE_TO_PROTO[o.engine], first_solution_strategy=_FIRST_TO_PROTO[o.first_solution_strategy],
        local_search_metaheuristic=_META_TO_PROTO[o.local_search_metaheuristic], seed=o.seed)
    if o.time_limit_s is not None:
        out.time_limit.CopyFrom(duration(o.time_limit_s))
    if o.no_improvement_limit_s is not None:
        out.no_improvement_limit.CopyFrom(duration(o.no_improvement_limit_s))
    return out


# --- encoding ----------------------------------------------------------------------------------


def visit_to_proto(v: Visit, out: routing_pb2.Visit) -> None:
    """Domain visit -> ``wasteml.v1.Visit`` (into ``out``)."""
    out.kind = _VISIT_TO_PROTO[v.kind]
    out.index, out.id = v.index, v.id
    out.arrival_s, out.service_start_s, out.departure_s = v.arrival_s, v.service_start_s, v.departure_s
    out.load_after.extend(v.load_after)
    out.distance_from_previous_m = v.distance_from_previous_m
    out.travel_time_from_previous_s = v.travel_time_from_previous_s


def route_to_proto(r: Route, out: routing_pb2.Route) -> None:
    """Domain route -> ``wasteml.v1.Route`` (into ``out``)."""
    out.vehicle_type_index, out.vehicle_index, out.vehicle_id = r.vehicle_type_index, r.vehicle_index, r.vehicle_id
    for v in r.visits:
        visit_to_proto(v, out.visits.add())
    out.distance_m, out.duration_s, out.driving_s = r.distance_m, r.duration_s, r.driving_s
    out.facility_visits, out.start_s, out.end_s, out.cost = r.facility_visits, r.start_s, r.end_s, r.cost


def engine_run_to_proto(run: EngineRun) -> routing_pb2.EngineRun:
    """Domain engine run -> ``wasteml.v1.EngineRun``."""
    out = routing_pb2.EngineRun(engine=ENGINE_TO_PROTO[run.engine], status=STATUS_TO_PROTO[run.status],
                                note=run.note)
    if run.objective is not None:
        out.objective = run.objective
    if run.time_to_first_feasible_s is not None:
        out.time_to_first_feasible_s = run.time_to_first_feasible_s
    return out


def solution_to_proto(s: Solution) -> routing_pb2.Solution:
    """Domain :class:`Solution` -> ``wasteml.v1.Solution``, field by field."""
    out = routing_pb2.Solution(status=STATUS_TO_PROTO[s.status], engine=ENGINE_TO_PROTO[s.engine],
                               solve_time_s=s.solve_time_s)
    if s.time_to_first_feasible_s is not None:
        out.time_to_first_feasible_s = s.time_to_first_feasible_s
    o = s.objective
    out.objective.CopyFrom(routing_pb2.ObjectiveBreakdown(
        total=o.total, distance_m=o.distance_m, duration_s=o.duration_s, vehicles_used=o.vehicles_used,
        fixed_cost=o.fixed_cost, distance_cost=o.distance_cost, time_cost=o.time_cost, penalty=o.penalty))
    for r in s.routes:
        route_to_proto(r, out.routes.add())
    for u in s.unassigned_stops:
        out.unassigned_stops.add(stop_index=u.stop_index, stop_id=u.stop_id,
                                 reason=_REASON_TO_PROTO[u.reason], detail=u.detail)
    out.infeasibility_reasons.extend(s.infeasibility_reasons)
    out.engine_runs.extend(engine_run_to_proto(run) for run in s.engine_runs)
    out.fallbacks.extend(fallback_to_proto(n) for n in s.fallbacks)
    return out


def problem_to_proto(problem: Problem) -> routing_pb2.Problem:
    """Domain :class:`Problem` -> ``wasteml.v1.Problem`` with its matrices (the inverse of
    :func:`problem_from_proto` for a built problem; used by clients, benchmarks and tests).

    Every site carries its ``location_index`` (and ``location`` where known); every vehicle
    type its resolved shift, end depot and reload facilities.
    """
    size = len(problem.locations)
    out = routing_pb2.Problem(name=problem.name)
    out.dimensions.extend(routing_pb2.CapacityDimension(name=d.name, unit=d.unit) for d in problem.dimensions)
    out.matrix.size = size
    out.matrix.distances_m.extend(problem.distance_m.ravel().astype(float).tolist())
    out.matrix.durations_s.extend(problem.duration_s.ravel().astype(float).tolist())

    def place(msg: routing_pb2.Depot | routing_pb2.Facility | routing_pb2.Stop, site: Depot | Facility | Stop) -> None:
        assert site.location_index is not None  # a built problem places every site
        msg.location_index = site.location_index
        if site.location is not None:
            point_to_proto(site.location, msg.location)

    for d in problem.depots:
        depot = out.depots.add(id=d.id)
        place(depot, d)
        if d.time_window is not None:
            depot.time_window.start_s, depot.time_window.end_s = d.time_window.start_s, d.time_window.end_s
    for f in problem.facilities:
        facility = out.facilities.add(id=f.id, kind=_FACILITY_KIND_TO_PROTO[f.kind],
                                      service_duration_s=f.service_duration_s)
        place(facility, f)
        for tw in f.time_windows:
            facility.time_windows.add(start_s=tw.start_s, end_s=tw.end_s)
    for vt in problem.vehicle_types:
        vehicle = out.vehicle_types.add(id=vt.id, count=vt.count, capacity=list(vt.capacity),
                                    start_depot_index=vt.start_depot_index, end_depot_index=vt.end_depot,
                                    fixed_cost=vt.fixed_cost, cost_per_km=vt.cost_per_km,
                                    reload_facility_indices=list(vt.reload_facility_indices),
                                    end_empty=vt.end_empty)
        vehicle.shift.start_s, vehicle.shift.end_s = vt.window.start_s, vt.window.end_s
        if vt.max_route_duration_s is not None:
            vehicle.max_route_duration_s = vt.max_route_duration_s
    for s in problem.stops:
        stop = out.stops.add(id=s.id, demand=list(s.demand), service_duration_s=s.service_duration_s,
                             optional_visit=s.optional_visit, skip_penalty=s.skip_penalty)
        place(stop, s)
        for tw in s.time_windows:
            stop.time_windows.add(start_s=tw.start_s, end_s=tw.end_s)
    return out


# --- jobs --------------------------------------------------------------------------------------

_JOB_STATUS_TO_PROTO: dict[JobStatus, routing_pb2.JobStatus.ValueType] = {s: getattr(routing_pb2, f"JOB_STATUS_{s.name}") for s in JobStatus}


def job_status_to_proto(record: JobRecord) -> routing_pb2.JobStatus.ValueType:
    """The contract's ``JobStatus`` of a job (INTERRUPTED for a job failed by a restart)."""
    return routing_pb2.JOB_STATUS_INTERRUPTED if record.interrupted else _JOB_STATUS_TO_PROTO[record.status]


def progress_to_proto(p: JobProgress) -> routing_pb2.SolveProgress:
    """Domain progress -> ``wasteml.v1.SolveProgress`` (the engine of the best solution so far)."""
    out = routing_pb2.SolveProgress(engine=ENGINE_TO_PROTO[p.engine], elapsed_s=p.elapsed_s,
                                    solutions_found=p.solutions_found)
    if p.best_objective is not None and math.isfinite(p.best_objective):
        out.best_objective = p.best_objective
    return out


def stored_request(record: JobRecord) -> routing_pb2.SubmitJobRequest:
    """The ``SubmitJobRequest`` a job was stored with (empty when it is not one)."""
    request = routing_pb2.SubmitJobRequest()
    if record.problem:
        try:
            request.ParseFromString(record.problem)
        except DecodeError:  # a job stored by other code: show it without label and options
            logger.warning("job %s: stored request is not a SubmitJobRequest", record.id)
            request.Clear()
    return request


def stored_solution(record: JobRecord) -> routing_pb2.Solution | None:
    """The solution a job was stored with (its wire format), or None."""
    return routing_pb2.Solution.FromString(record.result) if record.result else None


def job_to_proto(snap: JobSnapshot) -> routing_pb2.Job:
    """A job snapshot -> ``wasteml.v1.Job`` (label and options as the caller sent them)."""
    r = snap.record
    request = stored_request(r)
    job = routing_pb2.Job(job_id=str(r.id), status=job_status_to_proto(r), label=request.label,
                          options=request.options, created_at=timestamp(r.submitted_at),
                          error_message=(r.failure_reason or "") if r.status is not JobStatus.SUCCEEDED
                          else "")
    if r.started_at is not None:
        job.started_at.CopyFrom(timestamp(r.started_at))
    if r.finished_at is not None:
        job.finished_at.CopyFrom(timestamp(r.finished_at))
    if snap.progress is not None:
        job.progress.CopyFrom(progress_to_proto(snap.progress))
    solution = stored_solution(r)
    if solution is not None:
        job.solution.CopyFrom(solution)
    return job


def watch_event_to_proto(snap: JobSnapshot) -> routing_pb2.WatchJobResponse:
    """A job snapshot -> one ``WatchJobResponse`` (solution and error only in the last one)."""
    r = snap.record
    event = routing_pb2.WatchJobResponse(job_id=str(r.id), status=job_status_to_proto(r))
    if snap.progress is not None:
        event.progress.CopyFrom(progress_to_proto(snap.progress))
    if snap.final:
        solution = stored_solution(r)
        if solution is not None:
            event.solution.CopyFrom(solution)
        if r.status is not JobStatus.SUCCEEDED:
            event.error_message = r.failure_reason or ""
    return event
