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

from wasteml_server.errors import InvalidArgumentError
from wasteml_server.routing.bench import (
    BenchRow,
    run_bench,
    select_instances,
    summarise,
    to_markdown,
)
from wasteml_server.routing.engine import EngineName
from wasteml_server.settings import Settings

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
