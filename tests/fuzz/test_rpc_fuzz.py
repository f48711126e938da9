"""Every RPC of the contract fuzzed against a live server (real Triton, Milvus Lite, SQLite,
solver pool, gRPC on loopback).

Requests are built from the protobuf descriptors (``proto_fuzz``): half are a real request with
hostile changes, half are built from nothing. For each call the suite asserts:

- the code is one a caller can act on: never INTERNAL, UNKNOWN, UNAVAILABLE (every dependency
  is up), UNIMPLEMENTED or DATA_LOSS;
- every INVALID_ARGUMENT carries a ``google.rpc.BadRequest`` whose field paths exist in the
  request message;
- a rejected call, and any call of a read-only RPC, changed no stored state: the Milvus
  collections and their row counts, the solver-job and plan rows;
- the server's health answers SERVING within 1 s after every call, and a thread polling
  ``Health/Check`` every 50 ms through the whole run never sees a failure.

The seed is printed at the start and in every failure; rerun one with
``WASTEML_FUZZ_SEED=<seed> pytest tests/fuzz``. ``WASTEML_FUZZ_EXAMPLES`` sets the examples per
RPC (default 30: about 540 calls, about a minute on 2 cores).
"""

from __future__ import annotations

import itertools
import os
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import grpc
import psutil
import pytest
from contract_paths import field_exists
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from proto_fuzz import arbitrary, mutated
from wasteml_testing import DATA_DIR, bad_request, require_local_stack, server_settings

from wasteml.v1 import (
    admin_pb2,
    common_pb2,
    forecasting_pb2,
    planning_pb2,
    routing_pb2,
    search_pb2,
)
from wasteml_server.app import BackgroundServer
from wasteml_server.codecs.common import timestamp
from wasteml_server.codecs.routing import problem_to_proto
from wasteml_server.codecs.search import document_to_proto
from wasteml_server.forecasting import fill_level as fl
from wasteml_tools.planning.blantyre_request import plan_day_request
from wasteml_tools.routing.instances import load_instance
from wasteml_tools.search.boston311 import BOSTON_311_FILE, read_boston_311

FUZZ_SEED = int(os.environ.get("WASTEML_FUZZ_SEED") or random.SystemRandom().randrange(2**32))
EXAMPLES = int(os.environ.get("WASTEML_FUZZ_EXAMPLES", "30"))

#: Codes hostile input may get. Everything else is a server fault.
ALLOWED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
}
#: Most the process's RSS may grow during one call (request built by the test included: a
#: mutation adds at most ~2 MB, and the server's own limits keep a request's cost far below).
MAX_RSS_GROWTH = 1 << 30
SERVICES = [admin_pb2, forecasting_pb2, planning_pb2, routing_pb2, search_pb2]
#: RPCs that must never change stored state, whatever they answer (reads never create).
READ_ONLY = {"ListModels", "GetModel", "ListRegistryEntries", "PredictFillLevel", "ForecastDemand", "GetJob",
             "WatchJob", "Embed", "Search", "GetCollectionStats"}


@dataclass
class Rpc:
    """One method of the contract: its path, request class, streaming shape and a real request."""

    service: str
    method: str
    request_type: type[Message]
    response_type: type[Message]
    client_streaming: bool
    server_streaming: bool
    seed: Message
    deadline_s: float = 5.0

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.method}"


@dataclass
class HealthProbe:
    """A thread calling ``Health/Check`` every 50 ms; records failures, the worst latency and
    the peak RSS of this process (the server runs in it; Triton and solver workers do not)."""

    target: str
    failures: list[str] = field(default_factory=list)
    worst_s: float = 0.0
    calls: int = 0
    peak_rss: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        me = psutil.Process()
        with grpc.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while not self._stop.wait(0.05):
                self.peak_rss = max(self.peak_rss, me.memory_info().rss)
                start = time.perf_counter()
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                    if reply.status != health_pb2.HealthCheckResponse.SERVING:
                        self.failures.append(f"status {reply.status}")
                except grpc.RpcError as err:
                    self.failures.append(f"{err.code().name}: {err.details()}")
                self.worst_s = max(self.worst_s, time.perf_counter() - start)
                self.calls += 1

    def stop(self) -> None:
        self._stop.set()


