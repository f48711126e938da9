"""Ingestion through the whole path: gRPC IndexDocuments stream -> Triton -> Milvus (Lite).

Starts the real server in-process (local Triton on CPU, Milvus Lite under a temporary var
dir), streams the first N Boston 311 documents twice through the typed Python client, and
times end-to-end gRPC searches (Triton query embedding included):

    .venv/bin/python benchmarks/search_ingest_bench.py --limit 5000 --searches 50

Prints docs/s of the first run (everything new) and of the second (idempotent: nothing
embedded or written), and Search p50/p99 with and without a 1 km radius filter.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from wasteml.client import WastemlClient
from wasteml.v1 import common_pb2, search_pb2
from wasteml_server.app import BackgroundServer
from wasteml_server.core.settings import Settings
from wasteml_server.search.documents import Document
from wasteml_tools.search.boston311 import BOSTON_311_FILE, read_boston_311

REPO = Path(__file__).resolve().parents[1]


def _proto(doc: Document) -> search_pb2.SearchDocument:
    ts = Timestamp()
    ts.FromDatetime(doc.created_at)
    msg = search_pb2.SearchDocument(
        id=doc.id,
        text=doc.text,
        kind=doc.kind,
        location_approximate=doc.location_approximate,
        created_at=ts,
        source=doc.source,
    )
    if doc.location is not None:
        msg.location.CopyFrom(common_pb2.GeoPoint(
            latitude_deg=doc.location.latitude_deg, longitude_deg=doc.location.longitude_deg
        ))
    return msg


def main() -> int:
    """Run the measurement and print a markdown table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=5000)
    ap.add_argument("--searches", type=int, default=50)
    args = ap.parse_args()
    var = Path(tempfile.mkdtemp(prefix="search-ingest-bench-"))
    settings = Settings(
        host="127.0.0.1",
        port=0,
        var_dir=var,
        database_url=f"sqlite:///{var / 'wasteml.db'}",
        milvus_uri=str(var / "milvus.db"),
        model_repository=REPO / "model_repository",
        triton_env_dir=REPO / ".venv-triton",
        data_dir=REPO.parent / "shared" / "data",
        triton_url=None,
        metrics_port=None,
        solver_workers=1,
    )
    docs = [_proto(d) for d in read_boston_311(settings.data_dir / BOSTON_311_FILE, limit=args.limit)]
    server = BackgroundServer(settings)
    port = server.start(timeout_s=600)
    lines = []
    try:
        with WastemlClient(f"127.0.0.1:{port}", timeout_s=1800) as client:
            client.wait_until_serving(timeout_s=300)
            for run in ("first (all new)", "second (unchanged)"):
                t = time.perf_counter()
                reply = client.index_documents(docs, batch_size=256)
                s = time.perf_counter() - t
                lines.append(
                    f"| IndexDocuments {run} | {len(docs)} docs, {reply.documents_upserted} upserted | "
                    f"{s:.1f} s | {len(docs) / s:.0f} docs/s |"
                )
                sys.stderr.write(lines[-1] + "\n")
            radius = search_pb2.SearchFilters(
                radius=common_pb2.GeoCircle(
                    center=common_pb2.GeoPoint(latitude_deg=42.3293, longitude_deg=-71.0839), radius_m=1000
                )
            )
            for name, filters in (("Search, no filter", None), ("Search, 1 km radius", radius)):
                times = []
                for i in range(args.searches):
                    req = search_pb2.SearchRequest(query=f"dead raccoon on the sidewalk {i}", top_k=10)
                    if filters is not None:
                        req.filters.CopyFrom(filters)
                    t = time.perf_counter()
                    client.search_documents(req)
                    times.append(time.perf_counter() - t)
                ms = np.asarray(times) * 1000
                lines.append(
                    f"| {name} (gRPC, Triton embed + Milvus Lite) | {args.searches} queries | "
                    f"p50 {np.percentile(ms, 50):.1f} ms | p99 {np.percentile(ms, 99):.1f} ms |"
                )
                sys.stderr.write(lines[-1] + "\n")
    finally:
        server.stop()
        shutil.rmtree(var, ignore_errors=True)
    sys.stdout.write("| what | size | time | rate |\n| --- | --- | --- | --- |\n" + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
