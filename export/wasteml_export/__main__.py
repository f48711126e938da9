"""``python -m wasteml_export <command>``: model export and validation.

Commands:

- ``text-encoder``: export all-MiniLM-L6-v2 (fp32 + INT8 ONNX) into the model repository;
  seconds when up to date (the Makefile's ``models`` target runs it on every ``make``).
- ``parity``: print fp32/INT8 parity on real texts; ``--triton`` also compares through the
  local Triton. Exit status 1 when a bound is missed.
- ``tensorrt``: build the TensorRT plan of the encoder (needs an NVIDIA GPU and ``tensorrt``);
  exits 0 with a message and builds nothing where there is none.
- ``bench``: throughput and latency of the text encoder (in-process and through Triton).

Paths default to the settings (``WASTEML_MODEL_REPOSITORY``, ``WASTEML_DATA_DIR``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

from wasteml_server.core.settings import Settings


def _text_encoder(args: argparse.Namespace, settings: Settings) -> int:
    from wasteml_export.text_encoder import INT8_MODEL_NAME, MODEL_NAME, export_text_encoder

    result = export_text_encoder(args.repository, args.data_dir, force=args.force)
    if not result.rebuilt:
        print(f"text encoder up to date in {args.repository} ({result.seconds:.1f} s check)")
        return 0
    for name in (MODEL_NAME, INT8_MODEL_NAME):
        info = result.infos[name]
        size = info["files"]["model.onnx"]["bytes"] / 2**20
        print(f"{name}: {size:.1f} MiB, export {info['export_seconds']} s")
        for label, figures in info["parity"].items():
            if label != "data":
                print(f"  {label}: {json.dumps(figures)}")
    print(f"exported in {result.seconds:.1f} s")
    return 0


def _parity(args: argparse.Namespace, settings: Settings) -> int:
    from wasteml_export.parity import format_report, run_parity

    if args.triton:
        from wasteml_export.triton_embed import TritonEmbedders

        # The rendered CPU repository goes to a private var dir: a server using var/ is untouched.
        with tempfile.TemporaryDirectory(prefix="wasteml-parity-") as var_dir:
            settings = settings.model_copy(
                update={"model_repository": args.repository, "var_dir": Path(var_dir)}
            )
            with TritonEmbedders(settings) as embedders:
                report = run_parity(args.repository, args.data_dir, args.texts, embedders.embedder)
    else:
        report = run_parity(args.repository, args.data_dir, args.texts)
    print(format_report(report))
    return 0 if report.ok else 1


def _tensorrt(args: argparse.Namespace, settings: Settings) -> int:
    from wasteml_export.tensorrt import main as tensorrt_main

    return tensorrt_main(args.repository, force=args.force, data_dir=args.data_dir)


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    from wasteml_export.bench import main as bench_main

    settings = settings.model_copy(update={"model_repository": args.repository})
    return bench_main(settings, args)


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    """The argument parser of ``python -m wasteml_export``."""
    parser = argparse.ArgumentParser(
        prog="python -m wasteml_export", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--repository",
            type=Path,
            default=settings.model_repository,
            help="Triton model repository (default: %(default)s)",
        )
        p.add_argument(
            "--data-dir",
            type=Path,
            default=settings.data_dir,
            help="real data directory (default: %(default)s)",
        )

    p = sub.add_parser("text-encoder", help="export the text encoder (fp32 + INT8 ONNX)")
    common(p)
    p.add_argument("--force", action="store_true", help="rebuild even when up to date")
    p.set_defaults(func=_text_encoder)

    p = sub.add_parser("parity", help="print parity of the exported text encoders")
    common(p)
    p.add_argument("--texts", type=int, default=512, help="real texts to compare (default 512)")
    p.add_argument("--triton", action="store_true", help="also compare through the local Triton")
    p.set_defaults(func=_parity)

    p = sub.add_parser("tensorrt", help="build the TensorRT plan (GPU only)")
    common(p)
    p.add_argument("--force", action="store_true", help="rebuild even when up to date")
    p.set_defaults(func=_tensorrt)

    p = sub.add_parser("bench", help="benchmark the text encoder")
    common(p)
    p.add_argument("--seconds", type=float, default=5.0, help="duration of each measurement")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 64])
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    p.add_argument("--no-triton", action="store_true", help="in-process ONNX Runtime only")
    p.add_argument("--output", type=Path, default=None, help="write the markdown table here")
    p.set_defaults(func=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser(settings).parse_args(argv)
    return int(args.func(args, settings))


if __name__ == "__main__":
    sys.exit(main())
