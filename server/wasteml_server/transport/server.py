"""The gRPC server factory: interceptors, health (per service and overall), reflection,
bounded messages, keepalive, connection limits, and graceful shutdown.

``create_server`` binds and starts a ``grpc.aio`` server and returns it with the bound port
(port 0 picks a free one, as tests do). Health starts NOT_SERVING for every service and a
``HealthMonitor`` flips each service to SERVING only once every dependency it names passes
its check (e.g. the local Triton is ready). Shutdown follows the order used by Ray Serve and
vLLM: health NOT_SERVING -> refuse new calls (UNAVAILABLE) -> let in-flight calls finish within
``Settings.shutdown_grace_s`` -> stop the gRPC server -> close back-ends.

Admission: grpc's own ``maximum_concurrent_rpcs`` is not used (it counts health and reflection
calls too, so 256 unauthenticated Health/Watch streams locked every caller out); the
interceptors' ``AdmissionInterceptor`` counts API calls only, and caps streams in their own
pools (see ``transport.interceptors``). Reflection is served on loopback binds only unless
``Settings.reflection`` says otherwise (``reflection_enabled``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from wasteml_server.core import metrics
from wasteml_server.core.settings import Settings
from wasteml_server.transport.interceptors import CallTracker, StreamLimiter, default_interceptors

logger = logging.getLogger("wasteml.server")

#: An async dependency check: True when the dependency is usable right now. Must not hang:
#: implementations bound their own time (the monitor also cancels a check after its timeout).
Check = Callable[[], Awaitable[bool]]

#: Health name of the server as a whole (the empty service name, per grpc.health.v1).
OVERALL = ""

#: After the last call drained, seconds to wait before grpc closes the connections, so that
#: large replies still in socket buffers reach their clients.
DRAIN_LINGER_S = 1.0


@dataclass(frozen=True)
class ServiceBinding:
    """One gRPC service to serve.

    Attributes:
        name: full service name, e.g. ``"wasteml.v1.SemanticSearch"`` (health and reflection).
        register: adds the servicer to a server, e.g.
            ``lambda s: search_pb2_grpc.add_SemanticSearchServicer_to_server(servicer, s)``.
        dependencies: names of the checks (keys of ``checks``) that must pass for the
            service to report SERVING.
    """

    name: str
    register: Callable[[grpc.aio.Server], None]
    dependencies: tuple[str, ...] = ()


class HealthMonitor:
    """Polls dependency checks and sets grpc.health.v1 status per service and overall.

    Args:
        health: the health servicer to update.
        services: service name -> the dependency names it needs.
        checks: dependency name -> async check.
        overall_dependencies: dependencies the server as a whole (service "") needs.
        interval_s: seconds between polls.
        check_timeout_s: a check taking longer counts as failed.
    """

    def __init__(
        self,
        health: HealthServicer,
        services: Mapping[str, Sequence[str]],
        checks: Mapping[str, Check],
        overall_dependencies: Sequence[str],
        interval_s: float = 2.0,
        check_timeout_s: float = 5.0,
    ) -> None:
        self._health = health
        self._services = dict(services)
        self._checks = dict(checks)
        self._overall = tuple(overall_dependencies)
        self._interval_s = interval_s
        self._check_timeout_s = check_timeout_s
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self.last_results: dict[str, bool] = {}

    async def poll_once(self) -> dict[str, bool]:
        """Run every check once and publish the statuses; returns dependency -> passed."""
        results: dict[str, bool] = {}
        for name, check in self._checks.items():
            try:
                results[name] = bool(await asyncio.wait_for(check(), self._check_timeout_s))
            except Exception as exc:  # a failing check is a status, not an error
                logger.debug("health check %s failed: %s", name, exc)
                results[name] = False
            metrics.DEPENDENCY_UP.labels(name).set(1.0 if results[name] else 0.0)
        if self._stopped:
            return results
        for service, deps in self._services.items():
            await self._health.set(service, _status(all(results.get(d, False) for d in deps)))
        await self._health.set(OVERALL, _status(all(results.get(d, False) for d in self._overall)))
        changed = {k: v for k, v in results.items() if self.last_results.get(k) != v}
        if changed:
            logger.info("dependency health: %s", ", ".join(f"{k}={'up' if v else 'DOWN'}" for k, v in results.items()))
        self.last_results = results
        return results

    def start(self) -> None:
        """Start polling in the background."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="health-monitor")

    async def _run(self) -> None:
        while not self._stopped:
            await self.poll_once()
            await asyncio.sleep(self._interval_s)

    async def stop(self) -> None:
        """Stop polling (statuses are left as they are; shutdown sets NOT_SERVING)."""
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def _status(ok: bool) -> int:
    return health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass
