"""Planning protobuf <-> domain: ``PlanDayRequest`` -> ``DayPlanRequest``; plans and events out.

Decoding is field by field (the routing parts through ``codecs.routing`` with the plan's field
names); a proto3 zero in ``PlanningPolicy`` means "unset", so only the fields a request sets are
passed and the domain's defaults fill the rest. The rules (time origin, defaults, validation)
are the planner's (``planning.request``). Encoding copies the domain plan, whose routes carry
every number the contract shows and whose totals are computed by ``DayPlan.totals``.

Sizes first: the bins, their readings and the routing part are checked against the server's
:class:`~wasteml_server.planning.request.PlanLimits` on the parsed message (lengths, the
fleet's sum of ``count``, the matrix size against the values sent) before any element is
decoded. Decoding is CPU work proportional to the request: the servicer runs it off the loop.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from wasteml.v1 import planning_pb2
from wasteml_server.codecs.common import (
    date_from_proto,
    date_to_proto,
    duration_s,
    each,
    fallback_to_proto,
    instant,
    model_ref_to_proto,
    point_from_proto,
    point_to_proto,
    timestamp,
)
from wasteml_server.codecs.routing import (
    ENGINE_TO_PROTO,
    STATUS_TO_PROTO,
    check_sizes,
    matrix_from_proto,
    options_from_proto,
    seconds_up,
    sites_from_proto,
    speed_model_from_proto,
    windows_from_proto,
)
from wasteml_server.core.errors import under
from wasteml_server.planning.plan import DayPlan, PlanStage, StageProgress
from wasteml_server.planning.request import (
    DEFAULT_PLAN_LIMITS,
    PLAN_FIELDS,
    DayPlanRequest,
    FillReading,
    PlanBin,
    PlanLimits,
)
from wasteml_server.planning.selection import BinDecision, PlanPolicy, Selection
from wasteml_server.routing.problem import CapacityDimension
from wasteml_server.routing.solution import VisitKind

_STAGE_TO_PROTO = {s: getattr(planning_pb2, f"PLAN_STAGE_{s.name}") for s in PlanStage}
_SELECTION_TO_PROTO = {s: getattr(planning_pb2, f"BIN_SELECTION_{s.name}") for s in Selection}
_STOP_KIND = {VisitKind.DEPOT: planning_pb2.PLAN_STOP_KIND_DEPOT, VisitKind.STOP: planning_pb2.PLAN_STOP_KIND_BIN,
              VisitKind.FACILITY: planning_pb2.PLAN_STOP_KIND_FACILITY}


def policy_from_proto(p: planning_pb2.PlanningPolicy) -> PlanPolicy:
    """``PlanningPolicy`` -> ``PlanPolicy``: the fields the request sets (non-zero), the domain
    defaults for the rest; ``complaint_makes_must_visit`` is taken as given."""
    given: dict[str, Any] = {
        name: getattr(p, name)
        for name in ("must_visit_fill_fraction", "overflow_penalty", "base_skip_penalty",
                     "complaint_radius_m", "complaint_query", "complaint_min_score", "complaint_collection")
        if getattr(p, name)
    }
    if p.HasField("complaint_lookback"):
        given["complaint_lookback_s"] = duration_s(p.complaint_lookback, "complaint_lookback")
    return PlanPolicy(**given, complaint_makes_must_visit=p.complaint_makes_must_visit)


def bin_from_proto(b: planning_pb2.PlanBin, limits: PlanLimits = DEFAULT_PLAN_LIMITS) -> PlanBin:
    """``PlanBin`` -> domain bin (``demand`` and ``time_windows`` within the routing limits)."""
    limits.routing.check_dimensions("demand", len(b.demand))
    limits.routing.check_windows("time_windows", len(b.time_windows))
    readings = []
    for k, r in enumerate(b.recent_readings):
        with under(f"recent_readings[{k}]"):
            readings.append(FillReading(instant(r.time, "time"), r.fill_fraction))
    return PlanBin(
        bin_id=b.bin_id, location=point_from_proto(b.location) if b.HasField("location") else None,
        location_index=b.location_index if b.HasField("location_index") else None,
        capacity_l=b.capacity_l, recent_readings=tuple(readings),
        last_emptied_at=instant(b.last_emptied_at, "last_emptied_at") if b.HasField("last_emptied_at") else None,
        demand=tuple(b.demand), service_duration_s=seconds_up("service_duration_s", b.service_duration_s),
        time_windows=windows_from_proto(b.time_windows),
        prior_fill_rate_per_day=b.prior_fill_rate_per_day if b.HasField("prior_fill_rate_per_day") else None,
    )


def request_from_proto(request: planning_pb2.PlanDayRequest, limits: PlanLimits = DEFAULT_PLAN_LIMITS
                       ) -> DayPlanRequest:
    """``PlanDayRequest`` -> ``DayPlanRequest`` (the serialized request kept as given).

    Sizes are checked against ``limits`` before any element is decoded.

    Raises:
        InvalidArgumentError: a field the domain types cannot hold, or a size beyond
            ``limits``, named by its path (``service_date``, ``bins``,
            ``bins[3].time_windows[0].end_s``, ``policy.complaint_radius_m``,
            ``solve_options.first_solution_strategy``, ``fleet[0].shift``, ``matrix.size``, ...).
    """
    limits.check_bins(len(request.bins))
    limits.check_readings(len(b.recent_readings) for b in request.bins)
    check_sizes(request.depots, request.fleet, len(request.bins), request.facilities, len(request.dimensions),
                request.matrix, limits.routing, PLAN_FIELDS)
    with under("service_date"):
        service_date = date_from_proto(request.service_date)
    depots, fleet, facilities = sites_from_proto(request.depots, request.fleet, request.facilities, PLAN_FIELDS,
                                                 limits.routing)
    bins = each(request.bins, "bins", lambda b: bin_from_proto(b, limits))
    with under("policy"):
        policy = policy_from_proto(request.policy)
    with under("solve_options"):
        options = options_from_proto(request.solve_options)
    return DayPlanRequest(
        service_date=service_date, time_zone=request.time_zone, depots=tuple(depots), fleet=tuple(fleet),
        bins=tuple(bins), policy=policy, facilities=tuple(facilities),
        dimensions=tuple(CapacityDimension(d.name, d.unit) for d in request.dimensions),
        matrix=matrix_from_proto(request.matrix), speed_model=speed_model_from_proto(request.speed_model),
        solve_options=options,
        prediction_time=instant(request.prediction_time, "prediction_time") if request.HasField("prediction_time") else None,
        request_bytes=request.SerializeToString(deterministic=True),
    )


def decision_to_proto(d: BinDecision) -> planning_pb2.BinDecision:
    """Domain decision -> ``wasteml.v1.BinDecision`` (the per-stop reason)."""
    f = d.forecast
    out = planning_pb2.BinDecision(
        bin_id=d.bin_id, selection=_SELECTION_TO_PROTO[d.selection], predicted_fill_fraction=f.fill_fraction,
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
        m.created_at.CopyFrom(timestamp(c.created_at))
    return out


def plan_to_proto(plan: DayPlan) -> planning_pb2.Plan:
    """The final ``wasteml.v1.Plan``: routes with per-stop reasons, unserved bins, totals, models."""
    problem, sol, origin = plan.problem, plan.solution, plan.day.time_origin
    out = planning_pb2.Plan(plan_id=plan.plan_id, status=STATUS_TO_PROTO[sol.status],
                            engine=ENGINE_TO_PROTO[sol.engine],
                            service_date=date_to_proto(plan.day.request.service_date))
    out.created_at.CopyFrom(timestamp(plan.created_at))
    location_of = {VisitKind.DEPOT: problem.depot_location, VisitKind.STOP: problem.stop_location,
                   VisitKind.FACILITY: problem.facility_location}
    for r in sol.routes:
        route = out.routes.add(vehicle_id=r.vehicle_id, vehicle_type_index=r.vehicle_type_index,
                               distance_m=r.distance_m, driving_s=r.driving_s, duration_s=r.duration_s,
                               dump_trips=r.facility_visits, bins_served=len(r.stop_indices))
        last = len(r.visits) - 1
        for k, v in enumerate(r.visits):
            stop = route.stops.add(kind=_STOP_KIND[v.kind], id=v.id, distance_from_previous_m=v.distance_from_previous_m)
            where = problem.locations[location_of[v.kind](v.index)]
            if where is not None:
                point_to_proto(where, stop.location)
            if k > 0:
                stop.arrival_time.CopyFrom(timestamp(origin + timedelta(seconds=v.arrival_s)))
            if k < last:
                stop.departure_time.CopyFrom(timestamp(origin + timedelta(seconds=v.departure_s)))
            if v.kind is not VisitKind.DEPOT:
                stop.load_after.extend(v.load_after)
            if v.kind is VisitKind.STOP:
                stop.reason.CopyFrom(decision_to_proto(plan.decision(v.index)))
    out.unserved_bins.extend(decision_to_proto(d) for d in plan.decisions if not d.served)
    t = plan.totals
    out.totals.CopyFrom(planning_pb2.PlanTotals(
        distance_m=t.distance_m, driving_s=t.driving_s, duration_s=t.duration_s, bins_served=t.bins_served,
        bins_must_visit=t.bins_must_visit, bins_optional=t.bins_optional, dump_trips=t.dump_trips,
        vehicles_used=t.vehicles_used, predicted_overflows_avoided=t.predicted_overflows_avoided,
        predicted_overflows_left=t.predicted_overflows_left, objective=t.objective))
    out.models_used.extend(model_ref_to_proto(m) for m in plan.models)
    out.fallbacks.extend(fallback_to_proto(f) for f in plan.fallbacks)
    return out


def progress_to_proto(p: StageProgress) -> planning_pb2.PlanDayResponse:
    """A stage event -> ``PlanDayResponse.progress``."""
    msg = planning_pb2.PlanProgress(stage=_STAGE_TO_PROTO[p.stage], fraction=p.fraction, message=p.message,
                                    elapsed_s=p.elapsed_s)
    if p.solver_best_objective is not None:
        msg.solver_best_objective = p.solver_best_objective
    return planning_pb2.PlanDayResponse(progress=msg)

