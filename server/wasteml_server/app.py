"""Composition root: builds the back-ends from ``Settings``, the servicers, and the server.

Start-up order: SQL migrations -> SQL store -> Triton (the bundled local process, or the
external one named by ``WASTEML_TRITON_URL``) -> the remaining back-ends -> the gRPC server.
Shutdown (``Server.stop``): health NOT_SERVING -> refuse new calls -> drain within the grace ->
close back-ends in reverse order of start.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from wasteml.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    forecasting_pb2,
    forecasting_pb2_grpc,
    planning_pb2,
    planning_pb2_grpc,
    routing_pb2,
    routing_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
)
from wasteml_models import TEXT_ENCODER
from wasteml_models.config import EncoderSignature
from wasteml_models.tokenizer import TextTokenizer
from wasteml_server.adapters.cache import create_cache
from wasteml_server.adapters.milvus import MilvusStore
from wasteml_server.adapters.storage import (
    AuditWriter,
    Database,
    JobStore,
    ModelRegistry,
    PlanStore,
    migrate,
)
from wasteml_server.adapters.storage.registry_sync import sync_registry
from wasteml_server.adapters.triton.client import TritonClient
from wasteml_server.adapters.triton.manager import LocalTriton
from wasteml_server.admin.service import ModelAdmin
from wasteml_server.core import metrics
from wasteml_server.core.errors import UnavailableError
from wasteml_server.core.settings import Settings
from wasteml_server.forecasting.service import ForecastingService
from wasteml_server.planning.planner import CollectionPlanner
from wasteml_server.planning.request import PlanLimits
from wasteml_server.planning.sources import ForecastFillPredictor, SearchComplaintFinder
from wasteml_server.routing.pool import SolverPool
from wasteml_server.routing.service import RoutingService
from wasteml_server.search.embedding import TritonEmbedder
from wasteml_server.search.encoder import TextEncoder
from wasteml_server.search.service import SearchLimits, SemanticSearchService
from wasteml_server.transport.server import Check, Server, ServiceBinding, create_server
from wasteml_server.transport.servicers.admin import ModelAdminServicer
from wasteml_server.transport.servicers.forecasting import ForecastingServicer
from wasteml_server.transport.servicers.planning import CollectionPlannerServicer
from wasteml_server.transport.servicers.routing import RouteOptimizerServicer
from wasteml_server.transport.servicers.search import SemanticSearchServicer

logger = logging.getLogger("wasteml.app")
T = TypeVar("T")

SEARCH = search_pb2.DESCRIPTOR.services_by_name["SemanticSearch"].full_name
ROUTING = routing_pb2.DESCRIPTOR.services_by_name["RouteOptimizer"].full_name
FORECASTING = forecasting_pb2.DESCRIPTOR.services_by_name["Forecasting"].full_name
PLANNING = planning_pb2.DESCRIPTOR.services_by_name["CollectionPlanner"].full_name
ADMIN = admin_pb2.DESCRIPTOR.services_by_name["ModelAdmin"].full_name


class Application:
    """All back-ends of one server process and the server itself.

    Args:
        settings: the server settings.

    Attributes (after ``start``):
        db: the SQL store.
        triton: the local (or external) Triton.
        server: the started gRPC server; ``port`` its bound port.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db: Database | None = None
        self.triton: LocalTriton | None = None
        self.server: Server | None = None
        self.port: int | None = None
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self.audit: AuditWriter | None = None
        self.forecasting: ForecastingService | None = None
        self.search: SemanticSearchService | None = None
        self.pool: SolverPool | None = None
        self.metrics_port: int | None = None
        self.routing: RoutingService | None = None

    @property
    def triton_client(self) -> TritonClient:
        """The long-lived Triton client (after ``start``)."""
        assert self.triton is not None and self.triton.client is not None, "Application not started"
        return self.triton.client

    async def start(self) -> Server:
        """Start every back-end, then the gRPC server; returns the started server.

        Raises:
            UnavailableError: a back-end could not be started (e.g. Triton did not get ready).
        """
        settings = self.settings
        settings.var_dir.mkdir(parents=True, exist_ok=True)
        try:
            await asyncio.to_thread(migrate, settings.database_url)
            self.db = Database.from_settings(settings)
            self._closers.append(lambda: asyncio.to_thread(self.db.dispose))
            await asyncio.to_thread(sync_registry, settings.model_repository, ModelRegistry(self.db))

            self.triton = LocalTriton(settings)
            self._closers.append(self.triton.stop)
            await self.triton.start()

            bindings, checks = await self._services()
            if settings.metrics_port is not None and self.metrics_port is None:
                self.metrics_port = metrics.start_metrics_server(settings.metrics_port, settings.host)
                logger.info("Prometheus metrics on http://%s:%d/metrics", settings.host, self.metrics_port)
            self.server, self.port = await create_server(
                settings,
                bindings,
                checks,
                overall_dependencies=("triton", "database"),
                on_close=[self._close_backends],
            )
        except BaseException:
            await self._close_backends()
            raise
        return self.server

    async def _services(self) -> tuple[list[ServiceBinding], dict[str, Check]]:
        """Start the domain services; returns the gRPC bindings and the health checks."""
        assert self.db is not None
        db = self.db
        triton = self.triton_client
        checks: dict[str, Check] = {
            "triton": triton.is_ready,
            "database": lambda: asyncio.to_thread(_ping, db),
        }
        forecasting = await self._start_forecasting()
        search = await self._start_search(checks)
        assert self.search is not None
        admin = ModelAdminServicer(ModelAdmin(triton, ModelRegistry(db), refresh=self.triton.refresh_model,
                                              on_change=self.search.model_changed))
        routing = await self._start_routing(checks)
        planning = self._start_planning()
        bindings = [
            ServiceBinding(ADMIN, lambda s: admin_pb2_grpc.add_ModelAdminServicer_to_server(admin, s), ("triton",)),
            ServiceBinding(
                SEARCH,
                lambda s: search_pb2_grpc.add_SemanticSearchServicer_to_server(search, s),
                ("triton", "milvus"),
            ),
            ServiceBinding(
                ROUTING,
                lambda s: routing_pb2_grpc.add_RouteOptimizerServicer_to_server(routing, s),
                ("solver_pool",),
            ),
            ServiceBinding(
                FORECASTING,
                lambda s: forecasting_pb2_grpc.add_ForecastingServicer_to_server(forecasting, s),
                ("triton",),
            ),
            ServiceBinding(
                PLANNING,
                lambda s: planning_pb2_grpc.add_CollectionPlannerServicer_to_server(planning, s),
                ("triton", "milvus", "solver_pool"),
            ),
        ]
        return bindings, checks

    async def _start_forecasting(self) -> ForecastingServicer:
        """Prediction audit (written in the background) and the forecasting service."""
        assert self.db is not None
        self.audit = AuditWriter.from_settings(self.db, self.settings)
        await self.audit.start()
        self._closers.append(self.audit.aclose)
        self.forecasting = await ForecastingService.create(self.settings, self.triton_client, self.audit)
        self._closers.append(self.forecasting.aclose)
        return ForecastingServicer(self.forecasting)

    async def _start_search(self, checks: dict[str, Check]) -> SemanticSearchServicer:
        """The text encoder on Triton and the Milvus store; a Milvus that is down at start leaves
        the other services up and health says so."""
        repository = self.settings.model_repository
        tokenizer = await asyncio.to_thread(TextTokenizer.from_repository, repository)
        signature = await asyncio.to_thread(EncoderSignature.load, repository, TEXT_ENCODER)
        encoder = TextEncoder(self.triton_client, tokenizer, TEXT_ENCODER, signature,
                              max_texts=self.settings.search_max_embed_texts,
                              max_text_chars=self.settings.search_max_text_chars,
                              timeout_s=self.settings.triton_timeout_s)
        cache = None
        if self.settings.query_cache_ttl_s > 0:
            cache = create_cache(self.settings)
            self._closers.append(cache.aclose)
        self.search = SemanticSearchService(
            MilvusStore.from_settings(self.settings, signature.dimension),
            TritonEmbedder(encoder),
            batch_size=self.settings.search_embed_batch,
            in_flight=self.settings.search_embed_in_flight,
            query_cache=cache,
            query_cache_ttl_s=self.settings.query_cache_ttl_s,
            limits=SearchLimits.from_settings(self.settings),
        )
        store = self.search.store
        self._closers.append(lambda: asyncio.to_thread(store.close))
        try:
            await self.search.start()
        except UnavailableError as exc:
            logger.warning("search collection not ready at start: %s", exc)
        checks["milvus"] = lambda: asyncio.to_thread(_milvus_ok, store)
        return SemanticSearchServicer(encoder, self.search)

    async def _start_routing(self, checks: dict[str, Check]) -> RouteOptimizerServicer:
        """The solver pool (worker processes) and the job-tracking routing service."""
        assert self.db is not None
        self.pool = pool = await SolverPool(self.settings).start()
        self._closers.append(self.pool.close)
        self.routing = RoutingService(self.pool, JobStore(self.db), self.settings)
        await self.routing.start()
        self._closers.append(self.routing.aclose)

        async def pool_ok() -> bool:
            return pool.live_workers > 0

        checks["solver_pool"] = pool_ok
        metrics.SOLVER_QUEUE_DEPTH.set_function(lambda: pool.queued)
        metrics.SOLVER_QUEUE_CAPACITY.set(self.settings.solver_queue_size)
        return RouteOptimizerServicer(self.routing)

    def _start_planning(self) -> CollectionPlannerServicer:
        """The collection planner over the forecasting, search and routing services."""
        assert self.db is not None and self.forecasting and self.search and self.routing
        planner = CollectionPlanner(ForecastFillPredictor(self.forecasting), SearchComplaintFinder(self.search),
                                    self.routing, PlanStore(self.db), limits=PlanLimits.from_settings(self.settings))
        return CollectionPlannerServicer(planner)

    async def _close_backends(self) -> None:
        while self._closers:
            close = self._closers.pop()
            try:
                await close()
            except Exception:
                logger.exception("error while closing a back-end")

    async def stop(self) -> None:
        """Graceful shutdown of the server and every back-end (idempotent)."""
        if self.server is not None:
            await self.server.stop()
        else:
            await self._close_backends()


