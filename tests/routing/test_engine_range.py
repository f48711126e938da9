"""Issue 12 finding 12: values at the edge of the engines' 64-bit integer range solve exactly in
both engines, and one step beyond is refused naming the field (never solved into a wrapped,
negative objective)."""

from __future__ import annotations

import numpy as np
import pytest
from routing_checker import violations

from wasteml_server.core.errors import InvalidArgumentError
from wasteml_server.routing.builder import TravelMatrix, build_problem
from wasteml_server.routing.engine import Budget
from wasteml_server.routing.ortools_engine import OrToolsEngine
from wasteml_server.routing.problem import (
    COST_SCALE,
    ENGINE_INT_MAX,
    MAX_DISTANCE_M,
    Depot,
    Problem,
    Stop,
    TimeWindow,
    VehicleType,
    cost_totals,
)
from wasteml_server.routing.pyvrp_engine import PyVrpEngine
from wasteml_server.routing.solution import SolveStatus

ENGINES = [OrToolsEngine(), PyVrpEngine()]
IDS = [e.name.value for e in ENGINES]


def _edge_problem(cost_per_km: float, distance: float = MAX_DISTANCE_M) -> Problem:
    """A depot and two stops, every leg ``distance`` metres (1e9 m: the largest legal entry)."""
    dist = np.full((3, 3), distance)
    np.fill_diagonal(dist, 0.0)
    dur = np.full((3, 3), 600.0)
    np.fill_diagonal(dur, 0.0)
    return build_problem(depots=[Depot("d", location_index=0)],
                         vehicle_types=[VehicleType(count=1, capacity=(10,), shift=TimeWindow(0, 86_400),
                                                    cost_per_km=cost_per_km)],
                         stops=[Stop("a", location_index=1, demand=(1,)), Stop("b", location_index=2, demand=(1,))],
                         matrix=TravelMatrix.from_arrays(dist, dur))


def _largest_cost_per_km() -> float:
    """The largest cost_per_km the edge problem takes: legs x 2 x longest leg x per-metre cost
    within ENGINE_INT_MAX (4 legs, 2e9 m)."""
    legs = cost_totals(_edge_problem(1.0)).legs
    per_m = ENGINE_INT_MAX // (legs * 2 * MAX_DISTANCE_M)
    return per_m * 1000 / COST_SCALE


@pytest.mark.parametrize("engine", ENGINES, ids=IDS)
def test_largest_legal_values_solve_exactly(engine) -> None:
    """Legs of 1e9 m at the largest cost per km the range allows: both engines visit both
    stops with distance 3e9 m and the exact, positive objective (no wrap-around)."""
    cost_per_km = float(int(_largest_cost_per_km()))
    problem = _edge_problem(cost_per_km)
    sol = engine.solve(problem, Budget(2.0))
    assert sol.status in (SolveStatus.FEASIBLE, SolveStatus.OPTIMAL), sol.infeasibility_reasons
    assert violations(problem, sol) == []
    assert sol.objective.distance_m == 3 * MAX_DISTANCE_M
    assert sol.objective.total == pytest.approx(3 * MAX_DISTANCE_M / 1000 * cost_per_km, rel=1e-9)
    assert sol.objective.total > 0


def test_one_step_beyond_the_range_is_refused() -> None:
    """Twice that cost per km (each value still legal alone) names vehicle_types[0].cost_per_km;
    a leg above 1e9 m names the matrix."""
    with pytest.raises(InvalidArgumentError) as err:
        _edge_problem(2 * _largest_cost_per_km())
    assert err.value.field == "vehicle_types[0].cost_per_km"
    with pytest.raises(InvalidArgumentError) as err:
        _edge_problem(1.0, distance=1e19)
    assert err.value.field == "matrix.distances_m[1]"
