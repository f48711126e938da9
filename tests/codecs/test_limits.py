"""Issue 12 at the codec edge, no network: sizes are refused on the parsed message before
anything of the declared size is allocated (#1), and values beyond the engines' 64-bit integer
arithmetic or the representable Timestamp/Duration range are INVALID_ARGUMENT naming the
request field (#9, #12). Every named field exists in the request message."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest
from contract_paths import field_exists
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from routing_requests import coordinate_problem, matrix_problem
from wasteml_testing import DATA_DIR

from wasteml.v1 import common_pb2, planning_pb2, routing_pb2
from wasteml_server.codecs.common import (
    MAX_DURATION_SECONDS,
    TIMESTAMP_SECONDS_RANGE,
    check_duration,
    check_timestamp,
    duration_s,
    instant,
)
from wasteml_server.codecs.planning import request_from_proto
from wasteml_server.codecs.routing import options_from_proto, problem_from_proto, problem_to_proto
from wasteml_server.core.errors import InvalidArgumentError, under
from wasteml_server.core.settings import Settings
from wasteml_server.planning.planner import check_penalty_range
from wasteml_server.planning.request import DEFAULT_PLAN_LIMITS, PlanLimits, prepare
from wasteml_server.routing.limits import DEFAULT_LIMITS, ProblemLimits
from wasteml_server.routing.options import MAX_SEED
from wasteml_server.routing.problem import ENGINE_INT_MAX, MAX_COST, MAX_DISTANCE_M, MAX_LOAD
from wasteml_tools.planning.blantyre_request import plan_day_request
from wasteml_tools.routing.instances import load_instance

SOLVE = routing_pb2.SolveRequest.DESCRIPTOR
PLAN = planning_pb2.PlanDayRequest.DESCRIPTOR


def _solve_error(problem: routing_pb2.Problem, limits: ProblemLimits = DEFAULT_LIMITS,
                 options: routing_pb2.SolveOptions | None = None) -> InvalidArgumentError:
    """The error of decoding a SolveRequest as the servicer does; its fields exist in SolveRequest."""
    with pytest.raises(InvalidArgumentError) as err:
        with under("options"):
            options_from_proto(options or routing_pb2.SolveOptions())
        with under("problem"):
            problem_from_proto(problem, limits)
    for v in err.value.violations:
        assert field_exists(SOLVE, v.field), v.field
    return err.value


def _peak_bytes(fn: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        try:
            fn()
        except InvalidArgumentError:
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# --- #1: sizes before allocation ------------------------------------------------------------


def test_tiny_request_declaring_a_huge_matrix_is_refused_at_once() -> None:
    """The issue's 28-byte request (matrix.size = 3,000,000, no values; 20.8 s and +275 MiB on
    the loop before the fix) is INVALID_ARGUMENT naming problem.matrix.size within milliseconds
    and without allocating."""
    request = routing_pb2.SolveRequest(problem=routing_pb2.Problem(matrix=routing_pb2.TravelMatrix(size=3_000_000)))
    request.problem.depots.add(location_index=0)
    request.problem.vehicle_types.add(count=1, capacity=[1])
    request.problem.stops.add(id="s", location_index=1, demand=[1])
    assert len(request.SerializeToString()) <= 30
    t0 = time.perf_counter()
    err = _solve_error(request.problem)
    elapsed = time.perf_counter() - t0
    assert err.field == "problem.matrix.size" and "at most 2000" in err.violations[0].description
    assert elapsed < 0.05, elapsed
    assert _peak_bytes(lambda: problem_from_proto(request.problem)) < 256 * 1024


def test_matrix_size_is_checked_against_the_values_sent() -> None:
    """A size within the limit with fewer values than size * size names the matrix field, before
    any conversion; durations, when sent, must match too."""
    p = matrix_problem(5)
    del p.matrix.distances_m[3:]
    assert _solve_error(p).field == "problem.matrix.distances_m"
    p = matrix_problem(5, duration=10.0)
    del p.matrix.durations_s[-1]
    assert _solve_error(p).field == "problem.matrix.durations_s"
    limits = replace(DEFAULT_LIMITS, max_matrix_size=4)
    err = _solve_error(matrix_problem(5), limits)
    assert err.field == "problem.matrix.size" and "at most 4" in err.violations[0].description


def test_6000_stops_by_coordinates_are_refused_before_the_haversine_matrix() -> None:
    """6,000 stops by coordinates (191 KB; 6.8 s and 3.3 GiB on the loop before the fix) are
    INVALID_ARGUMENT naming problem.stops, fast and without allocating per stop."""
    p = coordinate_problem(6000)
    t0 = time.perf_counter()
    err = _solve_error(p)
    assert time.perf_counter() - t0 < 0.05
    assert err.field == "problem.stops" and "6000" in err.violations[0].description
    assert _peak_bytes(lambda: problem_from_proto(p)) < 256 * 1024


def test_coordinate_sites_beyond_the_matrix_limit_name_stops() -> None:
    """Within the stop limit but past the coordinate-site limit (depots + facilities + stops):
    INVALID_ARGUMENT naming problem.stops and saying why (O(n^2) matrices)."""
    limits = replace(DEFAULT_LIMITS, max_coordinate_locations=100)
    err = _solve_error(coordinate_problem(100), limits)  # 101 sites with the depot
    assert err.field == "problem.stops"
    assert "at most 100 sites" in err.violations[0].description and "matrix" in err.violations[0].description
    problem_from_proto(coordinate_problem(99), limits)  # 100 sites: fine


def test_largest_coordinate_problem_converts_within_its_memory_budget() -> None:
    """The largest legal problem by coordinates (2,000 sites) converts; its matrices are two
    int64 2,000 x 2,000 arrays (61 MiB) and the conversion peaks well under 100 MiB above them."""
    p = coordinate_problem(DEFAULT_LIMITS.max_coordinate_locations - 1)
    tracemalloc.start()
    t0 = time.perf_counter()
    problem = problem_from_proto(p)
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    matrices = problem.distance_m.nbytes + problem.duration_s.nbytes
    print(f"\n2,000 sites by coordinates: {elapsed * 1000:.0f} ms, matrices {matrices / 2**20:.1f} MiB, "
          f"peak {peak / 2**20:.1f} MiB")
    assert problem.distance_m.shape == (2000, 2000) and problem.distance_m.dtype == np.int64
    assert peak < matrices + 100 * 2**20


def test_fleet_size_is_the_sum_of_counts() -> None:
    """VehicleType.count = 20,000 (2.3 GB in one OR-Tools worker before the fix) names
    problem.vehicle_types[0].count; a sum over several types names the type that crosses it."""
    err = _solve_error(coordinate_problem(3, count=20_000))
    assert err.field == "problem.vehicle_types[0].count" and "at most 1000" in err.violations[0].description
    p = coordinate_problem(3, count=600)
    p.vehicle_types.add(id="b", count=600, capacity=[10_000])
    assert _solve_error(p).field == "problem.vehicle_types[1].count"


@pytest.mark.parametrize(("limit", "change", "field"), [
    ("max_depots", lambda p: [p.depots.add(id=f"d{i}", location=p.depots[0].location) for i in range(3)],
     "problem.depots"),
    ("max_facilities", lambda p: [p.facilities.add(id=f"f{i}", location=p.depots[0].location) for i in range(3)],
     "problem.facilities"),
    ("max_dimensions", lambda p: p.dimensions.extend([routing_pb2.CapacityDimension(name=str(i)) for i in range(3)]),
     "problem.dimensions"),
    ("max_dimensions", lambda p: p.stops[1].demand.extend([1, 1, 1]), "problem.stops[1].demand"),
    ("max_dimensions", lambda p: p.vehicle_types[0].capacity.extend([1, 1, 1]), "problem.vehicle_types[0].capacity"),
    ("max_time_windows", lambda p: [p.stops[0].time_windows.add(start_s=10 * i, end_s=10 * i + 5) for i in range(3)],
     "problem.stops[0].time_windows"),
    ("max_facilities", lambda p: p.vehicle_types[0].reload_facility_indices.extend([0, 1, 2]),
     "problem.vehicle_types[0].reload_facility_indices"),
])
def test_every_repeated_part_has_a_limit(limit: str, change, field: str) -> None:
    """Depots, facilities, dimensions, demand/capacity entries, windows per stop and reload
    facilities each have a limit, named by the field and stating it."""
    p = coordinate_problem(3)
    change(p)
    err = _solve_error(p, replace(DEFAULT_LIMITS, **{limit: 2}))
    assert err.field == field and "at most 2" in err.violations[0].description


def test_limits_come_from_settings() -> None:
    """ProblemLimits and PlanLimits are the settings' values (the defaults documented there)."""
    s = Settings(routing_max_stops=7, routing_max_vehicles=9, planning_max_bins=3, planning_max_readings=4)
    narrowed = PlanLimits.from_settings(Settings(planning_max_bins=50, forecast_max_bins=20, forecast_max_readings=100,
                                                 forecast_max_readings_per_bin=10))
    assert (narrowed.max_bins, narrowed.max_readings, narrowed.max_readings_per_bin) == (20, 80, 9)
    limits = PlanLimits.from_settings(s)
    assert (limits.routing.max_stops, limits.routing.max_vehicles, limits.max_bins, limits.max_readings) == (7, 9, 3, 4)
    assert DEFAULT_LIMITS == ProblemLimits.from_settings(Settings.model_construct())
    assert DEFAULT_PLAN_LIMITS == PlanLimits.from_settings(Settings.model_construct())


