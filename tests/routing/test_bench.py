"""Benchmark instance reading (real files, DIMACS and TSPLIB conventions) and the bench runner."""

from __future__ import annotations

import pytest
from routing_checker import DATA_DIR

from wasteml_server.core.errors import InvalidArgumentError
from wasteml_server.routing.options import EngineName
from wasteml_tools.routing.bench import run_bench, select_instances, summarise, to_markdown
from wasteml_tools.routing.instances import load_instance

VRP = DATA_DIR / "vrp"


def test_select_instances_by_pattern():
    """Shell patterns pick names from bks.csv in file order; a pattern matching nothing names
    the field."""
    assert select_instances(VRP, "C10*") == [f"C10{i}" for i in range(1, 10)]
    assert select_instances(VRP, "R101, X-n101-k25,R101") == ["R101", "X-n101-k25"]
    with pytest.raises(InvalidArgumentError) as err:
        select_instances(VRP, "nope*")
    assert err.value.field == "instances"


def test_bks_route_set_scores_exactly_under_our_conventions():
    """The committed BKS route sets of C101 (DIMACS x10 integer form) and X-n101-k25 (nint)
    evaluate to exactly their bks.csv objectives on our matrices: the conventions match."""
    import vrplib

    for name, sol_file in (("C101", "solomon/C101.sol"), ("X-n101-k25", "cvrp_x/X-n101-k25.sol")):
        inst = load_instance(VRP, name)
        routes = vrplib.read_solution(str(VRP / sol_file))["routes"]
        d = inst.problem.distance_m
        total = sum(int(d[0, r[0]]) + sum(int(d[a, b]) for a, b in zip(r, r[1:], strict=False))
                    + int(d[r[-1], 0]) for r in routes)
        assert inst.objective(total) == pytest.approx(inst.bks.bks_objective)


@pytest.mark.slow
async def test_bench_runs_engines_on_solomon():
    """The runner solves C101 with each engine and the portfolio and reports gaps (figures printed)."""
    rows = await run_bench(["C101"], [EngineName.ORTOOLS, EngineName.PYVRP, EngineName.PORTFOLIO],
                           5.0, data_dir=DATA_DIR)
    assert [r.requested for r in rows] == ["ortools", "pyvrp", "portfolio"]
    assert all(r.gap_pct is not None and r.gap_pct >= -1e-9 for r in rows)
    print(to_markdown(rows, summarise(rows)))
