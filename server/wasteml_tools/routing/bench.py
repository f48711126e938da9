"""Routing benchmark: engines on Solomon, Gehring-Homberger and CVRPLIB X through the solver pool.

Each (instance, engine) pair runs as one pool job, one job at a time, so a single engine has
one worker process (one core) and the portfolio two (both engines at once, same wall time).
Objective and gap follow the instances' conventions (see :mod:`wasteml_tools.routing.instances`);
"first feasible" is the time of the job's first progress event as a client sees it (worker
dispatch included).
"""

from __future__ import annotations

import fnmatch
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from wasteml_server.core.errors import InvalidArgumentError
from wasteml_server.core.settings import Settings
from wasteml_server.routing.options import EngineName, SolveOptions
from wasteml_server.routing.pool import SolverPool
from wasteml_tools.routing.instances import load_instance, read_bks


@dataclass(frozen=True)
class BenchRow:
    """One (instance, engine) run.

    Attributes:
        instance: instance name.
        family: ``solomon``, ``homberger`` or ``x``.
        n_customers: number of customers.
        requested: engine asked for (``ortools``, ``pyvrp``, ``portfolio``).
        engine: engine whose solution was returned.
        time_limit_s: the job's time limit, seconds.
        status: ``SolveStatus`` value.
        objective: total distance in the instance's units, or None without a solution.
        vehicles: routes used.
        bks: best-known objective; ``bks_vehicles`` its routes.
        gap_pct: ``100 * (objective - bks) / bks`` or None.
        first_feasible_s: seconds to the first feasible solution, or None.
        elapsed_s: wall time of the job, seconds.
    """

    instance: str
    family: str
    n_customers: int
    requested: str
    engine: str
    time_limit_s: float
    status: str
    objective: float | None
    vehicles: int
    bks: float
    bks_vehicles: int
    gap_pct: float | None
    first_feasible_s: float | None
    elapsed_s: float


def family_of(problem_type: str) -> str:
    """Benchmark family from ``bks.csv``'s ``problem_type``."""
    if "Solomon" in problem_type:
        return "solomon"
    if "Homberger" in problem_type:
        return "homberger"
    return "x"


def select_instances(vrp_dir: Path, patterns: str) -> list[str]:
    """Instance names of ``bks.csv`` matching comma-separated shell patterns (e.g. ``"C1*,R101"``).

    Raises:
        InvalidArgumentError: (field ``instances``) a pattern matches nothing.
    """
    names = list(read_bks(vrp_dir))
    chosen: list[str] = []
    for pattern in (p.strip() for p in patterns.split(",") if p.strip()):
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            raise InvalidArgumentError("instances", f"pattern {pattern!r} matches no instance in bks.csv")
        chosen += [h for h in hits if h not in chosen]
    return chosen


async def run_bench(
    instances: Sequence[str],
    engines: Sequence[EngineName],
    time_limit_s: float,
    *,
    data_dir: Path,
    workers: int = 2,
    seed: int = 0,
    on_row: Callable[[BenchRow], None] | None = None,
) -> list[BenchRow]:
    """Run every engine on every instance through a fresh :class:`SolverPool`.

    Args:
        instances: names from ``bks.csv``.
        engines: ORTOOLS, PYVRP and/or PORTFOLIO.
        time_limit_s: time limit per job, seconds.
        data_dir: the data folder (holding ``vrp/``).
        workers: pool size (2 lets the portfolio run both engines at once).
        seed: PyVRP seed.
        on_row: called with each row as soon as it is measured.

    Returns:
        The rows, in run order.
    """
    vrp_dir = Path(data_dir) / "vrp"
    settings = Settings(solver_workers=workers, solver_queue_size=4,
                        solver_max_time_limit_s=max(time_limit_s, 1.0), solver_kill_grace_s=10.0)
    rows: list[BenchRow] = []
    async with SolverPool(settings) as pool:
        await pool.wait_ready()
        for name in instances:
            inst = load_instance(vrp_dir, name)
            for engine in engines:
                t0 = time.monotonic()
                job = await pool.submit(inst.problem, SolveOptions(time_limit_s=time_limit_s,
                                                                   engine=engine, seed=seed))
                first: float | None = None
                async for _ in job.events():
                    if first is None:
                        first = time.monotonic() - t0
                sol = await job.result()
                feasible = sol.feasible
                row = BenchRow(
                    instance=name, family=family_of(inst.bks.problem_type),
                    n_customers=inst.bks.n_customers, requested=engine.value, engine=sol.engine.value,
                    time_limit_s=time_limit_s, status=sol.status.value,
                    objective=inst.objective(sol.objective.distance_m) if feasible else None,
                    vehicles=sol.objective.vehicles_used, bks=inst.bks.bks_objective,
                    bks_vehicles=inst.bks.bks_vehicles,
                    gap_pct=inst.gap_pct(sol.objective.distance_m) if feasible else None,
                    first_feasible_s=first if feasible else None,
                    elapsed_s=time.monotonic() - t0)
                rows.append(row)
                if on_row is not None:
                    on_row(row)
    return rows


@dataclass(frozen=True)
class SummaryRow:
    """Per (family, requested engine): mean and max gap over instances solved, and counts."""

    family: str
    requested: str
    time_limit_s: float
    instances: int
    feasible: int
    mean_gap_pct: float | None
    max_gap_pct: float | None
    mean_first_feasible_s: float | None
    max_first_feasible_s: float | None


def summarise(rows: Sequence[BenchRow]) -> list[SummaryRow]:
    """One summary row per (family, requested engine, time limit), in first-seen order."""
    keys: list[tuple[str, str, float]] = []
    for r in rows:
        key = (r.family, r.requested, r.time_limit_s)
        if key not in keys:
            keys.append(key)
    out = []
    for family, requested, limit in keys:
        group = [r for r in rows if (r.family, r.requested, r.time_limit_s) == (family, requested, limit)]
        gaps = [r.gap_pct for r in group if r.gap_pct is not None]
        firsts = [r.first_feasible_s for r in group if r.first_feasible_s is not None]
        out.append(SummaryRow(
            family, requested, limit, len(group), len(gaps),
            statistics.fmean(gaps) if gaps else None, max(gaps) if gaps else None,
            statistics.fmean(firsts) if firsts else None, max(firsts) if firsts else None))
    return out


def _f(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def to_markdown(rows: Sequence[BenchRow], summary: Sequence[SummaryRow]) -> str:
    """The per-instance and summary tables as GitHub markdown."""
    lines = ["| instance | n | engine asked | engine won | limit s | status | objective | vehicles | BKS | BKS veh. | gap % | first feasible s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.instance} | {r.n_customers} | {r.requested} | {r.engine} | {r.time_limit_s:g} | "
                     f"{r.status} | {_f(r.objective, 1)} | {r.vehicles} | {r.bks:g} | {r.bks_vehicles} | "
                     f"{_f(r.gap_pct)} | {_f(r.first_feasible_s)} |")
    lines += ["", "| family | engine | limit s | instances | feasible | mean gap % | max gap % | mean first feasible s | max first feasible s |",
              "|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        lines.append(f"| {s.family} | {s.requested} | {s.time_limit_s:g} | {s.instances} | {s.feasible} | "
                     f"{_f(s.mean_gap_pct)} | {_f(s.max_gap_pct)} | {_f(s.mean_first_feasible_s)} | "
                     f"{_f(s.max_first_feasible_s)} |")
    return "\n".join(lines) + "\n"
