"""Up-front infeasibility screening: stops no vehicle could ever serve, explained in words.

A stop is unservable by a vehicle type when its demand exceeds that type's capacity in some
dimension, or when even a route serving only that stop — leaving the start depot at the shift
start, via a facility first when the vehicle must end empty — misses every time window, the
shift end or the maximum route duration. These are necessary conditions only: a problem that
passes can still be infeasible as a whole (too few vehicles), which the engines then report.

The contract's reason is decided here, per stop (``UnassignedReason``): every vehicle type
ruled out by capacity -> CAPACITY_EXCEEDED; every one by time -> TIME_WINDOW_UNREACHABLE;
some each way -> NO_COMPATIBLE_VEHICLE.
"""

from __future__ import annotations

from dataclasses import dataclass

from wasteml_server.core.errors import InfeasibleProblemError
from wasteml_server.routing.problem import Problem, Stop, VehicleType
from wasteml_server.routing.solution import UnassignedReason


@dataclass(frozen=True)
class Unservable:
    """Why no vehicle type can serve a stop: the contract's reason and the words."""

    reason: UnassignedReason
    detail: str


def _hhmm(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


def _why_not(problem: Problem, stop: Stop, vt: VehicleType) -> tuple[bool, str] | None:
    """``(by capacity, why)`` when ``vt`` cannot serve ``stop`` in a single-stop route, else None."""
    for d, q in enumerate(stop.demand):
        if q > vt.capacity[d]:
            return True, f"demand {q} exceeds capacity {vt.capacity[d]} in dimension {d}"
    shift = vt.window
    dur = problem.duration_s
    loc = stop.location_index
    start_loc = problem.depot_location(vt.start_depot_index)
    end_loc = problem.depot_location(vt.end_depot)
    arrival = shift.start_s + int(dur[start_loc, loc])
    start = arrival
    if stop.time_windows:
        open_windows = [tw for tw in stop.time_windows if tw.end_s >= arrival]
        if not open_windows:
            return False, (f"earliest arrival {_hhmm(arrival)} is after its last time window closes "
                           f"({_hhmm(stop.time_windows[-1].end_s)})")
        start = max(arrival, open_windows[0].start_s)
    leave = start + stop.service_duration_s
    if vt.end_empty and any(stop.demand):
        back = None
        for f in vt.reload_facility_indices:
            fac = problem.facilities[f]
            fac_loc = problem.facility_location(f)
            at_fac = leave + int(dur[loc, fac_loc])
            if fac.time_window is not None:
                if at_fac > fac.time_window.end_s:
                    continue
                at_fac = max(at_fac, fac.time_window.start_s)
            t = at_fac + fac.service_duration_s + int(dur[fac_loc, end_loc])
            back = t if back is None else min(back, t)
        if back is None:
            return False, "no facility is open when the vehicle could arrive to tip the load"
    else:
        back = leave + int(dur[loc, end_loc])
    if back > shift.end_s:
        return False, (f"a route serving only this stop ends at {_hhmm(back)}, after the shift end "
                       f"{_hhmm(shift.end_s)}")
    if vt.max_route_duration_s is not None:
        shortest = back - start + (arrival - shift.start_s)  # no waiting: leave later instead
        if shortest > vt.max_route_duration_s:
            return False, (f"the shortest route serving it takes {shortest} s > max route duration "
                           f"{vt.max_route_duration_s} s")
    return None


def unservable(problem: Problem) -> dict[int, Unservable]:
    """Every stop (required or optional) that no vehicle type can serve, with its reason."""
    out: dict[int, Unservable] = {}
    for i, stop in enumerate(problem.stops):
        reasons: list[tuple[bool, str]] = []
        for t, vt in enumerate(problem.vehicle_types):
            why = _why_not(problem, stop, vt)
            if why is None:
                break
            reasons.append((why[0], f"vehicle_types[{t}]: {why[1]}"))
        else:
            by_capacity = [c for c, _ in reasons]
            reason = (UnassignedReason.CAPACITY_EXCEEDED if all(by_capacity)
                      else UnassignedReason.TIME_WINDOW_UNREACHABLE if not any(by_capacity)
                      else UnassignedReason.NO_COMPATIBLE_VEHICLE)
            out[i] = Unservable(reason, "no vehicle can serve it: " + "; ".join(w for _, w in reasons))
    return out


def screen(problem: Problem) -> dict[int, Unservable]:
    """The stops that no vehicle type can serve, if none of them is required.

    Returns:
        ``{stop index: Unservable}`` for *optional* stops that cannot be served (engines leave
        them out and report them unassigned with this reason).

    Raises:
        InfeasibleProblemError: a *required* stop cannot be served by any vehicle type; the
            message names every such stop (up to 10) and each vehicle type's reason.
    """
    found = unservable(problem)
    required = [i for i in found if problem.stops[i].required]
    if required:
        lines = [f"stops[{i}] ({problem.stops[i].id}): {found[i].detail}" for i in required[:10]]
        more = f" (and {len(required) - 10} more)" if len(required) > 10 else ""
        raise InfeasibleProblemError(
            f"{len(required)} required stop(s) cannot be served{more}: " + " | ".join(lines))
    return found
