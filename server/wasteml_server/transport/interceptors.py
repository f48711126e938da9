"""Server interceptors: request logging, Prometheus metrics, error mapping, auth, deadlines.

Every handler is re-wrapped as one coroutine ``(request, context) -> response | None``
(streaming responses are written with ``context.write``), so each interceptor is a single
``around`` hook and the chain reads top to bottom. The order built by
``default_interceptors`` is, outermost first:

1. ``LoggingInterceptor``  - one log line per call: method, peer, status code, duration.
2. ``MetricsInterceptor``  - Prometheus counter/histogram/gauge by service, method, code.
3. ``ErrorInterceptor``    - domain errors -> status codes via ``transport.status.STATUS_TABLE``, with
   ``google.rpc.BadRequest`` field violations; anything unmapped -> INTERNAL with a
   generic message (the traceback goes to the server log, never to the client).
   ``DrainInterceptor``    - counts calls in flight; refuses new ones while shutting down.
4. ``AuthInterceptor``     - bearer token check when ``Settings.auth_token`` is set.
5. ``DeadlineInterceptor`` - applies a default deadline to calls that have none, clamps
   long ones, and publishes the deadline and the method to domain code
   (``wasteml_server.core.deadlines``, ``wasteml_server.core.calls``).
6. ``ValidationInterceptor`` - rejects undefined enum values in every request message.

Health and reflection are exempt from auth, deadlines and validation (probes must work
without a token, and ``Watch`` streams are long-lived by design).
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_status import rpc_status

from wasteml_server.core import metrics
from wasteml_server.core.calls import call_scope
from wasteml_server.core.deadlines import deadline_scope
from wasteml_server.core.errors import (
    DeadlineExceededError,
    InternalError,
    UnauthenticatedError,
    UnavailableError,
    WastemlError,
)
from wasteml_server.transport.status import status_for_error
from wasteml_server.transport.validation import check_enums

logger = logging.getLogger("wasteml.rpc")

Behavior = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]

#: Services that are infrastructure, not API: no auth, no default deadline, no validation.
EXEMPT_SERVICES = frozenset(
    {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection"}
)


@dataclass(frozen=True)
class CallInfo:
    """What an interceptor knows about the call being handled.

    Attributes:
        service: full service name, e.g. ``"wasteml.v1.SemanticSearch"``.
        method: method name, e.g. ``"Search"``.
        request_streaming: client sends a stream of messages.
        response_streaming: server sends a stream of messages.
    """

    service: str
    method: str
    request_streaming: bool
    response_streaming: bool

    @property
    def exempt(self) -> bool:
        """Health/reflection calls skip auth, deadlines and validation."""
        return self.service in EXEMPT_SERVICES


class WrappingInterceptor(grpc.aio.ServerInterceptor):
    """Base class: re-wraps the handler so that ``around`` sees every call as one coroutine."""

    async def around(
        self, info: CallInfo, request: Any, context: grpc.aio.ServicerContext, call_next: Behavior
    ) -> Any:
        """Run the call; override to add behaviour before/after ``call_next``."""
        return await call_next(request, context)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        service, _, method = handler_call_details.method.lstrip("/").rpartition("/")
        info = CallInfo(service, method, handler.request_streaming, handler.response_streaming)
        inner = (
            handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
        )

        async def call_inner(request: Any, context: grpc.aio.ServicerContext) -> Any:
            result = inner(request, context)
            if inspect.isasyncgen(result) or hasattr(result, "__aiter__"):
                async for message in result:
                    await context.write(message)
                return None
            return await result

        async def behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
            return await self.around(info, request, context, call_inner)

        factory = {
            (False, False): grpc.unary_unary_rpc_method_handler,
            (False, True): grpc.unary_stream_rpc_method_handler,
            (True, False): grpc.stream_unary_rpc_method_handler,
            (True, True): grpc.stream_stream_rpc_method_handler,
        }[(handler.request_streaming, handler.response_streaming)]
        return factory(
            behavior,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _code_of(context: grpc.aio.ServicerContext, error: BaseException | None) -> grpc.StatusCode:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int):
        for status in grpc.StatusCode:
            if status.value[0] == code:
                return status
    if error is None:
        return grpc.StatusCode.OK
    if isinstance(error, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN


class LoggingInterceptor(WrappingInterceptor):
    """One log line per call (INFO for API calls, DEBUG for health/reflection)."""

    async def around(self, info, request, context, call_next):  # noqa: D102
        start = time.perf_counter()
        error: BaseException | None = None
        try:
            return await call_next(request, context)
        except BaseException as exc:
            error = exc
            raise
        finally:
            code = _code_of(context, error)
            logger.log(
                logging.DEBUG if info.exempt else logging.INFO,
                "%s/%s peer=%s code=%s duration_ms=%.1f",
                info.service,
                info.method,
                context.peer(),
                code.name,
                (time.perf_counter() - start) * 1e3,
            )


class MetricsInterceptor(WrappingInterceptor):
    """Prometheus metrics per call, labelled by service, method and status code only."""

    async def around(self, info, request, context, call_next):  # noqa: D102
        labels = (info.service, info.method)
        in_flight = metrics.GRPC_IN_FLIGHT.labels(*labels)
        in_flight.inc()
        start = time.perf_counter()
        error: BaseException | None = None
        try:
            return await call_next(request, context)
        except BaseException as exc:
            error = exc
            raise
        finally:
            in_flight.dec()
            metrics.GRPC_LATENCY.labels(*labels).observe(time.perf_counter() - start)
            metrics.GRPC_REQUESTS.labels(*labels, _code_of(context, error).name).inc()


class ErrorInterceptor(WrappingInterceptor):
    """Maps exceptions to status codes through the one table in ``transport.status``."""

    async def around(self, info, request, context, call_next):  # noqa: D102
        try:
            return await call_next(request, context)
        except grpc.aio.AbortError:
            raise
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            await context.abort_with_status(
                rpc_status.to_status(status_for_error(DeadlineExceededError("deadline exceeded")))
            )
        except InternalError as exc:  # our fault: the details stay in the log
            incident = uuid.uuid4().hex[:12]
            logger.error("internal error in %s/%s (incident %s): %s", info.service, info.method,
                         incident, exc.message)
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error (incident {incident})")
        except WastemlError as exc:
            await context.abort_with_status(rpc_status.to_status(status_for_error(exc)))
        except NotImplementedError:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{info.service}/{info.method} is not implemented")
        except Exception:
            incident = uuid.uuid4().hex[:12]
            logger.exception("unhandled error in %s/%s (incident %s)", info.service, info.method, incident)
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error (incident {incident})")


class CallTracker:
    """Counts API calls in flight and refuses new ones once draining (graceful shutdown).

    grpc.aio's ``server.stop(grace)`` refuses new calls too, but it then closes connections as
    soon as the last call's status is queued, which can reset a connection before a large reply
    has left the socket (seen: a 1.5 MB Embed reply lost at shutdown). Draining here first lets
    replies go out over open connections; the server stops afterwards.
    """

    def __init__(self) -> None:
        self.in_flight = 0
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        """Count a call in; raises ``UnavailableError`` while draining."""
        if self.draining:
            raise UnavailableError("server", "shutting down; retry on another replica")
        self.in_flight += 1
        self._idle.clear()

    def leave(self) -> None:
        """Count a call out."""
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    async def drain(self, timeout_s: float) -> bool:
        """Refuse new calls and wait up to ``timeout_s`` for those in flight; True if all ended."""
        self.draining = True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
            return True
        except TimeoutError:
            return False


class DrainInterceptor(WrappingInterceptor):
    """Counts API calls in a ``CallTracker`` and refuses them (UNAVAILABLE) while draining."""

    def __init__(self, tracker: CallTracker) -> None:
        self._tracker = tracker

    async def around(self, info, request, context, call_next):  # noqa: D102
        if info.exempt:
            return await call_next(request, context)
        self._tracker.enter()
        try:
            return await call_next(request, context)
        finally:
            self._tracker.leave()


class AuthInterceptor(WrappingInterceptor):
    """Requires ``authorization: Bearer <token>`` metadata on API calls.

    Args:
        token: the expected bearer token; compared in constant time.
    """

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    async def around(self, info, request, context, call_next):  # noqa: D102
        if not info.exempt:
            metadata = dict(context.invocation_metadata() or ())
            given = str(metadata.get("authorization", "")).encode()
            if not hmac.compare_digest(given, self._expected):
                raise UnauthenticatedError("missing or invalid bearer token in 'authorization' metadata")
        return await call_next(request, context)


class DeadlineInterceptor(WrappingInterceptor):
    """Bounds every API call and publishes its deadline to domain code.

    A call without a client deadline gets ``default_s`` (unary responses) or ``max_s``
    (streaming responses such as ``WatchJob``/``PlanDay``); client deadlines longer than
    ``max_s`` are clamped. Running out raises ``TimeoutError``, which the error
    interceptor reports as DEADLINE_EXCEEDED.

    Args:
        default_s: deadline of unary calls that arrive without one, seconds.
        max_s: longest deadline honoured, seconds.
    """

    def __init__(self, default_s: float, max_s: float) -> None:
        self._default_s = default_s
        self._max_s = max_s

    async def around(self, info, request, context, call_next):  # noqa: D102
        if info.exempt:
            return await call_next(request, context)
        remaining = context.time_remaining()
        if remaining is None:
            remaining = self._max_s if info.response_streaming else self._default_s
        remaining = min(remaining, self._max_s)
        with deadline_scope(remaining), call_scope(f"/{info.service}/{info.method}"):
            async with asyncio.timeout(remaining):
                return await call_next(request, context)


class ValidationInterceptor(WrappingInterceptor):
    """Rejects undefined enum values in each request message (INVALID_ARGUMENT naming the field)."""

    async def around(self, info, request, context, call_next):  # noqa: D102
        if info.exempt:
            return await call_next(request, context)
        if info.request_streaming:
            return await call_next(_checked_stream(request), context)
        check_enums(request)
        return await call_next(request, context)


async def _checked_stream(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for message in requests:
        check_enums(message)
        yield message


def default_interceptors(
    *, auth_token: str | None, default_deadline_s: float, max_deadline_s: float,
    tracker: CallTracker | None = None,
) -> list[grpc.aio.ServerInterceptor]:
    """The interceptor chain of the server, outermost first (see the module docstring)."""
    chain: list[grpc.aio.ServerInterceptor] = [
        LoggingInterceptor(),
        MetricsInterceptor(),
        ErrorInterceptor(),
    ]
    if tracker is not None:
        chain.append(DrainInterceptor(tracker))
    if auth_token:
        chain.append(AuthInterceptor(auth_token))
    chain += [DeadlineInterceptor(default_deadline_s, max_deadline_s), ValidationInterceptor()]
    return chain
