"""Turn an engine's visiting order into timed, costed routes — the same way for every engine.

Engines only decide *which vehicle visits what in which order*; arrival times, loads, distances,
travel and driving times, dump trips, costs and the objective in the reply are computed here,
once, from the problem's matrices, so the two engines are reported identically, the codecs only
copy fields, and a translation bug shows up as a violation instead of a wrong reply.

Timing rule: service at a stop starts at the arrival or at the start of the first time window
that has not yet closed, whichever is later (waiting is allowed); a facility likewise with its
opening hours. The vehicle leaves its start depot at ``shift.start_s`` plus the largest delay
that removes waiting without making any visit late (Savelsbergh's forward time slack,
"The vehicle routing problem with time windows: minimizing route duration", ORSA J. Comput.
4(2):146-154, 1992), so the reported route duration is the shortest for that order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

from wasteml_server.routing.feasibility import Unservable
from wasteml_server.routing.options import EngineName
from wasteml_server.routing.problem import Problem, TimeWindow
from wasteml_server.routing.solution import (
    ObjectiveBreakdown,
    Route,
    Solution,
    SolveStatus,
    UnassignedReason,
    UnassignedStop,
    Visit,
    VisitKind,
)

logger = logging.getLogger(__name__)

#: A visit in an engine's order: (VisitKind.STOP, stop index) or (VisitKind.FACILITY, facility index).
Step = tuple[VisitKind, int]


def _windows(problem: Problem, kind: VisitKind, index: int) -> tuple[TimeWindow, ...]:
    if kind is VisitKind.STOP:
        return problem.stops[index].time_windows
    return problem.facilities[index].time_windows


def _service_start(arrival: int, windows: tuple[TimeWindow, ...]) -> tuple[int, int | None]:
    """(service start, end of the window used) — end None when unconstrained; start = -1 if late."""
    if not windows:
        return arrival, None
    for tw in windows:
        if arrival <= tw.end_s:
            return max(arrival, tw.start_s), tw.end_s
    return -1, None


def _forward(problem: Problem, vt_index: int, steps: Sequence[Step],
             depart: int) -> tuple[list[Visit], list[str], list[int], list[float]]:
    """Forward pass: visits (depots included), violations, waits and slacks."""
    vt = problem.vehicle_types[vt_index]
    shift = vt.window
    dist, dur = problem.distance_m, problem.duration_s
    start_depot = problem.depots[vt.start_depot_index]
    prev = problem.depot_location(vt.start_depot_index)
    n_dim = problem.num_dimensions
    t = depart
    load = [0] * n_dim
    visits: list[Visit] = [Visit(VisitKind.DEPOT, vt.start_depot_index, start_depot.id, depart, depart,
                                 depart, tuple(load))]
    violations: list[str] = []
    waits: list[int] = []
    slacks: list[float] = []
    for pos, (kind, index) in enumerate(steps):
        if kind is VisitKind.STOP:
            node = problem.stops[index]
            loc, service, site_id = problem.stop_location(index), node.service_duration_s, node.id
        else:
            if index not in vt.reload_facility_indices:
                violations.append(f"visit {pos}: facility {index} not allowed for vehicle type {vt_index}")
            fac = problem.facilities[index]
            loc, service, site_id = problem.facility_location(index), fac.service_duration_s, fac.id
        leg_m, leg_s = int(dist[prev, loc]), int(dur[prev, loc])
        arrival = t + leg_s
        start, window_end = _service_start(arrival, _windows(problem, kind, index))
        if start < 0:
            violations.append(f"visit {pos} ({kind.value} {index}): arrival {arrival} s after its time windows")
            start = arrival
        waits.append(start - arrival)
        slacks.append(float("inf") if window_end is None else window_end - start)
        if kind is VisitKind.STOP:
            for d, q in enumerate(node.demand):
                load[d] += q
                if load[d] > vt.capacity[d]:
                    violations.append(f"visit {pos} (stop {index}): load {load[d]} > capacity {vt.capacity[d]} in dimension {d}")
        else:
            load = [0] * n_dim
        visits.append(Visit(kind, index, site_id, arrival, start, start + service, tuple(load), leg_m, leg_s))
        t = start + service
        prev = loc
    end_loc = problem.depot_location(vt.end_depot)
    leg_m, leg_s = int(dist[prev, end_loc]), int(dur[prev, end_loc])
    end = t + leg_s
    visits.append(Visit(VisitKind.DEPOT, vt.end_depot, problem.depots[vt.end_depot].id, end, end, end,
                        tuple(load), leg_m, leg_s))
    if end > shift.end_s:
        violations.append(f"back at the end depot at {end} s, after the shift end {shift.end_s} s")
    if vt.end_empty and any(load):
        violations.append("the vehicle reaches its end depot loaded but must end empty")
    if vt.max_route_duration_s is not None and end - depart > vt.max_route_duration_s:
        violations.append(f"route duration {end - depart} s > max {vt.max_route_duration_s} s")
    slacks.append(float(shift.end_s - end))
    waits.append(0)
    return visits, violations, waits, slacks


def vehicle_id(problem: Problem, vt_index: int, vehicle: int) -> str:
    """``"<vehicle type id>-<n>"`` (``type<i>-<n>`` for a type without an id)."""
    vt = problem.vehicle_types[vt_index]
    return f"{vt.id or f'type{vt_index}'}-{vehicle}"


def build_route(
    problem: Problem, vt_index: int, vehicle: int, steps: Sequence[Step]
) -> tuple[Route, list[str]]:
    """Time and cost one vehicle's ordered visits.

    Args:
        problem: the problem.
        vt_index: index into ``problem.vehicle_types``.
        vehicle: vehicle number within the type.
        steps: ordered ``(kind, index)`` visits without the depots.

    Returns:
        ``(route, violations)``; ``violations`` lists broken constraints in words (empty when
        the route is feasible).
    """
    vt = problem.vehicle_types[vt_index]
    depart = vt.window.start_s
    visits, violations, waits, slacks = _forward(problem, vt_index, steps, depart)
    if not violations and sum(waits) > 0:
        cum_wait, fts = 0, float("inf")
        for w, s in zip(waits, slacks, strict=True):
            cum_wait += w
            fts = min(fts, cum_wait + s)
        delay = int(min(fts, sum(waits)))
        if delay > 0:
            visits2, viol2, _, _ = _forward(problem, vt_index, steps, depart + delay)
            if not viol2:
                visits, depart = visits2, depart + delay
    end = visits[-1].arrival_s
    distance = sum(v.distance_from_previous_m for v in visits)
    route = Route(
        vehicle_type_index=vt_index, vehicle_index=vehicle, vehicle_id=vehicle_id(problem, vt_index, vehicle),
        visits=tuple(visits), distance_m=distance, duration_s=end - depart,
        driving_s=sum(v.travel_time_from_previous_s for v in visits),
        facility_visits=sum(1 for v in visits if v.kind is VisitKind.FACILITY),
        start_s=depart, end_s=end, cost=vt.fixed_cost + vt.cost_per_km * distance / 1000.0,
    )
    return route, violations


def no_solution(problem: Problem, engine: EngineName, status: SolveStatus, *, elapsed_s: float,
                reason: str, screened: dict[int, Unservable] | None = None,
                first_feasible_s: float | None = None) -> Solution:
    """A solution without routes: every stop unassigned (the screened ones with their reason,
    the others as TIME_LIMIT), ``reason`` as the problem-level explanation."""
    screened = screened or {}
    unassigned = tuple(
        UnassignedStop(i, s.id, screened[i].reason, screened[i].detail) if i in screened
        else UnassignedStop(i, s.id, UnassignedReason.TIME_LIMIT, "no solution was found")
        for i, s in enumerate(problem.stops))
    solution = Solution(status, engine, unassigned_stops=unassigned, infeasibility_reasons=(reason,),
                        solve_time_s=elapsed_s, time_to_first_feasible_s=first_feasible_s)
    return replace(solution, engine_runs=(solution.run(),))


def build_solution(
    problem: Problem,
    engine: EngineName,
    routes: Sequence[tuple[int, int, Sequence[Step]]],
    *,
    status: SolveStatus,
    elapsed_s: float,
    first_feasible_s: float | None,
    screened: dict[int, Unservable] | None = None,
    reason: str = "",
) -> Solution:
    """Assemble a :class:`Solution` from ``(vehicle type, vehicle, steps)`` triples.

    Empty routes are dropped. Stops in no route become :class:`UnassignedStop`: with the reason
    from ``screened`` (stops the pre-check ruled out), OPTIONAL_SKIPPED for optional ones the
    solver left out, UNSPECIFIED for a required one. Without a feasible status (``reason`` says
    why) the solution has no routes. If a route breaks a constraint (an engine translation
    bug), the error is logged and the solution is returned with status NO_SOLUTION_IN_TIME and
    the violations as its reason, never as a feasible plan. ``engine_runs`` holds this engine's
    own row.
    """
    screened = screened or {}
    if not status.feasible:
        return no_solution(problem, engine, status, elapsed_s=elapsed_s, screened=screened,
                           reason=reason or "no solution was found", first_feasible_s=first_feasible_s)
    built: list[Route] = []
    problems: list[str] = []
    seen: set[int] = set()
    for vt_index, vehicle, steps in routes:
        if not any(kind is VisitKind.STOP for kind, _ in steps):
            continue
        route, violations = build_route(problem, vt_index, vehicle, steps)
        problems += [f"route of vehicle {vt_index}/{vehicle}: {v}" for v in violations]
        for i in route.stop_indices:
            if i in seen:
                problems.append(f"stop {i} visited twice")
            seen.add(i)
        built.append(route)
    unassigned = []
    penalty = 0.0
    for i, stop in enumerate(problem.stops):
        if i in seen:
            continue
        if stop.required:
            problems.append(f"required stop {i} ({stop.id}) not visited")
        penalty += stop.penalty
        if i in screened:
            unassigned.append(UnassignedStop(i, stop.id, screened[i].reason, screened[i].detail))
        else:
            unassigned.append(UnassignedStop(
                i, stop.id, UnassignedReason.OPTIONAL_SKIPPED,
                f"dropped by the solver: visiting it would cost more than its penalty {stop.penalty:g}"
                " or break a capacity/time limit"))
    if problems:
        logger.error("engine %s returned an infeasible plan: %s", engine.value, "; ".join(problems[:5]))
        return no_solution(problem, engine, SolveStatus.NO_SOLUTION_IN_TIME, elapsed_s=elapsed_s,
                           reason="engine returned an invalid plan: " + "; ".join(problems[:5]))
    objective = ObjectiveBreakdown(
        distance_m=sum(r.distance_m for r in built),
        duration_s=sum(r.duration_s for r in built),
        vehicles_used=len(built),
        fixed_cost=sum(problem.vehicle_types[r.vehicle_type_index].fixed_cost for r in built),
        distance_cost=sum(problem.vehicle_types[r.vehicle_type_index].cost_per_km * r.distance_m / 1000.0
                          for r in built),
        penalty=penalty,
    )
    solution = Solution(status, engine, objective, tuple(built), tuple(unassigned),
                        solve_time_s=elapsed_s, time_to_first_feasible_s=first_feasible_s)
    return replace(solution, engine_runs=(solution.run(),))
