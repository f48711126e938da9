"""codecs.routing (with the problem builder): protobuf <-> domain round trips on real instances
(a Solomon slice, the Blantyre day), coordinates through the speed model, solutions with depot
visits and reasons, and every bad or unsupported field named by its request path."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from wasteml_testing import DATA_DIR

from wasteml.v1 import routing_pb2
from wasteml_server.codecs.routing import (
    options_from_proto,
    options_to_proto,
    problem_from_proto,
    problem_to_proto,
    solution_to_proto,
)
from wasteml_server.core.errors import InvalidArgumentError, under
from wasteml_server.routing.builder import haversine_matrices
from wasteml_server.routing.engine import Budget
from wasteml_server.routing.feasibility import screen
from wasteml_server.routing.options import EngineName, SolveOptions
from wasteml_server.routing.ortools_engine import OrToolsEngine
from wasteml_server.routing.problem import Problem, TimeWindow
from wasteml_server.routing.pyvrp_engine import PyVrpEngine
from wasteml_server.routing.schedule import build_solution
from wasteml_server.routing.solution import SolveStatus, UnassignedReason, VisitKind
from wasteml_tools.routing.blantyre import day_problem
from wasteml_tools.routing.instances import load_instance


@pytest.fixture(scope="module")
def solomon() -> Problem:
    """The first 25 customers of Solomon RC101 (real data, DIMACS integer form)."""
    return load_instance(DATA_DIR / "vrp", "RC101", max_customers=25).problem


@pytest.fixture(scope="module")
def blantyre() -> Problem:
    """A real Blantyre day: ten required skips, two optional ones, the dump as facility."""
    return day_problem(list(range(1, 11)), {20: 5.0, 21: 5.0}, data_dir=DATA_DIR)


def _decode(msg: routing_pb2.Problem) -> Problem:
    """Decode as the servicer does: under the request's ``problem`` field."""
    with under("problem"):
        return problem_from_proto(msg)


def _same(a: Problem, b: Problem) -> None:
    """Equal on what the contract carries: sites, fleet, matrices, and the coordinates of every
    location a site uses (unused locations are not sent)."""
    used = ({d.location_index for d in b.depots} | {f.location_index for f in b.facilities}
            | {s.location_index for s in b.stops})
    assert len(a.locations) == len(b.locations)
    assert [a.locations[i] for i in sorted(used)] == [b.locations[i] for i in sorted(used)]
    assert (a.depots, a.vehicle_types, a.stops, a.facilities, a.dimensions, a.name) == \
        (b.depots, b.vehicle_types, b.stops, b.facilities, b.dimensions, b.name)
    assert np.array_equal(a.distance_m, b.distance_m) and np.array_equal(a.duration_s, b.duration_s)


@pytest.mark.parametrize("name", ["solomon", "blantyre"])
def test_problem_round_trip_is_lossless(name: str, request: pytest.FixtureRequest) -> None:
    """problem_from_proto(problem_to_proto(p)) gives back p on the Solomon slice and the Blantyre day."""
    problem = request.getfixturevalue(name)
    _same(_decode(problem_to_proto(problem)), problem)


def test_coordinates_without_matrix_use_the_speed_model(blantyre: Problem) -> None:
    """Without a matrix, locations are the depots', facilities' and stops' GeoPoints in that
    order and the matrices are haversine x detour at the speed model's speed."""
    msg = problem_to_proto(blantyre)
    msg.ClearField("matrix")
    for site in [*msg.depots, *msg.facilities, *msg.stops]:
        site.ClearField("location_index")
    msg.speed_model.speed_m_per_s = 5.0
    msg.speed_model.detour_factor = 1.3
    got = _decode(msg)
    order = [blantyre.depots[0].location, blantyre.facilities[0].location, *(s.location for s in blantyre.stops)]
    lat = np.array([p.latitude_deg for p in order])
    lon = np.array([p.longitude_deg for p in order])
    dist, dur = haversine_matrices(lat, lon, detour_factor=1.3, speed_kmh=18.0)
    assert np.array_equal(got.distance_m, dist) and np.array_equal(got.duration_s, dur)
    assert [s.location_index for s in got.stops] == list(range(2, 2 + len(blantyre.stops)))
    assert got.facilities[0].location_index == 1 and got.depots[0].location_index == 0
    assert list(got.locations) == order


