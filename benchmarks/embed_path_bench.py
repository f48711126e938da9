"""Whole-path embedding benchmark (issue 3 target): client -> our server -> Triton -> reply,
against in-process ONNX Runtime on the same model and the same real texts, in one run.

Usage (repository root, after `make models triton-env`):

    .venv/bin/python benchmarks/embed_path_bench.py --seconds 20

Prints a markdown table: in-process ORT at batch 1 and batch 8 (one caller), and the gRPC
``SemanticSearch.Embed`` path at batch 1 with 1 and 8 concurrent clients (Triton's dynamic
batcher merges the concurrent single-text requests), with embeddings/s and p50/p99 latency,
then the two ratios the issue sets targets for: whole-path throughput at 8 clients over
in-process batch-8 throughput (target >= 0.85) and whole-path batch-1 p50 minus in-process
batch-1 p50 (target <= +4 ms).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from server_process import server_process  # noqa: E402
from wasteml_testing import DATA_DIR, ENCODER_ONNX  # noqa: E402

from wasteml.client import WastemlClient  # noqa: E402
from wasteml_models import TEXT_ENCODER  # noqa: E402
from wasteml_models.config import EncoderSignature  # noqa: E402
from wasteml_models.tokenizer import TextTokenizer  # noqa: E402
from wasteml_tools.search.boston311 import BOSTON_311_FILE, read_boston_311  # noqa: E402


def texts(n: int) -> list[str]:
    out = list(dict.fromkeys(d.text for d in read_boston_311(DATA_DIR / BOSTON_311_FILE, every=7)))
    return out[:n]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values) * 1e3, q))


def in_process(corpus: list[str], batch: int, seconds: float) -> tuple[float, list[float]]:
    opts = ort.SessionOptions()
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(ENCODER_ONNX), opts, providers=["CPUExecutionProvider"])
    repository = ENCODER_ONNX.parents[2]
    tok = TextTokenizer.from_repository(repository, TEXT_ENCODER)
    sig = EncoderSignature.load(repository, TEXT_ENCODER)
    lat, n, i = [], 0, 0
    end = time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < end:
        chunk = [corpus[(i + k) % len(corpus)] for k in range(batch)]
        i += batch
        t = time.perf_counter()
        for b in tok.encode_groups(chunk, max_batch_size=sig.max_batch_size):
            session.run([sig.embedding], {sig.input_ids: b.input_ids, sig.attention_mask: b.attention_mask})
        lat.append(time.perf_counter() - t)
        n += batch
    return n / (time.perf_counter() - start), lat


def through_server(address: str, corpus: list[str], clients: int, seconds: float) -> tuple[float, list[float]]:
    lat: list[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds
    counts = [0] * clients

    def worker(k: int) -> None:
        with WastemlClient(address, timeout_s=60) as c:
            i = k
            while time.perf_counter() < stop:
                t = time.perf_counter()
                c.embed([corpus[i % len(corpus)]])
                d = time.perf_counter() - t
                with lock:
                    lat.append(d)
                counts[k] += 1
                i += clients

    start = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - start), lat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    corpus = texts(800)
    rows = []
    # The server runs as its own process (as in production), so the benchmark's client threads
    # do not share its interpreter lock.
    with server_process() as (_, address):
        with WastemlClient(address) as c:
            c.embed(corpus[:16])  # warm up
        for name, fn in (
            ("in-process ORT, batch 1", lambda: in_process(corpus, 1, args.seconds)),
            ("in-process ORT, batch 8", lambda: in_process(corpus, 8, args.seconds)),
            ("gRPC Embed via server+Triton, batch 1, 1 client", lambda: through_server(address, corpus, 1, args.seconds)),
            ("gRPC Embed via server+Triton, batch 1, 8 clients", lambda: through_server(address, corpus, 8, args.seconds)),
        ):
            rate, lat = fn()
            rows.append((name, rate, pct(lat, 50), pct(lat, 99), len(lat)))
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}; {args.seconds:g} s per row; "
          f"{len(corpus)} distinct real Boston 311 texts\n")
    print("| path | embeddings/s | p50 ms | p99 ms | calls |\n| --- | ---: | ---: | ---: | ---: |")
    for name, rate, p50, p99, n in rows:
        print(f"| {name} | {rate:.1f} | {p50:.2f} | {p99:.2f} | {n} |")
    ratio = rows[3][1] / rows[1][1]
    delta = rows[2][2] - rows[0][2]
    print(f"\nwhole path at 8 clients / in-process batch 8 throughput: {ratio:.2f} (target >= 0.85)")
    print(f"whole path batch-1 p50 - in-process batch-1 p50: {delta:+.2f} ms (target <= +4 ms)")


if __name__ == "__main__":
    main()
