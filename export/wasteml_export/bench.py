"""Benchmark of the text encoder in-process (not a test): the pieces that need no server.

Measures embeddings per second and per-request latency (p50, p99) for request batch sizes
(default 1, 8, 32, 64) on real Boston 311 texts through in-process ONNX Runtime, fp32 and INT8,
one caller (intra-op threads = all cores, spinning off).

Requests are tokenised before timing (the tokenizer's cost is reported separately), each padded
to its own length bucket as the server does. Every cell runs for ``seconds`` after one warm-up
request.

The ``wasteml export bench`` command (:mod:`wasteml_tools.export.bench`) runs these cells and
adds the same models through the local Triton; the table format is :func:`to_markdown`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wasteml_export.text_encoder import onnxruntime_embedder, service_request_texts
from wasteml_models import TEXT_ENCODER, TEXT_ENCODER_INT8
from wasteml_models.tokenizer import TextTokenizer

#: Texts sampled for the benchmark requests (seed 1).
BENCH_TEXTS = 2048
#: Requests prepared per batch size (cycled through during a cell).
REQUESTS_PER_BATCH = 64

Request = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Cell:
    """One measurement.

    Attributes:
        path: ``in-process`` or ``triton dyn-batch on/off``.
        model: model name.
        batch: texts per request.
        concurrency: requests in flight at once.
        requests: requests completed.
        embeddings_per_s: texts embedded per second of wall time.
        p50_ms: median request latency, milliseconds.
        p99_ms: 99th percentile request latency, milliseconds.
    """

    path: str
    model: str
    batch: int
    concurrency: int
    requests: int
    embeddings_per_s: float
    p50_ms: float
    p99_ms: float


def make_requests(
    tokenizer: TextTokenizer, texts: list[str], batch: int, count: int, seed: int = 0
) -> list[Request]:
    """``count`` requests of ``batch`` random real texts each, tokenised and bucket-padded."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        picks = rng.choice(len(texts), size=batch, replace=False)
        out.append(tokenizer.encode([texts[i] for i in picks]))
    return out


def make_cell(
    path: str, model: str, batch: int, conc: int, lat: list[float], wall: float
) -> Cell:
    """A :class:`Cell` from request latencies (seconds) and the wall time of the run."""
    q = np.percentile(np.asarray(lat) * 1000.0, [50, 99])
    return Cell(
        path, model, batch, conc, len(lat), len(lat) * batch / wall, float(q[0]), float(q[1])
    )


def bench_in_process(
    run: Callable[[np.ndarray, np.ndarray], np.ndarray],
    requests: list[Request],
    seconds: float,
) -> tuple[list[float], float]:
    """Call ``run`` on the requests in turn for ``seconds``; returns (latencies s, wall s)."""
    run(*requests[0])  # warm-up
    lat: list[float] = []
    started = time.perf_counter()
    i = 0
    while time.perf_counter() - started < seconds:
        t0 = time.perf_counter()
        run(*requests[i % len(requests)])
        lat.append(time.perf_counter() - t0)
        i += 1
    return lat, time.perf_counter() - started


def to_markdown(cells: list[Cell], header: str) -> str:
    """Cells as a markdown table under ``header``."""
    lines = [
        header,
        "",
        "| path | model | batch | concurrency | requests | embeddings/s | p50 ms | p99 ms |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in cells:
        lines.append(
            f"| {c.path} | {c.model} | {c.batch} | {c.concurrency} | {c.requests} | "
            f"{c.embeddings_per_s:.1f} | {c.p50_ms:.2f} | {c.p99_ms:.2f} |"
        )
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class BenchRequests:
    """The prepared requests of one benchmark run.

    Attributes:
        by_batch: batch size -> tokenised, bucket-padded requests.
        tokenize_us: tokenisation cost per text, microseconds (not part of any cell).
    """

    by_batch: dict[int, list[Request]]
    tokenize_us: float


def prepare_requests(
    repository: Path, data_dir: Path, batches: Sequence[int], seed: int = 1
) -> BenchRequests:
    """Real texts, tokenised with the exported tokenizer into requests per batch size.

    Raises:
        FileNotFoundError: the tokenizer is not exported yet, or the data is missing.
    """
    texts = service_request_texts(data_dir, BENCH_TEXTS, seed=seed)
    tokenizer = TextTokenizer.from_repository(repository, TEXT_ENCODER)
    t0 = time.perf_counter()
    tokenizer.encode_groups(texts)
    tokenize_us = (time.perf_counter() - t0) / len(texts) * 1e6
    by_batch = {b: make_requests(tokenizer, texts, b, REQUESTS_PER_BATCH, seed=b) for b in batches}
    return BenchRequests(by_batch, tokenize_us)


def bench_onnxruntime(
    repository: Path,
    requests: BenchRequests,
    seconds: float,
    on_cell: Callable[[Cell], None] | None = None,
) -> list[Cell]:
    """In-process ONNX Runtime cells for both encoders and every batch size.

    Args:
        repository: model repository with the exported encoders.
        requests: from :func:`prepare_requests`.
        seconds: duration of each cell.
        on_cell: called with each cell as soon as it is measured (progress output).
    """
    cells: list[Cell] = []
    for model in (TEXT_ENCODER, TEXT_ENCODER_INT8):
        run = onnxruntime_embedder(repository, model)
        for b, reqs in requests.by_batch.items():
            lat, wall = bench_in_process(run, reqs, seconds)
            cells.append(make_cell("in-process ORT", model, b, 1, lat, wall))
            if on_cell is not None:
                on_cell(cells[-1])
    return cells


def markdown_row(cell: Cell) -> str:
    """One cell as a markdown table row."""
    return to_markdown([cell], "").splitlines()[-1]