def test_contract_defaults_map_to_the_domain(solomon: Problem) -> None:
    """Unset end depot = start depot, empty reload list = every facility, unset cost per km =
    the domain default, a depot's opening hours narrow the shift, no durations = distance/speed."""
    msg = problem_to_proto(solomon)
    msg.facilities.add(id="dump", location_index=0, service_duration_s=60.4)
    vt = msg.vehicle_types[0]
    vt.ClearField("end_depot_index")
    vt.ClearField("cost_per_km")
    del vt.reload_facility_indices[:]
    msg.depots[0].time_window.start_s, msg.depots[0].time_window.end_s = 100.2, 2000.7
    msg.matrix.ClearField("durations_s")
    msg.speed_model.speed_m_per_s = 2.0
    got = _decode(msg)
    gvt = got.vehicle_types[0]
    assert gvt.end_depot_index == gvt.start_depot_index == 0 and gvt.reload_facility_indices == (0,)
    assert gvt.cost_per_km == 1.0 and gvt.shift == TimeWindow(101, 2000)
    assert got.depots[0].time_window == TimeWindow(101, 2000)
    assert got.facilities[0].service_duration_s == 61
    assert np.array_equal(got.duration_s, np.rint(solomon.distance_m / 2.0))


def _bad(base: routing_pb2.Problem, change: Callable[[routing_pb2.Problem], object]) -> InvalidArgumentError:
    msg = routing_pb2.Problem()
    msg.CopyFrom(base)
    change(msg)
    with pytest.raises(InvalidArgumentError) as err:
        _decode(msg)
    return err.value


def _set(path: str, value: object) -> Callable[[routing_pb2.Problem], None]:
    def change(msg: routing_pb2.Problem) -> None:
        *parents, leaf = path.split(".")
        target = msg
        for part in parents:
            name, _, index = part.partition("[")
            target = getattr(target, name)
            if index:
                target = target[int(index[:-1])]
        setattr(target, leaf, value)
    return change


BAD_FIELDS = [
    (_set("stops[2].time_windows[0].end_s", 1.0), "problem.stops[2].time_windows[0].end_s", "before"),
    (_set("stops[2].time_windows[0].start_s", -5.0), "problem.stops[2].time_windows[0].start_s", ""),
    (lambda m: m.stops[3].ClearField("location_index"), "problem.stops[3].location_index", "required"),
    (_set("stops[3].location_index", 999), "problem.stops[3].location_index", "index"),
    (lambda m: m.matrix.distances_m.pop(), "problem.matrix.distances_m", "size * size"),
    (lambda m: m.matrix.durations_s.__setitem__(27, -1.0), "problem.matrix.durations_s[27]", ">= 0"),
    (_set("stops[1].skip_penalty", -1.0), None, None),  # ignored for a required stop: valid
    (lambda m: (_set("stops[1].optional_visit", True)(m), _set("stops[1].skip_penalty", -1.0)(m)),
     "problem.stops[1].skip_penalty", ">= 0"),
    (lambda m: m.stops[0].demand.append(1), "problem.stops[0].demand", "vehicle_types[0].capacity"),
    (_set("stops[4].id", "1"), "problem.stops[4].id", "duplicate"),
    (_set("stops[0].service_duration_s", float("nan")), "problem.stops[0].service_duration_s", "finite"),
    (_set("vehicle_types[0].count", 0), "problem.vehicle_types[0].count", ">= 1"),
    (_set("vehicle_types[0].start_depot_index", 3), "problem.vehicle_types[0].start_depot_index", "depots"),
    (_set("vehicle_types[0].end_depot_index", -1), "problem.vehicle_types[0].end_depot_index", "depots"),
    (_set("vehicle_types[0].end_empty", True), "problem.vehicle_types[0].end_empty", "facility"),
    (lambda m: m.vehicle_types[0].reload_facility_indices.append(2),
     "problem.vehicle_types[0].reload_facility_indices[0]", "facilities"),
    (_set("vehicle_types[0].cost_per_km", -2.0), "problem.vehicle_types[0].cost_per_km", ">= 0"),
    (_set("vehicle_types[0].cost_per_hour", 30.0), "problem.vehicle_types[0].cost_per_hour", "not supported"),
    (_set("vehicle_types[0].max_route_distance_m", 1e5), "problem.vehicle_types[0].max_route_distance_m",
     "not supported"),
    (_set("vehicle_types[0].max_reloads", 2), "problem.vehicle_types[0].max_reloads", "not supported"),
    (lambda m: m.stops[5].allowed_vehicle_type_indices.append(0),
     "problem.stops[5].allowed_vehicle_type_indices", "not supported"),
    (lambda m: (m.facilities.add(id="f", location_index=0).time_windows.add(start_s=0, end_s=10),
                m.facilities[0].time_windows.add(start_s=20, end_s=30)),
     "problem.facilities[0].time_windows", "not supported"),
    (lambda m: (_set("depots[0].time_window.start_s", 5000.0)(m), _set("depots[0].time_window.end_s", 6000.0)(m),
                _set("vehicle_types[0].shift.end_s", 100.0)(m)), "problem.vehicle_types[0].shift", "overlap"),
    (lambda m: m.stops[0].location.__setattr__("latitude_deg", 123.0), "problem.stops[0].location.latitude_deg",
     "-90..90"),
    (lambda m: m.ClearField("depots"), "problem.depots", "at least one"),
    (_set("speed_model.detour_factor", 0.5), "problem.speed_model.detour_factor", ">= 1"),
]


