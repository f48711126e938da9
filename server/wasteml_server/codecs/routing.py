"""Routing protobuf <-> domain: the one place converting ``wasteml.v1`` routing messages.

Used by the ``RouteOptimizer`` servicer and by the collection planner (which builds a
``routing_pb2.Problem`` from its own request and calls :func:`problem_from_proto`).

Locations: when ``Problem.matrix.size > 0`` the locations are the matrix indices and every
depot, facility and stop must give ``location_index`` (a ``location`` GeoPoint alongside is
kept as that location's coordinates); otherwise the locations are the GeoPoints of the depots,
facilities and stops, in that order, and the matrices are computed from them
(``Problem.from_coordinates``: haversine x ``speed_model.detour_factor``, at
``speed_model.speed_m_per_s``; the domain defaults when unset).

Times: proto times are seconds (doubles) since ``time_origin``; the domain works in whole
seconds, so window starts are rounded up, window ends down (a served time always lies inside
the caller's window) and service durations up. A vehicle type without a shift gets
``[0, 2 * DAY_S]``; a depot's opening hours narrow the shift of every vehicle type starting or
ending there.

Errors: every violation names the proto field path under ``field`` (``"problem"`` for
RouteOptimizer requests), e.g. ``problem.stops[2].time_windows[0].end_s``. Contract fields the
domain cannot express (``cost_per_hour``, ``max_route_distance_m``, ``max_reloads``,
``allowed_vehicle_type_indices``, several facility time windows, ``no_improvement_limit``, the
SWEEP/CHRISTOFIDES strategies, GENERIC_TABU_SEARCH) are rejected with INVALID_ARGUMENT saying
so, never silently ignored.
"""

from __future__ import annotations

import math
import re

import numpy as np

from wasteml.v1 import routing_pb2
from wasteml_server.core.errors import FieldViolation, InvalidArgumentError
from wasteml_server.routing.engine import (
    EngineName,
    FirstSolutionStrategy,
    LocalSearchMetaheuristic,
    SolveOptions,
)
from wasteml_server.routing.problem import (
    DAY_S,
    DEFAULT_DETOUR_FACTOR,
    DEFAULT_SPEED_KMH,
    Depot,
    Facility,
    Location,
    Problem,
    Solution,
    SolveStatus,
    Stop,
    TimeWindow,
    VehicleType,
    VisitKind,
    under,
)

#: Time limit of a Solve/SubmitJob whose options leave ``time_limit`` unset, seconds (the
#: domain's default; bounded by ``Settings.solver_max_time_limit_s``).
DEFAULT_TIME_LIMIT_S = SolveOptions().time_limit_s

_ENGINE_IN = {
    routing_pb2.ENGINE_UNSPECIFIED: EngineName.AUTO,
    routing_pb2.ENGINE_ORTOOLS: EngineName.ORTOOLS,
    routing_pb2.ENGINE_PYVRP: EngineName.PYVRP,
    routing_pb2.ENGINE_PORTFOLIO: EngineName.PORTFOLIO,
}
#: Domain engine name -> the contract's Engine (never PORTFOLIO: a solution names its engine).
ENGINE_TO_PROTO = {"ortools": routing_pb2.ENGINE_ORTOOLS, "pyvrp": routing_pb2.ENGINE_PYVRP}
_FIRST = {
    routing_pb2.FIRST_SOLUTION_STRATEGY_UNSPECIFIED: FirstSolutionStrategy.PARALLEL_CHEAPEST_INSERTION,
    routing_pb2.FIRST_SOLUTION_STRATEGY_AUTOMATIC: FirstSolutionStrategy.AUTOMATIC,
    routing_pb2.FIRST_SOLUTION_STRATEGY_PATH_CHEAPEST_ARC: FirstSolutionStrategy.PATH_CHEAPEST_ARC,
    routing_pb2.FIRST_SOLUTION_STRATEGY_PARALLEL_CHEAPEST_INSERTION:
        FirstSolutionStrategy.PARALLEL_CHEAPEST_INSERTION,
    routing_pb2.FIRST_SOLUTION_STRATEGY_LOCAL_CHEAPEST_INSERTION:
        FirstSolutionStrategy.LOCAL_CHEAPEST_INSERTION,
    routing_pb2.FIRST_SOLUTION_STRATEGY_SAVINGS: FirstSolutionStrategy.SAVINGS,
}
_META = {
    routing_pb2.LOCAL_SEARCH_METAHEURISTIC_UNSPECIFIED: LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH,
    routing_pb2.LOCAL_SEARCH_METAHEURISTIC_AUTOMATIC: LocalSearchMetaheuristic.AUTOMATIC,
    routing_pb2.LOCAL_SEARCH_METAHEURISTIC_GREEDY_DESCENT: LocalSearchMetaheuristic.GREEDY_DESCENT,
    routing_pb2.LOCAL_SEARCH_METAHEURISTIC_GUIDED_LOCAL_SEARCH: LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH,
    routing_pb2.LOCAL_SEARCH_METAHEURISTIC_SIMULATED_ANNEALING: LocalSearchMetaheuristic.SIMULATED_ANNEALING,
    routing_pb2.LOCAL_SEARCH_METAHEURISTIC_TABU_SEARCH: LocalSearchMetaheuristic.TABU_SEARCH,
}
#: Domain solve status -> the contract's SolutionStatus.
STATUS_TO_PROTO = {
    SolveStatus.OPTIMAL: routing_pb2.SOLUTION_STATUS_OPTIMAL,
    SolveStatus.FEASIBLE: routing_pb2.SOLUTION_STATUS_FEASIBLE,
    SolveStatus.INFEASIBLE: routing_pb2.SOLUTION_STATUS_INFEASIBLE,
    SolveStatus.NO_SOLUTION_IN_TIME: routing_pb2.SOLUTION_STATUS_NO_SOLUTION_IN_TIME,
}