def _documents(n: int) -> list[search_pb2.SearchDocument]:
    path = DATA_DIR / BOSTON_311_FILE
    if not path.is_file():
        pytest.skip(f"real data missing: {path}")
    return [document_to_proto(d) for d in itertools.islice(read_boston_311(path, every=97), n)]


def _fill_seed() -> forecasting_pb2.PredictFillLevelRequest:
    """Two real Blantyre skips, 12 days of readings each, predicted one day ahead."""
    fullness = fl.load_fullness(DATA_DIR)
    request = forecasting_pb2.PredictFillLevelRequest(interval_coverage=0.8, top_contributions=2)
    for column in ("Naizi_inorganic_1", "Bangwe_Organic_1"):
        series = fullness[column]["2021-06-01":"2021-06-12"].dropna()
        b = request.bins.add(bin_id=column, capacity_l=7000.0)
        for ts, value in series.items():
            b.recent_readings.add(time=timestamp(ts.to_pydatetime().replace(tzinfo=UTC)), fill_fraction=float(value))
        b.target_time.CopyFrom(timestamp(series.index[-1].to_pydatetime().replace(tzinfo=UTC)))
        b.target_time.seconds += 86_400
    return request


def _seeds(job_id: str, docs: list[search_pb2.SearchDocument]) -> dict[str, Message]:
    problem = problem_to_proto(load_instance(DATA_DIR / "vrp", "C101", max_customers=6).problem)
    options = routing_pb2.SolveOptions()
    options.time_limit.FromSeconds(1)
    plan = plan_day_request(DATA_DIR, trucks=2, time_limit_s=2)
    search = search_pb2.SearchRequest(query="overflowing dumpster", top_k=5)
    search.filters.kinds.append(docs[0].kind)
    search.filters.radius.center.CopyFrom(common_pb2.GeoPoint(latitude_deg=42.36, longitude_deg=-71.06))
    search.filters.radius.radius_m = 2000.0
    search.filters.created_at.start_time.CopyFrom(timestamp(datetime(2015, 1, 1, tzinfo=UTC)))
    return {
        "ListModels": admin_pb2.ListModelsRequest(ready_only=True),
        "GetModel": admin_pb2.GetModelRequest(name="fill_level"),
        "LoadModel": admin_pb2.LoadModelRequest(name="fill_level", version="1"),
        "UnloadModel": admin_pb2.UnloadModelRequest(name="demand_daily"),
        "ListRegistryEntries": admin_pb2.ListRegistryEntriesRequest(name="fill_level", page_size=2),
        "PredictFillLevel": _fill_seed(),
        "ForecastDemand": forecasting_pb2.ForecastDemandRequest(
            series=forecasting_pb2.SeriesId(grain=forecasting_pb2.SERIES_GRAIN_SERVICE_LINE_DAILY, id="garbage"),
            horizon=7, quantiles=[0.1, 0.9]),
        "PlanDay": plan,
        "Solve": routing_pb2.SolveRequest(problem=problem, options=options),
        "SubmitJob": routing_pb2.SubmitJobRequest(problem=problem, options=options, label="fuzz"),
        "GetJob": routing_pb2.GetJobRequest(job_id=job_id),
        "WatchJob": routing_pb2.WatchJobRequest(job_id=job_id),
        "CancelJob": routing_pb2.CancelJobRequest(job_id=job_id),
        "Embed": search_pb2.EmbedRequest(texts=[d.text for d in docs[:3]]),
        "IndexDocuments": search_pb2.IndexDocumentsRequest(documents=docs[3:6]),
        "Search": search,
        "DeleteDocuments": search_pb2.DeleteDocumentsRequest(ids=[docs[6].id, docs[7].id]),
        "GetCollectionStats": search_pb2.GetCollectionStatsRequest(),
    }


def _rpcs(seeds: dict[str, Message]) -> list[Rpc]:
    out = []
    for module in SERVICES:
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                out.append(Rpc(
                    service=service.full_name,
                    method=method.name,
                    request_type=GetMessageClass(method.input_type),
                    response_type=GetMessageClass(method.output_type),
                    client_streaming=method.client_streaming,
                    server_streaming=method.server_streaming,
                    seed=seeds[method.name],
                    deadline_s=20.0 if method.name == "PlanDay" else 5.0,
                ))
    return out


