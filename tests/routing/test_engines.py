"""Both engines on real data (Solomon C101, Blantyre), re-checked independently of the solvers."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from routing_checker import DATA_DIR, violations

from wasteml_server.core.errors import InvalidArgumentError
from wasteml_server.routing.builder import TravelMatrix, build_problem
from wasteml_server.routing.engine import Budget, Progress
from wasteml_server.routing.options import EngineName
from wasteml_server.routing.ortools_engine import OrToolsEngine
from wasteml_server.routing.portfolio import engines_for
from wasteml_server.routing.problem import Depot, Facility, Problem, Stop, TimeWindow, VehicleType
from wasteml_server.routing.pyvrp_engine import PyVrpEngine
from wasteml_server.routing.solution import SolveStatus, UnassignedReason, VisitKind
from wasteml_tools.routing.blantyre import day_problem
from wasteml_tools.routing.instances import load_instance

ENGINES = [OrToolsEngine(), PyVrpEngine()]
IDS = [e.name.value for e in ENGINES]


@pytest.fixture(scope="module")
def c101_25() -> Problem:
    """Solomon C101 (real benchmark data) truncated to its first 25 customers."""
    return load_instance(DATA_DIR / "vrp", "C101", max_customers=25).problem


@pytest.mark.parametrize("engine", ENGINES, ids=IDS)
def test_solomon_c101_25_feasible_and_independently_checked(engine, c101_25):
    """Each engine returns a feasible C101-25 plan: every customer visited once within its time
    window, capacities held, routes from and back to the depot within its hours, and reported
    distance equal to the matrix sum; progress reports improve monotonically."""
    progress: list[Progress] = []
    sol = engine.solve(c101_25, Budget(2.0), progress.append)
    assert sol.status is SolveStatus.FEASIBLE and sol.engine == engine.name
    assert violations(c101_25, sol) == []
    assert sorted(i for r in sol.routes for i in r.stop_indices) == list(range(25))
    assert sol.time_to_first_feasible_s is not None and sol.time_to_first_feasible_s <= sol.solve_time_s
    objectives = [p.objective for p in progress]
    assert objectives and objectives == sorted(objectives, reverse=True)
    assert objectives[-1] == pytest.approx(sol.objective.total)


@pytest.mark.parametrize("engine", ENGINES, ids=IDS)
def test_optional_stops_dropped_only_when_too_costly(engine, c101_25):
    """An optional stop whose penalty is below the detour it needs is left out with a reason;
    with a penalty far above the detour it is visited."""
    far = max(range(25), key=lambda i: c101_25.distance_m[0, c101_25.stop_location(i)])
    stops = list(c101_25.stops)
    stops[far] = replace(stops[far], optional_visit=True, skip_penalty=0.001)
    cheap = replace(c101_25, stops=tuple(stops))
    sol = engine.solve(cheap, Budget(1.5))
    assert violations(cheap, sol) == []
    assert [u.stop_index for u in sol.unassigned_stops] == [far]
    assert sol.unassigned_stops[0].reason is UnassignedReason.OPTIONAL_SKIPPED
    assert "penalty" in sol.unassigned_stops[0].detail
    assert sol.objective.penalty == pytest.approx(0.001)
    stops[far] = replace(stops[far], skip_penalty=1e6)
    dear = replace(c101_25, stops=tuple(stops))
    sol = engine.solve(dear, Budget(1.5))
    assert violations(dear, sol) == [] and sol.unassigned_stops == ()


def test_unservable_optional_stop_reported_with_reason(c101_25):
    """An optional stop no vehicle can reach in time is left out up front with the screening reason."""
    stops = list(c101_25.stops)
    stops[3] = replace(stops[3], optional_visit=True, skip_penalty=100.0, time_windows=(TimeWindow(0, 1),))
    problem = replace(c101_25, stops=tuple(stops))
    for engine in ENGINES:
        sol = engine.solve(problem, Budget(1.0))
        assert violations(problem, sol) == []
        assert [(u.stop_index, u.reason, "no vehicle can serve it" in u.detail) for u in sol.unassigned_stops] == \
            [(3, UnassignedReason.TIME_WINDOW_UNREACHABLE, True)]


@pytest.mark.parametrize("engine", ENGINES, ids=IDS)
def test_several_time_windows_per_stop(engine):
    """A stop with a morning and an afternoon window is served in one of them, never between;
    an optional stop with two windows and a high penalty is served too, and the last progress
    report equals the reply's objective (no constant offset from the window copies)."""
    dist = np.array([[0, 1000, 1000, 800], [1000, 0, 1000, 900], [1000, 1000, 0, 700],
                     [800, 900, 700, 0]])
    stops = (Stop("two-windows", location_index=1, demand=(1,), service_duration_s=60,
                  time_windows=(TimeWindow(0, 100), TimeWindow(5000, 6000))),
             Stop("any", location_index=2, demand=(1,), service_duration_s=60),
             Stop("optional-two-windows", location_index=3, demand=(1,), service_duration_s=60,
                  time_windows=(TimeWindow(0, 50), TimeWindow(3000, 9000)),
                  optional_visit=True, skip_penalty=500.0))
    problem = build_problem(depots=(Depot(location_index=0),),
                            vehicle_types=(VehicleType(1, (5,), TimeWindow(1000, 20000)),), stops=stops,
                            matrix=TravelMatrix.from_arrays(dist, dist.copy()))
    progress: list[Progress] = []
    sol = engine.solve(problem, Budget(1.0), progress.append)
    assert violations(problem, sol) == [] and sol.unassigned_stops == ()
    visit = next(v for r in sol.routes for v in r.visits if v.kind is VisitKind.STOP and v.index == 0)
    assert 5000 <= visit.service_start_s <= 6000
    assert progress[-1].objective == pytest.approx(sol.objective.total)