_NOT_SUPPORTED = "is not supported by this server's routing model; leave it unset"


def _unsupported(path: str, what: str = "") -> None:
    raise InvalidArgumentError(path, f"{what or 'this field'} {_NOT_SUPPORTED}")


def _finite(path: str, value: float) -> float:
    if not math.isfinite(value):
        raise InvalidArgumentError(path, f"must be a finite number, got {value!r}")
    return value


def _seconds_up(path: str, value: float) -> int:
    """Whole seconds >= ``value`` (durations, window starts)."""
    return int(math.ceil(_finite(path, value) - 1e-9))


def _seconds_down(path: str, value: float) -> int:
    """Whole seconds <= ``value`` (window ends)."""
    return int(math.floor(_finite(path, value) + 1e-9))


def _window(path: str, tw: routing_pb2.TimeWindow) -> TimeWindow:
    start = _seconds_up(f"{path}.start_s", tw.start_s)
    end = _seconds_down(f"{path}.end_s", tw.end_s)
    if tw.end_s >= tw.start_s and end < start:  # a window narrower than a whole second
        raise InvalidArgumentError(path, f"[{tw.start_s}, {tw.end_s}] holds no whole second")
    with under(path):
        return TimeWindow(start, end)


# domain field path -> proto field path (relative to the Problem message)
_RENAMES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), r) for p, r in (
        (r"^vehicle_types\[(\d+)\]\.start_depot$", r"vehicle_types[\1].start_depot_index"),
        (r"^vehicle_types\[(\d+)\]\.end_depot$", r"vehicle_types[\1].end_depot_index"),
        (r"^vehicle_types\[(\d+)\]\.facilities(\[\d+\])?$", r"vehicle_types[\1].reload_facility_indices\2"),
        (r"^stops\[(\d+)\]\.penalty$", r"stops[\1].skip_penalty"),
        (r"^distance_m$", "matrix.distances_m"),
        (r"^duration_s$", "matrix.durations_s"),
        (r"^detour_factor$", "speed_model.detour_factor"),
        (r"^speed_kmh$", "speed_model.speed_m_per_s"),
        (r"^locations$", "depots"),
        (r"^(.*)\.location\.lat_deg$", r"\1.location.latitude_deg"),
        (r"^(.*)\.location\.lon_deg$", r"\1.location.longitude_deg"),
    )
)
_MATRIX_CELL = re.compile(r"^(distance_m|duration_s)\[(\d+)\]\[(\d+)\]$")


def _proto_path(domain_path: str, size: int) -> str:
    cell = _MATRIX_CELL.match(domain_path)
    if cell:
        name = "distances_m" if cell.group(1) == "distance_m" else "durations_s"
        return f"matrix.{name}[{int(cell.group(2)) * size + int(cell.group(3))}]"
    for pattern, repl in _RENAMES:
        if pattern.match(domain_path):
            return pattern.sub(repl, domain_path)
    return domain_path