def _milvus_ok(store: MilvusStore) -> bool:
    store.count()
    return True


def _ping(db: Database) -> bool:
    db.ping()
    return True


async def serve(settings: Settings) -> None:
    """Run the server until SIGTERM/SIGINT, then shut down gracefully (``wasteml serve``)."""
    app = Application(settings)
    server = await app.start()
    server.install_signal_handlers()
    logger.info("wasteml serving on %s:%d", settings.host, app.port)
    await server.wait_for_termination()
    await server.stop()


class BackgroundServer:
    """Runs an ``Application`` in an event loop of its own thread, so that blocking code (the
    demo, tests, the load-test smoke run) can call the server with the blocking client.

    Args:
        settings: the server settings (``port=0`` picks a free port).
    """

    def __init__(self, settings: Settings) -> None:
        self.app = Application(settings)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="wasteml-server", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.app.start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()

    def start(self, timeout_s: float) -> int:
        """Start the application; returns the bound port.

        Raises:
            TimeoutError: not started within ``timeout_s`` seconds.
            UnavailableError: a back-end could not be started.
        """
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError(f"server not started within {timeout_s} s")
        if self._error is not None:
            raise self._error
        assert self.app.port is not None
        return self.app.port

    def call(self, coro: Awaitable[T], timeout_s: float = 120.0) -> T:
        """Run a coroutine on the server's event loop and wait for its result (tests, tools)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=timeout_s)

    def stop(self) -> None:
        """Graceful shutdown of the server and its back-ends; joins the thread."""
        if not self._thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self.app.stop(), self._loop)
        future.result(timeout=60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