# --- #12: the engines' integer range --------------------------------------------------------


def test_distances_of_1e19_are_refused_naming_the_entry() -> None:
    """Off-diagonal distances of 1e19 (solved as OPTIMAL with -9.2e18 m before the fix) and
    durations of 1e19 (silently NO_SOLUTION_IN_TIME) name the first bad matrix entry."""
    err = _solve_error(matrix_problem(4, distance=1e19))
    assert err.field == "problem.matrix.distances_m[1]" and "1e+09" in err.violations[0].description
    err = _solve_error(matrix_problem(4, duration=1e19))
    assert err.field == "problem.matrix.durations_s[1]"
    problem_from_proto(matrix_problem(4, distance=MAX_DISTANCE_M, duration=1e9))  # the largest values pass


def test_costs_beyond_the_range_name_the_cost() -> None:
    """A fixed cost of 1e300, a cost per km or skip penalty past MAX_COST, and totals that only
    overflow together (many vehicles, long legs) each name the field that drives them."""
    p = matrix_problem(4)
    p.vehicle_types[0].fixed_cost = 1e300
    assert _solve_error(p).field == "problem.vehicle_types[0].fixed_cost"
    p = matrix_problem(4)
    p.stops[0].optional_visit, p.stops[0].skip_penalty = True, 1e300
    assert _solve_error(p).field == "problem.stops[0].skip_penalty"
    p = matrix_problem(4, distance=MAX_DISTANCE_M)
    p.vehicle_types[0].cost_per_km = MAX_COST  # each value legal, their product is not
    err = _solve_error(p)
    assert err.field == "problem.vehicle_types[0].cost_per_km" and "64-bit" in err.violations[0].description
    p = matrix_problem(4)
    p.vehicle_types[0].count, p.vehicle_types[0].fixed_cost = 1000, 1e11  # 1e19 units in all
    assert _solve_error(p).field == "problem.vehicle_types[0].fixed_cost"


