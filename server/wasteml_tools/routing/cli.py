"""``wasteml bench routing``: the routing benchmark from the command line.

The lead mounts ``app`` as ``wasteml bench``. Example (the representative subset of
benchmarks/routing.md)::

    wasteml bench routing --instances 'C101,C201,R101,R201,RC101,RC201' \\
        --engines ortools,pyvrp,portfolio --time-limit 30 --markdown var/bench.md
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from wasteml_server.core.errors import InvalidArgumentError
from wasteml_server.core.settings import Settings
from wasteml_server.routing.options import EngineName, SolveOptions
from wasteml_tools.routing.bench import (
    BenchRow,
    run_bench,
    select_instances,
    summarise,
    to_markdown,
)

app = typer.Typer(help="Benchmarks.", no_args_is_help=True)


@app.callback()
def _bench() -> None:
    """Benchmarks (routing engines against best-known solutions)."""


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


@app.command("routing")
def routing(
    instances: Annotated[str, typer.Option(
        help="Comma-separated names or shell patterns from data/vrp/bks.csv, e.g. 'C1*,X-n101-k25'.")]
        = "C101,R101,RC101",
    engines: Annotated[str, typer.Option(help="Comma-separated: ortools, pyvrp, portfolio.")]
        = "ortools,pyvrp,portfolio",
    time_limit: Annotated[float, typer.Option("--time-limit", help="Time limit per job, seconds.")] = 30.0,
    workers: Annotated[int, typer.Option(help="Solver pool size (2 lets the portfolio race both engines).")] = 2,
    seed: Annotated[int, typer.Option(help="PyVRP seed.")] = 0,
    markdown: Annotated[Path | None, typer.Option(help="Also write the tables as markdown to this file.")] = None,
) -> None:
    """Solve benchmark instances with each engine and print objective, vehicles, gap to BKS and
    time to first feasible, per instance and summarised."""
    logging.basicConfig(level=logging.WARNING)
    console = Console()
    data_dir = Path(Settings().data_dir)
    try:
        names = select_instances(data_dir / "vrp", instances)
        chosen = [EngineName(e.strip()) for e in engines.split(",") if e.strip()]
    except (InvalidArgumentError, ValueError) as err:
        raise typer.BadParameter(str(err)) from err
    if any(e is EngineName.AUTO for e in chosen):
        raise typer.BadParameter("name engines explicitly: ortools, pyvrp, portfolio")

    def show(row: BenchRow) -> None:
        console.print(f"{row.instance:>12} {row.requested:>9} -> {row.engine:<7} {row.status:<19} "
                      f"obj {_fmt(row.objective, 1):>9} veh {row.vehicles:>3} gap {_fmt(row.gap_pct):>6} % "
                      f"first {_fmt(row.first_feasible_s)} s")

    rows = asyncio.run(run_bench(names, chosen, time_limit, data_dir=data_dir, workers=workers,
                                 seed=seed, on_row=show))
    summary = summarise(rows)
    table = Table(title=f"routing benchmark, {time_limit:g} s per job")
    for col in ("family", "engine", "instances", "feasible", "mean gap %", "max gap %",
                "mean first feasible s"):
        table.add_column(col)
    for s in summary:
        table.add_row(s.family, s.requested, str(s.instances), str(s.feasible), _fmt(s.mean_gap_pct),
                      _fmt(s.max_gap_pct), _fmt(s.mean_first_feasible_s))
    console.print(table)
    if markdown is not None:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(to_markdown(rows, summary))
        console.print(f"markdown written to {markdown}")


@app.command("blantyre")
def blantyre(
    required: Annotated[str, typer.Option(help="Comma-separated skip ids (1-53) that must be emptied.")]
        = "1,2,3,5,8,13,21,34",
    optional: Annotated[str, typer.Option(help="Comma-separated skip ids that may be emptied.")]
        = "4,6,7,9,10,11,12,14,15,16,17,18,19,20,22,23,24,25,26,27",
    penalty: Annotated[float, typer.Option(help="Penalty of leaving an optional skip full (per km = 1).")]
        = 30.0,
    trucks: Annotated[int, typer.Option(help="Skip-loader trucks.")] = 3,
    time_limit: Annotated[float, typer.Option("--time-limit", help="Time limit per engine, seconds.")] = 10.0,
) -> None:
    """Solve one real Blantyre day (yard ID 56, Mzedi dump ID 54, road matrix) with each engine."""
    from wasteml_server.routing.pool import SolverPool
    from wasteml_tools.routing.blantyre import day_problem

    console = Console()
    settings = Settings()
    try:
        req = [int(x) for x in required.split(",") if x.strip()]
        opt = {int(x): penalty for x in optional.split(",") if x.strip()}
        problem = day_problem(req, opt, trucks=trucks, data_dir=settings.data_dir)
    except (InvalidArgumentError, ValueError) as err:
        raise typer.BadParameter(str(err)) from err

    async def run() -> None:
        async with SolverPool(settings.model_copy(update={"solver_workers": 2})) as pool:
            await pool.wait_ready()
            for engine in (EngineName.ORTOOLS, EngineName.PYVRP, EngineName.PORTFOLIO):
                sol = await pool.solve(problem, SolveOptions(time_limit_s=time_limit, engine=engine))
                served = sum(len(r.stop_indices) for r in sol.routes)
                ends = ", ".join(f"{r.end_s // 3600:02d}:{r.end_s % 3600 // 60:02d}" for r in sol.routes)
                console.print(f"{engine.value:>9} -> {sol.engine.value:<7} {sol.status.value:<9} objective "
                              f"{sol.objective.total:8.2f} = {sol.objective.distance_m / 1000:.1f} km + "
                              f"penalties {sol.objective.penalty:.0f}; skips emptied {served}/"
                              f"{len(problem.stops)}; trucks {sol.objective.vehicles_used}; back at {ends}")

    asyncio.run(run())
