"""Prometheus metrics of the orchestration server (prometheus-client).

Labels are low-cardinality by design: gRPC service, method and status code, or a
dependency/model name; never request or document ids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

if TYPE_CHECKING:
    from wasteml_server.core.common import FallbackNotice

#: Latency buckets in seconds, from sub-millisecond inference to multi-minute solver jobs.
LATENCY_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)

GRPC_REQUESTS = Counter(
    "wasteml_grpc_requests_total",
    "gRPC calls finished, by service, method and status code.",
    ["service", "method", "code"],
)
GRPC_LATENCY = Histogram(
    "wasteml_grpc_request_duration_seconds",
    "Wall time of gRPC calls from handler start to the last message, seconds.",
    ["service", "method"],
    buckets=LATENCY_BUCKETS_S,
)
GRPC_IN_FLIGHT = Gauge(
    "wasteml_grpc_requests_in_flight",
    "gRPC calls being handled now.",
    ["service", "method"],
)
DEPENDENCY_UP = Gauge(
    "wasteml_dependency_up",
    "1 when the last health check of a dependency (triton, database, milvus, solver_pool) passed.",
    ["dependency"],
)
INFERENCE_LATENCY = Histogram(
    "wasteml_inference_duration_seconds",
    "Triton inference calls made by the server, seconds (client side, incl. network).",
    ["model"],
    buckets=LATENCY_BUCKETS_S,
)
#: Calls refused by admission control (``transport.interceptors.AdmissionInterceptor``).
GRPC_REFUSED = Counter(
    "wasteml_grpc_refused",
    "gRPC calls refused by the server's admission limits (RESOURCE_EXHAUSTED, or UNAVAILABLE "
    "while draining), by limit.",
    ["limit"],
)
SOLVER_QUEUE_DEPTH = Gauge(
    "wasteml_solver_queue_depth",
    "Solver jobs waiting for a worker.",
)
SOLVER_QUEUE_CAPACITY = Gauge(
    "wasteml_solver_queue_capacity",
    "Jobs that may wait for a worker before submits get RESOURCE_EXHAUSTED (solver_queue_size).",
)


FALLBACKS = Counter(
    "wasteml_fallbacks",
    "Calls (or parts of calls) served by a declared fallback, by the dependency not used and what "
    "served instead (the same words as the reply's FallbackNotice).",
    ["dependency", "served_by"],
)


def count_fallback(notice: FallbackNotice) -> FallbackNotice:
    """Count one declared fallback in ``wasteml_fallbacks_total``; returns the notice (so a
    reply can be built as ``fallbacks=[count_fallback(FallbackNotice(...))]``)."""
    FALLBACKS.labels(notice.dependency, notice.served_by).inc()
    return notice


def start_metrics_server(port: int, host: str) -> int:
    """Serve ``/metrics`` over HTTP (prometheus-client); returns the bound port (0 = a free one)."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=host)
    return int(server.server_port)
