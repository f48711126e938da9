"""An independent feasibility checker for routing solutions (shares no code with the engines
or ``wasteml_server.routing.schedule``): it recomputes every route from the problem's matrices
and the reported visits (start and end depot visits included) and lists every broken
constraint."""

from __future__ import annotations

from pathlib import Path

from wasteml_server.routing.problem import Problem
from wasteml_server.routing.solution import Solution, VisitKind

DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data"


def violations(problem: Problem, solution: Solution) -> list[str]:
    """Every constraint the solution breaks (empty list = feasible)."""
    out: list[str] = []
    seen: dict[int, int] = {}
    total_distance = 0
    total_duration = 0
    used: set[tuple[int, int]] = set()
    for r_i, route in enumerate(solution.routes):
        vt = problem.vehicle_types[route.vehicle_type_index]
        shift = vt.window
        end_depot = vt.start_depot_index if vt.end_depot_index is None else vt.end_depot_index
        key = (route.vehicle_type_index, route.vehicle_index)
        if key in used or not 0 <= route.vehicle_index < vt.count:
            out.append(f"route {r_i}: vehicle {key[0]}/{key[1]} reused or out of range")
        used.add(key)
        visits = route.visits
        if len(visits) < 2:
            out.append(f"route {r_i}: {len(visits)} visits, expected start and end depot visits")
            continue
        first, last = visits[0], visits[-1]
        if (first.kind, first.index) != (VisitKind.DEPOT, vt.start_depot_index):
            out.append(f"route {r_i}: first visit {first.kind}/{first.index} is not its start depot")
        if (last.kind, last.index) != (VisitKind.DEPOT, end_depot):
            out.append(f"route {r_i}: last visit {last.kind}/{last.index} is not its end depot")
        if any(v.kind is VisitKind.DEPOT for v in visits[1:-1]):
            out.append(f"route {r_i}: a depot visit inside the route")
        if first.id != problem.depots[vt.start_depot_index].id or last.id != problem.depots[end_depot].id:
            out.append(f"route {r_i}: depot visit ids differ from the depots'")
        if (first.distance_from_previous_m, first.travel_time_from_previous_s) != (0, 0):
            out.append(f"route {r_i}: the start depot visit has a previous leg")
        if not first.arrival_s == first.service_start_s == first.departure_s == route.start_s:
            out.append(f"route {r_i}: start depot times {first} != route start {route.start_s}")
        if any(first.load_after):
            out.append(f"route {r_i}: leaves its depot loaded {first.load_after}")
        prev = problem.depots[vt.start_depot_index].location_index
        t = route.start_s
        if t < shift.start_s:
            out.append(f"route {r_i}: leaves at {t} before the shift starts {shift.start_s}")
        load = [0] * problem.num_dimensions
        distance = driving = facility_visits = 0
        for k, v in enumerate(visits[1:], start=1):
            if v.kind is VisitKind.STOP:
                stop = problem.stops[v.index]
                loc, service, windows, site_id = (stop.location_index, stop.service_duration_s,
                                                  stop.time_windows, stop.id)
                seen[v.index] = seen.get(v.index, 0) + 1
                load = [a + q for a, q in zip(load, stop.demand, strict=True)]
            elif v.kind is VisitKind.FACILITY:
                fac = problem.facilities[v.index]
                if v.index not in vt.reload_facility_indices:
                    out.append(f"route {r_i} visit {k}: facility {v.index} not allowed")
                loc, service, site_id = fac.location_index, fac.service_duration_s, fac.id
                windows = tuple(fac.time_windows)
                load = [0] * problem.num_dimensions
                facility_visits += 1
            else:  # the end depot
                loc, service, windows, site_id = problem.depots[v.index].location_index, 0, (), v.id
            leg_m, leg_s = int(problem.distance_m[prev, loc]), int(problem.duration_s[prev, loc])
            arrival = t + leg_s
            distance += leg_m
            driving += leg_s
            if v.id != site_id:
                out.append(f"route {r_i} visit {k}: id {v.id!r} != {site_id!r}")
            if (v.distance_from_previous_m, v.travel_time_from_previous_s) != (leg_m, leg_s):
                out.append(f"route {r_i} visit {k}: leg {v.distance_from_previous_m} m/"
                           f"{v.travel_time_from_previous_s} s != matrix {leg_m} m/{leg_s} s")
            if v.arrival_s != arrival:
                out.append(f"route {r_i} visit {k}: arrival {v.arrival_s} != recomputed {arrival}")
            if v.service_start_s < v.arrival_s:
                out.append(f"route {r_i} visit {k}: service starts before arrival")
            if windows and not any(w.start_s <= v.service_start_s <= w.end_s for w in windows):
                out.append(f"route {r_i} visit {k}: start {v.service_start_s} outside time windows {windows}")
            if v.departure_s != v.service_start_s + service:
                out.append(f"route {r_i} visit {k}: departure != start + service")
            for d, (a, c) in enumerate(zip(load, vt.capacity, strict=True)):
                if a > c:
                    out.append(f"route {r_i} visit {k}: load {a} > capacity {c} (dimension {d})")
            if list(v.load_after) != load:
                out.append(f"route {r_i} visit {k}: reported load {v.load_after} != {load}")
            t = v.departure_s
            prev = loc
        end = last.arrival_s
        if route.end_s != end:
            out.append(f"route {r_i}: end {route.end_s} != end depot arrival {end}")
        if end > shift.end_s:
            out.append(f"route {r_i}: back at {end} after the shift end {shift.end_s}")
        if route.duration_s != end - route.start_s:
            out.append(f"route {r_i}: duration {route.duration_s} != {end - route.start_s}")
        if vt.max_route_duration_s is not None and end - route.start_s > vt.max_route_duration_s:
            out.append(f"route {r_i}: duration {end - route.start_s} > {vt.max_route_duration_s}")
        if vt.end_empty and any(load):
            out.append(f"route {r_i}: ends loaded {load} but must end empty")
        if route.distance_m != distance:
            out.append(f"route {r_i}: distance {route.distance_m} != recomputed {distance}")
        if route.driving_s != driving:
            out.append(f"route {r_i}: driving {route.driving_s} s != recomputed {driving} s")
        if route.facility_visits != facility_visits:
            out.append(f"route {r_i}: {route.facility_visits} facility visits reported, {facility_visits} made")
        total_distance += distance
        total_duration += end - route.start_s
    for i, n in seen.items():
        if n > 1:
            out.append(f"stop {i} visited {n} times")
    unassigned = {u.stop_index for u in solution.unassigned_stops}
    for i, stop in enumerate(problem.stops):
        if i not in seen and i not in unassigned:
            out.append(f"stop {i} neither routed nor reported unassigned")
        if i not in seen and stop.required:
            out.append(f"required stop {i} not visited")
        if i in seen and i in unassigned:
            out.append(f"stop {i} routed and reported unassigned")
    if solution.objective.distance_m != total_distance:
        out.append(f"objective distance {solution.objective.distance_m} != {total_distance}")
    if solution.objective.duration_s != total_duration:
        out.append(f"objective duration {solution.objective.duration_s} != {total_duration}")
    if solution.objective.vehicles_used != len(solution.routes):
        out.append(f"objective vehicles {solution.objective.vehicles_used} != {len(solution.routes)} routes")
    penalty = sum(problem.stops[i].penalty for i in unassigned)
    if abs(solution.objective.penalty - penalty) > 1e-6:
        out.append(f"objective penalty {solution.objective.penalty} != {penalty}")
    return out
