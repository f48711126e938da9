"""CollectionPlanner servicer: ``PlanDayRequest`` -> ``DayPlanRequest``; stream -> protobuf.

The routing parts of the request (depots, facilities, fleet, matrix, speed model) are turned
into a ``routing_pb2.Problem`` whose stops are the bins, so ``routing_convert`` stays the one
place that converts routing protobuf to the domain.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from wasteml.v1 import common_pb2, planning_pb2, planning_pb2_grpc, routing_pb2
from wasteml_server.adapters.storage import PlanStore
from wasteml_server.codecs.routing import (
    ENGINE_TO_PROTO,
    STATUS_TO_PROTO,
    options_from_proto,
    problem_from_proto,
)
from wasteml_server.core.errors import InvalidArgumentError
from wasteml_server.planning.planner import (
    DayPlan,
    DayPlanRequest,
    PlanBin,
    StageProgress,
)
from wasteml_server.planning.selection import BinDecision, PlanPolicy, Selection
from wasteml_server.routing.problem import VisitKind

_STAGE = {
    "PREDICT": planning_pb2.PLAN_STAGE_PREDICT,
    "COMPLAINTS": planning_pb2.PLAN_STAGE_COMPLAINTS,
    "SELECT": planning_pb2.PLAN_STAGE_SELECT,
    "SOLVE": planning_pb2.PLAN_STAGE_SOLVE,
    "PERSIST": planning_pb2.PLAN_STAGE_PERSIST,
}
_SELECTION = {
    Selection.MUST_VISIT: planning_pb2.BIN_SELECTION_MUST_VISIT,
    Selection.OPTIONAL: planning_pb2.BIN_SELECTION_OPTIONAL,
}


def to_timestamp(when: datetime) -> Timestamp:
    """An aware ``datetime`` as a ``google.protobuf.Timestamp`` (UTC)."""
    out = Timestamp()
    out.FromDatetime(when.astimezone(UTC))
    return out


def policy_from_proto(p: planning_pb2.PlanningPolicy) -> PlanPolicy:
    """``PlanningPolicy`` -> ``PlanPolicy``; unset (zero) fields take the domain defaults."""
    d = PlanPolicy()
    try:
        return PlanPolicy(
            must_visit_fill_fraction=p.must_visit_fill_fraction or d.must_visit_fill_fraction,
            overflow_penalty=p.overflow_penalty or d.overflow_penalty,
            base_skip_penalty=p.base_skip_penalty or d.base_skip_penalty,
            complaint_radius_m=p.complaint_radius_m or d.complaint_radius_m,
            complaint_lookback_s=p.complaint_lookback.ToTimedelta().total_seconds()
            if p.HasField("complaint_lookback") else d.complaint_lookback_s,
            complaint_query=p.complaint_query or d.complaint_query,
            complaint_min_score=p.complaint_min_score or d.complaint_min_score,
            complaint_makes_must_visit=p.complaint_makes_must_visit,
        )
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(exc.field, exc.violations[0].description) from None


def request_from_proto(request: planning_pb2.PlanDayRequest, max_time_limit_s: float) -> DayPlanRequest:
    """``PlanDayRequest`` -> ``DayPlanRequest`` (every bad field named by its proto path).

    Raises:
        InvalidArgumentError: e.g. ``service_date``, ``time_zone``, ``bins[3].location_index``,
            ``solve_options.time_limit``.
    """
    sd = request.service_date
    try:
        service_date = date(sd.year, sd.month, sd.day)
    except ValueError as exc:
        raise InvalidArgumentError("service_date", f"not a calendar date: {exc}") from None
    try:
        zone = ZoneInfo(request.time_zone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidArgumentError("time_zone", f"unknown IANA time zone {request.time_zone!r}") from None
    origin = datetime(service_date.year, service_date.month, service_date.day, tzinfo=zone)
    if not request.bins:
        raise InvalidArgumentError("bins", "at least one bin is required")
    n_dim = max(1, len(request.dimensions), *(len(v.capacity) for v in request.fleet))
    problem_pb = routing_pb2.Problem(
        name=f"plan-{service_date.isoformat()}",
        dimensions=request.dimensions,
        depots=request.depots,
        vehicle_types=request.fleet,
        facilities=request.facilities,
        matrix=request.matrix,
        speed_model=request.speed_model,
    )
    problem_pb.time_origin.CopyFrom(to_timestamp(origin))
    for b in request.bins:
        stop = problem_pb.stops.add(
            id=b.bin_id, demand=list(b.demand) or [1] * n_dim, service_duration_s=b.service_duration_s,
            time_windows=b.time_windows, optional_visit=True,
        )
        if b.HasField("location"):
            stop.location.CopyFrom(b.location)
        if b.HasField("location_index"):
            stop.location_index = b.location_index
    try:
        base = problem_from_proto(problem_pb, field="")
    except InvalidArgumentError as exc:
        raise _renamed(exc) from None
    bins = []
    for i, (b, stop) in enumerate(zip(request.bins, base.stops, strict=True)):
        loc = base.locations[stop.location]
        lat = b.location.latitude_deg if b.HasField("location") else loc.lat_deg
        lon = b.location.longitude_deg if b.HasField("location") else loc.lon_deg
        if lat is None or lon is None:
            raise InvalidArgumentError(f"bins[{i}].location", "coordinates are needed for the complaint search")
        readings = []
        for k, r in enumerate(b.recent_readings):
            if not 0.0 <= r.fill_fraction <= 1.0:
                raise InvalidArgumentError(f"bins[{i}].recent_readings[{k}].fill_fraction", "must be within 0..1")
            readings.append((r.time.ToDatetime(tzinfo=UTC).timestamp(), r.fill_fraction))
        readings.sort()
        bins.append(PlanBin(
            bin_id=b.bin_id, location=stop.location, lat_deg=lat, lon_deg=lon, readings_s=tuple(readings),
            last_emptied_s=b.last_emptied_at.ToDatetime(tzinfo=UTC).timestamp()
            if b.HasField("last_emptied_at") else None,
            prior_rate_per_day=b.prior_fill_rate_per_day if b.HasField("prior_fill_rate_per_day") else None,
            demand=stop.demand, service_s=stop.service_duration_s, time_windows=stop.time_windows,
        ))
    if request.HasField("prediction_time"):
        service_time = request.prediction_time.ToDatetime(tzinfo=UTC)
    else:
        service_time = origin + timedelta(seconds=min(v.shift.start_s for v in base.vehicle_types))
    if not request.solve_options.HasField("time_limit"):
        raise InvalidArgumentError("solve_options.time_limit", "is required (seconds the solver may run)")
    try:
        options = options_from_proto(request.solve_options, max_time_limit_s)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"solve_options.{exc.field.removeprefix('options.')}",
                                   exc.violations[0].description) from None
    return DayPlanRequest(service_date, origin, service_time, base, tuple(bins),
                          policy_from_proto(request.policy), options)


def _renamed(exc: InvalidArgumentError) -> InvalidArgumentError:
    """Field paths of the routing problem -> the PlanDayRequest's (stops -> bins, vehicle_types -> fleet)."""
    field = exc.field.lstrip(".").removeprefix("problem.")
    for old, new in (("stops", "bins"), ("vehicle_types", "fleet")):
        if field.startswith(old):
            field = new + field[len(old):]
    return InvalidArgumentError(field, exc.violations[0].description)