def _index(path: str, value: int, n: int, what: str) -> int:
    if not 0 <= value < n:
        raise InvalidArgumentError(path, f"must index {what} (0..{n - 1}), got {value}")
    return value


def _speed(p: routing_pb2.Problem) -> tuple[float, float]:
    """(speed km/h, detour factor) of the speed model, defaults where unset (0)."""
    sm = p.speed_model
    speed_ms = _finite("speed_model.speed_m_per_s", sm.speed_m_per_s)
    detour = _finite("speed_model.detour_factor", sm.detour_factor)
    if speed_ms < 0:
        raise InvalidArgumentError("speed_model.speed_m_per_s", "must be > 0 m/s (or 0 for the default)")
    if detour != 0 and detour < 1:
        raise InvalidArgumentError("speed_model.detour_factor", "must be >= 1 (or 0 for the default)")
    return (speed_ms * 3.6 if speed_ms > 0 else DEFAULT_SPEED_KMH,
            detour if detour > 0 else DEFAULT_DETOUR_FACTOR)


def _sites(p: routing_pb2.Problem):
    for kind in ("depots", "facilities", "stops"):
        for i, site in enumerate(getattr(p, kind)):
            yield f"{kind}[{i}]", site


def problem_from_proto(p: routing_pb2.Problem, field: str = "problem") -> Problem:
    """``wasteml.v1.Problem`` -> domain :class:`Problem` (see the module docstring).

    Args:
        p: the problem message.
        field: path of ``p`` in the request, prefixed to every field violation ("" for none).

    Raises:
        InvalidArgumentError: a bad or unsupported field, named by its proto path under
            ``field`` (e.g. ``problem.stops[3].location_index``).
    """
    try:
        return _problem(p)
    except InvalidArgumentError as err:
        size = max(p.matrix.size, 0)
        prefix = f"{field}." if field else ""
        fixed = [FieldViolation(f"{prefix}{_proto_path(v.field, size)}", v.description)
                 for v in err.violations]
        raise InvalidArgumentError(fixed[0].field, fixed[0].description, *fixed[1:]) from None
    except ValueError as err:  # plain domain ValueError: name the problem as a whole
        raise InvalidArgumentError(field or "problem", str(err)) from None


def _problem(p: routing_pb2.Problem) -> Problem:
    if not p.depots:
        raise InvalidArgumentError("depots", "at least one depot is needed")
    if not p.vehicle_types:
        raise InvalidArgumentError("vehicle_types", "at least one vehicle type is needed")
    speed_kmh, detour = _speed(p)
    n_dim = len(p.dimensions)
    size = p.matrix.size
    use_matrix = size > 0 or len(p.matrix.distances_m) > 0
    if size < 0 or (use_matrix and size == 0):
        raise InvalidArgumentError("matrix.size", "must be > 0 when a matrix is given")

    # locations
    site_loc: dict[str, int] = {}
    if use_matrix:
        coords: list[tuple[float, float] | None] = [None] * size
        names = [""] * size
        for path, site in _sites(p):
            if not site.HasField("location_index"):
                raise InvalidArgumentError(f"{path}.location_index", "is required when a matrix is given")
            idx = _index(f"{path}.location_index", site.location_index, size, "the matrix rows")
            site_loc[path] = idx
            names[idx] = names[idx] or site.id
            if site.HasField("location"):
                coords[idx] = (site.location.latitude_deg, site.location.longitude_deg)
        locations = []
        for idx in range(size):
            lat, lon = coords[idx] if coords[idx] is not None else (None, None)
            path = next((k for k, v in site_loc.items() if v == idx), f"matrix[{idx}]")
            with under(path.replace(".location_index", "") + ".location"):
                locations.append(Location(lat, lon, names[idx]))
        dist = _matrix("matrix.distances_m", p.matrix.distances_m, size)
        if len(p.matrix.durations_s):
            dur = _matrix("matrix.durations_s", p.matrix.durations_s, size)
        else:
            dur = dist / (speed_kmh / 3.6)
    else:
        locations = []
        for path, site in _sites(p):
            if not site.HasField("location"):
                raise InvalidArgumentError(f"{path}.location", "is required when no matrix is given")
            site_loc[path] = len(locations)
            with under(f"{path}.location"):
                locations.append(Location(site.location.latitude_deg, site.location.longitude_deg, site.id))
        dist = dur = None

    depots = [Depot(site_loc[f"depots[{i}]"], d.id) for i, d in enumerate(p.depots)]
    depot_windows = [
        _window(f"depots[{i}].time_window", d.time_window) if d.HasField("time_window") else None
        for i, d in enumerate(p.depots)
    ]
    facilities = []
    for i, f in enumerate(p.facilities):
        path = f"facilities[{i}]"
        if len(f.time_windows) > 1:
            _unsupported(f"{path}.time_windows", "more than one opening window per facility")
        tw = _window(f"{path}.time_windows[0]", f.time_windows[0]) if f.time_windows else None
        with under(path):
            facilities.append(Facility(site_loc[path], _seconds_up(f"{path}.service_duration_s",
                                                                   f.service_duration_s), tw, f.id))
    vehicle_types = [_vehicle_type(p, t, n_dim, depot_windows) for t in range(len(p.vehicle_types))]
    stops = [_stop(p.stops[i], f"stops[{i}]", site_loc[f"stops[{i}]"], n_dim)
             for i in range(len(p.stops))]
    if use_matrix:
        return Problem(tuple(locations), tuple(depots), tuple(vehicle_types), tuple(stops),
                       dist, dur, tuple(facilities), p.name)
    return Problem.from_coordinates(locations, depots, vehicle_types, stops, facilities,
                                    detour_factor=detour, speed_kmh=speed_kmh, name=p.name)