def test_loads_durations_and_speeds_beyond_the_range_are_refused() -> None:
    """Demands past MAX_LOAD, demands whose total overflows, service times of 1e300 s, a
    maximum route duration of 1e300 s and speeds that make durations overflow name their field."""
    p = matrix_problem(4)
    p.stops[0].demand[0] = MAX_LOAD + 1
    assert _solve_error(p).field == "problem.stops[0].demand[0]"
    p = matrix_problem(2)
    p.vehicle_types[0].capacity[0] = MAX_LOAD
    p.stops[0].demand[0] = MAX_LOAD
    for i in range(5_000):  # every stop legal, their total (5e18) is not
        p.stops.add(id=f"x{i}", location_index=1, demand=[MAX_LOAD])
    err = _solve_error(p, replace(DEFAULT_LIMITS, max_stops=10_000))
    crossing = ENGINE_INT_MAX // MAX_LOAD  # the first stop index whose running total passes 2^62
    assert err.field == f"problem.stops[{crossing}].demand[0]", err
    p = matrix_problem(4)
    p.stops[0].service_duration_s = 1e300
    assert _solve_error(p).field == "problem.stops[0].service_duration_s"
    p = matrix_problem(4)
    p.vehicle_types[0].max_route_duration_s = 1e300
    assert _solve_error(p).field == "problem.vehicle_types[0].max_route_duration_s"
    p = matrix_problem(4, distance=MAX_DISTANCE_M)
    p.speed_model.speed_m_per_s = 0.5  # durations = distances / speed = 2e9 s
    assert _solve_error(p).field == "problem.speed_model.speed_m_per_s"
    p = coordinate_problem(3)
    p.speed_model.speed_m_per_s = 1e-3
    assert _solve_error(p).field == "problem.speed_model.speed_m_per_s"
    p = coordinate_problem(3)
    p.speed_model.detour_factor = 1e300
    assert _solve_error(p).field == "problem.speed_model.detour_factor"


