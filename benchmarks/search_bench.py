"""Search latency benchmark: Milvus Lite vs the embedded Milvus 2.3 server, 20k and 100k vectors.

Usage (after ``wasteml ingest evaluate --uri var/bench/milvus.db`` filled a Lite collection
with the 20,832 real Boston 311 documents):

    .venv/bin/python benchmarks/search_bench.py --lite-uri var/bench/milvus.db \
        --queries 100 --out benchmarks/search.md

What it measures, per back-end and size, store-level ``MilvusStore.search`` wall time (the
query embedding excluded; it is reported once, separately, for the in-process ONNX encoder):
no filter; kinds filter; July time range; 1 km radius (bbox prefilter + haversine); top_k 10.
Sizes: the 20,832 real documents (vectors read back from the Lite collection), and 100,000 =
those plus 79,168 random unit vectors (Gaussian, normalised; latency only, they carry real
metadata copied from random real documents so filters keep their selectivity).
Runs on whatever machine it is started on; the figures in search.md say which.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from wasteml_server.adapters.milvus import MilvusStore
from wasteml_server.core.common import ModelRef
from wasteml_server.core.geo import GeoPoint
from wasteml_server.search.documents import Document, from_epoch_s
from wasteml_server.search.embedding import OnnxEmbedder
from wasteml_server.search.filters import GeoCircle, SearchFilters, TimeRange
from wasteml_tools.search.evaluate import Corpus, load_queries


def _docs(corpus: Corpus) -> list[Document]:
    return [
        Document(
            id=corpus.ids[i],
            text=corpus.texts[i],
            kind=corpus.kinds[i],
            location=GeoPoint(float(corpus.lat[i]), float(corpus.lon[i])),
            created_at=from_epoch_s(int(corpus.created_at_s[i])),
            source=corpus.sources[i],
        )
        for i in range(len(corpus.ids))
    ]


def _load(
    store: MilvusStore, docs: list[Document], vectors: np.ndarray, model: ModelRef, batch: int = 1000
) -> float:
    t0 = time.perf_counter()
    store.ensure_collection()
    for s in range(0, len(docs), batch):
        store.upsert(docs[s : s + batch], vectors[s : s + batch], model)
    store.flush()
    return time.perf_counter() - t0


def _pct(values: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000.0, p))


def _bench(store: MilvusStore, qvecs: np.ndarray, n: int, filters: SearchFilters | None) -> tuple[float, float, float]:
    store.search(qvecs[0], 10, filters)  # warm
    times = []
    for i in range(n):
        t = time.perf_counter()
        store.search(qvecs[i % len(qvecs)], 10, filters)
        times.append(time.perf_counter() - t)
    return _pct(times, 50), _pct(times, 99), statistics.fmean(times) * 1000


def main() -> int:
    """Run the benchmark and write the markdown table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lite-uri", required=True, help="Lite file holding the ingested Boston 311 collection")
    ap.add_argument("--collection", default="service_requests")
    ap.add_argument("--queries", type=int, default=100, help="searches per configuration")
    ap.add_argument("--sizes", default="20832,100000")
    ap.add_argument("--backends", default="lite,server")
    ap.add_argument("--server-index", default="FLAT,HNSW", help="vector index types on the server")
    ap.add_argument("--lite-index", default="FLAT", help="vector index types on Lite")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    embedder = OnnxEmbedder.from_repository("model_repository")
    src = MilvusStore(args.lite_uri, collection=args.collection, timeout_s=60, dimension=embedder.dimension)
    corpus = Corpus.from_store(src)
    src.close()
    real_docs = _docs(corpus)
    n_real = len(real_docs)
    texts = [q["query"] for q in load_queries()]
    t = time.perf_counter()
    qvecs = embedder.embed_sync(texts)
    embed_ms = (time.perf_counter() - t) * 1000 / len(texts)
    single = []
    for q in texts[:20]:
        t = time.perf_counter()
        embedder.embed_sync([q])
        single.append(time.perf_counter() - t)

    rng = np.random.default_rng(0)
    filters = {
        "none": None,
        "kinds (2 of 15)": SearchFilters(kinds=("Pick up Dead Animal", "Needle Pickup")),
        "July 2015": SearchFilters(
            created_at=TimeRange(datetime(2015, 7, 1, tzinfo=UTC), datetime(2015, 8, 1, tzinfo=UTC))
        ),
        "radius 1 km": SearchFilters(radius=GeoCircle(GeoPoint(42.3293, -71.0839), 1000.0)),
    }
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="search-bench-"))
    server = None
    try:
        for backend in args.backends.split(","):
            if backend == "server":
                from wasteml_tools.search.milvus_server import EmbeddedMilvus

                server = EmbeddedMilvus(tmp / "server", startup_timeout_s=300)
                server.start()
                uri = server.uri
            else:
                uri = str(tmp / "lite" / "milvus.db")
            indexes = (args.server_index if backend == "server" else args.lite_index).split(",")
            for size, index in ((int(s), i) for s in args.sizes.split(",") for i in indexes):
                store = MilvusStore(
                    uri, collection=f"bench_{size}_{index}", timeout_s=60, admin_timeout_s=900, index_type=index,
                    dimension=embedder.dimension,
                )
                store.drop_collection()
                extra = max(0, size - n_real)
                docs = real_docs[: min(size, n_real)]
                vecs = corpus.vectors[: len(docs)]
                if extra:
                    r = rng.normal(size=(extra, vecs.shape[1])).astype(np.float32)
                    r /= np.linalg.norm(r, axis=1, keepdims=True)
                    src_idx = rng.integers(0, n_real, extra)
                    docs = docs + [replace(real_docs[j], id=f"random-{i}") for i, j in enumerate(src_idx)]
                    vecs = np.vstack([vecs, r])
                load_s = _load(store, docs, vecs, embedder.model)
                for fname, f in filters.items():
                    p50, p99, mean = _bench(store, qvecs, args.queries, f)
                    rows.append((backend, index, size, extra, fname, p50, p99, mean, load_s))
                    sys.stderr.write(f"{backend:6} {index:5} {size:6} {fname:16} p50 {p50:7.1f} ms p99 {p99:7.1f} ms\n")
                store.drop_collection()
                store.close()
            if server is not None:
                server.stop()
                server = None
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    lines = [
        "| back-end | index | vectors (random) | filter | p50 ms | p99 ms | mean ms | load+flush s |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for backend, index, size, extra, fname, p50, p99, mean, load_s in rows:
        name = "Milvus Lite 3.2 (in-process)" if backend == "lite" else "Milvus 2.3.5 server (embedded)"
        lines.append(
            f"| {name} | {index} | {size} ({extra}) | {fname} | {p50:.1f} | {p99:.1f} | {mean:.1f} | {load_s:.0f} |"
        )
    header = (
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared with "
        f"other work while measured). {args.queries} searches per row, top_k 10, HNSW M 16 / "
        f"efConstruction 200 / ef 64, FLAT exact; consistency Bounded.\n\nQuery embedding (ONNX Runtime in-process, fp32): "
        f"{statistics.median(single) * 1000:.1f} ms p50 for one query; {embed_ms:.1f} ms per text "
        f"in a batch of {len(texts)}.\n"
    )
    text = header + "\n" + "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
