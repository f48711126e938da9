"""Property-based tests of the codecs and the problem builder: decode(encode(x)) == x for
generated domain objects, and the builder names the field of every fault it is given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from wasteml_server.codecs.routing import (
    options_from_proto,
    options_to_proto,
    problem_from_proto,
    problem_to_proto,
)
from wasteml_server.codecs.search import document_from_proto, document_to_proto
from wasteml_server.core.errors import InvalidArgumentError
from wasteml_server.core.geo import GeoPoint
from wasteml_server.routing.builder import TravelMatrix, build_problem
from wasteml_server.routing.options import (
    MAX_SEED,
    UNOFFERED_METAHEURISTICS,
    UNOFFERED_STRATEGIES,
    EngineName,
    FirstSolutionStrategy,
    LocalSearchMetaheuristic,
    SolveOptions,
)
from wasteml_server.routing.problem import (
    HORIZON_S,
    Depot,
    Facility,
    Problem,
    Stop,
    TimeWindow,
    VehicleType,
)
from wasteml_server.search.documents import Document

_SETTINGS = settings(max_examples=100, deadline=None)

points = st.builds(GeoPoint, st.floats(-89.0, 89.0), st.floats(-179.0, 179.0))


@st.composite
def windows(draw: st.DrawFn, k: int | None = None) -> tuple[TimeWindow, ...]:
    """Sorted, disjoint whole-second windows within the horizon."""
    n = draw(st.integers(0, 2)) if k is None else k
    cuts = sorted(draw(st.lists(st.integers(0, HORIZON_S), min_size=2 * n, max_size=2 * n, unique=True)))
    return tuple(TimeWindow(cuts[2 * i], cuts[2 * i + 1]) for i in range(n))


@st.composite
def problems(draw: st.DrawFn) -> Problem:
    """A small matrix problem: 1-2 depots, 1-2 vehicle types, 0-2 facilities, 1-6 stops."""
    n_dim = draw(st.integers(1, 2))
    n_dep, n_fac, n_stop = draw(st.integers(1, 2)), draw(st.integers(0, 2)), draw(st.integers(1, 6))
    size = draw(st.integers(1, 8))
    dist = np.array(draw(st.lists(st.integers(0, 50_000), min_size=size * size, max_size=size * size)),
                    dtype=np.float64).reshape(size, size)
    dur = np.array(draw(st.lists(st.integers(0, 5_000), min_size=size * size, max_size=size * size)),
                   dtype=np.float64).reshape(size, size)
    loc = st.integers(0, size - 1)
    maybe_point = st.one_of(st.none(), points)
    # depot hours all contain noon of the second day, so every shift meets both its depots' hours
    hours = st.builds(TimeWindow, st.integers(0, HORIZON_S // 2), st.integers(HORIZON_S // 2, HORIZON_S))
    depots = [Depot(f"d{i}", draw(maybe_point), draw(loc), draw(st.one_of(st.none(), hours))) for i in range(n_dep)]
    facilities = [Facility(f"f{i}", draw(maybe_point), draw(loc), service_duration_s=draw(st.integers(0, 900)),
                           time_windows=draw(windows(draw(st.integers(0, 1))))) for i in range(n_fac)]
    types = []
    for t in range(draw(st.integers(1, 2))):
        reload = tuple(sorted(draw(st.sets(st.integers(0, n_fac - 1), max_size=n_fac)))) if n_fac else ()
        types.append(VehicleType(
            count=draw(st.integers(1, 4)), capacity=tuple(draw(st.lists(st.integers(0, 100), min_size=n_dim,
                                                                        max_size=n_dim))),
            shift=TimeWindow(0, HORIZON_S), start_depot_index=draw(st.integers(0, n_dep - 1)),
            end_depot_index=draw(st.integers(0, n_dep - 1)), fixed_cost=float(draw(st.integers(0, 500))),
            cost_per_km=draw(st.integers(0, 500)) / 100, reload_facility_indices=reload or tuple(range(n_fac)),
            max_route_duration_s=draw(st.one_of(st.none(), st.integers(1, HORIZON_S))),
            end_empty=bool(n_fac) and draw(st.booleans()), id=f"type{t}"))
    stops = []
    for i in range(n_stop):
        optional = draw(st.booleans())
        stops.append(Stop(f"s{i}", draw(maybe_point), draw(loc),
                          tuple(draw(st.lists(st.integers(0, 50), min_size=n_dim, max_size=n_dim))),
                          draw(st.integers(0, 1800)), draw(windows()), optional,
                          float(draw(st.integers(0, 10_000))) if optional else 0.0))
    return build_problem(depots=depots, vehicle_types=types, stops=stops, facilities=facilities,
                         matrix=TravelMatrix.from_arrays(dist, dur), name=draw(st.sampled_from(["", "R101", "day-1"])))


def _same(a: Problem, b: Problem) -> bool:
    return ((a.depots, a.vehicle_types, a.stops, a.facilities, a.name, a.dimensions)
            == (b.depots, b.vehicle_types, b.stops, b.facilities, b.name, b.dimensions)
            and np.array_equal(a.distance_m, b.distance_m) and np.array_equal(a.duration_s, b.duration_s))


@_SETTINGS
@given(problems())
def test_problem_codec_round_trip(problem: Problem) -> None:
    """problem_from_proto(problem_to_proto(p)) equals p for generated built problems."""
    assert _same(problem_from_proto(problem_to_proto(problem)), problem)


solve_options = st.builds(
    SolveOptions,
    time_limit_s=st.one_of(st.none(), st.integers(1, 300_000).map(lambda ms: ms / 1000)),
    engine=st.sampled_from(list(EngineName)),
    first_solution_strategy=st.sampled_from([s for s in FirstSolutionStrategy if s not in UNOFFERED_STRATEGIES]),
    local_search_metaheuristic=st.sampled_from([m for m in LocalSearchMetaheuristic
                                                if m not in UNOFFERED_METAHEURISTICS]),
    seed=st.integers(0, MAX_SEED),  # PyVRP's unsigned 32-bit seed (out-of-range seeds: test_limits.py)
)


@_SETTINGS
@given(solve_options)
def test_options_codec_round_trip(options: SolveOptions) -> None:
    """options_from_proto(options_to_proto(o)) equals o for generated solve options."""
    assert options_from_proto(options_to_proto(options)) == options


documents = st.builds(
    Document,
    id=st.text(min_size=1, max_size=20),
    text=st.text(min_size=1, max_size=80).filter(str.strip),
    kind=st.text(max_size=20),
    location=st.one_of(st.none(), points),
    created_at=st.integers(0, 2_000_000_000).map(lambda s: datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=s)),
    source=st.text(max_size=20),
    location_approximate=st.booleans(),
)


@_SETTINGS
@given(documents)
def test_document_codec_round_trip(doc: Document) -> None:
    """document_from_proto(document_to_proto(d)) equals d for generated documents."""
    assert document_from_proto(document_to_proto(doc)) == doc


def _fault(problem: Problem, draw: st.DrawFn) -> tuple[dict, str]:
    """The builder's arguments for ``problem`` with one fault, and the path that must be named."""
    parts = {"depots": list(problem.depots), "vehicle_types": list(problem.vehicle_types),
             "stops": list(problem.stops), "facilities": list(problem.facilities),
             "matrix": TravelMatrix.from_arrays(problem.distance_m, problem.duration_s)}
    size = len(problem.locations)
    kind = draw(st.sampled_from(["stop_index", "depot_index", "start_depot", "reload", "duplicate_id",
                                 "demand_dims", "matrix_value", "matrix_length", "missing_index"]))
    s = draw(st.integers(0, len(problem.stops) - 1))
    t = draw(st.integers(0, len(problem.vehicle_types) - 1))
    if kind == "stop_index":
        bad = draw(st.one_of(st.integers(size, size + 100), st.integers(-100, -1)))
        parts["stops"][s] = Stop(**{**parts["stops"][s].__dict__, "location_index": bad})
        return parts, f"stops[{s}].location_index"
    if kind == "depot_index":
        d = draw(st.integers(0, len(problem.depots) - 1))
        parts["depots"][d] = Depot(**{**parts["depots"][d].__dict__, "location_index": size + 3})
        return parts, f"depots[{d}].location_index"
    if kind == "start_depot":
        vt = parts["vehicle_types"][t]
        parts["vehicle_types"][t] = VehicleType(**{**vt.__dict__, "start_depot_index": len(problem.depots)})
        return parts, f"vehicle_types[{t}].start_depot_index"
    if kind == "reload":
        vt = parts["vehicle_types"][t]
        parts["vehicle_types"][t] = VehicleType(**{**vt.__dict__, "end_empty": False,
                                                  "reload_facility_indices": (len(problem.facilities),)})
        return parts, f"vehicle_types[{t}].reload_facility_indices[0]"
    if kind == "duplicate_id" and len(problem.stops) > 1:
        other = (s + 1) % len(problem.stops)
        parts["stops"][other] = Stop(**{**parts["stops"][other].__dict__, "id": parts["stops"][s].id})
        return parts, f"stops[{max(s, other)}].id"
    if kind == "demand_dims":
        parts["stops"][s] = Stop(**{**parts["stops"][s].__dict__, "demand": (1,) * (problem.num_dimensions + 1)})
        return parts, f"stops[{s}].demand"
    if kind == "matrix_value":
        k = draw(st.integers(0, size * size - 1))
        values = np.array(parts["matrix"].distances_m, dtype=np.float64)
        values[k] = draw(st.sampled_from([-1.0, float("nan"), float("inf")]))
        parts["matrix"] = TravelMatrix(size, values, parts["matrix"].durations_s)
        return parts, f"matrix.distances_m[{k}]"
    if kind == "matrix_length":
        parts["matrix"] = TravelMatrix(size, np.array(parts["matrix"].distances_m)[:-1], parts["matrix"].durations_s)
        return parts, "matrix.distances_m"
    parts["stops"][s] = Stop(**{**parts["stops"][s].__dict__, "location_index": None})
    return parts, f"stops[{s}].location_index"


@_SETTINGS
@given(problems(), st.data())
def test_builder_names_the_faulty_field(problem: Problem, data: st.DataObject) -> None:
    """One fault injected into a valid problem is INVALID_ARGUMENT naming exactly that field."""
    parts, path = _fault(problem, data.draw)
    try:
        build_problem(**parts)
    except InvalidArgumentError as err:
        assert err.field == path, (err.field, path, err)
    else:
        raise AssertionError(f"no error for a fault at {path}")