def _matrix(path: str, values, size: int) -> np.ndarray:
    if len(values) != size * size:
        raise InvalidArgumentError(path, f"must hold size * size = {size * size} values (row-major), "
                                   f"got {len(values)}")
    return np.asarray(values, dtype=np.float64).reshape(size, size)


def _vehicle_type(p: routing_pb2.Problem, t: int, n_dim: int,
                  depot_windows: list[TimeWindow | None]) -> VehicleType:
    vt = p.vehicle_types[t]
    path = f"vehicle_types[{t}]"
    if vt.cost_per_hour != 0:
        _unsupported(f"{path}.cost_per_hour", "a cost per hour")
    if vt.HasField("max_route_distance_m"):
        _unsupported(f"{path}.max_route_distance_m", "a maximum route distance")
    if vt.HasField("max_reloads"):
        _unsupported(f"{path}.max_reloads", "a maximum number of reloads")
    if n_dim and len(vt.capacity) != n_dim:
        raise InvalidArgumentError(f"{path}.capacity", f"has {len(vt.capacity)} entries, "
                                   f"problem.dimensions has {n_dim}")
    start = _index(f"{path}.start_depot_index", vt.start_depot_index, len(p.depots), "depots")
    end = _index(f"{path}.end_depot_index", vt.end_depot_index, len(p.depots), "depots") \
        if vt.HasField("end_depot_index") else start
    shift = _window(f"{path}.shift", vt.shift) if vt.HasField("shift") else TimeWindow(0, 2 * DAY_S)
    lo, hi = shift.start_s, shift.end_s
    for d, which in ((start, "start"), (end, "end")):
        w = depot_windows[d]
        if w is not None:
            lo, hi = max(lo, w.start_s), min(hi, w.end_s)
            if lo > hi:
                raise InvalidArgumentError(f"{path}.shift", f"does not overlap the opening hours of its "
                                           f"{which} depot (depots[{d}].time_window)")
    for k, f in enumerate(vt.reload_facility_indices):
        _index(f"{path}.reload_facility_indices[{k}]", f, len(p.facilities), "facilities")
    facilities = tuple(vt.reload_facility_indices) or tuple(range(len(p.facilities)))
    max_dur = None
    if vt.HasField("max_route_duration_s"):
        max_dur = _seconds_down(f"{path}.max_route_duration_s", vt.max_route_duration_s)
    cost_per_km = vt.cost_per_km if vt.HasField("cost_per_km") else VehicleType.cost_per_km
    with under(path):
        return VehicleType(
            count=vt.count, capacity=tuple(vt.capacity), shift=TimeWindow(lo, hi), start_depot=start,
            end_depot=end, fixed_cost=_finite("fixed_cost", vt.fixed_cost),
            cost_per_km=_finite("cost_per_km", cost_per_km), max_route_duration_s=max_dur,
            facilities=facilities, end_empty=vt.end_empty, name=vt.id,
        )