@pytest.mark.parametrize("change,field,words", BAD_FIELDS)
def test_every_bad_field_is_named(solomon: Problem, change, field: str | None, words: str | None) -> None:
    """Each bad or unsupported field of a problem is an InvalidArgumentError naming its proto path."""
    base = problem_to_proto(solomon)
    base.stops[0].location.latitude_deg, base.stops[0].location.longitude_deg = 0.0, 0.0
    if field is None:
        msg = routing_pb2.Problem()
        msg.CopyFrom(base)
        change(msg)
        _decode(msg)
        return
    err = _bad(base, change)
    assert err.field == field, err
    assert words in err.violations[0].description


def test_coordinate_problems_name_a_missing_location(blantyre: Problem) -> None:
    """Without a matrix, a site without a GeoPoint is named, relative to the problem message; the
    caller's scope adds its own prefix."""
    msg = problem_to_proto(blantyre)
    msg.ClearField("matrix")
    msg.stops[4].ClearField("location")
    with pytest.raises(InvalidArgumentError) as err:
        _decode(msg)
    assert err.value.field == "problem.stops[4].location"
    with pytest.raises(InvalidArgumentError) as err:
        problem_from_proto(msg)
    assert err.value.field == "stops[4].location"


def _options(seconds: float, **kw) -> routing_pb2.SolveOptions:
    out = routing_pb2.SolveOptions(**kw)
    out.time_limit.FromNanoseconds(int(seconds * 1e9))
    return out


def _limited(msg: routing_pb2.SolveOptions, max_time_limit_s: float) -> SolveOptions:
    """Decode and limit as the servicer and the pool do: under the request's ``options`` field."""
    with under("options"):
        return options_from_proto(msg).limited(max_time_limit_s)


def test_options_map_and_bad_options_are_named() -> None:
    """Engines and strategies map both ways; time limit <= 0 or above the maximum, stagnation
    stops and strategies the domain lacks are INVALID_ARGUMENT on their field."""
    o = _limited(_options(2.5, engine=routing_pb2.ENGINE_PORTFOLIO, seed=7,
                          first_solution_strategy=routing_pb2.FIRST_SOLUTION_STRATEGY_SAVINGS), 10.0)
    assert (o.time_limit_s, o.engine, o.seed, o.first_solution_strategy.value) == \
        (2.5, EngineName.PORTFOLIO, 7, "SAVINGS")
    assert options_from_proto(options_to_proto(o)) == o
    assert options_from_proto(routing_pb2.SolveOptions()) == SolveOptions()
    assert _limited(routing_pb2.SolveOptions(), 300.0) == SolveOptions(time_limit_s=10.0)
    assert _limited(routing_pb2.SolveOptions(), 3.0).time_limit_s == 3.0
    bad = [
        (_options(0.0), "options.time_limit"),
        (_options(-1.0), "options.time_limit"),
        (_options(11.0), "options.time_limit"),
        (routing_pb2.SolveOptions(no_improvement_limit={"seconds": 5}), "options.no_improvement_limit"),
        (_options(1.0, first_solution_strategy=routing_pb2.FIRST_SOLUTION_STRATEGY_SWEEP),
         "options.first_solution_strategy"),
        (_options(1.0, local_search_metaheuristic=routing_pb2.LOCAL_SEARCH_METAHEURISTIC_GENERIC_TABU_SEARCH),
         "options.local_search_metaheuristic"),
    ]
    for msg, field in bad:
        with pytest.raises(InvalidArgumentError) as err:
            _limited(msg, 10.0)
        assert err.value.field == field


