"""Benchmark of the text encoder: in-process ONNX Runtime vs the local Triton (not a test).

``wasteml export bench`` (:func:`run_bench`). Measures embeddings per second and
per-request latency (p50, p99) for request batch sizes (default 1, 8, 32, 64) on real Boston
311 texts:

- in-process ONNX Runtime, fp32 and INT8, one caller (:func:`wasteml_export.bench.bench_onnxruntime`);
- through the local Triton (KServe v2 gRPC, the server's aio ``TritonClient``), fp32 and INT8,
  with the production ``dynamic_batching`` on and with it removed, at concurrency 1 and 8
  (that many requests in flight at once from one asyncio loop).

Requests are tokenised before timing (the tokenizer's cost is reported separately), each padded
to its own length bucket as the server does. Every cell runs for ``seconds`` after one warm-up
request. On the shared 2-core development machines other processes compete for the CPU: the
load average before and after is recorded with the results, compare cells of one run only.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import numpy as np
from google.protobuf import text_format

from wasteml_export.bench import (
    Cell,
    Request,
    bench_onnxruntime,
    make_cell,
    prepare_requests,
    to_markdown,
)
from wasteml_export.text_encoder import version_dir
from wasteml_models import TEXT_ENCODER, TEXT_ENCODER_INT8
from wasteml_models.config import CONFIG_FILE, load_model_config
from wasteml_server.core.settings import Settings
from wasteml_tools.export.triton_embed import TritonEmbedders

NO_DB_SUFFIX = "_nodb"


async def bench_triton(
    infer: Callable[[np.ndarray, np.ndarray], Awaitable[object]],
    requests: list[Request],
    seconds: float,
    concurrency: int,
) -> tuple[list[float], float]:
    """``concurrency`` asyncio workers send requests for ``seconds``; (latencies s, wall s)."""
    await infer(*requests[0])  # warm-up
    lat: list[float] = []
    counter = iter(range(1 << 62))
    started = time.perf_counter()

    async def worker() -> None:
        while time.perf_counter() - started < seconds:
            ids, mask = requests[next(counter) % len(requests)]
            t0 = time.perf_counter()
            await infer(ids, mask)
            lat.append(time.perf_counter() - t0)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return lat, time.perf_counter() - started


def bench_repository(source: Path, dest: Path) -> list[str]:
    """A repository with both encoders as production states them and copies without
    ``dynamic_batching`` (``<name>_nodb``); version folders are symlinks. Returns model names."""
    names = []
    for model in (TEXT_ENCODER, TEXT_ENCODER_INT8):
        config = load_model_config(source / model / CONFIG_FILE)
        for name, batching in ((model, True), (model + NO_DB_SUFFIX, False)):
            variant = type(config)()
            variant.CopyFrom(config)
            variant.name = name
            if not batching:
                variant.ClearField("dynamic_batching")
            (dest / name).mkdir(parents=True)
            (dest / name / CONFIG_FILE).write_text(text_format.MessageToString(variant))
            (dest / name / "1").symlink_to(
                version_dir(source, model).resolve(), target_is_directory=True
            )
            names.append(name)
    return names


def bench_through_triton(
    settings: Settings,
    repository: Path,
    requests: dict[int, list[Request]],
    seconds: float,
    concurrency: Sequence[int],
    on_cell: Callable[[Cell], None] | None = None,
) -> list[Cell]:
    """Triton cells: both encoders with and without dynamic batching, every batch size and
    concurrency, through a local Triton started on a private copy of the repository."""
    cells: list[Cell] = []
    with tempfile.TemporaryDirectory(prefix="wasteml-bench-") as tmp:
        repo = Path(tmp) / "repository"
        names = bench_repository(repository, repo)
        local = settings.model_copy(
            update={"model_repository": repo, "var_dir": Path(tmp) / "var", "triton_url": None}
        )
        with TritonEmbedders(local) as triton:
            for name in names:
                path = "triton dyn-batch " + ("off" if name.endswith(NO_DB_SUFFIX) else "on")
                model = name.removesuffix(NO_DB_SUFFIX)

                def infer(ids: np.ndarray, mask: np.ndarray, _n: str = name) -> Awaitable[object]:
                    return triton.infer_async(_n, ids, mask)

                for b, reqs in requests.items():
                    for conc in concurrency:
                        lat, wall = triton.run(bench_triton(infer, reqs, seconds, conc))
                        cells.append(make_cell(path, model, b, conc, lat, wall))
                        if on_cell is not None:
                            on_cell(cells[-1])
    return cells


def run_bench(
    settings: Settings,
    seconds: float = 5.0,
    batches: Sequence[int] = (1, 8, 32, 64),
    concurrency: Sequence[int] = (1, 8),
    triton: bool = True,
    on_cell: Callable[[Cell], None] | None = None,
) -> str:
    """``wasteml export bench``: every cell, then the markdown table with its header.

    Args:
        settings: ``model_repository`` and ``data_dir`` locate the models and texts; the
            Triton settings (``triton_env_dir``, ``triton_instance_count``, ...) start the
            local Triton (always a local one: ``triton_url`` is ignored).
        seconds: duration of each measurement.
        batches: request batch sizes.
        concurrency: requests in flight at once (Triton only).
        triton: False measures in-process ONNX Runtime only.
        on_cell: called with each cell as soon as it is measured (progress output).

    Returns:
        the markdown table (header line: tokenisation cost, CPUs, load average).
    """
    repository = settings.model_repository
    requests = prepare_requests(repository, settings.data_dir, batches)
    load_before = os.getloadavg()
    cells = bench_onnxruntime(repository, requests, seconds, on_cell=on_cell)
    if triton:
        cells += bench_through_triton(
            settings, repository, requests.by_batch, seconds, concurrency, on_cell=on_cell
        )
    load_after = os.getloadavg()
    header = (
        f"Tokenisation (not timed above): {requests.tokenize_us:.0f} us/text. "
        f"{os.cpu_count()} CPUs; load average before {load_before[0]:.2f}, "
        f"after {load_after[0]:.2f}. Local Triton: {settings.triton_instance_count} instances x "
        "1 ORT thread per model."
    )
    return to_markdown(cells, header)