def _stop(s: routing_pb2.Stop, path: str, location: int, n_dim: int) -> Stop:
    if s.allowed_vehicle_type_indices:
        _unsupported(f"{path}.allowed_vehicle_type_indices", "restricting a stop to vehicle types")
    if n_dim and len(s.demand) != n_dim:
        raise InvalidArgumentError(f"{path}.demand", f"has {len(s.demand)} entries, "
                                   f"problem.dimensions has {n_dim}")
    windows = tuple(_window(f"{path}.time_windows[{k}]", tw) for k, tw in enumerate(s.time_windows))
    with under(path):
        return Stop(
            id=s.id, location=location, demand=tuple(s.demand),
            service_duration_s=_seconds_up("service_duration_s", s.service_duration_s),
            time_windows=windows, required=not s.optional_visit,
            penalty=_finite("skip_penalty", s.skip_penalty) if s.optional_visit else 0.0,
        )


def options_from_proto(o: routing_pb2.SolveOptions, max_time_limit_s: float,
                       field: str = "options") -> SolveOptions:
    """``wasteml.v1.SolveOptions`` -> domain :class:`SolveOptions`.

    ``time_limit`` unset means :data:`DEFAULT_TIME_LIMIT_S` (as the contract says), capped at
    ``max_time_limit_s``; set, it must be > 0 and <= ``max_time_limit_s``. ENGINE_UNSPECIFIED
    is AUTO (the measured default engine).

    Raises:
        InvalidArgumentError: ``options.time_limit`` out of range, or an option the domain
            cannot honour (``options.no_improvement_limit``, a strategy it does not offer).
    """
    if o.HasField("time_limit"):
        limit = o.time_limit.seconds + o.time_limit.nanos / 1e9
        if not limit > 0:
            raise InvalidArgumentError(f"{field}.time_limit", "must be > 0 seconds")
        if limit > max_time_limit_s:
            raise InvalidArgumentError(f"{field}.time_limit",
                                       f"{limit:g} s is above this server's maximum of {max_time_limit_s:g} s")
    else:
        limit = min(DEFAULT_TIME_LIMIT_S, max_time_limit_s)
    if o.HasField("no_improvement_limit"):
        _unsupported(f"{field}.no_improvement_limit", "stopping on stagnation")
    if o.engine not in _ENGINE_IN:
        raise InvalidArgumentError(f"{field}.engine", f"unknown engine {o.engine}")
    first = _FIRST.get(o.first_solution_strategy)
    if first is None:
        _unsupported(f"{field}.first_solution_strategy",
                     routing_pb2.FirstSolutionStrategy.Name(o.first_solution_strategy))
    meta = _META.get(o.local_search_metaheuristic)
    if meta is None:
        _unsupported(f"{field}.local_search_metaheuristic",
                     routing_pb2.LocalSearchMetaheuristic.Name(o.local_search_metaheuristic))
    return SolveOptions(time_limit_s=limit, engine=_ENGINE_IN[o.engine], seed=int(o.seed),
                        first_solution_strategy=first, local_search_metaheuristic=meta)


def options_to_proto(o: SolveOptions) -> routing_pb2.SolveOptions:
    """Domain :class:`SolveOptions` -> ``wasteml.v1.SolveOptions`` (for Job replies)."""
    out = routing_pb2.SolveOptions(
        engine={v: k for k, v in _ENGINE_IN.items()}[o.engine],
        first_solution_strategy={v: k for k, v in _FIRST.items()
                                 if k != routing_pb2.FIRST_SOLUTION_STRATEGY_UNSPECIFIED}[
            o.first_solution_strategy],
        local_search_metaheuristic={v: k for k, v in _META.items()
                                    if k != routing_pb2.LOCAL_SEARCH_METAHEURISTIC_UNSPECIFIED}[
            o.local_search_metaheuristic],
        seed=o.seed,
    )
    out.time_limit.FromNanoseconds(int(round(o.time_limit_s * 1e9)))
    return out


# --- solutions ---------------------------------------------------------------------------------

_NO_SOLUTION = ("no solution was found", "no valid solution")


