"""Locust load test of the wasteml gRPC API: a dispatch day's mix of Search, Embed,
PredictFillLevel and small Solve calls, built from the real data (see ``wasteml_workload``).

gRPC under locust, as locust documents it: grpc is switched to gevent before any channel
exists; each simulated user has its own channel; a client interceptor reports every call to
``events.request`` (request_type "grpc", name = full method, response time in ms, response
size, the exception on a non-OK status). Tags select RPCs: ``--tags search embed`` or
``--exclude-tags solve``. Before the run, the master (or the single local process) indexes a
slice of the Boston 311 cases with IndexDocuments so that Search has a real collection; that
call is reported too.

    locust -f loadtests/locustfile.py --headless -u 8 -r 2 -t 3m --host 127.0.0.1:50051

Target hosts: loopback only on development machines; see loadtests/README.md.
"""

from __future__ import annotations

import grpc.experimental.gevent as grpc_gevent

grpc_gevent.init_gevent()  # must run before any channel is created

import json  # noqa: E402
import logging  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import grpc  # noqa: E402
from locust import User, between, events, tag, task  # noqa: E402
from locust.env import Environment  # noqa: E402
from locust.exception import StopUser  # noqa: E402
from locust.runners import WorkerRunner  # noqa: E402
from wasteml_workload import Workload  # noqa: E402

from wasteml.v1 import forecasting_pb2_grpc, routing_pb2_grpc, search_pb2_grpc  # noqa: E402

logger = logging.getLogger("wasteml.loadtest")
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


class GrpcStatusError(Exception):
    """A call that ended with a non-OK status; ``str`` is ``"<CODE>: <details>"``."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code


class LocustInterceptor(grpc.UnaryUnaryClientInterceptor):
    """Reports each unary call to locust: name = full method, latency ms, reply bytes, status."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment

    def intercept_unary_unary(self, continuation, client_call_details, request):  # noqa: D102
        start = time.perf_counter()
        exception: Exception | None = None
        length = 0
        call = continuation(client_call_details, request)
        try:
            length = call.result().ByteSize()
        except grpc.RpcError as err:
            exception = GrpcStatusError(err.code(), err.details() or "")
        self.environment.events.request.fire(
            request_type="grpc",
            name=client_call_details.method,
            response_time=(time.perf_counter() - start) * 1000.0,
            response_length=length,
            response=None,
            context=None,
            exception=exception,
        )
        return call


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    group = parser.add_argument_group("wasteml")
    group.add_argument("--wasteml-data-dir", env_var="LOCUST_WASTEML_DATA_DIR", default=str(DEFAULT_DATA_DIR),
                       help="the shared real-data folder (Boston 311, Blantyre)")
    group.add_argument("--wasteml-token", env_var="LOCUST_WASTEML_TOKEN", default="",
                       help="bearer token when the server sets WASTEML_AUTH_TOKEN")
    group.add_argument("--wasteml-index-docs", env_var="LOCUST_WASTEML_INDEX_DOCS", type=int, default=2000,
                       help="Boston 311 cases indexed before the run when Search is selected (0: none)")
    group.add_argument("--wasteml-timeout-s", env_var="LOCUST_WASTEML_TIMEOUT_S", type=float, default=30.0,
                       help="deadline of each call, seconds (Solve: its time limit plus this)")
    group.add_argument("--wasteml-solve-time-limit-s", env_var="LOCUST_WASTEML_SOLVE_TIME_LIMIT_S", type=float,
                       default=2.0, help="solver time limit of each Solve, seconds")
    group.add_argument("--wasteml-wait-max-s", env_var="LOCUST_WASTEML_WAIT_MAX_S", type=float, default=1.0,
                       help="each user waits uniformly 0..this between calls (0: back to back)")
    group.add_argument("--wasteml-fill-max-fraction", env_var="LOCUST_WASTEML_FILL_MAX_FRACTION", type=float,
                       default=1.0, help="fill readings above this are sent as this (the contract's "
                       "fill fraction is 0..1 with overflowing = 1; the log's overflow reading is 8/7)")
    group.add_argument("--wasteml-outcomes-json", env_var="LOCUST_WASTEML_OUTCOMES_JSON", default="",
                       help="write {method: {status code: calls}} of this process to this file at exit")
    group.add_argument("--wasteml-seed", env_var="LOCUST_WASTEML_SEED", type=int, default=2015,
                       help="seed of the request mix (each user derives its own)")


def _selected(environment: Environment, name: str) -> bool:
    options = environment.parsed_options
    tags = getattr(options, "tags", None)
    excluded = getattr(options, "exclude_tags", None) or []
    return (not tags or name in tags) and name not in excluded


def _metadata(environment: Environment) -> tuple[tuple[str, str], ...] | None:
    token = environment.parsed_options.wasteml_token if environment.parsed_options else ""
    return (("authorization", f"Bearer {token}"),) if token else None


