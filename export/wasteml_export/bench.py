"""Benchmark of the text encoder: in-process ONNX Runtime vs the local Triton (not a test).

Measures embeddings per second and per-request latency (p50, p99) for request batch sizes
(default 1, 8, 32, 64) on real Boston 311 texts:

- in-process ONNX Runtime, fp32 and INT8, one caller (intra-op threads = all cores, spinning off);
- through the local Triton (KServe v2 gRPC, the server's aio ``TritonClient``), fp32 and INT8,
  with the production ``dynamic_batching`` on and with it removed, at concurrency 1 and 8
  (that many requests in flight at once from one asyncio loop).

Requests are tokenised before timing (the tokenizer's cost is reported separately), each padded
to its own length bucket as the server does. Every cell runs for ``--seconds`` after one warm-up
request. On the shared 2-core development machines other processes compete for the CPU: the
load average before and after is recorded with the results, compare cells of one run only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from wasteml_export.text_encoder import (
    INT8_MODEL_NAME,
    MODEL_FILE,
    MODEL_NAME,
    ort_embedder,
    ort_session,
    service_request_texts,
    version_dir,
)
from wasteml_models.tokenizer import TextTokenizer
from wasteml_server.core.settings import Settings

NO_DB_SUFFIX = "_nodb"


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
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` requests of ``batch`` random real texts each, tokenised and bucket-padded."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        picks = rng.choice(len(texts), size=batch, replace=False)
        out.append(tokenizer.encode([texts[i] for i in picks]))
    return out


def _cell(path: str, model: str, batch: int, conc: int, lat: list[float], wall: float) -> Cell:
    q = np.percentile(np.asarray(lat) * 1000.0, [50, 99])
    return Cell(
        path, model, batch, conc, len(lat), len(lat) * batch / wall, float(q[0]), float(q[1])
    )


def bench_in_process(
    run: Callable[[np.ndarray, np.ndarray], np.ndarray],
    requests: list[tuple[np.ndarray, np.ndarray]],
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


async def bench_triton(
    infer: Callable[[np.ndarray, np.ndarray], object],
    requests: list[tuple[np.ndarray, np.ndarray]],
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
    for model in (MODEL_NAME, INT8_MODEL_NAME):
        config = text_format.Parse(
            (source / model / "config.pbtxt").read_text(), model_config_pb2.ModelConfig()
        )
        for name, batching in ((model, True), (model + NO_DB_SUFFIX, False)):
            variant = model_config_pb2.ModelConfig()
            variant.CopyFrom(config)
            variant.name = name
            if not batching:
                variant.ClearField("dynamic_batching")
            (dest / name).mkdir(parents=True)
            (dest / name / "config.pbtxt").write_text(text_format.MessageToString(variant))
            (dest / name / "1").symlink_to(
                version_dir(source, model).resolve(), target_is_directory=True
            )
            names.append(name)
    return names


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


def main(settings: Settings, args: argparse.Namespace) -> int:
    """The ``bench`` command; prints the markdown table and writes it to ``--output``."""
    repository: Path = args.repository
    texts = service_request_texts(args.data_dir, 2048, seed=1)
    tokenizer = TextTokenizer.from_repository(repository, MODEL_NAME)
    t0 = time.perf_counter()
    tokenizer.encode_groups(texts)
    tokenize_us = (time.perf_counter() - t0) / len(texts) * 1e6
    requests = {b: make_requests(tokenizer, texts, b, 64, seed=b) for b in args.batches}
    load_before = os.getloadavg()
    cells: list[Cell] = []
    for model in (MODEL_NAME, INT8_MODEL_NAME):
        run = ort_embedder(ort_session(version_dir(repository, model) / MODEL_FILE))
        for b in args.batches:
            lat, wall = bench_in_process(run, requests[b], args.seconds)
            cells.append(_cell("in-process ORT", model, b, 1, lat, wall))
            print(to_markdown(cells[-1:], "").splitlines()[-1], flush=True)
    if not args.no_triton:
        from wasteml_export.triton_embed import TritonEmbedders

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

                    def infer(ids: np.ndarray, mask: np.ndarray, _n: str = name) -> object:
                        return triton.infer_async(_n, ids, mask)

                    for b in args.batches:
                        for conc in args.concurrency:
                            lat, wall = triton.run(
                                bench_triton(infer, requests[b], args.seconds, conc)
                            )
                            cells.append(_cell(path, model, b, conc, lat, wall))
                            print(to_markdown(cells[-1:], "").splitlines()[-1], flush=True)
    load_after = os.getloadavg()
    header = (
        f"Tokenisation (not timed above): {tokenize_us:.0f} us/text. "
        f"{os.cpu_count()} CPUs; load average before {load_before[0]:.2f}, "
        f"after {load_after[0]:.2f}. Local Triton: {settings.triton_instance_count} instances x "
        "1 ORT thread per model."
    )
    table = to_markdown(cells, header)
    print(table)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(table)
    return 0