def unassigned_reason(reason: str, required: bool) -> int:
    """The contract's ``UnassignedReason`` for a domain reason string.

    The domain's reasons come from ``feasibility.screen`` ("no vehicle can serve it: ...", with
    one clause per vehicle type), ``schedule.build_solution`` ("dropped by the solver ...", "no
    solution was found", "no valid solution") and the pool ("no solution was found in time").
    """
    if reason.startswith("no vehicle can serve it"):
        clauses = reason.split(": ", 1)[1].split("; ")
        capacity = ["exceeds capacity" in c for c in clauses]
        if all(capacity):
            return routing_pb2.UNASSIGNED_REASON_CAPACITY_EXCEEDED
        if not any(capacity):
            return routing_pb2.UNASSIGNED_REASON_TIME_WINDOW_UNREACHABLE
        return routing_pb2.UNASSIGNED_REASON_NO_COMPATIBLE_VEHICLE
    if reason.startswith(_NO_SOLUTION):
        return routing_pb2.UNASSIGNED_REASON_TIME_LIMIT
    if reason.startswith("dropped by the solver") and not required:
        return routing_pb2.UNASSIGNED_REASON_OPTIONAL_SKIPPED
    return routing_pb2.UNASSIGNED_REASON_UNSPECIFIED


#: ``pool._complete`` writes "portfolio: pyvrp 123.45, ortools INFEASIBLE; pyvrp won" (or
#: "<engine> failed"); the domain Solution carries per-engine results only in that note.
_PORTFOLIO_PART = re.compile(r"^(ortools|pyvrp) (?:(-?[\d.]+(?:e[-+]?\d+)?)|([A-Z_]+)|failed)$")


def _engine_runs(s: Solution) -> list[routing_pb2.EngineRun]:
    note = next((part for part in s.message.split("; ") if part.startswith("portfolio: ")), None)
    if note is None:
        run = routing_pb2.EngineRun(engine=ENGINE_TO_PROTO.get(s.engine, 0), status=STATUS_TO_PROTO[s.status],
                                    note=s.message)
        if s.feasible:
            run.objective = s.objective.total
        if s.first_feasible_s is not None:
            run.time_to_first_feasible_s = s.first_feasible_s
        return [run]
    runs = []
    for part in note[len("portfolio: "):].split(", "):
        m = _PORTFOLIO_PART.match(part.strip())
        if m is None:
            continue
        engine, objective, status = m.groups()
        run = routing_pb2.EngineRun(engine=ENGINE_TO_PROTO[engine])
        if objective is not None:
            run.status = routing_pb2.SOLUTION_STATUS_FEASIBLE
            run.objective = float(objective)
        elif status is not None and status in SolveStatus.__members__:
            run.status = STATUS_TO_PROTO[SolveStatus[status]]
        else:
            run.note = f"{engine} failed"
        if engine == s.engine and s.first_feasible_s is not None:
            run.time_to_first_feasible_s = s.first_feasible_s
            run.status = STATUS_TO_PROTO[s.status]
        runs.append(run)
    return runs