@pytest.mark.parametrize("engine", ENGINES, ids=IDS)
def test_blantyre_multi_trip_day(engine):
    """On the real Blantyre road matrix, 3 skip loaders serve 8 required skips and choose among
    10 optional ones: each lift is followed by a dump visit (capacity one skip), trucks end
    empty within the 8-hour shift, and the plan passes the independent check."""
    problem = day_problem([1, 2, 3, 5, 8, 13, 21, 34], {b: 30.0 for b in range(40, 50)},
                          trucks=3, data_dir=DATA_DIR)
    sol = engine.solve(problem, Budget(3.0))
    assert sol.status is SolveStatus.FEASIBLE
    assert violations(problem, sol) == []
    for route in sol.routes:
        assert route.visits[0].kind is route.visits[-1].kind is VisitKind.DEPOT
        kinds = [v.kind for v in route.visits[1:-1]]
        assert kinds == [VisitKind.STOP, VisitKind.FACILITY] * (len(kinds) // 2)
        assert route.end_s <= 15 * 3600
    served = {problem.stops[i].id for r in sol.routes for i in r.stop_indices}
    assert {f"skip-{b}" for b in (1, 2, 3, 5, 8, 13, 21, 34)} <= served


def test_engine_that_cannot_express_a_problem_is_skipped():
    """PyVRP declares a timed final tip unsupported; AUTO and the portfolio fall back to
    OR-Tools, and asking PyVRP alone is an INVALID_ARGUMENT on field "engine"."""
    dist = np.array([[0, 500, 900], [500, 0, 400], [900, 400, 0]])
    vehicle = VehicleType(1, (1,), TimeWindow(0, 36000), reload_facility_indices=(0,), end_empty=True)
    problem = build_problem(
        depots=(Depot(location_index=0),), vehicle_types=(vehicle,),
        stops=(Stop("s", location_index=1, demand=(1,)),),
        facilities=(Facility(location_index=2, service_duration_s=60, time_windows=(TimeWindow(0, 30000),)),),
        matrix=TravelMatrix.from_arrays(dist, dist.copy()))
    assert PyVrpEngine().unsupported(problem) is not None
    assert engines_for(problem, EngineName.AUTO).engines == (EngineName.ORTOOLS,)
    portfolio = engines_for(problem, EngineName.PORTFOLIO)
    assert portfolio.engines == (EngineName.ORTOOLS,)
    assert [name for name, _ in portfolio.left_out] == [EngineName.PYVRP]
    with pytest.raises(InvalidArgumentError) as err:
        engines_for(problem, EngineName.PYVRP)
    assert err.value.field == "engine"
    sol = OrToolsEngine().solve(problem, Budget(1.0))
    assert violations(problem, sol) == [] and sol.routes[0].visits[-2].kind is VisitKind.FACILITY
