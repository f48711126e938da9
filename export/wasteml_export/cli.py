"""The export commands, one implementation each, and the ``python -m wasteml_export`` parser.

Commands (pure export: explicit paths, no server, no settings):

- ``text-encoder``: export all-MiniLM-L6-v2 (fp32 + INT8 ONNX) into the model repository;
  seconds when up to date (the Makefile's ``models`` target runs it on every ``make``).
- ``tensorrt``: build the TensorRT plan of the encoder (needs an NVIDIA GPU and ``tensorrt``);
  exits 0 with a message and builds nothing where there is none.

Both take ``--repository`` (default ``model_repository``) and ``--data-dir`` (default
``../shared/data``), relative to the working directory: the same defaults as the server's
settings, which this package does not read. ``wasteml export text-encoder|tensorrt`` (the
tools' CLI) runs the same functions with the paths of the ``WASTEML_MODEL_REPOSITORY`` and
``WASTEML_DATA_DIR`` settings, and adds ``parity`` and ``bench``, which need the local Triton.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

#: Defaults of ``--repository`` and ``--data-dir`` (as the server's settings default them).
DEFAULT_REPOSITORY = Path("model_repository")
DEFAULT_DATA_DIR = Path("../shared/data")


def text_encoder(repository: Path, data_dir: Path, force: bool = False) -> int:
    """The ``text-encoder`` command: export (unless fresh) and print a summary; exit status."""
    from wasteml_export.text_encoder import export_text_encoder

    result = export_text_encoder(repository, data_dir, force=force)
    if not result.rebuilt:
        print(f"text encoder up to date in {repository} ({result.seconds:.1f} s check)")
        return 0
    for name, info in result.infos.items():
        size = info["files"]["model.onnx"]["bytes"] / 2**20
        print(f"{name}: {size:.1f} MiB, export {info['export_seconds']} s")
        for label, figures in info["parity"].items():
            if label != "data":
                print(f"  {label}: {json.dumps(figures)}")
    print(f"exported in {result.seconds:.1f} s")
    return 0


def tensorrt(repository: Path, data_dir: Path | None, force: bool = False) -> int:
    """The ``tensorrt`` command (see :func:`wasteml_export.tensorrt.main`); exit status."""
    from wasteml_export.tensorrt import main as tensorrt_main

    return tensorrt_main(repository, force=force, data_dir=data_dir)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m wasteml_export``."""
    parser = argparse.ArgumentParser(
        prog="python -m wasteml_export",
        description="Model export (pure: explicit paths; parity and bench: `wasteml export`).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--repository",
            type=Path,
            default=DEFAULT_REPOSITORY,
            help="Triton model repository with the committed configs (default: %(default)s)",
        )
        p.add_argument(
            "--data-dir",
            type=Path,
            default=DEFAULT_DATA_DIR,
            help="real data directory (default: %(default)s)",
        )
        p.add_argument("--force", action="store_true", help="rebuild even when up to date")

    p = sub.add_parser("text-encoder", help="export the text encoder (fp32 + INT8 ONNX)")
    common(p)
    p.set_defaults(run=lambda a: text_encoder(a.repository, a.data_dir, force=a.force))

    p = sub.add_parser("tensorrt", help="build the TensorRT plan (GPU only)")
    common(p)
    p.set_defaults(run=lambda a: tensorrt(a.repository, a.data_dir, force=a.force))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m wasteml_export``; returns the process exit status."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return int(args.run(args))