def decision_to_proto(d: BinDecision) -> planning_pb2.BinDecision:
    """Domain decision -> ``wasteml.v1.BinDecision`` (the per-stop reason)."""
    f = d.forecast
    out = planning_pb2.BinDecision(
        bin_id=d.bin_id, selection=_SELECTION[d.selection], predicted_fill_fraction=f.fill_fraction,
        over_fill_threshold=d.over_fill_threshold, complaint_backed=d.complaint_backed,
        skip_penalty=d.skip_penalty, served=d.served, predicted_overflow=d.predicted_overflow,
        explanation=d.explanation,
    )
    out.predicted_fill_interval.lower = f.lower
    out.predicted_fill_interval.upper = f.upper
    if f.time_to_full_s is not None:
        out.time_to_full_s = f.time_to_full_s
    for c in d.complaints:
        m = out.complaints.add(complaint_id=c.id, score=c.score, distance_m=c.distance_m, text=c.text)
        m.created_at.CopyFrom(to_timestamp(c.created_at))
    return out


def plan_to_proto(plan: DayPlan) -> planning_pb2.Plan:
    """The final ``wasteml.v1.Plan``: routes with per-stop reasons, unserved bins, totals, models."""
    req, problem, sol = plan.request, plan.problem, plan.solution
    origin = req.time_origin
    at = lambda s: to_timestamp(origin + timedelta(seconds=float(s)))  # noqa: E731
    sd = req.service_date
    out = planning_pb2.Plan(
        plan_id=plan.plan_id, status=STATUS_TO_PROTO[sol.status], engine=ENGINE_TO_PROTO.get(sol.engine, 0),
        service_date=common_pb2.CalendarDate(year=sd.year, month=sd.month, day=sd.day),
    )
    out.created_at.CopyFrom(to_timestamp(datetime.now(UTC)))
    dist, dur = problem.distance_m, problem.duration_s

    def point(loc_index: int, target) -> None:
        loc = problem.locations[loc_index]
        if loc.lat_deg is not None:
            target.location.latitude_deg = loc.lat_deg
            target.location.longitude_deg = loc.lon_deg

    totals = out.totals
    for r in sol.routes:
        vt = problem.vehicle_types[r.vehicle_type]
        route = out.routes.add(vehicle_id=f"{vt.name or 'vehicle'}-{r.vehicle_type}-{r.vehicle}",
                               vehicle_type_index=r.vehicle_type, distance_m=r.distance_m,
                               duration_s=r.duration_s)
        start_loc = problem.depots[vt.start_depot].location
        depot = route.stops.add(kind=planning_pb2.PLAN_STOP_KIND_DEPOT, id=problem.depots[vt.start_depot].name)
        point(start_loc, depot)
        depot.departure_time.CopyFrom(at(r.start_s))
        prev, driving = start_loc, 0
        for v in r.visits:
            if v.kind is VisitKind.STOP:
                loc = problem.stops[v.index].location
                s = route.stops.add(kind=planning_pb2.PLAN_STOP_KIND_BIN, id=problem.stops[v.index].id)
                s.reason.CopyFrom(decision_to_proto(plan.stop_decisions[v.index]))
                route.bins_served += 1
            else:
                loc = problem.facilities[v.index].location
                s = route.stops.add(kind=planning_pb2.PLAN_STOP_KIND_FACILITY, id=problem.facilities[v.index].name)
                route.dump_trips += 1
            point(loc, s)
            s.arrival_time.CopyFrom(at(v.arrival_s))
            s.departure_time.CopyFrom(at(v.departure_s))
            s.load_after.extend(v.load_after)
            s.distance_from_previous_m = float(dist[prev, loc])
            driving += int(dur[prev, loc])
            prev = loc
        end_loc = problem.depots[vt.end_depot].location
        end = route.stops.add(kind=planning_pb2.PLAN_STOP_KIND_DEPOT, id=problem.depots[vt.end_depot].name,
                              distance_from_previous_m=float(dist[prev, end_loc]))
        point(end_loc, end)
        end.arrival_time.CopyFrom(at(r.end_s))
        driving += int(dur[prev, end_loc])
        route.driving_s = driving
        totals.distance_m += r.distance_m
        totals.driving_s += driving
        totals.duration_s += r.duration_s
        totals.dump_trips += route.dump_trips
        totals.bins_served += route.bins_served
    out.unserved_bins.extend(decision_to_proto(d) for d in plan.decisions if not d.served)
    totals.vehicles_used = len(sol.routes)
    totals.bins_must_visit = sum(1 for d in plan.decisions if d.selection is Selection.MUST_VISIT)
    totals.bins_optional = len(plan.decisions) - totals.bins_must_visit
    totals.predicted_overflows_avoided = plan.overflows_avoided
    totals.predicted_overflows_left = plan.overflows_left
    totals.objective = sol.objective.total
    out.models_used.extend(common_pb2.ModelRef(name=n, version=v) for n, v in plan.models)
    out.fallbacks.extend(common_pb2.FallbackNotice(dependency=dep, served_by="constant-rate fill model",
                                                   reason=why) for dep, why in plan.fallbacks)
    return out


