"""``wasteml export``: model export and its checks, with paths from the settings.

Every command reads ``WASTEML_MODEL_REPOSITORY`` (default ``model_repository``) and
``WASTEML_DATA_DIR`` (default ``../shared/data``) through the server's settings:

- ``text-encoder`` and ``tensorrt`` run the same functions as ``python -m wasteml_export
  text-encoder|tensorrt`` (:mod:`wasteml_export.cli`, which takes the paths as arguments);
- ``parity`` prints the in-process parity figures and, with ``--triton``, compares both
  encoders through the local Triton (started with the ``WASTEML_TRITON_*`` settings, or
  ``WASTEML_TRITON_URL`` when set);
- ``bench`` benchmarks the encoders in-process and through a local Triton.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from wasteml_export import cli as export_cli
from wasteml_server.core.settings import Settings

app = typer.Typer(
    help="Model export and its checks (paths from WASTEML_MODEL_REPOSITORY, WASTEML_DATA_DIR).",
    no_args_is_help=True,
)

ForceOption = Annotated[bool, typer.Option("--force", help="Rebuild even when up to date.")]


def _settings() -> Settings:
    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")
    return settings


@app.command("text-encoder")
def text_encoder(force: ForceOption = False) -> None:
    """Export the text encoder (fp32 + INT8 ONNX) into the model repository (idempotent)."""
    settings = _settings()
    raise typer.Exit(export_cli.text_encoder(settings.model_repository, settings.data_dir, force))


@app.command()
def tensorrt(force: ForceOption = False) -> None:
    """Build the TensorRT plan of the text encoder (GPU only; a clean skip elsewhere)."""
    settings = _settings()
    raise typer.Exit(export_cli.tensorrt(settings.model_repository, settings.data_dir, force))


@app.command()
def parity(
    texts: Annotated[int, typer.Option(help="Real texts to compare.")] = 512,
    triton: Annotated[bool, typer.Option(
        "--triton", help="Also compare both encoders through the local Triton.")] = False,
) -> None:
    """Print fp32/INT8 parity on real texts (exit status 1 when a bound is missed)."""
    from wasteml_tools.export.parity import check_parity

    table, ok = check_parity(_settings(), texts, triton=triton)
    typer.echo(table)
    raise typer.Exit(0 if ok else 1)


@app.command()
def bench(
    seconds: Annotated[float, typer.Option(help="Duration of each measurement.")] = 5.0,
    batches: Annotated[list[int] | None, typer.Option(
        "--batch", help="Request batch size (repeat the option; default 1 8 32 64).")] = None,
    concurrency: Annotated[list[int] | None, typer.Option(
        "--concurrency", help="Requests in flight through Triton (repeat; default 1 8).")] = None,
    no_triton: Annotated[bool, typer.Option(
        "--no-triton", help="In-process ONNX Runtime only.")] = False,
    output: Annotated[Path | None, typer.Option(help="Also write the markdown table here.")] = None,
) -> None:
    """Benchmark the text encoder: throughput and latency in-process and through Triton."""
    from wasteml_export.bench import markdown_row
    from wasteml_tools.export.bench import run_bench

    table = run_bench(
        _settings(),
        seconds=seconds,
        batches=batches or [1, 8, 32, 64],
        concurrency=concurrency or [1, 8],
        triton=not no_triton,
        on_cell=lambda cell: typer.echo(markdown_row(cell)),
    )
    typer.echo(table)
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(table)
