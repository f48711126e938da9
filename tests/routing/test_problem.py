"""Problem validation (value types, the builder, the resolved problem), matrices from
coordinates and up-front infeasibility screening."""

from __future__ import annotations

import numpy as np
import pytest

from wasteml_server.core.errors import InfeasibleProblemError, InvalidArgumentError, under
from wasteml_server.core.geo import GeoPoint
from wasteml_server.routing.builder import (
    SpeedModel,
    TravelMatrix,
    build_problem,
    haversine_matrices,
)
from wasteml_server.routing.feasibility import screen
from wasteml_server.routing.problem import Depot, Problem, Stop, TimeWindow, VehicleType
from wasteml_server.routing.solution import UnassignedReason

SHIFT = TimeWindow(0, 3600)


def _stop(stop_id: str, location_index: int, demand: tuple[int, ...], **kw) -> Stop:
    return Stop(stop_id, location_index=location_index, demand=demand, **kw)


def _problem(stops, *, vehicle=None, n_loc=3, dist=None) -> Problem:
    dist = np.full((n_loc, n_loc), 600) if dist is None else dist
    np.fill_diagonal(dist, 0)
    vehicle = vehicle or VehicleType(count=1, capacity=(10,), shift=SHIFT)
    return build_problem(depots=(Depot(location_index=0),), vehicle_types=(vehicle,), stops=tuple(stops),
                         matrix=TravelMatrix.from_arrays(dist, dist.copy()))


def test_time_window_end_before_start_names_field_under_prefix():
    """A window ending before it starts is rejected with the dotted path of the window."""
    with pytest.raises(InvalidArgumentError) as err, under("stops[3]"), under("time_windows[0]"):
        TimeWindow(100, 50)
    assert err.value.field == "stops[3].time_windows[0].end_s"


def test_overlapping_time_windows_rejected():
    """Windows of one stop must be sorted and disjoint."""
    with pytest.raises(InvalidArgumentError) as err:
        _stop("a", 1, (1,), time_windows=(TimeWindow(0, 100), TimeWindow(50, 200)))
    assert err.value.field == "time_windows[1]"


@pytest.mark.parametrize(
    ("stops", "field"),
    [
        ([_stop("a", 1, (1,)), _stop("b", 7, (1,))], "stops[1].location_index"),
        ([_stop("a", 1, (1, 2))], "stops[0].demand"),
        ([_stop("a", 1, (1,)), _stop("a", 2, (1,))], "stops[1].id"),
    ],
)
def test_bad_stop_fields_named(stops, field):
    """Out-of-range location, wrong demand dimensions and duplicate ids name the stop's field."""
    with pytest.raises(InvalidArgumentError) as err:
        _problem(stops)
    assert err.value.field == field


def test_negative_and_misshapen_matrices_rejected():
    """A negative matrix entry names its row-major cell; a wrong size names the matrix field."""
    dist = np.full((3, 3), 5)
    dist[1, 2] = -1
    with pytest.raises(InvalidArgumentError) as err:
        _problem([_stop("a", 1, (1,))], dist=dist)
    assert err.value.field == "matrix.distances_m[5]"
    with pytest.raises(InvalidArgumentError) as err:
        build_problem(depots=(Depot(location_index=0),), vehicle_types=(VehicleType(1, (1,), SHIFT),),
                      stops=(), matrix=TravelMatrix(3, np.zeros(9), np.zeros(4)))
    assert err.value.field == "matrix.durations_s"
    with pytest.raises(InvalidArgumentError) as err:
        Problem((Depot(location_index=0),), (VehicleType(1, (1,), SHIFT),), (), np.zeros((3, 3)),
                np.zeros((2, 2)))
    assert err.value.field == "matrix"


def test_vehicle_type_fields_named():
    """Bad vehicle fields are rejected with their names."""
    with pytest.raises(InvalidArgumentError) as err:
        VehicleType(count=0, capacity=(1,), shift=SHIFT)
    assert err.value.field == "count"
    with pytest.raises(InvalidArgumentError) as err:
        _problem([_stop("a", 1, (1,))], vehicle=VehicleType(1, (1,), SHIFT, end_empty=True))
    assert err.value.field == "vehicle_types[0].end_empty"
    with pytest.raises(InvalidArgumentError) as err:
        _problem([_stop("a", 1, (1,))], vehicle=VehicleType(1, (1,), SHIFT, end_depot_index=2))
    assert err.value.field == "vehicle_types[0].end_depot_index"


def test_haversine_one_degree_of_latitude():
    """One degree of latitude is 111.195 km on the mean sphere, times the detour factor;
    durations follow the speed; the matrix is symmetric with a zero diagonal."""
    dist, dur = haversine_matrices(np.array([0.0, 1.0]), np.array([0.0, 0.0]),
                                   detour_factor=1.5, speed_kmh=36.0)
    assert dist[0, 1] == dist[1, 0] == round(1.5 * 111_195.08)
    assert dur[0, 1] == round(dist[0, 1] / 10.0)
    assert dist[0, 0] == dur[1, 1] == 0
    with pytest.raises(ValueError, match="detour_factor"):
        haversine_matrices(np.zeros(2), np.zeros(2), detour_factor=0.9)
    with pytest.raises(InvalidArgumentError) as err:
        SpeedModel(detour_factor=0.9).resolved()
    assert err.value.field == "speed_model.detour_factor"


def test_coordinates_without_matrix_are_required():
    """Computing matrices needs every site's coordinates, else the site's location is named."""
    with pytest.raises(InvalidArgumentError) as err:
        build_problem(depots=[Depot(location=GeoPoint(1.0, 2.0))], vehicle_types=[VehicleType(1, (1,), SHIFT)],
                      stops=[Stop("a", demand=(1,))])
    assert err.value.field == "stops[0].location"


def test_unreachable_required_stop_explained():
    """A required stop whose window closes before any vehicle can arrive raises
    InfeasibleProblemError naming the stop and the arrival time."""
    stop = _stop("late-bin", 1, (1,), time_windows=(TimeWindow(0, 300),))  # 600 s away, closes at 300 s
    with pytest.raises(InfeasibleProblemError) as err:
        screen(_problem([stop]))
    assert "late-bin" in err.value.message and "00:10" in err.value.message


def test_demand_above_every_capacity_explained():
    """A required stop heavier than every vehicle raises InfeasibleProblemError; an optional one
    is only reported with the reason."""
    heavy = _stop("heavy", 1, (11,))
    with pytest.raises(InfeasibleProblemError) as err:
        screen(_problem([heavy]))
    assert "heavy" in err.value.message and "capacity 10" in err.value.message
    optional = _stop("heavy", 1, (11,), optional_visit=True, skip_penalty=5.0)
    reasons = screen(_problem([_stop("ok", 2, (1,)), optional]))
    assert list(reasons) == [1] and "capacity 10" in reasons[1].detail
    assert reasons[1].reason is UnassignedReason.CAPACITY_EXCEEDED