class Server:
    """A started server and what its shutdown must close.

    Attributes:
        grpc_server: the ``grpc.aio.Server``.
        port: the bound TCP port.
        health: the grpc.health.v1 servicer.
        monitor: the dependency health monitor.
        grace_s: how long in-flight calls may run after shutdown starts, seconds.
        on_close: back-end close callbacks, run in order after the server stopped.
    """

    grpc_server: grpc.aio.Server
    port: int
    health: HealthServicer
    monitor: HealthMonitor
    grace_s: float
    on_close: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    tracker: CallTracker = field(default_factory=CallTracker)
    _stopping: asyncio.Task[None] | None = None

    async def stop(self) -> None:
        """Graceful shutdown: NOT_SERVING, refuse new calls, drain within the grace, close back-ends.

        Idempotent: a second call waits for the first.
        """
        if self._stopping is None:
            self._stopping = asyncio.get_running_loop().create_task(self._stop())
        await asyncio.shield(self._stopping)

    async def _stop(self) -> None:
        logger.info("shutting down: health NOT_SERVING, draining for up to %.1f s", self.grace_s)
        started = asyncio.get_running_loop().time()
        await self.monitor.stop()
        await self.health.enter_graceful_shutdown()
        drained = await self.tracker.drain(self.grace_s)
        if drained:
            # let the last replies leave the sockets before grpc closes the connections
            await asyncio.sleep(min(DRAIN_LINGER_S, self.grace_s))
        else:
            logger.warning("%d calls still running after %.1f s; cancelling them", self.tracker.in_flight,
                           self.grace_s)
        left = max(0.0, self.grace_s - (asyncio.get_running_loop().time() - started))
        await self.grpc_server.stop(left)
        for close in self.on_close:
            try:
                await close()
            except Exception:
                logger.exception("error while closing a back-end")
        logger.info("server stopped")

    async def wait_for_termination(self) -> None:
        """Block until the server has stopped."""
        await self.grpc_server.wait_for_termination()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT start the graceful shutdown (main thread, Unix only)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        logger.info("received %s", sig.name)
        asyncio.get_running_loop().create_task(self.stop())


def _ms(seconds: float) -> int:
    """Seconds as the int milliseconds of a channel argument (capped at INT_MAX = unlimited)."""
    return min(int(seconds * 1000), 2**31 - 1)