METHOD_NAMES = [m.name for module in SERVICES for s in module.DESCRIPTOR.services_by_name.values()
                for m in s.methods]


@dataclass
class Fuzzed:
    """The live server under fuzz, its channel, the RPC table and the health probe."""

    server: BackgroundServer
    channel: grpc.Channel
    rpcs: dict[str, Rpc]
    probe: HealthProbe
    db_path: Path
    calls: int = 0
    codes: dict[str, int] = field(default_factory=dict)
    growth: dict[str, int] = field(default_factory=dict)

    def state(self) -> tuple[object, ...]:
        """Stored state a rejected call must not change: collections and their row counts,
        solver-job and plan rows."""
        store = self.server.app.search.store  # type: ignore[union-attr]
        client = store._connect()
        collections = tuple(sorted((name, store.count(name)) for name in client.list_collections()))
        with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True) as db:
            jobs = db.execute("SELECT count(*) FROM solver_jobs").fetchone()[0]
            plans = db.execute("SELECT count(*) FROM plans").fetchone()[0]
        return collections, jobs, plans

    def restore_models(self, before: set[str]) -> None:
        """Load again every model that was READY before an UnloadModel example."""
        stub = self.channel.unary_unary(
            "/wasteml.v1.ModelAdmin/LoadModel",
            request_serializer=admin_pb2.LoadModelRequest.SerializeToString,
            response_deserializer=admin_pb2.LoadModelResponse.FromString,
        )
        for name in sorted(before - self.ready_models()):
            stub(admin_pb2.LoadModelRequest(name=name), timeout=60)

    def ready_models(self) -> set[str]:
        stub = self.channel.unary_unary(
            "/wasteml.v1.ModelAdmin/ListModels",
            request_serializer=admin_pb2.ListModelsRequest.SerializeToString,
            response_deserializer=admin_pb2.ListModelsResponse.FromString,
        )
        return {m.name for m in stub(admin_pb2.ListModelsRequest(ready_only=True), timeout=10).models}


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    """A server of its own (fuzzing unloads models, deletes documents and cancels jobs), seeded
    with real documents and one solver job; the health probe runs for the whole module."""
    require_local_stack()
    print(f"\nRPC fuzz seed: {FUZZ_SEED} (rerun with WASTEML_FUZZ_SEED={FUZZ_SEED})")
    var = tmp_path_factory.mktemp("fuzz")
    os.environ.pop("WASTEML_TRITON_URL", None)
    server = BackgroundServer(server_settings(var, solver_workers=2, solver_max_time_limit_s=5.0))
    port = server.start(timeout_s=600)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[
        ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ])
    probe = HealthProbe(f"127.0.0.1:{port}")
    thread = threading.Thread(target=probe.run, name="health-probe", daemon=True)
    try:
        docs = _documents(12)
        index = channel.stream_unary(
            "/wasteml.v1.SemanticSearch/IndexDocuments",
            request_serializer=search_pb2.IndexDocumentsRequest.SerializeToString,
            response_deserializer=search_pb2.IndexDocumentsResponse.FromString,
        )
        index(iter([search_pb2.IndexDocumentsRequest(documents=docs)]), timeout=120)
        seeds_problem = problem_to_proto(load_instance(DATA_DIR / "vrp", "C101", max_customers=6).problem)
        submit = channel.unary_unary(
            "/wasteml.v1.RouteOptimizer/SubmitJob",
            request_serializer=routing_pb2.SubmitJobRequest.SerializeToString,
            response_deserializer=routing_pb2.SubmitJobResponse.FromString,
        )
        job = submit(routing_pb2.SubmitJobRequest(problem=seeds_problem, label="fuzz-seed"), timeout=30).job
        rpcs = {r.method: r for r in _rpcs(_seeds(job.job_id, docs))}
        thread.start()
        yield Fuzzed(server, channel, rpcs, probe, var / "wasteml.db")
    finally:
        probe.stop()
        if thread.is_alive():
            thread.join(timeout=5)
        channel.close()
        server.stop()
    print(f"\nRPC fuzz: health probe {probe.calls} calls, worst {probe.worst_s * 1000:.0f} ms, "
          f"{len(probe.failures)} failures")
    assert not probe.failures, f"seed {FUZZ_SEED}: health failed during the fuzz run: {probe.failures[:5]}"