def _channel_options() -> list[tuple[str, int]]:
    return [("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]


#: method -> status code name -> calls, counted in this process (the smoke test reads it).
OUTCOMES: defaultdict[str, Counter[str]] = defaultdict(Counter)


@events.request.add_listener
def _count_outcome(request_type: str, name: str, exception: Exception | None = None, **_: object) -> None:
    code = "OK" if exception is None else getattr(getattr(exception, "code", None), "name", type(exception).__name__)
    OUTCOMES[name][code] += 1


_OUTCOMES_PATH: dict[str, str] = {}


@events.init.add_listener
def _remember_outcomes_path(environment: Environment, **_: object) -> None:
    if environment.parsed_options is not None:
        _OUTCOMES_PATH["path"] = environment.parsed_options.wasteml_outcomes_json


@events.quit.add_listener
def _write_outcomes(exit_code: int, **_: object) -> None:
    """At exit, write this process's call outcomes where --wasteml-outcomes-json says."""
    path = _OUTCOMES_PATH.get("path")
    if path:
        Path(path).write_text(json.dumps({"exit_code": exit_code, "calls": OUTCOMES}, indent=1, sort_keys=True))


@events.test_start.add_listener
def _index_corpus(environment: Environment, **_: object) -> None:
    """Index the Search corpus once (master or local runner), reported as its own request."""
    options = environment.parsed_options
    if isinstance(environment.runner, WorkerRunner) or not _selected(environment, "search"):
        return
    count = options.wasteml_index_docs
    if count <= 0:
        return
    workload = Workload(Path(options.wasteml_data_dir))
    method = "/wasteml.v1.SemanticSearch/IndexDocuments"
    start = time.perf_counter()
    exception: Exception | None = None
    length = 0
    with grpc.insecure_channel(environment.host, options=_channel_options()) as channel:
        stub = search_pb2_grpc.SemanticSearchStub(channel)
        try:
            reply = stub.IndexDocuments(workload.index_requests(count), timeout=max(120.0, count / 5.0),
                                        metadata=_metadata(environment))
            length = reply.ByteSize()
            logger.info("indexed %d documents into %s (%d rows)", reply.documents_upserted, reply.collection,
                        reply.collection_size)
        except grpc.RpcError as err:
            exception = GrpcStatusError(err.code(), err.details() or "")
            logger.error("indexing the search corpus failed: %s", exception)
    environment.events.request.fire(request_type="grpc", name=method,
                                    response_time=(time.perf_counter() - start) * 1000.0,
                                    response_length=length, response=None, context=None, exception=exception)


class DispatchUser(User):
    """One client service of a dispatch day. Weights (per 100 calls): 55 Search (dispatchers
    and customer care looking up similar and nearby cases), 20 PredictFillLevel (the fleet app
    checking districts' skips), 20 Embed (triage of incoming cases), 5 Solve (re-planning a
    truck group after a breakdown or a burst of urgent cases)."""

    def wait_time(self) -> float:
        """Uniform 0..--wasteml-wait-max-s seconds between calls."""
        return between(0.0, self.environment.parsed_options.wasteml_wait_max_s)(self)

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        if not self.host:
            raise ValueError("--host must be the server's host:port, e.g. 127.0.0.1:50051")
        options = environment.parsed_options
        self.workload = _workload(Path(options.wasteml_data_dir))
        self.rng = random.Random(options.wasteml_seed * 1_000_003 + id(self) % 1_000_003)
        self.timeout_s = options.wasteml_timeout_s
        self.solve_limit_s = options.wasteml_solve_time_limit_s
        self.fill_max_fraction = options.wasteml_fill_max_fraction
        self.metadata = _metadata(environment)
        self._raw_channel = grpc.insecure_channel(self.host, options=_channel_options())
        channel = grpc.intercept_channel(self._raw_channel, LocustInterceptor(environment))
        self.search = search_pb2_grpc.SemanticSearchStub(channel)
        self.forecasting = forecasting_pb2_grpc.ForecastingStub(channel)
        self.routing = routing_pb2_grpc.RouteOptimizerStub(channel)

    def on_stop(self) -> None:
        """Close this user's channel."""
        self._raw_channel.close()

    def _call(self, method, request, timeout_s: float) -> None:
        try:
            method(request, timeout=timeout_s, metadata=self.metadata)
        except grpc.RpcError:
            pass  # already reported by the interceptor
        except ValueError as err:  # channel closed while stopping
            raise StopUser() from err

    @tag("search")
    @task(55)
    def search_cases(self) -> None:
        """SemanticSearch.Search with a dispatcher's query and filters."""
        self._call(self.search.Search, self.workload.search_request(self.rng), self.timeout_s)

    @tag("embed")
    @task(20)
    def embed_cases(self) -> None:
        """SemanticSearch.Embed of 1-8 case texts."""
        self._call(self.search.Embed, self.workload.embed_request(self.rng), self.timeout_s)

    @tag("fill")
    @task(20)
    def predict_fill(self) -> None:
        """Forecasting.PredictFillLevel for the skips read on a real day."""
        request = self.workload.fill_request(self.rng, max_fraction=self.fill_max_fraction)
        self._call(self.forecasting.PredictFillLevel, request, self.timeout_s)

    @tag("solve")
    @task(5)
    def solve_day(self) -> None:
        """RouteOptimizer.Solve of a 12-skip Blantyre day with a short time limit."""
        request = self.workload.solve_request(self.rng, time_limit_s=self.solve_limit_s)
        self._call(self.routing.Solve, request, self.solve_limit_s + self.timeout_s)


_WORKLOADS: dict[Path, Workload] = {}


def _workload(data_dir: Path) -> Workload:
    """One shared Workload per data folder (the CSVs are read once per process)."""
    if data_dir not in _WORKLOADS:
        _WORKLOADS[data_dir] = Workload(data_dir)
    return _WORKLOADS[data_dir]