def server_options(settings: Settings) -> list[tuple[str, int]]:
    """Channel arguments: bounded message sizes, keepalive and its enforcement, connection
    idle/age limits and the handshake timeout, from settings.

    Names are grpc-core's (``include/grpc/impl/channel_arg_names.h``); see
    https://github.com/grpc/grpc/blob/master/doc/keepalive.md for the keepalive knobs.
    ``grpc.http2.max_pings_without_data`` = 0 lets the *server's* keepalive pings continue
    on a connection whose streams send nothing (a Health/Watch), so a dead client's streams
    are found and released; it does not limit clients (``max_ping_strikes`` does).
    """
    return [
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.keepalive_time_ms", _ms(settings.keepalive_time_s)),
        ("grpc.keepalive_timeout_ms", _ms(settings.keepalive_timeout_s)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", _ms(settings.keepalive_min_ping_interval_s)),
        ("grpc.http2.max_ping_strikes", settings.keepalive_max_ping_strikes),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.max_connection_idle_ms", _ms(settings.max_connection_idle_s)),
        ("grpc.max_connection_age_ms", _ms(settings.max_connection_age_s)),
        ("grpc.max_connection_age_grace_ms", _ms(settings.max_connection_age_grace_s)),
        ("grpc.server_handshake_timeout_ms", _ms(settings.handshake_timeout_s)),
        ("grpc.so_reuseport", 0),
    ]


def is_loopback(host: str) -> bool:
    """True when ``host`` names a loopback interface only (``127.0.0.0/8``, ``::1``, ``localhost``);
    False for wildcard binds (``0.0.0.0``, ``::``, ``[::]``) and any other name or address."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def reflection_enabled(settings: Settings) -> bool:
    """Whether to serve gRPC reflection: ``Settings.reflection`` when set, else only when the
    server binds a loopback address (reflection tells anyone who can connect every method)."""
    if settings.reflection is not None:
        return settings.reflection
    return is_loopback(settings.host)


async def create_server(
    settings: Settings,
    services: Sequence[ServiceBinding],
    checks: Mapping[str, Check],
    overall_dependencies: Sequence[str] = (),
    on_close: Sequence[Callable[[], Awaitable[None]]] = (),
    health_interval_s: float = 2.0,
) -> tuple[Server, int]:
    """Build, bind and start the gRPC server.

    Args:
        settings: host, port, message sizes, keepalive, deadlines, auth token, grace.
        services: the API services to serve, with the dependencies each needs.
        checks: dependency name -> async readiness check (polled every ``health_interval_s``).
        overall_dependencies: dependencies the overall health ("" service) needs.
        on_close: back-end close callbacks run after the server has stopped.
        health_interval_s: seconds between dependency polls.

    Returns:
        ``(server, port)``: the started ``Server`` and the TCP port it is bound to.

    Raises:
        RuntimeError: the address could not be bound.
    """
    tracker = CallTracker(settings.max_concurrent_rpcs)
    grpc_server = grpc.aio.server(
        interceptors=default_interceptors(
            auth_token=settings.auth_token,
            default_deadline_s=settings.default_deadline_s,
            max_deadline_s=settings.max_deadline_s,
            tracker=tracker,
            api_streams=StreamLimiter("streaming API calls", settings.max_concurrent_streams,
                                      settings.max_streams_per_peer),
            health_streams=StreamLimiter("Health/Watch and reflection streams", settings.max_health_streams,
                                         settings.max_health_streams_per_peer),
            max_health_request_bytes=settings.max_health_request_bytes,
        ),
        options=server_options(settings),
        # no maximum_concurrent_rpcs: it would count health and reflection calls too
    )
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, grpc_server)
    for binding in services:
        binding.register(grpc_server)
    if reflection_enabled(settings):
        names = [b.name for b in services] + [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name]
        reflection.enable_server_reflection([*names, reflection.SERVICE_NAME], grpc_server)

    for binding in services:
        await health.set(binding.name, health_pb2.HealthCheckResponse.NOT_SERVING)
    await health.set(OVERALL, health_pb2.HealthCheckResponse.NOT_SERVING)

    address = f"{settings.host}:{settings.port}"
    port = grpc_server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError(f"could not bind gRPC server to {address}")
    await grpc_server.start()
    monitor = HealthMonitor(
        health,
        {b.name: b.dependencies for b in services},
        checks,
        overall_dependencies,
        interval_s=health_interval_s,
    )
    await monitor.poll_once()
    monitor.start()
    logger.info("gRPC server listening on %s:%d (%d services, reflection %s)", settings.host, port,
                len(services), "on" if reflection_enabled(settings) else "off")
    server = Server(grpc_server, port, health, monitor, settings.shutdown_grace_s, list(on_close), tracker)
    return server, port
