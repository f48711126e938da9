"""Denial-of-service benchmark (issue 12): the worst small request of each RPC we could
construct, sent to a real server process, with the server's health latency and RSS during it;
then floods of Health/Watch and WatchJob streams from one peer.

Usage (repository root, after `make setup models`; the server runs as its own process):

    .venv/bin/python benchmarks/dos_bench.py > benchmarks/dos.md

For each request the table gives its serialised size, the code it got, its wall time, the
worst ``Health/Check`` latency seen by a probe calling every 10 ms while it ran (the event loop
answers health, so this is how long the loop was held) against the idle baseline measured in
the same run, and the growth of the server process's RSS over its RSS before the call (peak,
sampled every 10 ms; solver workers and Triton are other processes and not counted).
Target: no request under 1 MB holds the loop for more than 100 ms or grows RSS by more than
100 MiB.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import psutil
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from routing_requests import coordinate_problem, matrix_problem  # noqa: E402
from server_process import server_process  # noqa: E402
from wasteml_testing import DATA_DIR  # noqa: E402

from wasteml.client import WastemlClient  # noqa: E402
from wasteml.v1 import admin_pb2, forecasting_pb2, planning_pb2, routing_pb2, search_pb2  # noqa: E402
from wasteml_tools.planning.blantyre_request import plan_day_request  # noqa: E402

MiB = 1024 * 1024


@dataclass
class Probe:
    """Health/Check every 10 ms on its own channel: the worst latency since the last reset."""

    target: str
    worst_s: float = 0.0
    failures: int = 0
    running: bool = True

    def run(self) -> None:
        with grpc.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while self.running:
                start = time.perf_counter()
                try:
                    stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
                except grpc.RpcError:
                    self.failures += 1
                self.worst_s = max(self.worst_s, time.perf_counter() - start)
                time.sleep(0.01)


@dataclass
class RssSampler:
    """Peak RSS of one process, sampled every 10 ms while running."""

    pid: int
    peak: int = 0
    running: bool = False

    def run(self) -> None:
        proc = psutil.Process(self.pid)
        while True:
            if self.running:
                self.peak = max(self.peak, proc.memory_info().rss)
            time.sleep(0.01)


def _options(seconds: int = 2) -> routing_pb2.SolveOptions:
    options = routing_pb2.SolveOptions()
    options.time_limit.FromSeconds(seconds)
    return options


def _plan_many_bins(bins: int | None = None) -> planning_pb2.PlanDayRequest:
    """The Blantyre day with its bins copied to random points by coordinates: ``bins`` of them,
    or as many as fit in ~900 KB."""
    request = plan_day_request(DATA_DIR, trucks=2, time_limit_s=2)
    request.ClearField("matrix")
    template = request.bins[0]
    del request.bins[:]
    rng = np.random.default_rng(3)
    i = 0
    while (i < bins) if bins is not None else (i % 500 or len(request.SerializeToString()) < 900_000):
        b = request.bins.add()
        b.CopyFrom(template)
        b.bin_id = f"b{i}"
        b.location.latitude_deg = -15.79 + rng.uniform(-0.05, 0.05)
        b.location.longitude_deg = 35.00 + rng.uniform(-0.05, 0.05)
        b.ClearField("location_index")
        i += 1
    for site in [*request.depots, *request.facilities]:
        site.ClearField("location_index")
        site.location.latitude_deg, site.location.longitude_deg = -15.7861, 35.0058
    return request


def _fill_many(bins: int = 400, readings: int = 100) -> forecasting_pb2.PredictFillLevelRequest:
    request = forecasting_pb2.PredictFillLevelRequest()
    t0 = 1_622_505_600
    for i in range(bins):
        b = request.bins.add(bin_id=f"bin-{i}", capacity_l=7000.0)
        for k in range(readings):
            b.recent_readings.add(time=Timestamp(seconds=t0 + k * 3600),
                                  fill_fraction=(k % 50) / 50)
        b.target_time.seconds = t0 + 200 * 3600
    return request


def cases() -> list[tuple[str, str, str, Callable[[], Message | list[Message]]]]:
    """(name, rpc path, kind, request builder); kind is unary, client_stream or server_stream."""
    long_text = "overflowing dumpster " * 600
    return [
        ("Solve: matrix.size 3,000,000, no values", "/wasteml.v1.RouteOptimizer/Solve", "unary",
         lambda: routing_pb2.SolveRequest(problem=routing_pb2.Problem(
             matrix=routing_pb2.TravelMatrix(size=3_000_000)))),
        ("Solve: 6,000 stops by coordinates", "/wasteml.v1.RouteOptimizer/Solve", "unary",
         lambda: routing_pb2.SolveRequest(problem=coordinate_problem(6_000), options=_options())),
        ("Solve: vehicle_types[0].count 20,000", "/wasteml.v1.RouteOptimizer/Solve", "unary",
         lambda: routing_pb2.SolveRequest(problem=coordinate_problem(50, count=20_000), options=_options())),
        ("Solve: distances 1e19", "/wasteml.v1.RouteOptimizer/Solve", "unary",
         lambda: routing_pb2.SolveRequest(problem=matrix_problem(6, distance=1e19, duration=60.0),
                                         options=_options(1))),
        ("SubmitJob: 6,000 stops by coordinates", "/wasteml.v1.RouteOptimizer/SubmitJob", "unary",
         lambda: routing_pb2.SubmitJobRequest(problem=coordinate_problem(6_000), options=_options())),
        ("Solve: 1,999 stops by coordinates (largest legal), 2 s", "/wasteml.v1.RouteOptimizer/Solve", "unary",
         lambda: routing_pb2.SolveRequest(problem=coordinate_problem(1_999), options=_options())),
        ("SubmitJob: 1,999 stops by coordinates (largest legal)", "/wasteml.v1.RouteOptimizer/SubmitJob", "unary",
         lambda: routing_pb2.SubmitJobRequest(problem=coordinate_problem(1_999), options=_options())),
        ("PlanDay: 1,998 bins by coordinates (largest legal), 2 s", "/wasteml.v1.CollectionPlanner/PlanDay",
         "server_stream", lambda: _plan_many_bins(1_998)),
        ("PlanDay: bins by coordinates up to ~900 KB", "/wasteml.v1.CollectionPlanner/PlanDay", "server_stream",
         _plan_many_bins),
        ("Embed: 1,024 texts of 880 chars (largest legal under 1 MB)", "/wasteml.v1.SemanticSearch/Embed", "unary",
         lambda: search_pb2.EmbedRequest(texts=[f"{i} " + "missed pickup, bins overflowing " * 27
                                                for i in range(1024)])),
        ("Search: 8,000-char query, top_k 1000", "/wasteml.v1.SemanticSearch/Search", "unary",
         lambda: search_pb2.SearchRequest(query="overflowing dumpster " * 380, top_k=1000)),
        ("Embed: 70 texts of 12.6 KB", "/wasteml.v1.SemanticSearch/Embed", "unary",
         lambda: search_pb2.EmbedRequest(texts=[long_text] * 70)),
        ("Search: 900 KB query", "/wasteml.v1.SemanticSearch/Search", "unary",
         lambda: search_pb2.SearchRequest(query="x " * 450_000, top_k=1000)),
        ("Search: unknown collection", "/wasteml.v1.SemanticSearch/Search", "unary",
         lambda: search_pb2.SearchRequest(collection="dos_unknown", query="bin", top_k=10)),
        ("GetCollectionStats: unknown collection", "/wasteml.v1.SemanticSearch/GetCollectionStats", "unary",
         lambda: search_pb2.GetCollectionStatsRequest(collection="dos_unknown_2")),
        ("DeleteDocuments: 16,384 ids with quotes", "/wasteml.v1.SemanticSearch/DeleteDocuments", "unary",
         lambda: search_pb2.DeleteDocumentsRequest(ids=[f"id-{i}'\"\\" for i in range(16_384)])),
        ("IndexDocuments: 2,000 documents in 20 messages", "/wasteml.v1.SemanticSearch/IndexDocuments",
         "client_stream", lambda: [_documents(100, k) for k in range(20)]),
        ("PredictFillLevel: 400 bins x 100 readings", "/wasteml.v1.Forecasting/PredictFillLevel", "unary", _fill_many),
        ("PredictFillLevel: 4,096 bins x 10 readings", "/wasteml.v1.Forecasting/PredictFillLevel", "unary",
         lambda: _fill_many(4096, 10)),
        ("ForecastDemand: horizon 2^31-1", "/wasteml.v1.Forecasting/ForecastDemand", "unary",
         lambda: forecasting_pb2.ForecastDemandRequest(
             series=forecasting_pb2.SeriesId(grain=forecasting_pb2.SERIES_GRAIN_SERVICE_LINE_DAILY, id="garbage"),
             horizon=2**31 - 1)),
        ("LoadModel: 300-char name", "/wasteml.v1.ModelAdmin/LoadModel", "unary",
         lambda: admin_pb2.LoadModelRequest(name="m" * 300)),
        ("ListRegistryEntries: 5,000-digit page token", "/wasteml.v1.ModelAdmin/ListRegistryEntries", "unary",
         lambda: admin_pb2.ListRegistryEntriesRequest(page_token="9" * 5000)),
        ("GetJob: 900 KB id", "/wasteml.v1.RouteOptimizer/GetJob", "unary",
         lambda: routing_pb2.GetJobRequest(job_id="j" * 900_000)),
    ]


def _documents(n: int, k: int) -> search_pb2.IndexDocumentsRequest:
    request = search_pb2.IndexDocumentsRequest(collection="dos_ingest")
    for i in range(n):
        d = request.documents.add(id=f"dos-{k}-{i}", text=f"Missed trash pickup number {i} on Elm St", kind="Missed Trash",
                                  source="Self Service")
        d.location.latitude_deg, d.location.longitude_deg = 42.35, -71.05
        d.created_at.seconds = 1_420_000_000 + i
    return request


def _call(channel: grpc.Channel, path: str, kind: str, request: Message | list[Message]) -> str:
    ident = lambda m: m.SerializeToString()  # noqa: E731
    try:
        if kind == "client_stream":
            channel.stream_unary(path, request_serializer=ident)(iter(request), timeout=60)
        elif kind == "server_stream":
            for _ in channel.unary_stream(path, request_serializer=ident)(request, timeout=60):
                pass
        else:
            channel.unary_unary(path, request_serializer=ident)(request, timeout=60)
    except grpc.RpcError as err:
        return err.code().name
    return "OK"


def _size(request: Message | list[Message]) -> int:
    if isinstance(request, list):
        return sum(len(m.SerializeToString()) for m in request)
    return len(request.SerializeToString())


def _floods(address: str, probe: Probe) -> Iterator[str]:
    """Health/Watch and WatchJob floods from one peer (one channel)."""
    with grpc.insecure_channel(address) as channel, grpc.insecure_channel(address) as other:
        watch = health_pb2_grpc.HealthStub(channel).Watch
        streams, refused = [], 0
        for _ in range(300):
            call = watch(health_pb2.HealthCheckRequest(), timeout=30)
            streams.append(call)
        time.sleep(1.0)
        for call in streams:
            if not call.running() and call.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                refused += 1
        probe.worst_s = 0.0
        start = time.perf_counter()
        code = _call(other, "/wasteml.v1.ModelAdmin/ListModels", "unary", admin_pb2.ListModelsRequest())
        api_ms = (time.perf_counter() - start) * 1e3
        time.sleep(0.3)
        yield (f"| 300 Health/Watch streams from one peer | {refused} refused | ListModels from another peer: "
               f"{code} in {api_ms:.0f} ms | worst health {probe.worst_s * 1e3:.0f} ms |")
        for call in streams:
            call.cancel()

        with WastemlClient(address) as client:
            job = client.routing.SubmitJob(routing_pb2.SubmitJobRequest(
                problem=coordinate_problem(30), options=_options(20)), timeout=30).job
        watchers = [channel.unary_stream("/wasteml.v1.RouteOptimizer/WatchJob",
                                         request_serializer=lambda m: m.SerializeToString())(
            routing_pb2.WatchJobRequest(job_id=job.job_id), timeout=30) for _ in range(300)]
        time.sleep(1.0)
        refused = sum(1 for w in watchers if not w.running() and w.code() == grpc.StatusCode.RESOURCE_EXHAUSTED)
        probe.worst_s = 0.0
        start = time.perf_counter()
        code = _call(other, "/wasteml.v1.RouteOptimizer/GetJob", "unary", routing_pb2.GetJobRequest(job_id=job.job_id))
        api_ms = (time.perf_counter() - start) * 1e3
        time.sleep(0.3)
        yield (f"| 300 WatchJob streams from one peer | {refused} refused | GetJob from another peer: "
               f"{code} in {api_ms:.0f} ms | worst health {probe.worst_s * 1e3:.0f} ms |")
        for w in watchers:
            w.cancel()


def main() -> None:
    rows = []
    with server_process() as (server, address):
        probe = Probe(address)
        threading.Thread(target=probe.run, daemon=True).start()
        rss = RssSampler(server.pid)
        threading.Thread(target=rss.run, daemon=True).start()
        time.sleep(2.0)
        probe.worst_s = 0.0
        time.sleep(3.0)
        idle_ms = probe.worst_s * 1e3
        channel = grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 64 * MiB),
                                                          ("grpc.max_receive_message_length", 64 * MiB)])
        for name, path, kind, build in cases():
            request = build()
            size = _size(request)
            before = psutil.Process(server.pid).memory_info().rss
            rss.peak = before
            probe.worst_s = 0.0
            rss.running = True
            start = time.perf_counter()
            code = _call(channel, path, kind, request)
            wall = time.perf_counter() - start
            time.sleep(0.05)
            rss.running = False
            rows.append((name, size, code, wall, probe.worst_s * 1e3, (rss.peak - before) / MiB))
        floods = list(_floods(address, probe))
        probe.running = False
        channel.close()
    print(f"{os.cpu_count()} CPUs; idle worst health latency over 3 s: {idle_ms:.0f} ms\n")
    print("| request | bytes | code | wall s | worst health ms | RSS growth MiB |")
    print("| --- | ---: | --- | ---: | ---: | ---: |")
    for name, size, code, wall, health_ms, growth in rows:
        print(f"| {name} | {size:,} | {code} | {wall:.2f} | {health_ms:.0f} | {growth:.1f} |")
    print("\n| flood | refused | API call during it | health |\n| --- | --- | --- | --- |")
    for row in floods:
        print(row)


if __name__ == "__main__":
    main()