def solution_to_proto(s: Solution, problem: Problem) -> routing_pb2.Solution:
    """Domain :class:`Solution` -> ``wasteml.v1.Solution``.

    Each route starts with a visit of its start depot (arrival = service start = departure =
    route start) and ends with one of its end depot (at the route end); distances and travel
    times from the previous visit are read from ``problem``'s matrices.
    """
    out = routing_pb2.Solution(
        status=STATUS_TO_PROTO[s.status], engine=ENGINE_TO_PROTO.get(s.engine, routing_pb2.ENGINE_UNSPECIFIED),
        solve_time_s=s.elapsed_s,
    )
    if s.first_feasible_s is not None:
        out.time_to_first_feasible_s = s.first_feasible_s
    dist, dur = problem.distance_m, problem.duration_s
    n_dim = problem.num_dimensions
    total_duration = 0
    for r in s.routes:
        vt = problem.vehicle_types[r.vehicle_type]
        start_depot, end_depot = problem.depots[vt.start_depot], problem.depots[vt.end_depot]
        route = out.routes.add(vehicle_type_index=r.vehicle_type, vehicle_index=r.vehicle,
                               vehicle_id=f"{vt.name or f'type{r.vehicle_type}'}-{r.vehicle}",
                               distance_m=r.distance_m, duration_s=r.duration_s, start_s=r.start_s,
                               end_s=r.end_s, cost=r.cost)
        route.visits.add(kind=routing_pb2.VISIT_KIND_DEPOT, index=vt.start_depot, id=start_depot.name,
                         arrival_s=r.start_s, service_start_s=r.start_s, departure_s=r.start_s,
                         load_after=[0] * n_dim)
        prev = start_depot.location
        driving = 0
        for v in r.visits:
            if v.kind is VisitKind.STOP:
                site, kind = problem.stops[v.index], routing_pb2.VISIT_KIND_STOP
                loc, sid = site.location, site.id
            else:
                site, kind = problem.facilities[v.index], routing_pb2.VISIT_KIND_FACILITY
                loc, sid = site.location, site.name
                route.facility_visits += 1
            driving += int(dur[prev, loc])
            route.visits.add(kind=kind, index=v.index, id=sid, arrival_s=v.arrival_s,
                             service_start_s=v.start_s, departure_s=v.departure_s,
                             load_after=list(v.load_after),
                             distance_from_previous_m=float(dist[prev, loc]),
                             travel_time_from_previous_s=float(dur[prev, loc]))
            prev = loc
        end_loc = end_depot.location
        driving += int(dur[prev, end_loc])
        route.visits.add(kind=routing_pb2.VISIT_KIND_DEPOT, index=vt.end_depot, id=end_depot.name,
                         arrival_s=r.end_s, service_start_s=r.end_s, departure_s=r.end_s,
                         load_after=list(r.visits[-1].load_after) if r.visits else [0] * n_dim,
                         distance_from_previous_m=float(dist[prev, end_loc]),
                         travel_time_from_previous_s=float(dur[prev, end_loc]))
        route.driving_s = driving
        total_duration += r.duration_s
    o = s.objective
    out.objective.CopyFrom(routing_pb2.ObjectiveBreakdown(
        total=o.total, distance_m=o.distance_m, duration_s=total_duration, vehicles_used=o.vehicles,
        fixed_cost=o.fixed_cost, distance_cost=o.distance_cost, penalty=o.penalty))
    for u in s.unassigned:
        out.unassigned_stops.add(stop_index=u.stop, stop_id=u.stop_id, detail=u.reason,
                                 reason=unassigned_reason(u.reason, problem.stops[u.stop].required))
    if not s.feasible and s.message:
        out.infeasibility_reasons.append(s.message)
    out.engine_runs.extend(_engine_runs(s))
    return out


def problem_to_proto(problem: Problem) -> routing_pb2.Problem:
    """Domain :class:`Problem` -> ``wasteml.v1.Problem`` with its matrices (the inverse of
    :func:`problem_from_proto` for matrix problems; used by clients, benchmarks and tests).

    Every vehicle type lists its reload facilities explicitly; a shift of ``[0, 2 * DAY_S]``
    is sent as is (not as "unset").
    """
    size = len(problem.locations)
    out = routing_pb2.Problem(name=problem.name)
    out.matrix.size = size
    out.matrix.distances_m.extend(problem.distance_m.ravel().astype(float).tolist())
    out.matrix.durations_s.extend(problem.duration_s.ravel().astype(float).tolist())

    def place(msg, loc: int) -> None:
        msg.location_index = loc
        where = problem.locations[loc]
        if where.lat_deg is not None:
            msg.location.latitude_deg, msg.location.longitude_deg = where.lat_deg, where.lon_deg

    for d in problem.depots:
        place(out.depots.add(id=d.name), d.location)
    for f in problem.facilities:
        msg = out.facilities.add(id=f.name, kind=routing_pb2.FACILITY_KIND_DUMP,
                                 service_duration_s=f.service_duration_s)
        place(msg, f.location)
        if f.time_window is not None:
            msg.time_windows.add(start_s=f.time_window.start_s, end_s=f.time_window.end_s)
    for vt in problem.vehicle_types:
        msg = out.vehicle_types.add(id=vt.name, count=vt.count, capacity=list(vt.capacity),
                                    start_depot_index=vt.start_depot, end_depot_index=vt.end_depot,
                                    fixed_cost=vt.fixed_cost, cost_per_km=vt.cost_per_km,
                                    reload_facility_indices=list(vt.facilities), end_empty=vt.end_empty)
        msg.shift.start_s, msg.shift.end_s = vt.shift.start_s, vt.shift.end_s
        if vt.max_route_duration_s is not None:
            msg.max_route_duration_s = vt.max_route_duration_s
    for s in problem.stops:
        msg = out.stops.add(id=s.id, demand=list(s.demand), service_duration_s=s.service_duration_s,
                            optional_visit=not s.required, skip_penalty=s.penalty)
        place(msg, s.location)
        for tw in s.time_windows:
            msg.time_windows.add(start_s=tw.start_s, end_s=tw.end_s)
    return out
