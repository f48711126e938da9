"""A small typed client over the generated ``wasteml.v1`` stubs.

* Deadlines: every call has one (``timeout_s`` per call, or the client's default).
* Retries: unary calls that fail with UNAVAILABLE are retried with exponential backoff by
  gRPC's own retry machinery (``retryPolicy`` in the channel's service config, see
  https://github.com/grpc/proposal/blob/master/A6-client-retries.md). ``SubmitJob`` and the
  client-streaming ``IndexDocuments`` are not retried (not idempotent / not replayable).
* Auth: a bearer token is sent as ``authorization: Bearer <token>`` metadata on every call.

Example::

    with WastemlClient("127.0.0.1:50051") as client:
        client.wait_until_serving()
        reply = client.embed(["overflowing dumpster behind the market"])
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from wasteml.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    common_pb2,
    forecasting_pb2,
    forecasting_pb2_grpc,
    planning_pb2,
    planning_pb2_grpc,
    routing_pb2,
    routing_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
)

_SERVICES = (
    "wasteml.v1.SemanticSearch",
    "wasteml.v1.RouteOptimizer",
    "wasteml.v1.Forecasting",
    "wasteml.v1.CollectionPlanner",
    "wasteml.v1.ModelAdmin",
)
_NOT_RETRIED = (("wasteml.v1.RouteOptimizer", "SubmitJob"), ("wasteml.v1.SemanticSearch", "IndexDocuments"))


def retry_service_config(max_attempts: int = 4, initial_backoff_s: float = 0.2, max_backoff_s: float = 3.0) -> str:
    """gRPC service config JSON retrying UNAVAILABLE on every idempotent wasteml method.

    Args:
        max_attempts: attempts including the first (gRPC caps this at 5).
        initial_backoff_s: first backoff; each retry waits a random time up to the backoff,
            which grows by 2x per attempt up to ``max_backoff_s``.
    """
    retry = {
        "maxAttempts": max_attempts,
        "initialBackoff": f"{initial_backoff_s}s",
        "maxBackoff": f"{max_backoff_s}s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }
    return json.dumps(
        {
            "methodConfig": [
                {"name": [{"service": s} for s in _SERVICES], "retryPolicy": retry},
                {"name": [{"service": s, "method": m} for s, m in _NOT_RETRIED]},
            ]
        }
    )


class _BearerToken(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds ``authorization: Bearer <token>`` to every call (works on plaintext channels too)."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = [*(details.metadata or ()), self._header]
        return details._replace(metadata=metadata) if hasattr(details, "_replace") else _Details(
            details.method, details.timeout, metadata, details.credentials,
            getattr(details, "wait_for_ready", None), getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation, client_call_details, request):  # noqa: D102
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):  # noqa: D102
        return continuation(self._details(client_call_details), request)

    def intercept_stream_unary(self, continuation, client_call_details, request_iterator):  # noqa: D102
        return continuation(self._details(client_call_details), request_iterator)

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):  # noqa: D102
        return continuation(self._details(client_call_details), request_iterator)


class _Details(grpc.ClientCallDetails):
    def __init__(self, method, timeout, metadata, credentials, wait_for_ready, compression):
        self.method = method
        self.timeout = timeout
        self.metadata = metadata
        self.credentials = credentials
        self.wait_for_ready = wait_for_ready
        self.compression = compression


class WastemlClient:
    """Blocking client for the wasteml gRPC API.

    Args:
        address: ``host:port`` of the server.
        token: bearer token, when the server requires one.
        timeout_s: default deadline of a call, seconds.
        max_attempts: attempts per idempotent unary call on UNAVAILABLE (1 disables retries).
        max_message_bytes: largest message sent/received.

    Attributes:
        search, routing, forecasting, planning, admin, health: the raw generated stubs.
    """

    def __init__(
        self,
        address: str,
        token: str | None = None,
        timeout_s: float = 30.0,
        max_attempts: int = 4,
        max_message_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        options: list[tuple[str, Any]] = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.enable_retries", 1 if max_attempts > 1 else 0),
        ]
        if max_attempts > 1:
            options.append(("grpc.service_config", retry_service_config(max_attempts)))
        channel = grpc.insecure_channel(address, options=options)
        self._raw_channel = channel
        if token:
            channel = grpc.intercept_channel(channel, _BearerToken(token))
        self.address = address
        self.timeout_s = timeout_s
        self.search = search_pb2_grpc.SemanticSearchStub(channel)
        self.routing = routing_pb2_grpc.RouteOptimizerStub(channel)
        self.forecasting = forecasting_pb2_grpc.ForecastingStub(channel)
        self.planning = planning_pb2_grpc.CollectionPlannerStub(channel)
        self.admin = admin_pb2_grpc.ModelAdminStub(channel)
        self.health = health_pb2_grpc.HealthStub(channel)

    def __enter__(self) -> WastemlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel."""
        self._raw_channel.close()

    def _t(self, timeout_s: float | None) -> float:
        return self.timeout_s if timeout_s is None else timeout_s

    # --- health -------------------------------------------------------------------------
    def health_status(self, service: str = "", timeout_s: float | None = None) -> str:
        """grpc.health.v1 status name of ``service`` ("" = the server), e.g. ``"SERVING"``."""
        reply = self.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=self._t(timeout_s))
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    def wait_until_serving(self, service: str = "", timeout_s: float = 120.0, poll_s: float = 0.25) -> None:
        """Block until ``service`` reports SERVING.

        Raises:
            TimeoutError: not SERVING within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                last = self.health_status(service, timeout_s=min(2.0, timeout_s))
                if last == "SERVING":
                    return
            except grpc.RpcError as err:
                last = err.code().name
            time.sleep(poll_s)
        raise TimeoutError(f"{service or 'server'} at {self.address} not SERVING after {timeout_s} s ({last})")

    # --- search -------------------------------------------------------------------------
    def embed(self, texts: list[str], timeout_s: float | None = None) -> search_pb2.EmbedResponse:
        """Embed texts (384-d, L2-normalised)."""
        return self.search.Embed(search_pb2.EmbedRequest(texts=texts), timeout=self._t(timeout_s))

    def index_documents(
        self, documents: Iterable[search_pb2.SearchDocument], batch_size: int = 64, timeout_s: float | None = None
    ) -> search_pb2.IndexDocumentsResponse:
        """Upsert documents by id through the client stream, ``batch_size`` per message."""

        def messages() -> Iterator[search_pb2.IndexDocumentsRequest]:
            batch: list[search_pb2.SearchDocument] = []
            for doc in documents:
                batch.append(doc)
                if len(batch) >= batch_size:
                    yield search_pb2.IndexDocumentsRequest(documents=batch)
                    batch = []
            if batch:
                yield search_pb2.IndexDocumentsRequest(documents=batch)

        return self.search.IndexDocuments(messages(), timeout=self._t(timeout_s))

    def search_documents(self, request: search_pb2.SearchRequest, timeout_s: float | None = None):
        """Semantic search with filters; returns ``SearchResponse``."""
        return self.search.Search(request, timeout=self._t(timeout_s))

    # --- forecasting --------------------------------------------------------------------
    def predict_fill_level(self, request: forecasting_pb2.PredictFillLevelRequest, timeout_s: float | None = None):
        """Fill fraction of bins at a future time; returns ``PredictFillLevelResponse``."""
        return self.forecasting.PredictFillLevel(request, timeout=self._t(timeout_s))

    def forecast_demand(self, request: forecasting_pb2.ForecastDemandRequest, timeout_s: float | None = None):
        """Demand forecast of one series; returns ``ForecastDemandResponse``."""
        return self.forecasting.ForecastDemand(request, timeout=self._t(timeout_s))

    # --- routing ------------------------------------------------------------------------
    def solve(self, request: routing_pb2.SolveRequest, timeout_s: float | None = None):
        """Solve a routing problem within its time limit; returns ``SolveResponse``."""
        return self.routing.Solve(request, timeout=self._t(timeout_s))

    # --- planning -----------------------------------------------------------------------
    def plan_day(
        self, request: planning_pb2.PlanDayRequest, timeout_s: float | None = None
    ) -> Iterator[planning_pb2.PlanDayResponse]:
        """Stream of progress events, then the plan."""
        return self.planning.PlanDay(request, timeout=self._t(timeout_s))

    # --- admin --------------------------------------------------------------------------
    def list_models(self, ready_only: bool = False, timeout_s: float | None = None) -> admin_pb2.ListModelsResponse:
        """Models on Triton with their versions and readiness."""
        return self.admin.ListModels(admin_pb2.ListModelsRequest(ready_only=ready_only), timeout=self._t(timeout_s))


__all__ = ["WastemlClient", "common_pb2", "retry_service_config"]
