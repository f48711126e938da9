"""Benchmark (not a pass/fail test): the exported text encoder in-process vs through the local
Triton with TritonClient, batch 1 latency and 8-client throughput on real texts.

Run: ``.venv/bin/pytest -m slow -s tests/triton/test_triton_benchmark.py``. Prints figures;
asserts only that every reply matches in-process ONNX Runtime to 1e-5.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time

import numpy as np
import onnxruntime as ort
import pytest
from triton_testutils import ENCODER_MODEL, ENCODER_ONNX, encoder_feeds, real_texts

from wasteml_server.adapters.triton.manager import LocalTriton
from wasteml_server.adapters.triton.ort_runner import make_session

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not ENCODER_ONNX.is_file(), reason=f"{ENCODER_ONNX} not exported"),
]

SECONDS = float(os.environ.get("WASTEML_BENCH_SECONDS", "5"))


def _percentiles(samples_s: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples_s)
    p99 = ms[min(len(ms) - 1, int(0.99 * len(ms)))]
    return f"p50 {statistics.median(ms):.2f} ms, p99 {p99:.2f} ms, n={len(ms)}"


async def test_benchmark_encoder_triton_vs_in_process(encoder_triton: LocalTriton) -> None:
    """Prints batch-1 latency and 8-concurrent throughput, in-process ORT vs local Triton."""
    feeds = encoder_feeds(real_texts(256))
    session: ort.InferenceSession = make_session(ENCODER_ONNX)  # same options as inside Triton
    client = encoder_triton.client

    lat_ort: list[float] = []
    end = time.monotonic() + SECONDS
    i = 0
    while time.monotonic() < end:
        t0 = time.perf_counter()
        session.run(["embedding"], feeds[i % len(feeds)])
        lat_ort.append(time.perf_counter() - t0)
        i += 1

    lat_triton: list[float] = []
    end = time.monotonic() + SECONDS
    i = 0
    while time.monotonic() < end:
        feed = feeds[i % len(feeds)]
        t0 = time.perf_counter()
        reply = await client.infer(ENCODER_MODEL, feed, ["embedding"])
        lat_triton.append(time.perf_counter() - t0)
        if i < 16:
            want = session.run(["embedding"], feed)[0]
            np.testing.assert_allclose(reply["embedding"], want, atol=1e-5, rtol=0)
        i += 1

    served = 0

    async def worker(start: int) -> None:
        nonlocal served
        j = start
        while time.monotonic() < stop_at:
            await client.infer(ENCODER_MODEL, feeds[j % len(feeds)], ["embedding"])
            served += 1
            j += 8

    stop_at = time.monotonic() + SECONDS
    t0 = time.monotonic()
    await asyncio.gather(*(worker(k) for k in range(8)))
    throughput_triton = served / (time.monotonic() - t0)

    print(f"\nload average at end: {os.getloadavg()[0]:.2f} (2 cores shared)")
    print(
        f"in-process ORT, batch 1 (1 thread): {_percentiles(lat_ort)}, {1 / statistics.mean(lat_ort):.1f} texts/s"
    )
    print(f"local Triton via TritonClient, batch 1: {_percentiles(lat_triton)}")
    print(f"local Triton, 8 concurrent clients of batch 1: {throughput_triton:.1f} texts/s")
