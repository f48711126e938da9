"""``wasteml train demand|fill-level``: backtest, fit, export, register, load on Triton.

The lead mounts ``app`` as ``wasteml train``. Each command prints the backtest table
(markdown), trains on all data, writes ``model_repository/<model>/<next version>/``, records the
version in the SQL model registry (``settings.database_url``) and, when a Triton URL is given
(``--triton-url`` or ``WASTEML_TRITON_URL``), asks Triton to (re)load the model with explicit
model control. ``--skip-if-trained`` makes re-runs of the README demo cheap.

Examples::

    wasteml train demand                       # both grains, backtest + Prophet intervals
    wasteml train demand --grain daily --no-backtest
    wasteml train fill-level --skip-if-trained --triton-url 127.0.0.1:8001
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from wasteml_server.core.settings import Settings

if TYPE_CHECKING:  # the training stack (lightgbm, onnxmltools, prophet) loads on use only
    from wasteml_tools.forecasting import training

logger = logging.getLogger(__name__)

app = typer.Typer(help="Train, backtest and export the forecasting models.",
                  no_args_is_help=True, pretty_exceptions_enable=False)


def _finish(report: training.TrainReport, settings: Settings, register: bool,
            triton_url: str | None) -> None:
    from wasteml_tools.forecasting import training

    if report.skipped:
        typer.echo(f"{report.model_name}: version {report.version} already trained, training "
                   "skipped (--skip-if-trained)")
    elif report.table:
        typer.echo(f"\n## {report.model_name}: backtest\n\n{report.table}\n")
    p = report.parity
    typer.echo(f"{report.model_name} v{report.version} -> {report.path}")
    if p is not None and not report.skipped:
        typer.echo(f"  ONNX parity on {p.n_rows} training rows: max abs err {p.max_abs_err:.3g}, "
                   f"max rel err {p.max_rel_err:.3g} (floor {p.floor:.4g}; "
                   f"{'OK' if p.ok else 'FAILED'})")
    if report.seconds:
        secs = ", ".join(f"{k} {v:.1f} s" for k, v in report.seconds.items())
        typer.echo(f"  timings: {secs}")
    if register:
        try:
            done = training.register(report, settings.database_url)
            typer.echo(f"  registered: {', '.join(done) or 'nothing new'}")
        except Exception as err:  # the registry is optional for a local training run
            typer.echo(f"  registry skipped: {err}")
    if triton_url:
        try:
            asyncio.run(_load(settings, triton_url, report.model_name))
            typer.echo(f"  Triton at {triton_url} (re)loaded {report.model_name}")
        except Exception as err:
            typer.echo(f"  Triton load failed: {err}")
    else:
        typer.echo("  no Triton URL given (--triton-url / WASTEML_TRITON_URL): load skipped")


async def _load(settings: Settings, url: str, model_name: str) -> None:
    from wasteml_server.adapters.triton.client import TritonClient

    async with TritonClient.from_settings(settings, url) as client:
        await client.load_model(model_name)


BacktestOpt = Annotated[bool, typer.Option(help="Run the rolling-origin backtest first.")]
SkipOpt = Annotated[bool, typer.Option(help="Do nothing if a trained version exists.")]
RegisterOpt = Annotated[bool, typer.Option(help="Record the version in the SQL model registry.")]
TritonOpt = Annotated[str | None, typer.Option(help="Triton gRPC host:port to (re)load the "
                                               "model on; default WASTEML_TRITON_URL.")]
DataDirOpt = Annotated[Path | None, typer.Option(help="Override WASTEML_DATA_DIR.")]
RepoOpt = Annotated[Path | None, typer.Option(help="Override WASTEML_MODEL_REPOSITORY.")]


def _settings(data_dir: Path | None, model_repository: Path | None) -> Settings:
    overrides = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if model_repository is not None:
        overrides["model_repository"] = model_repository
    return Settings(**overrides)


@app.command()
def demand(
    grain: Annotated[list[str] | None, typer.Option(help="Grain to train (repeatable): daily, "
                                                    "weekly; default both.")] = None,
    backtest: BacktestOpt = True,
    intervals: Annotated[bool, typer.Option(help="Fit Prophet interval models.")] = True,
    skip_if_trained: SkipOpt = False,
    register: RegisterOpt = True,
    triton_url: TritonOpt = None,
    data_dir: DataDirOpt = None,
    model_repository: RepoOpt = None,
) -> None:
    """Demand models: city-daily kg per service line and weekly kg per garbage route."""
    from wasteml_tools.forecasting import training

    settings = _settings(data_dir, model_repository)
    url = triton_url or settings.triton_url
    grain = grain or ["daily", "weekly"]
    for g in grain:
        if g not in ("daily", "weekly"):
            raise typer.BadParameter(f"unknown grain {g!r}", param_hint="--grain")
    t0 = time.perf_counter()
    for g in grain:
        report = training.train_demand_grain(
            settings.data_dir, settings.model_repository, g, run_backtest=backtest,
            intervals=intervals, skip_if_trained=skip_if_trained)
        _finish(report, settings, register, url)
    typer.echo(f"demand: done in {time.perf_counter() - t0:.1f} s")


@app.command("fill-level")
def fill_level(
    backtest: BacktestOpt = True,
    skip_if_trained: SkipOpt = False,
    register: RegisterOpt = True,
    triton_url: TritonOpt = None,
    data_dir: DataDirOpt = None,
    model_repository: RepoOpt = None,
) -> None:
    """Skip fill-level model (Blantyre): fill fraction at a future time and time to full."""
    from wasteml_tools.forecasting import training

    settings = _settings(data_dir, model_repository)
    t0 = time.perf_counter()
    report = training.train_fill_level(settings.data_dir, settings.model_repository,
                                       run_backtest=backtest, skip_if_trained=skip_if_trained)
    _finish(report, settings, register, triton_url or settings.triton_url)
    typer.echo(f"fill-level: done in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    app()