@pytest.mark.parametrize("seed", [-(2**63), -1, MAX_SEED + 1, 2**63 - 1])
def test_seeds_outside_pyvrps_range_name_options_seed(seed: int) -> None:
    """A seed of -2^63 (INTERNAL from PyVRP before the fix) or anything outside 0..2^32-1 is
    INVALID_ARGUMENT naming options.seed."""
    err = _solve_error(matrix_problem(3), options=routing_pb2.SolveOptions(seed=seed))
    assert err.field == "options.seed" and str(MAX_SEED) in err.violations[0].description


# --- #9: Timestamps, Durations, dates ------------------------------------------------------


@pytest.mark.parametrize(("seconds", "nanos"), [
    (TIMESTAMP_SECONDS_RANGE[1] + 1, 0), (TIMESTAMP_SECONDS_RANGE[0] - 1, 0), (2**63 - 1, 0), (-(2**63), 0),
    (0, -1), (0, 1_000_000_000)])
def test_out_of_range_timestamps_are_invalid_argument(seconds: int, nanos: int) -> None:
    """Timestamps outside years 1..9999 or with bad nanos are refused naming the field (the one
    check every codec uses); the extremes of the range convert."""
    ts = Timestamp(seconds=seconds, nanos=nanos)
    for convert in (check_timestamp, instant):
        with pytest.raises(InvalidArgumentError) as err:
            convert(ts, "prediction_time")
        assert err.value.field == "prediction_time" and "years 1..9999" in err.value.violations[0].description
    lo, hi = TIMESTAMP_SECONDS_RANGE
    assert instant(Timestamp(seconds=lo), "t").year == 1
    assert instant(Timestamp(seconds=hi, nanos=999_999_999), "t").year == 9999


@pytest.mark.parametrize(("seconds", "nanos"), [
    (MAX_DURATION_SECONDS + 1, 0), (-(2**63), 0), (2**63 - 1, 0), (1, -1), (-1, 1), (0, 1_000_000_000)])
def test_out_of_range_durations_are_invalid_argument(seconds: int, nanos: int) -> None:
    """Durations beyond 10,000 years, with mixed signs or bad nanos are refused naming the
    field; the time limit of a Solve names options.time_limit."""
    with pytest.raises(InvalidArgumentError) as err:
        check_duration(Duration(seconds=seconds, nanos=nanos), "time_limit")
    assert err.value.field == "time_limit"
    options = routing_pb2.SolveOptions()
    options.time_limit.seconds, options.time_limit.nanos = seconds, nanos
    assert _solve_error(matrix_problem(3), options=options).field == "options.time_limit"
    assert duration_s(Duration(seconds=MAX_DURATION_SECONDS), "d") == MAX_DURATION_SECONDS


# --- PlanDay --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plan_request() -> planning_pb2.PlanDayRequest:
    """The real Blantyre PlanDay request (53 skips, road matrix, 3 trucks)."""
    return plan_day_request(DATA_DIR, trucks=3, time_limit_s=5)


def _plan_error(request: planning_pb2.PlanDayRequest, limits: PlanLimits = DEFAULT_PLAN_LIMITS
                ) -> InvalidArgumentError:
    with pytest.raises(InvalidArgumentError) as err:
        day = prepare(request_from_proto(request, limits), limits)
        check_penalty_range(day.base, day.request.policy)
    for v in err.value.violations:
        assert field_exists(PLAN, v.field), v.field
    return err.value


def _copy(request: planning_pb2.PlanDayRequest) -> planning_pb2.PlanDayRequest:
    out = planning_pb2.PlanDayRequest()
    out.CopyFrom(request)
    return out


def test_plan_day_with_too_many_bins_is_refused_before_decoding(plan_request) -> None:
    """More bins than planning_max_bins is INVALID_ARGUMENT naming bins, stating the limit, and
    nothing per bin is decoded first; the bins also count as the problem's stops."""
    request = _copy(plan_request)
    while len(request.bins) <= DEFAULT_PLAN_LIMITS.max_bins:
        request.bins.extend(plan_request.bins)
    err = _plan_error(request)
    assert err.field == "bins" and f"at most {DEFAULT_PLAN_LIMITS.max_bins} bins" in err.violations[0].description
    assert _peak_bytes(lambda: request_from_proto(request)) < 256 * 1024
    limits = replace(DEFAULT_PLAN_LIMITS, routing=replace(DEFAULT_LIMITS, max_stops=10))
    assert _plan_error(plan_request, limits).field == "bins"


