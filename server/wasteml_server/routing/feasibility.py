"""Up-front infeasibility screening: stops no vehicle could ever serve, explained in words.

A stop is unservable by a vehicle type when its demand exceeds that type's capacity in some
dimension, or when even a route serving only that stop — leaving the start depot at the shift
start, via a facility first when the vehicle must end empty — misses every time window, the
shift end or the maximum route duration. These are necessary conditions only: a problem that
passes can still be infeasible as a whole (too few vehicles), which the engines then report.
"""

from __future__ import annotations

from wasteml_server.core.errors import InfeasibleProblemError
from wasteml_server.routing.problem import Problem, Stop, VehicleType


def _hhmm(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


def _why_not(problem: Problem, stop: Stop, vt: VehicleType) -> str | None:
    """Why ``vt`` cannot serve ``stop`` in a single-stop route, or None if it can."""
    for d, q in enumerate(stop.demand):
        if q > vt.capacity[d]:
            return f"demand {q} exceeds capacity {vt.capacity[d]} in dimension {d}"
    dur = problem.duration_s
    start_loc = problem.depots[vt.start_depot].location
    end_loc = problem.depots[vt.end_depot].location
    arrival = vt.shift.start_s + int(dur[start_loc, stop.location])
    start = arrival
    if stop.time_windows:
        open_windows = [tw for tw in stop.time_windows if tw.end_s >= arrival]
        if not open_windows:
            return (f"earliest arrival {_hhmm(arrival)} is after its last time window closes "
                    f"({_hhmm(stop.time_windows[-1].end_s)})")
        start = max(arrival, open_windows[0].start_s)
    leave = start + stop.service_duration_s
    if vt.end_empty and any(stop.demand):
        back = None
        for f in vt.facilities:
            fac = problem.facilities[f]
            at_fac = leave + int(dur[stop.location, fac.location])
            if fac.time_window is not None:
                if at_fac > fac.time_window.end_s:
                    continue
                at_fac = max(at_fac, fac.time_window.start_s)
            t = at_fac + fac.service_duration_s + int(dur[fac.location, end_loc])
            back = t if back is None else min(back, t)
        if back is None:
            return "no facility is open when the vehicle could arrive to tip the load"
    else:
        back = leave + int(dur[stop.location, end_loc])
    if back > vt.shift.end_s:
        return f"a route serving only this stop ends at {_hhmm(back)}, after the shift end {_hhmm(vt.shift.end_s)}"
    if vt.max_route_duration_s is not None:
        shortest = back - start + (arrival - vt.shift.start_s)  # no waiting: leave later instead
        if shortest > vt.max_route_duration_s:
            return f"the shortest route serving it takes {shortest} s > max route duration {vt.max_route_duration_s} s"
    return None


def screen(problem: Problem) -> dict[int, str]:
    """Find the stops that no vehicle type can serve.

    Returns:
        ``{stop index: reason}`` for *optional* stops that cannot be served (engines leave them
        out and report them unassigned with this reason).

    Raises:
        InfeasibleProblemError: a *required* stop cannot be served by any vehicle type; the
            message names every such stop (up to 10) and each vehicle type's reason.
    """
    unservable: dict[int, str] = {}
    for i, stop in enumerate(problem.stops):
        reasons = []
        for t, vt in enumerate(problem.vehicle_types):
            why = _why_not(problem, stop, vt)
            if why is None:
                break
            reasons.append(f"vehicle_types[{t}]: {why}")
        else:
            unservable[i] = "no vehicle can serve it: " + "; ".join(reasons)
    required = [i for i in unservable if problem.stops[i].required]
    if required:
        lines = [f"stops[{i}] ({problem.stops[i].id}): {unservable[i]}" for i in required[:10]]
        more = f" (and {len(required) - 10} more)" if len(required) > 10 else ""
        raise InfeasibleProblemError(
            f"{len(required)} required stop(s) cannot be served{more}: " + " | ".join(lines))
    return unservable
