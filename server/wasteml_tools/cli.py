"""The ``wasteml`` command line (typer).

``serve`` runs the orchestration server (with the local Triton unless ``WASTEML_TRITON_URL``
is set); ``triton`` runs the local Triton alone; ``doctor`` says what is configured, what is
reachable and which versions are installed; ``demo`` is the README's main job. Sub-apps:
``db`` (migrations), ``ingest`` (Boston 311 into search), ``train`` (forecasting models),
``export`` (text encoder export, parity through Triton, TensorRT, encoder benchmark) and
``bench`` (routing benchmarks).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import shutil
import socket
import sys
from pathlib import Path

import typer

from wasteml_server.core.settings import Settings
from wasteml_tools.export.cli import app as export_app
from wasteml_tools.forecasting.cli import app as train_app
from wasteml_tools.routing.cli import app as bench_app
from wasteml_tools.search.cli import app as ingest_app
from wasteml_tools.storage_cli import app as db_app

app = typer.Typer(
    help="wasteml: model-serving backend for waste-collection operations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(db_app, name="db", help="SQL store migrations.")
app.add_typer(ingest_app, name="ingest", help="Load real service requests into the search collection.")
app.add_typer(train_app, name="train", help="Train, backtest, export and register the forecasting models.")
app.add_typer(export_app, name="export", help="Model export and its checks (text encoder, parity, TensorRT, bench).")
app.add_typer(bench_app, name="bench", help="Benchmarks (routing on VRPLIB instances, Blantyre).")


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@app.command()
def serve() -> None:
    """Run the gRPC server until SIGTERM/SIGINT (settings from WASTEML_* variables)."""
    from wasteml_server.app import serve as run_server

    settings = Settings()
    _setup_logging(settings.log_level)
    asyncio.run(run_server(settings))


@app.command()
def triton() -> None:
    """Run the local Triton (the nvidia-pytriton bundle) alone, until Ctrl-C."""
    from wasteml_server.adapters.triton.manager import run_local_triton

    settings = Settings()
    _setup_logging(settings.log_level)
    raise typer.Exit(run_local_triton(settings))


def _reachable(host: str, port: int, timeout_s: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


@app.command()
def doctor() -> None:
    """Print what is configured, what is reachable, and the installed versions."""
    settings = Settings()
    typer.echo("settings (WASTEML_*):")
    for name, value in sorted(settings.model_dump().items()):
        shown = "***" if name.endswith("token") and value else value
        typer.echo(f"  {name:28s} {shown}")
    typer.echo("\npackages:")
    for dist in ("grpcio", "protobuf", "tritonclient", "pymilvus", "milvus-lite", "ortools", "pyvrp",
                 "lightgbm", "prophet", "onnxruntime", "numpy", "sqlalchemy", "alembic", "torch"):
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = "not installed"
        typer.echo(f"  {dist:28s} {version}")
    typer.echo("\nchecks:")
    checks: list[tuple[str, bool, str]] = []
    try:
        from wasteml_server.adapters.triton.distribution import TritonDistribution

        triton_dist = TritonDistribution.locate(settings.triton_env_dir)
        checks.append(("local Triton binary", True, str(triton_dist.binary)))
    except Exception as exc:  # doctor reports, it does not fail
        checks.append(("local Triton binary", False, str(exc)))
    if settings.triton_url:
        host, _, port = settings.triton_url.rpartition(":")
        checks.append(("external Triton", _reachable(host, int(port)), settings.triton_url))
    models = sorted(p.parent.name for p in Path(settings.model_repository).glob("*/config.pbtxt"))
    exported = sorted(
        p.parent.parent.name for p in Path(settings.model_repository).glob("*/[0-9]*/model.onnx")
    )
    checks.append(("model repository", bool(models), f"{len(models)} configs: {', '.join(models)}"))
    checks.append(("exported ONNX models", bool(exported), ", ".join(sorted(set(exported))) or "none"))
    try:
        from wasteml_server.adapters.storage import Database

        db = Database.from_settings(settings)
        db.ping()
        db.dispose()
        checks.append(("SQL store", True, settings.database_url))
    except Exception as exc:
        checks.append(("SQL store", False, f"{settings.database_url}: {exc}"))
    data = Path(settings.data_dir)
    checks.append(("real data", data.is_dir(), str(data.resolve())))
    checks.append(("node (TypeScript client)", shutil.which("node") is not None, shutil.which("node") or ""))
    for name, ok, detail in checks:
        typer.echo(f"  [{'ok' if ok else '--'}] {name:26s} {detail}")


@app.command()
def demo() -> None:
    """The main job: start local Triton and the server, call them through the gRPC API, report."""
    from wasteml_tools.demo import run_demo

    settings = Settings()
    _setup_logging("WARNING" if settings.log_level.upper() == "INFO" else settings.log_level)
    raise typer.Exit(run_demo(settings))


if __name__ == "__main__":
    app()
