"""Server interceptors: logging, metrics, error mapping, decoding, auth, admission, deadlines.

Every handler is re-wrapped as one coroutine ``(request, context) -> response | None``
(streaming responses are written with ``context.write``), so each interceptor is a single
``around`` hook and the chain reads top to bottom. The order built by
``default_interceptors`` is, outermost first:

1. ``LoggingInterceptor``  - one log line per call: method, peer, status code, duration.
2. ``MetricsInterceptor``  - Prometheus counter/histogram/gauge by service, method, code.
3. ``ErrorInterceptor``    - domain errors -> status codes via ``transport.status.STATUS_TABLE``, with
   ``google.rpc.BadRequest`` field violations (bounded in size, so the status always fits
   gRPC's metadata limit); anything unmapped -> INTERNAL with a generic message (the
   traceback goes to the server log, never to the client).
4. ``AuthInterceptor``     - bearer token check when ``Settings.auth_token`` is set. It decides on
   the invocation metadata alone, before the request body is deserialised: a call without
   the token is answered UNAUTHENTICATED by a handler that discards the body undecoded.
5. ``AdmissionInterceptor`` - admission control (our own, in place of grpc's
   ``maximum_concurrent_rpcs``, which counted health and reflection too): at most
   ``max_concurrent_rpcs`` API calls in flight; streaming API calls (WatchJob, PlanDay,
   IndexDocuments) capped in total and per client address; Health/Watch and reflection
   streams capped in total and per client address in a pool of their own, so they can
   never take an API slot and ``Health/Check`` is always answered. Refusals are
   RESOURCE_EXHAUSTED stating the limit, counted in ``wasteml_grpc_refused_total{limit}`` and
   logged at WARNING at most once per ``REFUSAL_LOG_INTERVAL_S`` per limit. While the server
   drains (graceful shutdown) API calls are refused with UNAVAILABLE.
6. ``DecodeInterceptor``   - the request deserializer of every method is wrapped: bytes that
   are not a valid message are INVALID_ARGUMENT ("request: not a valid <Message>") instead of
   grpc's UNKNOWN; health/reflection request bodies are bounded in size. (Parsing stays
   where grpc does it, on the event loop: upb holds the GIL while it parses, so a thread would
   not free the loop; bodies are bounded by ``Settings.max_message_bytes``.)
7. ``DeadlineInterceptor`` - applies a default deadline to calls that have none, clamps
   long ones, and publishes the deadline and the method to domain code
   (``wasteml_server.core.deadlines``, ``wasteml_server.core.calls``).
8. ``ValidationInterceptor`` - rejects undefined enum values in every request message.

Health and reflection are exempt from auth, deadlines and validation (probes must work
without a token, and ``Watch`` streams are long-lived by design), not from the admission
caps of their own pool or the bound on their request size.

Client address ("peer"): the host part of ``context.peer()`` (``ipv4:10.0.0.7``), so all
connections of one host share its per-peer caps. Behind a proxy or load balancer that does
not preserve client addresses every client is the proxy: size the per-peer caps for that.
"""

from __future__ import annotations

import asyncio
import collections
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
    InvalidArgumentError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    WastemlError,
)
from wasteml_server.transport.status import status_for_error
from wasteml_server.transport.validation import check_enums

logger = logging.getLogger("wasteml.rpc")


#: At most one WARNING per limit in this many seconds about refused calls (with their count).
REFUSAL_LOG_INTERVAL_S = 10.0

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


def call_info(handler: grpc.RpcMethodHandler, handler_call_details: grpc.HandlerCallDetails) -> CallInfo:
    """The ``CallInfo`` of a call from its method handler and ``/service/method`` path."""
    service, _, method = handler_call_details.method.lstrip("/").rpartition("/")
    return CallInfo(service, method, handler.request_streaming, handler.response_streaming)


_FACTORIES = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def _discard(raw: bytes) -> None:
    """Request deserializer of a refused call: the body is never decoded."""
    return None


def refusing_handler(handler: grpc.RpcMethodHandler, error: WastemlError) -> grpc.RpcMethodHandler:
    """A handler of the same kind as ``handler`` that fails with ``error`` without decoding the body.

    Used to answer a call on its metadata alone (no token, server full): the request bytes
    grpc has received are dropped undecoded and the outer interceptors map ``error`` to its
    status as for any other call.
    """

    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> Any:
        raise error

    factory = _FACTORIES[(handler.request_streaming, handler.response_streaming)]
    return factory(refuse, request_deserializer=_discard, response_serializer=handler.response_serializer)