def _check_reply(problem: Problem, sol, out: routing_pb2.Solution) -> None:
    assert out.status == routing_pb2.SOLUTION_STATUS_FEASIBLE and len(out.routes) == len(sol.routes)
    kinds = {VisitKind.DEPOT: routing_pb2.VISIT_KIND_DEPOT, VisitKind.STOP: routing_pb2.VISIT_KIND_STOP,
             VisitKind.FACILITY: routing_pb2.VISIT_KIND_FACILITY}
    for r, msg in zip(sol.routes, out.routes, strict=True):
        vt = problem.vehicle_types[r.vehicle_type_index]
        assert (msg.vehicle_type_index, msg.vehicle_index) == (r.vehicle_type_index, r.vehicle_index)
        assert msg.visits[0].kind == msg.visits[-1].kind == routing_pb2.VISIT_KIND_DEPOT
        assert (msg.visits[0].departure_s, msg.visits[-1].arrival_s) == (r.start_s, r.end_s)
        assert [(v.kind, v.index, v.id, v.arrival_s, v.service_start_s, v.departure_s, list(v.load_after))
                for v in msg.visits] == \
            [(kinds[v.kind], v.index, v.id, v.arrival_s, v.service_start_s, v.departure_s, list(v.load_after))
             for v in r.visits]
        assert sum(v.distance_from_previous_m for v in msg.visits) == r.distance_m == msg.distance_m
        assert sum(v.travel_time_from_previous_s for v in msg.visits) == msg.driving_s
        assert msg.facility_visits == sum(v.kind is VisitKind.FACILITY for v in r.visits)
        assert msg.vehicle_id == f"{vt.id}-{r.vehicle_index}" and msg.cost == pytest.approx(r.cost)
    assert out.objective.total == pytest.approx(sol.objective.total)
    assert out.objective.distance_m == sol.objective.distance_m
    assert out.objective.vehicles_used == len(sol.routes)
    assert out.objective.duration_s == sum(r.duration_s for r in sol.routes)


def test_solomon_solution_reply_matches_the_domain(solomon: Problem) -> None:
    """An OR-Tools solution of the Solomon slice converts with depot visits, per-leg distances
    that add up to each route, the objective parts and one engine run."""
    sol = OrToolsEngine().solve(solomon, Budget(1.0))
    out = solution_to_proto(sol)
    _check_reply(solomon, sol, out)
    assert out.engine == routing_pb2.ENGINE_ORTOOLS
    assert [r.engine for r in out.engine_runs] == [routing_pb2.ENGINE_ORTOOLS]
    assert out.engine_runs[0].objective == pytest.approx(sol.objective.total)


def test_blantyre_solution_reply_counts_dump_trips(blantyre: Problem) -> None:
    """A PyVRP plan of the Blantyre day converts with one dump trip per skip and empty trucks
    back at the yard; optional skips it leaves out are OPTIONAL_SKIPPED."""
    sol = PyVrpEngine().solve(blantyre, Budget(1.0))
    out = solution_to_proto(sol)
    _check_reply(blantyre, sol, out)
    served = sum(len(r.stop_indices) for r in sol.routes)
    assert sum(r.facility_visits for r in out.routes) == served
    assert all(r.visits[-1].load_after == [0] for r in out.routes)
    assert all(u.reason == routing_pb2.UNASSIGNED_REASON_OPTIONAL_SKIPPED for u in out.unassigned_stops)
    assert out.routes[0].visits[0].id == blantyre.depots[0].id


def test_unassigned_reasons_follow_the_domain_explanations(blantyre: Problem) -> None:
    """Screening and scheduling explanations map to CAPACITY_EXCEEDED, TIME_WINDOW_UNREACHABLE,
    OPTIONAL_SKIPPED and TIME_LIMIT, with the explanation kept as detail."""
    msg = problem_to_proto(blantyre)
    msg.stops[10].demand[0] = 2  # optional skip 20: two skips on a one-skip truck
    msg.stops[11].time_windows.add(start_s=0, end_s=60)  # optional skip 21: open before the shift
    problem = _decode(msg)
    screened = screen(problem)
    assert screened[10].reason is UnassignedReason.CAPACITY_EXCEEDED
    assert screened[11].reason is UnassignedReason.TIME_WINDOW_UNREACHABLE
    none = build_solution(problem, EngineName.PYVRP, [], status=SolveStatus.NO_SOLUTION_IN_TIME, elapsed_s=1.0,
                          first_feasible_s=None)
    out = solution_to_proto(none)
    assert out.status == routing_pb2.SOLUTION_STATUS_NO_SOLUTION_IN_TIME and not out.routes
    assert {u.reason for u in out.unassigned_stops} == {routing_pb2.UNASSIGNED_REASON_TIME_LIMIT}
    sol = PyVrpEngine().solve(problem, Budget(1.0))
    out = solution_to_proto(sol)
    reasons = {u.stop_index: (u.reason, u.detail) for u in out.unassigned_stops}
    assert reasons[10] == (routing_pb2.UNASSIGNED_REASON_CAPACITY_EXCEEDED, screened[10].detail)
    assert reasons[11][0] == routing_pb2.UNASSIGNED_REASON_TIME_WINDOW_UNREACHABLE