def test_plan_day_readings_fleet_and_matrix_have_limits(plan_request) -> None:
    """Readings in all bins, the fleet's size and the matrix are checked with the plan's names."""
    request = _copy(plan_request)
    for _ in range(3):
        request.bins[9].recent_readings.add().CopyFrom(request.bins[9].recent_readings[0])
    limits = replace(DEFAULT_PLAN_LIMITS, max_readings=sum(len(b.recent_readings) for b in plan_request.bins[:10]) + 2)
    assert _plan_error(request, limits).field == "bins[9].recent_readings"
    limits = replace(DEFAULT_PLAN_LIMITS, max_readings_per_bin=len(plan_request.bins[9].recent_readings) + 2)
    err = _plan_error(request, limits)
    assert err.field == "bins[9].recent_readings" and "per bin" in err.violations[0].description
    request = _copy(plan_request)
    request.fleet[0].count = 5000
    assert _plan_error(request).field == "fleet[0].count"
    request = _copy(plan_request)
    request.matrix.size = 1_000_000
    assert _plan_error(request).field == "matrix.size"


def test_plan_day_dates_and_instants_out_of_range_name_the_field(plan_request) -> None:
    """A service date or prediction time whose plan instants would leave the Timestamp range, an
    out-of-range reading time and a huge look-back are INVALID_ARGUMENT naming the field (they
    ended in INTERNAL before the fix)."""
    request = _copy(plan_request)
    request.service_date.CopyFrom(common_pb2.CalendarDate(year=9999, month=12, day=31))
    assert _plan_error(request).field == "service_date"
    request = _copy(plan_request)
    request.service_date.CopyFrom(common_pb2.CalendarDate(year=1, month=1, day=1))
    assert _plan_error(request).field == "service_date"
    request = _copy(plan_request)
    request.prediction_time.seconds = TIMESTAMP_SECONDS_RANGE[0]
    assert _plan_error(request).field == "prediction_time"
    request = _copy(plan_request)
    request.prediction_time.seconds = 2**62
    assert _plan_error(request).field == "prediction_time"
    request = _copy(plan_request)
    request.bins[2].recent_readings[0].time.seconds = -(2**63)
    assert _plan_error(request).field == "bins[2].recent_readings[0].time"
    request = _copy(plan_request)
    request.bins[2].last_emptied_at.seconds = 2**63 - 1
    assert _plan_error(request).field == "bins[2].last_emptied_at"
    request = _copy(plan_request)
    request.policy.complaint_lookback.seconds = 2**62
    assert _plan_error(request).field == "policy.complaint_lookback"
    request = _copy(plan_request)
    request.bins[2].recent_readings.add().CopyFrom(request.bins[2].recent_readings[0])
    assert _plan_error(request).field == f"bins[2].recent_readings[{len(request.bins[2].recent_readings) - 1}].time"


def test_plan_day_prices_beyond_the_range_name_the_field(plan_request) -> None:
    """Policy penalties of 1e300 name the policy field; a fleet whose must-visit prices could
    overflow the engines' cost total names the fleet's cost (no stops[i] path: PlanDay has none)."""
    request = _copy(plan_request)
    request.policy.overflow_penalty = 1e300
    assert _plan_error(request).field == "policy.overflow_penalty"
    request = _copy(plan_request)
    request.policy.base_skip_penalty = 1e300
    assert _plan_error(request).field == "policy.base_skip_penalty"
    request = _copy(plan_request)
    request.fleet[0].cost_per_km = MAX_COST  # the routing total itself overflows
    assert _plan_error(request).field == "fleet[0].cost_per_km"
    request = _copy(plan_request)
    request.fleet[0].fixed_cost = MAX_COST  # legal for the base problem; 4 x it per bin is not
    err = _plan_error(request)
    assert err.field == "fleet[0].fixed_cost" and "must-visit" in err.violations[0].description
    request = _copy(plan_request)
    request.policy.overflow_penalty = MAX_COST
    request.policy.base_skip_penalty = MAX_COST
    assert _plan_error(request).field == "policy.overflow_penalty"


def test_plan_day_time_zone_is_quoted_bounded(plan_request) -> None:
    """A 20 KB time zone is INVALID_ARGUMENT on time_zone with a short message."""
    request = _copy(plan_request)
    request.time_zone = "x" * 20_000
    err = _plan_error(request)
    assert err.field == "time_zone" and len(err.violations[0].description) < 200


def test_real_requests_pass_the_limits(plan_request) -> None:
    """The real Blantyre day and a 1,000-customer benchmark problem decode with the default limits."""
    day = prepare(request_from_proto(plan_request))
    check_penalty_range(day.base, day.request.policy)
    problem = load_instance(DATA_DIR / "vrp", "R1_10_1").problem
    assert len(problem_from_proto(problem_to_proto(problem)).stops) == 1000