def _call(fuzzed: Fuzzed, rpc: Rpc, request: Message | list[Message]) -> grpc.RpcError | None:
    """Make the call; None on OK, else the error (server streams are read to their end)."""
    ser, de = rpc.request_type.SerializeToString, rpc.response_type.FromString
    channel = fuzzed.channel
    try:
        if rpc.client_streaming:
            assert isinstance(request, list)
            channel.stream_unary(rpc.path, request_serializer=ser, response_deserializer=de)(
                iter(request), timeout=rpc.deadline_s)
        elif rpc.server_streaming:
            for _ in channel.unary_stream(rpc.path, request_serializer=ser, response_deserializer=de)(
                    request, timeout=rpc.deadline_s):
                pass
        else:
            channel.unary_unary(rpc.path, request_serializer=ser, response_deserializer=de)(
                request, timeout=rpc.deadline_s)
    except grpc.RpcError as err:
        return err
    return None


def _requests(rpc: Rpc) -> st.SearchStrategy[Message | list[Message]]:
    one = st.one_of(mutated(rpc.seed), arbitrary(rpc.request_type.DESCRIPTOR))
    if rpc.client_streaming:
        return st.lists(st.one_of(one, st.just(rpc.seed)), min_size=0, max_size=3)
    return one


def _check_one(fuzzed: Fuzzed, rpc: Rpc, request: Message | list[Message]) -> None:
    before = fuzzed.state()
    ready = fuzzed.ready_models() if rpc.method == "UnloadModel" else set()
    rss_before = fuzzed.probe.peak_rss = psutil.Process().memory_info().rss
    err = _call(fuzzed, rpc, request)
    time.sleep(0.06)  # one more probe sample
    growth = fuzzed.probe.peak_rss - rss_before
    fuzzed.growth[rpc.method] = max(fuzzed.growth.get(rpc.method, 0), growth)
    code = grpc.StatusCode.OK if err is None else err.code()
    fuzzed.calls += 1
    fuzzed.codes[code.name] = fuzzed.codes.get(code.name, 0) + 1
    where = f"seed {FUZZ_SEED}, {rpc.method}"
    detail = "" if err is None else (err.details() or "")[:500]
    assert code in ALLOWED, f"{where}: {code.name}: {detail}"
    assert growth < MAX_RSS_GROWTH, f"{where}: RSS grew by {growth / 2**20:.0f} MiB during the call ({code.name})"
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        assert err is not None
        violations = bad_request(err).field_violations
        assert violations, f"{where}: INVALID_ARGUMENT without field violations: {detail}"
        for v in violations:
            assert field_exists(rpc.request_type.DESCRIPTOR, v.field), (
                f"{where}: violation names {v.field!r}, not a field of {rpc.request_type.__name__}: {detail}")
    if code != grpc.StatusCode.OK or rpc.method in READ_ONLY:
        assert fuzzed.state() == before, f"{where}: call ({code.name}: {detail}) changed stored state"
    if ready:
        fuzzed.restore_models(ready)
    health = health_pb2_grpc.HealthStub(fuzzed.channel)
    reply = health.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING, f"{where}: health {reply.status} after the call"


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_hostile_requests_get_actionable_codes(fuzzed: Fuzzed, method: str) -> None:
    """Hostile requests of one RPC never get INTERNAL/UNKNOWN/UNAVAILABLE, every INVALID_ARGUMENT
    names fields of the request, a rejected call stores nothing, and health keeps answering."""
    rpc = fuzzed.rpcs[method]

    @seed(FUZZ_SEED)
    @settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
              suppress_health_check=list(HealthCheck))
    @given(request=_requests(rpc))
    def run(request: Message | list[Message]) -> None:
        _check_one(fuzzed, rpc, request)

    run()


def test_fuzz_run_summary(fuzzed: Fuzzed) -> None:
    """Every RPC was exercised (prints the code counts of the run)."""
    print(f"\nRPC fuzz seed {FUZZ_SEED}: {fuzzed.calls} calls, codes {dict(sorted(fuzzed.codes.items()))}")
    print("peak RSS growth during one call, MiB: "
          + ", ".join(f"{m} {g / 2**20:.0f}" for m, g in sorted(fuzzed.growth.items(), key=lambda x: -x[1])))
    assert fuzzed.calls >= len(METHOD_NAMES)