class WrappingInterceptor(grpc.aio.ServerInterceptor):
    """Base class: re-wraps the handler so that ``around`` sees every call as one coroutine."""

    async def around(
        self, info: CallInfo, request: Any, context: grpc.aio.ServicerContext, call_next: Behavior
    ) -> Any:
        """Run the call; override to add behaviour before/after ``call_next``."""
        return await call_next(request, context)

    def request_deserializer(self, info: CallInfo, deserializer: Callable[[bytes], Any] | None
                             ) -> Callable[[bytes], Any] | None:
        """The request deserializer of the wrapped handler (override to wrap it); unchanged here."""
        return deserializer

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return self.wrap(call_info(handler, handler_call_details), handler)

    def wrap(self, info: CallInfo, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """``handler`` with ``around`` about its behaviour and ``request_deserializer`` applied."""
        inner: Any = (
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

        factory = _FACTORIES[(handler.request_streaming, handler.response_streaming)]
        return factory(
            behavior,
            request_deserializer=self.request_deserializer(info, handler.request_deserializer),
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
    """Counts API calls in flight, refuses those beyond a limit, and refuses new ones once
    draining (graceful shutdown).

    grpc.aio's ``server.stop(grace)`` refuses new calls too, but it then closes connections as
    soon as the last call's status is queued, which can reset a connection before a large reply
    has left the socket (seen: a 1.5 MB Embed reply lost at shutdown). Draining here first lets
    replies go out over open connections; the server stops afterwards.

    Args:
        max_in_flight: most API calls handled at once (``Settings.max_concurrent_rpcs``);
            None: no limit.
    """

    def __init__(self, max_in_flight: int | None = None) -> None:
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def full(self) -> bool:
        """True when another call would exceed ``max_in_flight``."""
        return self.max_in_flight is not None and self.in_flight >= self.max_in_flight

    def refusal(self) -> WastemlError | None:
        """Why a new call would be refused now (draining, or full), or None if it is admitted."""
        if self.draining:
            return UnavailableError("server", "shutting down; retry on another replica")
        if self.full:
            return ResourceExhaustedError(
                f"server busy: at most {self.max_in_flight} API calls in flight (max_concurrent_rpcs); "
                "retry with backoff"
            )
        return None

    def enter(self) -> None:
        """Count a call in.

        Raises:
            UnavailableError: while draining.
            ResourceExhaustedError: ``max_in_flight`` calls are in flight already.
        """
        refused = self.refusal()
        if refused is not None:
            raise refused
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


def peer_address(peer: str) -> str:
    """The client address of a gRPC peer string, without the port.

    ``"ipv4:10.0.0.7:51234"`` -> ``"ipv4:10.0.0.7"``, ``"ipv6:[::1]:51234"`` -> ``"ipv6:[::1]"``;
    other forms (``"unix:/run/wasteml.sock"``) are returned whole.
    """
    if peer.startswith(("ipv4:", "ipv6:")):
        host, sep, port = peer.rpartition(":")
        if sep and port.isascii() and port.isdigit() and host not in ("ipv4", "ipv6"):
            return host
    return peer


class StreamLimiter:
    """Counts long-lived calls in flight, in total and per client address, and refuses those
    beyond either cap.

    Args:
        what: what is counted, for the refusal message (e.g. ``"streaming API calls"``).
        max_total: most such calls at once from all clients.
        max_per_peer: most such calls at once from one client address (``peer_address``).
    """

    def __init__(self, what: str, max_total: int, max_per_peer: int) -> None:
        self.what = what
        self.max_total = max_total
        self.max_per_peer = max_per_peer
        self.in_flight = 0
        self._by_peer: collections.Counter[str] = collections.Counter()

    @property
    def full(self) -> bool:
        """True when another call would exceed ``max_total``."""
        return self.in_flight >= self.max_total

    def open_for(self, peer: str) -> int:
        """Calls in flight from the client address ``peer``."""
        return self._by_peer.get(peer, 0)

    def total_refusal(self) -> ResourceExhaustedError | None:
        """The error for a call beyond ``max_total`` now, or None."""
        if self.full:
            return ResourceExhaustedError(
                f"at most {self.max_total} concurrent {self.what} on this server; retry later"
            )
        return None

    def enter(self, peer: str) -> None:
        """Count a call of client address ``peer`` in.

        Raises:
            ResourceExhaustedError: the total or the per-peer cap is reached (names which).
        """
        total = self.total_refusal()
        if total is not None:
            raise total
        if self._by_peer[peer] >= self.max_per_peer:
            raise ResourceExhaustedError(
                f"at most {self.max_per_peer} concurrent {self.what} per client address; "
                f"{self.open_for(peer)} open from this one"
            )
        self._by_peer[peer] += 1
        self.in_flight += 1

    def leave(self, peer: str) -> None:
        """Count a call of client address ``peer`` out."""
        self.in_flight -= 1
        self._by_peer[peer] -= 1
        if self._by_peer[peer] <= 0:
            del self._by_peer[peer]


class _RefusalLog:
    """Counts refusals per limit in Prometheus and logs them at WARNING, at most once per interval."""

    def __init__(self, interval_s: float = REFUSAL_LOG_INTERVAL_S) -> None:
        self._interval_s = interval_s
        self._last: dict[str, float] = {}
        self._count: collections.Counter[str] = collections.Counter()

    def refused(self, limit: str, info: CallInfo, error: WastemlError) -> None:
        metrics.GRPC_REFUSED.labels(limit).inc()
        self._count[limit] += 1
        now = time.monotonic()
        if now - self._last.get(limit, -self._interval_s) >= self._interval_s:
            logger.warning("refused %d call(s) by limit %s in the last %.0f s (last: %s/%s: %s)",
                           self._count[limit], limit, self._interval_s, info.service, info.method,
                           error.message)
            self._last[limit] = now
            self._count[limit] = 0


class AdmissionInterceptor(WrappingInterceptor):
    """Admission control: API calls, streaming API calls, and health/reflection streams.

    * every API call is counted in ``tracker`` (at most ``tracker.max_in_flight``; refused with
      UNAVAILABLE while draining);
    * streaming API calls (either direction) are also counted in ``api_streams`` (total and
      per client address), so long-lived streams leave room for unary calls;
    * ``Health/Watch`` and reflection streams are counted in ``health_streams`` only: they never
      take an API slot, and ``Health/Check`` is never refused.

    A call that is refused on what is known before the request body arrives (draining, the
    server or the stream pool full) is answered by a handler that never decodes the body;
    the per-address caps need the peer, which only the call context knows.

    Args:
        tracker: API calls in flight (also used by the graceful shutdown to drain).
        api_streams: cap of streaming API calls.
        health_streams: cap of Health/Watch and reflection streams.
    """

    def __init__(self, tracker: CallTracker, api_streams: StreamLimiter | None = None,
                 health_streams: StreamLimiter | None = None) -> None:
        self._tracker = tracker
        self._api_streams = api_streams
        self._health_streams = health_streams
        self._log = _RefusalLog()

    def _streams_for(self, info: CallInfo) -> tuple[StreamLimiter | None, str]:
        if info.exempt:
            if info.response_streaming:
                return self._health_streams, "health_streams"
            return None, ""
        if info.request_streaming or info.response_streaming:
            return self._api_streams, "api_streams"
        return None, ""

    def _early_refusal(self, info: CallInfo) -> tuple[str, WastemlError] | None:
        if not info.exempt:
            refused = self._tracker.refusal()
            if refused is not None:
                return ("draining" if self._tracker.draining else "api_calls"), refused
        streams, label = self._streams_for(info)
        if streams is not None:
            total = streams.total_refusal()
            if total is not None:
                return label, total
        return None

    async def intercept_service(self, continuation, handler_call_details):  # noqa: D102
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        info = call_info(handler, handler_call_details)
        early = self._early_refusal(info)
        if early is not None:
            label, error = early
            self._log.refused(label, info, error)
            return refusing_handler(handler, error)
        return self.wrap(info, handler)

    async def around(self, info, request, context, call_next):  # noqa: D102
        streams, label = self._streams_for(info)
        if not info.exempt:
            try:
                self._tracker.enter()
            except WastemlError as exc:
                self._log.refused("draining" if self._tracker.draining else "api_calls", info, exc)
                raise
        try:
            if streams is None:
                return await call_next(request, context)
            peer = peer_address(context.peer())
            try:
                streams.enter(peer)
            except ResourceExhaustedError as exc:
                self._log.refused(label if streams.full else f"{label}_per_peer", info, exc)
                raise
            try:
                return await call_next(request, context)
            finally:
                streams.leave(peer)
        finally:
            if not info.exempt:
                self._tracker.leave()


class AuthInterceptor(WrappingInterceptor):
    """Requires ``authorization: Bearer <token>`` metadata on API calls.

    The token is checked on the invocation metadata in ``intercept_service``, before grpc has
    read or decoded the request body: a call without it gets a handler that drops the body
    undecoded and answers UNAUTHENTICATED. Health and reflection need no token.

    Args:
        token: the expected bearer token; compared in constant time.
    """

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    def _authorized(self, metadata: Any) -> bool:
        given = b""
        for key, value in metadata or ():
            if key == "authorization":
                given = value.encode() if isinstance(value, str) else bytes(value)
                break
        return hmac.compare_digest(given, self._expected)

    async def intercept_service(self, continuation, handler_call_details):  # noqa: D102
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        info = call_info(handler, handler_call_details)
        if not info.exempt and not self._authorized(handler_call_details.invocation_metadata):
            return refusing_handler(
                handler, UnauthenticatedError("missing or invalid bearer token in 'authorization' metadata")
            )
        return self.wrap(info, handler)

    async def around(self, info, request, context, call_next):  # noqa: D102
        if not info.exempt and not self._authorized(context.invocation_metadata()):
            raise UnauthenticatedError("missing or invalid bearer token in 'authorization' metadata")
        return await call_next(request, context)


@dataclass(frozen=True)
class _Refused:
    """What the wrapped deserializer returns for a body it refuses; raised by ``DecodeInterceptor``."""

    error: InvalidArgumentError


def _message_name(deserializer: Callable[[bytes], Any], info: CallInfo) -> str:
    owner = getattr(deserializer, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    name = getattr(descriptor, "full_name", None)
    return name if isinstance(name, str) else f"{info.service}/{info.method} request"


def _parse(deserializer: Callable[[bytes], Any], name: str, raw: bytes) -> Any:
    try:
        return deserializer(raw)
    except Exception as exc:  # protobuf's DecodeError, or anything a parser raises on bad bytes
        logger.debug("undecodable %s (%d bytes): %s", name, len(raw), exc)
        raise InvalidArgumentError("request", f"not a valid {name} ({len(raw)} bytes)") from None


class DecodeInterceptor(WrappingInterceptor):
    """Request bodies: undecodable -> INVALID_ARGUMENT; health/reflection bodies bounded.

    grpc calls a method's ``request_deserializer`` itself (outside any handler) and answers
    UNKNOWN when it raises; the wrapped deserializer never raises but hands the outcome to
    ``around``, which raises ``InvalidArgumentError("request", "not a valid <Message> ...")``
    for the error interceptor to map. For request streams every message is checked so.

    Args:
        max_exempt_request_bytes: largest request body of a health or reflection call, bytes
            (``Settings.max_health_request_bytes``); None: only the server's message limit.
    """

    def __init__(self, max_exempt_request_bytes: int | None = None) -> None:
        self._max_exempt = max_exempt_request_bytes

    def request_deserializer(self, info, deserializer):  # noqa: D102
        limit = self._max_exempt if info.exempt else None
        name = _message_name(deserializer, info) if deserializer is not None else f"{info.service}/{info.method}"

        def decode(raw: bytes) -> Any:
            if limit is not None and len(raw) > limit:
                return _Refused(InvalidArgumentError(
                    "request", f"at most {limit} bytes for a {name}, got {len(raw)}"))
            if deserializer is None:
                return raw
            try:
                return _parse(deserializer, name, raw)
            except InvalidArgumentError as exc:
                return _Refused(exc)

        return decode

    async def around(self, info, request, context, call_next):  # noqa: D102
        if info.request_streaming:
            return await call_next(_decoded_stream(request), context)
        return await call_next(_decoded(request), context)


def _decoded(message: Any) -> Any:
    if isinstance(message, _Refused):
        raise message.error
    return message


async def _decoded_stream(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for message in requests:
        yield _decoded(message)


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
    api_streams: StreamLimiter | None = None,
    health_streams: StreamLimiter | None = None,
    max_health_request_bytes: int | None = None,
) -> list[grpc.aio.ServerInterceptor]:
    """The interceptor chain of the server, outermost first (see the module docstring).

    Args:
        auth_token: bearer token API calls must carry; None/empty: no auth.
        default_deadline_s: deadline of unary calls without one, seconds.
        max_deadline_s: longest deadline honoured, seconds.
        tracker: API calls in flight (limit and drain); None: neither limit nor drain.
        api_streams: cap of streaming API calls; None: uncapped.
        health_streams: cap of Health/Watch and reflection streams; None: uncapped.
        max_health_request_bytes: bound on health/reflection request bodies, bytes.
    """
    chain: list[grpc.aio.ServerInterceptor] = [
        LoggingInterceptor(),
        MetricsInterceptor(),
        ErrorInterceptor(),
    ]
    if auth_token:
        chain.append(AuthInterceptor(auth_token))
    if tracker is not None or api_streams is not None or health_streams is not None:
        chain.append(AdmissionInterceptor(tracker or CallTracker(), api_streams, health_streams))
    chain += [
        DecodeInterceptor(max_health_request_bytes),
        DeadlineInterceptor(default_deadline_s, max_deadline_s),
        ValidationInterceptor(),
    ]
    return chain
