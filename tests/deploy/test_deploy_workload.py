"""The load test's requests (loadtests/wasteml_workload.py) carry the real data faithfully and
are requests the API accepts: checked against the files and the server's own data loaders."""

from __future__ import annotations

import random
import sys
from datetime import UTC

import numpy as np
import pytest
from deploy_helpers import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "loadtests"))
from wasteml_workload import DISPATCHER_PHRASES, DUMP_ID, SKIP_M3, YARD_ID, Workload  # noqa: E402

DATA_DIR = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="module")
def workload() -> Workload:
    """The workload on the shared real data."""
    return Workload(DATA_DIR)


def test_deploy_workload_boston_cases(workload: Workload) -> None:
    """All 20,832 Boston 311 cases load, each case type has a dispatcher phrasing, and
    indexed documents keep the real id, kind, place and time."""
    cases = workload.cases
    assert len(cases) == 20_832
    assert {c.kind for c in cases} == set(DISPATCHER_PHRASES)
    messages = list(workload.index_requests(250, batch=100))
    docs = [d for m in messages for d in m.documents]
    assert [len(m.documents) for m in messages] == [100, 100, 50]
    assert len({d.id for d in docs}) == 250
    by_id = {c.case_id: c for c in cases}
    for doc in docs:
        case = by_id[doc.id]
        assert doc.kind == case.kind and doc.text
        assert doc.location.latitude_deg == case.lat_deg
        assert doc.created_at.ToDatetime(tzinfo=UTC) == case.opened.astimezone(UTC)
    assert min(d.created_at.seconds for d in docs) < max(d.created_at.seconds for d in docs)


def test_deploy_workload_search_requests_valid(workload: Workload) -> None:
    """Search requests have a query, top_k 10 and at most one well-formed filter per kind."""
    rng = random.Random(7)
    seen = set()
    for _ in range(300):
        req = workload.search_request(rng)
        assert req.query.strip() and req.top_k == 10
        f = req.filters
        if f.kinds:
            assert set(f.kinds) <= set(DISPATCHER_PHRASES)
            seen.add("kinds")
        if f.HasField("radius"):
            assert f.radius.radius_m == 1000.0 and 42 < f.radius.center.latitude_deg < 43
            seen.add("radius")
        if f.HasField("created_at"):
            assert f.created_at.start_time.seconds < f.created_at.end_time.seconds
            seen.add("created_at")
    assert seen == {"kinds", "radius", "created_at"}


def test_deploy_workload_fill_requests(workload: Workload) -> None:
    """Fill requests: real skips, readings oldest first as reading / 7 m3, target after the last."""
    days, columns = workload.fullness
    assert len(columns) == 16 and len(days) == 345
    rng = random.Random(3)
    for _ in range(50):
        req = workload.fill_request(rng)
        assert 1 <= len(req.bins) <= 16
        for b in req.bins:
            assert b.bin_id in columns and b.capacity_l == 7000.0
            times = [r.time.seconds for r in b.recent_readings]
            assert times == sorted(times) and len(times) >= 3
            assert all(0.0 <= r.fill_fraction <= 8 / SKIP_M3 for r in b.recent_readings)
            assert b.target_time.seconds > times[-1]


def test_deploy_workload_solve_matrix_is_the_study_matrix(workload: Workload) -> None:
    """The Solve problem's matrix is the Blantyre road-distance matrix as the server's own loader reads it."""
    from wasteml_tools.routing.blantyre import load_road_distance_m

    req = workload.solve_request(random.Random(11))
    problem = req.problem
    ids = [YARD_ID, DUMP_ID, *(int(s.id.split("-")[1]) for s in problem.stops)]
    n = problem.matrix.size
    assert n == len(ids) == 14 and len(problem.stops) == 12
    got = np.array(problem.matrix.distances_m).reshape(n, n)
    full = load_road_distance_m(DATA_DIR)
    expected = full[np.ix_([i - 1 for i in ids], [i - 1 for i in ids])]
    assert np.array_equal(got, expected)
    assert problem.vehicle_types[0].capacity == [1] and all(s.demand == [1] for s in problem.stops)
    assert req.options.time_limit.ToNanoseconds() == 2_000_000_000


def test_deploy_workload_solve_day_is_feasible() -> None:
    """The Solve mix's day (12 skips, 3 one-skip trucks, 07:00-15:00) is solved within its 2 s
    limit by the server's default engine, so the load test measures solving, not infeasibility."""
    from wasteml_server.routing.engine import Budget
    from wasteml_server.routing.options import DEFAULT_ENGINE, EngineName, SolveOptions
    from wasteml_server.routing.portfolio import make_engine
    from wasteml_tools.routing.blantyre import day_problem

    workload = Workload(DATA_DIR)
    req = workload.solve_request(random.Random(11))
    skips = [int(s.id.split("-")[1]) for s in req.problem.stops]
    problem = day_problem(skips, trucks=3, data_dir=DATA_DIR)
    assert DEFAULT_ENGINE in (EngineName.PYVRP, EngineName.ORTOOLS)
    engine = make_engine(DEFAULT_ENGINE)
    solution = engine.solve(problem, Budget(2.0), options=SolveOptions(time_limit_s=2.0))
    assert solution.feasible, solution.infeasibility_reasons
    assert solution.engine is DEFAULT_ENGINE
    assert not solution.unassigned_stops
