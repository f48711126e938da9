"""Turn an engine's visiting order into timed, costed routes — the same way for every engine.

Engines only decide *which vehicle visits what in which order*; arrival times, loads, distances
and costs in the reply are computed here from the problem's matrices, so the two engines are
reported identically and a translation bug shows up as a violation instead of a wrong reply.

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

from wasteml_server.routing.problem import (
    ObjectiveParts,
    Problem,
    Route,
    Solution,
    SolveStatus,
    TimeWindow,
    Unassigned,
    Visit,
    VisitKind,
)

logger = logging.getLogger(__name__)

#: A visit in an engine's order: (VisitKind.STOP, stop index) or (VisitKind.FACILITY, facility index).
Step = tuple[VisitKind, int]


def _windows(problem: Problem, kind: VisitKind, index: int) -> tuple[TimeWindow, ...]:
    if kind is VisitKind.STOP:
        return problem.stops[index].time_windows
    tw = problem.facilities[index].time_window
    return (tw,) if tw is not None else ()


def _service_start(arrival: int, windows: tuple[TimeWindow, ...]) -> tuple[int, int | None]:
    """(service start, end of the window used) — end None when unconstrained; start = -1 if late."""
    if not windows:
        return arrival, None
    for tw in windows:
        if arrival <= tw.end_s:
            return max(arrival, tw.start_s), tw.end_s
    return -1, None


def _forward(problem: Problem, vt_index: int, steps: Sequence[Step], depart: int):
    """Forward pass: visits, end time, distance, violations, waits and slacks."""
    vt = problem.vehicle_types[vt_index]
    dist, dur = problem.distance_m, problem.duration_s
    prev = problem.depots[vt.start_depot].location
    t = depart
    load = [0] * problem.num_dimensions
    distance = 0
    visits: list[Visit] = []
    violations: list[str] = []
    waits: list[int] = []
    slacks: list[float] = []
    for pos, (kind, index) in enumerate(steps):
        if kind is VisitKind.STOP:
            node = problem.stops[index]
            loc, service = node.location, node.service_duration_s
        else:
            if index not in vt.facilities:
                violations.append(f"visit {pos}: facility {index} not allowed for vehicle type {vt_index}")
            fac = problem.facilities[index]
            loc, service = fac.location, fac.service_duration_s
        arrival = t + int(dur[prev, loc])
        distance += int(dist[prev, loc])
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
            load = [0] * problem.num_dimensions
        visits.append(Visit(kind, index, arrival, start, start + service, tuple(load)))
        t = start + service
        prev = loc
    end_loc = problem.depots[vt.end_depot].location
    end = t + int(dur[prev, end_loc])
    distance += int(dist[prev, end_loc])
    if end > vt.shift.end_s:
        violations.append(f"back at the end depot at {end} s, after the shift end {vt.shift.end_s} s")
    if vt.end_empty and any(load):
        violations.append("the vehicle reaches its end depot loaded but must end empty")
    if vt.max_route_duration_s is not None and end - depart > vt.max_route_duration_s:
        violations.append(f"route duration {end - depart} s > max {vt.max_route_duration_s} s")
    slacks.append(float(vt.shift.end_s - end))
    waits.append(0)
    return visits, end, distance, violations, waits, slacks


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
    depart = vt.shift.start_s
    visits, end, distance, violations, waits, slacks = _forward(problem, vt_index, steps, depart)
    if not violations and sum(waits) > 0:
        cum_wait, fts = 0, float("inf")
        for w, s in zip(waits, slacks, strict=True):
            cum_wait += w
            fts = min(fts, cum_wait + s)
        delay = int(min(fts, sum(waits)))
        if delay > 0:
            visits2, end2, distance2, viol2, _, _ = _forward(problem, vt_index, steps, depart + delay)
            if not viol2:
                visits, end, distance, depart = visits2, end2, distance2, depart + delay
    cost = vt.fixed_cost + vt.cost_per_km * distance / 1000.0
    route = Route(vt_index, vehicle, tuple(visits), depart, end, distance, end - depart, cost)
    return route, violations


def build_solution(
    problem: Problem,
    engine: str,
    routes: Sequence[tuple[int, int, Sequence[Step]]],
    *,
    status: SolveStatus,
    elapsed_s: float,
    first_feasible_s: float | None,
    screened: dict[int, str] | None = None,
    message: str = "",
) -> Solution:
    """Assemble a :class:`Solution` from ``(vehicle type, vehicle, steps)`` triples.

    Empty routes are dropped. Stops in no route become :class:`Unassigned`: with the reason
    from ``screened`` (stops the pre-check ruled out) or "dropped by the solver".
    If a route breaks a constraint (an engine translation bug), the error is logged and the
    solution is returned with status NO_SOLUTION_IN_TIME and the violations in ``message``,
    never as a feasible plan.
    """
    screened = screened or {}
    if status not in (SolveStatus.FEASIBLE, SolveStatus.OPTIMAL):
        unassigned = tuple(
            Unassigned(i, s.id, screened.get(i, "no solution was found"))
            for i, s in enumerate(problem.stops)
        )
        return Solution(status, engine, (), unassigned, elapsed_s=elapsed_s,
                        first_feasible_s=first_feasible_s, message=message)
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
        reason = screened.get(
            i, f"dropped by the solver: visiting it would cost more than its penalty {stop.penalty:g}"
            " or break a capacity/time limit",
        )
        unassigned.append(Unassigned(i, stop.id, reason))
    if problems:
        logger.error("engine %s returned an infeasible plan: %s", engine, "; ".join(problems[:5]))
        return Solution(SolveStatus.NO_SOLUTION_IN_TIME, engine, (), tuple(
            Unassigned(i, s.id, "no valid solution") for i, s in enumerate(problem.stops)),
            elapsed_s=elapsed_s, first_feasible_s=None,
            message="engine returned an invalid plan: " + "; ".join(problems[:5]))
    objective = ObjectiveParts(
        distance_cost=sum(problem.vehicle_types[r.vehicle_type].cost_per_km * r.distance_m / 1000.0
                          for r in built),
        fixed_cost=sum(problem.vehicle_types[r.vehicle_type].fixed_cost for r in built),
        penalty=penalty,
        distance_m=sum(r.distance_m for r in built),
        vehicles=len(built),
    )
    return Solution(status, engine, tuple(built), tuple(unassigned), objective, elapsed_s,
                    first_feasible_s, message)
