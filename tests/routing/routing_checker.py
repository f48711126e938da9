"""An independent feasibility checker for routing solutions (shares no code with the engines
or ``wasteml_server.routing.schedule``): it recomputes every route from the problem's matrices
and the reported visits and lists every broken constraint."""

from __future__ import annotations

from pathlib import Path

from wasteml_server.routing.problem import Problem, Solution, VisitKind

DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data"


def violations(problem: Problem, solution: Solution) -> list[str]:
    """Every constraint the solution breaks (empty list = feasible)."""
    out: list[str] = []
    seen: dict[int, int] = {}
    total_distance = 0
    used: set[tuple[int, int]] = set()
    for r_i, route in enumerate(solution.routes):
        vt = problem.vehicle_types[route.vehicle_type]
        if (route.vehicle_type, route.vehicle) in used or not 0 <= route.vehicle < vt.count:
            out.append(f"route {r_i}: vehicle {route.vehicle_type}/{route.vehicle} reused or out of range")
        used.add((route.vehicle_type, route.vehicle))
        prev = problem.depots[vt.start_depot].location
        t = route.start_s
        if t < vt.shift.start_s:
            out.append(f"route {r_i}: leaves at {t} before the shift starts {vt.shift.start_s}")
        load = [0] * problem.num_dimensions
        distance = 0
        for k, v in enumerate(route.visits):
            if v.kind is VisitKind.STOP:
                stop = problem.stops[v.index]
                loc, service, windows = stop.location, stop.service_duration_s, stop.time_windows
                seen[v.index] = seen.get(v.index, 0) + 1
                load = [a + q for a, q in zip(load, stop.demand, strict=True)]
            else:
                fac = problem.facilities[v.index]
                if v.index not in vt.facilities:
                    out.append(f"route {r_i} visit {k}: facility {v.index} not allowed")
                loc, service = fac.location, fac.service_duration_s
                windows = (fac.time_window,) if fac.time_window else ()
                load = [0] * problem.num_dimensions
            arrival = t + int(problem.duration_s[prev, loc])
            distance += int(problem.distance_m[prev, loc])
            if v.arrival_s != arrival:
                out.append(f"route {r_i} visit {k}: arrival {v.arrival_s} != recomputed {arrival}")
            if v.start_s < v.arrival_s:
                out.append(f"route {r_i} visit {k}: service starts before arrival")
            if windows and not any(w.start_s <= v.start_s <= w.end_s for w in windows):
                out.append(f"route {r_i} visit {k}: start {v.start_s} outside time windows {windows}")
            if v.departure_s != v.start_s + service:
                out.append(f"route {r_i} visit {k}: departure != start + service")
            for d, (a, c) in enumerate(zip(load, vt.capacity, strict=True)):
                if a > c:
                    out.append(f"route {r_i} visit {k}: load {a} > capacity {c} (dimension {d})")
            if list(v.load_after) != load:
                out.append(f"route {r_i} visit {k}: reported load {v.load_after} != {load}")
            t = v.departure_s
            prev = loc
        end_loc = problem.depots[vt.end_depot].location
        end = t + int(problem.duration_s[prev, end_loc])
        distance += int(problem.distance_m[prev, end_loc])
        if route.end_s != end:
            out.append(f"route {r_i}: end {route.end_s} != recomputed {end}")
        if end > vt.shift.end_s:
            out.append(f"route {r_i}: back at {end} after the shift end {vt.shift.end_s}")
        if vt.max_route_duration_s is not None and end - route.start_s > vt.max_route_duration_s:
            out.append(f"route {r_i}: duration {end - route.start_s} > {vt.max_route_duration_s}")
        if vt.end_empty and any(load):
            out.append(f"route {r_i}: ends loaded {load} but must end empty")
        if route.distance_m != distance:
            out.append(f"route {r_i}: distance {route.distance_m} != recomputed {distance}")
        total_distance += distance
    for i, n in seen.items():
        if n > 1:
            out.append(f"stop {i} visited {n} times")
    unassigned = {u.stop for u in solution.unassigned}
    for i, stop in enumerate(problem.stops):
        if i not in seen and i not in unassigned:
            out.append(f"stop {i} neither routed nor reported unassigned")
        if i not in seen and stop.required:
            out.append(f"required stop {i} not visited")
    if solution.objective.distance_m != total_distance:
        out.append(f"objective distance {solution.objective.distance_m} != {total_distance}")
    penalty = sum(problem.stops[i].penalty for i in unassigned)
    if abs(solution.objective.penalty - penalty) > 1e-6:
        out.append(f"objective penalty {solution.objective.penalty} != {penalty}")
    return out