def progress_to_proto(p: StageProgress) -> planning_pb2.PlanDayResponse:
    """A stage event -> ``PlanDayResponse.progress``."""
    msg = planning_pb2.PlanProgress(stage=_STAGE[p.stage], fraction=p.fraction, message=p.message,
                                    elapsed_s=p.elapsed_s)
    if p.solver_best_objective is not None:
        msg.solver_best_objective = p.solver_best_objective
    return planning_pb2.PlanDayResponse(progress=msg)


class CollectionPlannerServicer(planning_pb2_grpc.CollectionPlannerServicer):
    """``wasteml.v1.CollectionPlanner`` over ``CollectionPlanner``.

    Args:
        make_planner: ``(save, complaint_collection) -> CollectionPlanner``, called per request
            so the saver stores this request's bytes with the plan and the complaint search
            uses the policy's collection.
        plans: where finished plans are stored (one transaction each).
        max_time_limit_s: largest solver time limit accepted.
    """

    def __init__(self, make_planner, plans: PlanStore, max_time_limit_s: float) -> None:
        self._make_planner = make_planner
        self._plans = plans
        self._max_time_limit_s = max_time_limit_s

    async def PlanDay(self, request: planning_pb2.PlanDayRequest, context: grpc.aio.ServicerContext):
        domain = request_from_proto(request, self._max_time_limit_s)
        request_bytes = request.SerializeToString(deterministic=True)
        final: dict[str, planning_pb2.Plan] = {}

        async def save(plan: DayPlan) -> None:
            message = plan_to_proto(plan)
            final["plan"] = message
            t = message.totals
            await asyncio.to_thread(
                self._plans.save,
                plan_id=plan.plan_id, service_date=domain.service_date, status=plan.solution.status.value,
                request=request_bytes, result=message.SerializeToString(),
                model_versions={n: int(v) for n, v in plan.models if v.isdigit()},
                totals={"distance_m": t.distance_m, "driving_s": t.driving_s, "bins_served": t.bins_served,
                        "predicted_overflows_avoided": t.predicted_overflows_avoided,
                        "predicted_overflows_left": t.predicted_overflows_left, "objective": t.objective},
            )

        planner = self._make_planner(save, request.policy.complaint_collection)
        async for item in planner.plan_day(domain):
            if isinstance(item, StageProgress):
                yield progress_to_proto(item)
            else:
                yield planning_pb2.PlanDayResponse(plan=final["plan"])
