"""The interceptors on their own, no server: a fake servicer context records what each
interceptor answers, and the wrapped call is a plain coroutine."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from wasteml.v1 import routing_pb2
from wasteml_server.core.calls import NO_CALL, current_method
from wasteml_server.core.deadlines import remaining_s
from wasteml_server.core.errors import (
    FieldViolation,
    InternalError,
    InvalidArgumentError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
)
from wasteml_server.transport.interceptors import (
    AdmissionInterceptor,
    AuthInterceptor,
    CallInfo,
    CallTracker,
    DeadlineInterceptor,
    ErrorInterceptor,
    StreamLimiter,
    ValidationInterceptor,
    peer_address,
)
from wasteml_server.transport.status import bounded

UNARY = CallInfo("wasteml.v1.RouteOptimizer", "Solve", False, False)
STREAM = CallInfo("wasteml.v1.CollectionPlanner", "PlanDay", False, True)
HEALTH = CallInfo("grpc.health.v1.Health", "Watch", False, True)


class AbortedError(Exception):
    """What the fake context raises where grpc.aio would abort the call."""


@dataclass
class FakeContext:
    """Enough of ``grpc.aio.ServicerContext`` for the interceptors."""

    metadata: tuple[tuple[str, str], ...] = ()
    remaining: float | None = None
    status: Any = None
    code_: grpc.StatusCode | None = None
    details: str = ""
    written: list = field(default_factory=list)

    def invocation_metadata(self):
        return self.metadata

    def time_remaining(self):
        return self.remaining

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"

    def code(self):
        return self.code_

    async def abort(self, code, details=""):
        self.code_, self.details = code, details
        raise AbortedError(details)

    async def abort_with_status(self, status):
        self.status, self.code_ = status, status.code
        raise AbortedError(status.details)


async def _run(interceptor, info: CallInfo, behaviour, context: FakeContext | None = None, request=None):
    context = context or FakeContext()

    async def call_next(req, ctx):
        return await behaviour(req, ctx)

    try:
        return await interceptor.around(info, request, context, call_next), context
    except AbortedError:
        return None, context


def _raising(error: BaseException):
    async def behaviour(request, context):
        raise error
    return behaviour


async def test_a_server_fault_is_internal_with_an_incident_and_no_detail() -> None:
    """InternalError -> INTERNAL with an incident id; the internal message is not sent."""
    _, ctx = await _run(ErrorInterceptor(), UNARY, _raising(InternalError("triton rejected input_ids: shape")))
    assert ctx.code_ is grpc.StatusCode.INTERNAL
    assert "incident" in ctx.details and "input_ids" not in ctx.details


async def test_an_unexpected_exception_is_internal_without_its_text() -> None:
    """Any unmapped exception -> INTERNAL with an incident id, never its message or traceback."""
    _, ctx = await _run(ErrorInterceptor(), UNARY, _raising(KeyError("secret internals")))
    assert ctx.code_ is grpc.StatusCode.INTERNAL and "secret" not in ctx.details


async def test_bad_input_carries_field_violations() -> None:
    """InvalidArgumentError -> INVALID_ARGUMENT with one BadRequest violation per field."""
    error = InvalidArgumentError("problem.stops[2].demand", "has 2 entries")
    _, ctx = await _run(ErrorInterceptor(), UNARY, _raising(error))
    assert ctx.status.code == grpc.StatusCode.INVALID_ARGUMENT
    proto = status_pb2.Status.FromString(dict(ctx.status.trailing_metadata)["grpc-status-details-bin"])
    bad = error_details_pb2.BadRequest()
    assert proto.details[0].Unpack(bad)
    assert [v.field for v in bad.field_violations] == ["problem.stops[2].demand"]


async def test_a_dependency_outage_is_unavailable_naming_it() -> None:
    """UnavailableError -> UNAVAILABLE with ErrorInfo naming the dependency."""
    _, ctx = await _run(ErrorInterceptor(), UNARY, _raising(UnavailableError("milvus", "connection refused")))
    assert ctx.status.code == grpc.StatusCode.UNAVAILABLE
    assert "milvus" in ctx.status.details


async def test_the_deadline_and_the_method_reach_domain_code() -> None:
    """Inside a call the domain sees its deadline (the default for unary calls) and its method."""
    seen = {}

    async def behaviour(request, context):
        seen["left"], seen["method"] = remaining_s(), current_method()

    await _run(DeadlineInterceptor(default_s=5.0, max_s=60.0), UNARY, behaviour)
    assert 4.0 < seen["left"] <= 5.0 and seen["method"] == "/wasteml.v1.RouteOptimizer/Solve"
    assert current_method() == NO_CALL


async def test_long_client_deadlines_are_clamped_and_streams_get_the_maximum() -> None:
    """A 1 h client deadline is clamped to max_s; a stream without one gets max_s."""
    seen = []

    async def behaviour(request, context):
        seen.append(remaining_s())

    await _run(DeadlineInterceptor(5.0, 60.0), UNARY, behaviour, FakeContext(remaining=3600.0))
    await _run(DeadlineInterceptor(5.0, 60.0), STREAM, behaviour)
    assert all(55.0 < s <= 60.0 for s in seen)


async def test_running_out_of_time_raises_timeout() -> None:
    """A call past its deadline is cut off with TimeoutError (mapped to DEADLINE_EXCEEDED)."""
    async def slow(request, context):
        await asyncio.sleep(5)

    with pytest.raises(TimeoutError):
        await DeadlineInterceptor(0.05, 1.0).around(UNARY, None, FakeContext(), slow)
    _, ctx = await _run(ErrorInterceptor(), UNARY,
                        lambda r, c: DeadlineInterceptor(0.05, 1.0).around(UNARY, r, c, slow))
    assert ctx.status.code == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_auth_needs_the_bearer_token_except_for_health() -> None:
    """API calls without the token are UNAUTHENTICATED; health passes without one."""
    async def ok(request, context):
        return "ok"

    auth = AuthInterceptor("s3cret")
    with pytest.raises(UnauthenticatedError):
        await auth.around(UNARY, None, FakeContext(metadata=(("authorization", "Bearer nope"),)), ok)
    assert await auth.around(UNARY, None, FakeContext(metadata=(("authorization", "Bearer s3cret"),)), ok) == "ok"
    assert await auth.around(HEALTH, None, FakeContext(), ok) == "ok"


async def test_undefined_enum_values_are_refused_by_field() -> None:
    """An enum number the schema does not define is INVALID_ARGUMENT naming the field."""
    request = routing_pb2.SolveRequest()
    request.options.engine = 42

    async def ok(req, context):
        return "ok"

    with pytest.raises(InvalidArgumentError) as err:
        await ValidationInterceptor().around(UNARY, request, FakeContext(), ok)
    assert err.value.field == "options.engine"


async def test_draining_refuses_new_calls_and_waits_for_running_ones() -> None:
    """While draining, new API calls are UNAVAILABLE; drain returns once running calls end."""
    tracker = CallTracker()
    interceptor = AdmissionInterceptor(tracker)
    release = asyncio.Event()

    async def held(request, context):
        await release.wait()

    running = asyncio.ensure_future(interceptor.around(UNARY, None, FakeContext(), held))
    await asyncio.sleep(0.01)
    draining = asyncio.ensure_future(tracker.drain(5.0))
    await asyncio.sleep(0.01)
    with pytest.raises(UnavailableError):
        await interceptor.around(UNARY, None, FakeContext(), held)
    release.set()
    assert await draining and await running is None


def test_stream_limiter_caps_per_peer_and_in_total_and_frees_on_leave() -> None:
    """Per-address and total caps refuse with RESOURCE_EXHAUSTED naming the cap; leave frees."""
    limiter = StreamLimiter("streams", max_total=3, max_per_peer=2)
    limiter.enter("ipv4:10.0.0.1")
    limiter.enter("ipv4:10.0.0.1")
    with pytest.raises(ResourceExhaustedError, match="at most 2 concurrent streams per client address"):
        limiter.enter("ipv4:10.0.0.1")
    limiter.enter("ipv4:10.0.0.2")
    with pytest.raises(ResourceExhaustedError, match="at most 3 concurrent streams on this server"):
        limiter.enter("ipv4:10.0.0.3")
    limiter.leave("ipv4:10.0.0.1")
    limiter.enter("ipv4:10.0.0.3")
    assert limiter.in_flight == 3 and limiter.open_for("ipv4:10.0.0.1") == 1


def test_peer_address_drops_the_port_only() -> None:
    """Connections of one host share a key; ports differ per connection."""
    assert peer_address("ipv4:127.0.0.1:51234") == "ipv4:127.0.0.1"
    assert peer_address("ipv6:[::1]:51234") == "ipv6:[::1]"
    assert peer_address("unix:/run/wasteml.sock") == "unix:/run/wasteml.sock"


async def test_the_api_limit_refuses_beyond_max_in_flight_and_releases() -> None:
    """CallTracker(max_in_flight=1): a second API call is RESOURCE_EXHAUSTED stating the
    limit; health is not counted; the slot is free again after the first call ends."""
    tracker = CallTracker(max_in_flight=1)
    interceptor = AdmissionInterceptor(tracker)
    release = asyncio.Event()

    async def held(request, context):
        await release.wait()

    running = asyncio.ensure_future(interceptor.around(UNARY, None, FakeContext(), held))
    await asyncio.sleep(0.01)
    with pytest.raises(ResourceExhaustedError, match="at most 1 API calls in flight"):
        await interceptor.around(UNARY, None, FakeContext(), held)
    health = asyncio.ensure_future(interceptor.around(HEALTH, None, FakeContext(), held))
    await asyncio.sleep(0.01)
    assert tracker.in_flight == 1 and not health.done()
    release.set()
    await asyncio.gather(running, health)
    assert tracker.in_flight == 0


def test_bounded_cuts_on_utf8_bytes_and_says_so() -> None:
    """bounded() keeps text within its byte limit (multi-byte safe) and notes the length."""
    assert bounded("short", 64) == "short"
    cut = bounded("é" * 5000, 100)
    assert len(cut.encode()) <= 100 and cut.endswith("(5000 chars)")


async def test_a_status_holding_huge_violations_is_bounded() -> None:
    """An INVALID_ARGUMENT with 100 violations of 20 KB each sends a status under 3 KiB whose
    first violation keeps its field and the last kept says how many were left out."""
    many = [FieldViolation(f"stops[{i}].id", "x" * 20_000) for i in range(100)]
    error = InvalidArgumentError("stops[0].id" + "y" * 20_000, "z" * 20_000, *many)
    _, ctx = await _run(ErrorInterceptor(), UNARY, _raising(error))
    assert ctx.status.code == grpc.StatusCode.INVALID_ARGUMENT
    proto = status_pb2.Status.FromString(dict(ctx.status.trailing_metadata)["grpc-status-details-bin"])
    assert proto.ByteSize() <= 3 * 1024 and len(ctx.status.details.encode()) <= 1024
    bad = error_details_pb2.BadRequest()
    assert proto.details[0].Unpack(bad)
    assert bad.field_violations[0].field.startswith("stops[0].idyyy")
    assert "more violations left out" in bad.field_violations[-1].description
