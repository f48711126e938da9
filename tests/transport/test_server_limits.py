"""The transport's limits on a real grpc.aio server on loopback (issue 12, findings 3, 10, 11).

The server is the production one (``create_server``: every interceptor, health, reflection,
channel options from ``Settings``); the API it serves here is a small probe service (generic
handlers over real request/response messages), so each limit is exercised on its own:
admission control, stream caps, auth before the body, undecodable bytes and bounded statuses.
Every flood is bounded in count (a few hundred calls on one channel) and in time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status
from prometheus_client import REGISTRY
from wasteml_testing import server_settings

from wasteml.v1 import admin_pb2
from wasteml_server.core.errors import FieldViolation, InvalidArgumentError, NotFoundError
from wasteml_server.transport.server import (
    Server,
    ServiceBinding,
    create_server,
    is_loopback,
    server_options,
)

PROBE = "wasteml.test.Probe"
REQUEST = admin_pb2.GetModelRequest
RESPONSE = admin_pb2.GetModelResponse
CHECK = health_pb2.HealthCheckRequest()
#: Bytes that are no protobuf message (a varint that never ends).
GARBAGE = b"\xff"


class Probe:
    """The probe API: a quick unary call, calls that fail with huge errors, a held stream."""

    def __init__(self) -> None:
        self.decoded = 0
        self.held = 0
        self.release = asyncio.Event()

    def deserialize(self, raw: bytes) -> Any:
        self.decoded += 1
        return REQUEST.FromString(raw)

    async def echo(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return RESPONSE(model=admin_pb2.ModelInfo(name=request.name[:32]))

    async def not_found(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        raise NotFoundError(f"model {request.name!r} not found")  # echoes all of its input

    async def invalid(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        more = [FieldViolation(f"versions[{i}].{request.name}", request.name) for i in range(50)]
        raise InvalidArgumentError("name", f"unknown model {request.name!r}", *more)

    async def hold(self, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        """Like WatchJob: one message now, then open until released or the deadline."""
        self.held += 1
        try:
            yield RESPONSE()
            await self.release.wait()
        finally:
            self.held -= 1

    async def count(self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
        n = 0
        async for _ in requests:
            n += 1
        return RESPONSE(model=admin_pb2.ModelInfo(name=str(n)))

    def binding(self) -> ServiceBinding:
        ser = RESPONSE.SerializeToString
        handlers = {
            "Echo": grpc.unary_unary_rpc_method_handler(self.echo, self.deserialize, ser),
            "NotFound": grpc.unary_unary_rpc_method_handler(self.not_found, self.deserialize, ser),
            "Invalid": grpc.unary_unary_rpc_method_handler(self.invalid, self.deserialize, ser),
            "Hold": grpc.unary_stream_rpc_method_handler(self.hold, self.deserialize, ser),
            "Count": grpc.stream_unary_rpc_method_handler(self.count, self.deserialize, ser),
        }
        generic = grpc.method_handlers_generic_handler(PROBE, handlers)
        return ServiceBinding(PROBE, lambda s: s.add_generic_rpc_handlers((generic,)))


@asynccontextmanager
async def serving(tmp_path: Path, **overrides: object) -> AsyncIterator[tuple[Server, Probe, grpc.aio.Channel]]:
    """A started server with the probe API and a channel to it; everything closed at the end."""
    probe = Probe()
    settings = server_settings(tmp_path, **overrides)
    server, port = await create_server(settings, [probe.binding()], {}, health_interval_s=60.0)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield server, probe, channel
    finally:
        probe.release.set()
        await channel.close()
        await server.grpc_server.stop(0)
        await server.monitor.stop()


def _unary(channel: grpc.aio.Channel, method: str) -> Callable[..., Awaitable[Any]]:
    return channel.unary_unary(f"/{PROBE}/{method}", request_serializer=REQUEST.SerializeToString,
                               response_deserializer=RESPONSE.FromString)


def _raw(channel: grpc.aio.Channel, method: str) -> Callable[..., Awaitable[Any]]:
    """A unary call that sends its request bytes as they are."""
    return channel.unary_unary(f"/{PROBE}/{method}", request_serializer=None, response_deserializer=None)


async def _check(channel: grpc.aio.Channel) -> tuple[int, float]:
    start = time.perf_counter()
    reply = await health_pb2_grpc.HealthStub(channel).Check(CHECK, timeout=5)
    return reply.status, time.perf_counter() - start


async def _code(call: Awaitable[Any]) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


async def _first_or_status(call: grpc.aio.UnaryStreamCall) -> tuple[grpc.StatusCode | None, str]:
    """None while the stream stays open after its first message, else its final code and details."""
    try:
        message = await asyncio.wait_for(call.read(), 5)
    except grpc.aio.AioRpcError as err:
        return err.code(), err.details() or ""
    if message is grpc.aio.EOF:
        return await call.code(), await call.details()
    return None, ""


def _refused(limit: str) -> float:
    return REGISTRY.get_sample_value("wasteml_grpc_refused_total", {"limit": limit}) or 0.0


async def test_a_health_watch_flood_is_capped_and_check_and_the_api_still_answer(tmp_path: Path) -> None:
    """300 Health/Watch streams from one client (finding 3 took 256): beyond the per-peer cap
    they are refused with RESOURCE_EXHAUSTED stating it; Health/Check and an API call still
    answer OK within 1 s, and the refusals are counted."""
    async with serving(tmp_path) as (server, probe, channel):
        before = _refused("health_streams_per_peer")
        health = health_pb2_grpc.HealthStub(channel)
        calls = [health.Watch(CHECK, timeout=30) for _ in range(300)]
        outcomes = await asyncio.gather(*(_first_or_status(c) for c in calls))
        open_streams = [o for o in outcomes if o[0] is None]
        refused = [o for o in outcomes if o[0] is grpc.StatusCode.RESOURCE_EXHAUSTED]
        assert len(open_streams) == 16 and len(refused) == 284
        assert "at most 16 concurrent Health/Watch and reflection streams per client address" in refused[0][1]
        status, took = await _check(channel)
        assert status == health_pb2.HealthCheckResponse.SERVING and took < 1.0
        start = time.perf_counter()
        assert (await _unary(channel, "Echo")(REQUEST(name="bin"), timeout=5)).model.name == "bin"
        assert time.perf_counter() - start < 1.0
        assert _refused("health_streams_per_peer") == before + 284
        for call in calls:
            call.cancel()


async def test_health_watch_streams_are_capped_in_total_too(tmp_path: Path) -> None:
    """With a total cap below the per-peer one, the total cap refuses (and says so)."""
    async with serving(tmp_path, max_health_streams=3) as (_, _probe, channel):
        health = health_pb2_grpc.HealthStub(channel)
        calls = [health.Watch(CHECK, timeout=30) for _ in range(10)]
        outcomes = await asyncio.gather(*(_first_or_status(c) for c in calls))
        assert sum(o[0] is None for o in outcomes) == 3
        assert {o[0] for o in outcomes if o[0] is not None} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        assert any("at most 3 concurrent Health/Watch and reflection streams on this server" in o[1]
                   for o in outcomes)
        assert (await _check(channel))[0] == health_pb2.HealthCheckResponse.SERVING
        for call in calls:
            call.cancel()


async def test_a_streaming_call_flood_leaves_unary_calls_and_health_served(tmp_path: Path) -> None:
    """300 WatchJob-like streams from one client (finding 11 took 262): beyond the per-peer cap
    of streaming calls they are refused by OUR limit (its message); a unary API call and
    Health/Check answer OK meanwhile, and closing the streams frees every slot."""
    async with serving(tmp_path) as (server, probe, channel):
        hold = channel.unary_stream(f"/{PROBE}/Hold", request_serializer=REQUEST.SerializeToString,
                                    response_deserializer=RESPONSE.FromString)
        calls = [hold(REQUEST(), timeout=30) for _ in range(300)]
        outcomes = await asyncio.gather(*(_first_or_status(c) for c in calls))
        assert sum(o[0] is None for o in outcomes) == 32 == probe.held
        refused = [o for o in outcomes if o[0] is not None]
        assert len(refused) == 268 and {o[0] for o in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        assert "at most 32 concurrent streaming API calls per client address" in refused[0][1]
        assert "Concurrent RPC limit exceeded" not in refused[0][1]
        start = time.perf_counter()
        assert (await _unary(channel, "Echo")(REQUEST(name="x"), timeout=5)).model.name == "x"
        assert time.perf_counter() - start < 1.0
        assert (await _check(channel))[0] == health_pb2.HealthCheckResponse.SERVING
        probe.release.set()
        await asyncio.gather(*(c.code() for c in calls))
        for _ in range(100):
            if server.tracker.in_flight == 0:
                break
            await asyncio.sleep(0.01)
        assert server.tracker.in_flight == 0 and probe.held == 0


async def test_the_api_limit_counts_api_calls_only_and_says_so(tmp_path: Path, caplog) -> None:
    """With max_concurrent_rpcs=4 and 4 API calls in flight, the next API call gets OUR
    RESOURCE_EXHAUSTED (stating the limit, counted, logged at WARNING once), while health is
    answered; once the calls end the API serves again."""
    caplog.set_level(logging.WARNING, logger="wasteml.rpc")
    async with serving(tmp_path, max_concurrent_rpcs=4) as (server, probe, channel):
        before = _refused("api_calls")
        hold = channel.unary_stream(f"/{PROBE}/Hold", request_serializer=REQUEST.SerializeToString,
                                    response_deserializer=RESPONSE.FromString)
        calls = [hold(REQUEST(), timeout=30) for _ in range(4)]
        assert [o[0] for o in await asyncio.gather(*(_first_or_status(c) for c in calls))] == [None] * 4
        echo = _unary(channel, "Echo")
        for _ in range(5):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await echo(REQUEST(name="x"), timeout=5)
            assert err.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "at most 4 API calls in flight" in (err.value.details() or "")
        assert (await _check(channel))[0] == health_pb2.HealthCheckResponse.SERVING
        watch = health_pb2_grpc.HealthStub(channel).Watch(CHECK, timeout=30)
        assert (await _first_or_status(watch))[0] is None  # a health stream takes no API slot
        watch.cancel()
        assert _refused("api_calls") == before + 5
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "api_calls" in r.getMessage()]
        assert len(warnings) == 1
        probe.release.set()
        await asyncio.gather(*(c.code() for c in calls))
        assert (await echo(REQUEST(name="y"), timeout=5)).model.name == "y"


async def test_without_the_token_the_body_is_never_decoded(tmp_path: Path) -> None:
    """No token: UNAUTHENTICATED decided on the metadata, the deserializer never runs (even
    for garbage bytes); health needs no token; with the token the call is served."""
    async with serving(tmp_path, auth_token="s3cret") as (_, probe, channel):
        for body in (GARBAGE, REQUEST(name="x" * 100_000).SerializeToString()):
            code = await _code(_raw(channel, "Echo")(body, timeout=5))
            assert code is grpc.StatusCode.UNAUTHENTICATED
        count = channel.stream_unary(f"/{PROBE}/Count", request_serializer=None, response_deserializer=None)
        assert await _code(count(iter([GARBAGE] * 3), timeout=5)) is grpc.StatusCode.UNAUTHENTICATED
        hold = channel.unary_stream(f"/{PROBE}/Hold", request_serializer=REQUEST.SerializeToString,
                                    response_deserializer=RESPONSE.FromString)
        assert (await _first_or_status(hold(REQUEST(), timeout=5)))[0] is grpc.StatusCode.UNAUTHENTICATED
        assert probe.decoded == 0 and probe.held == 0
        assert (await _check(channel))[0] == health_pb2.HealthCheckResponse.SERVING
        token = (("authorization", "Bearer s3cret"),)
        reply = await _unary(channel, "Echo")(REQUEST(name="ok"), timeout=5, metadata=token)
        assert reply.model.name == "ok" and probe.decoded == 1


async def test_undecodable_bytes_are_invalid_argument(tmp_path: Path) -> None:
    """Bytes that are no valid request message: INVALID_ARGUMENT naming the message (grpc
    alone answers UNKNOWN), for a unary call and for a message in a request stream; the
    call slot is released."""
    async with serving(tmp_path) as (server, _probe, channel):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _raw(channel, "Echo")(GARBAGE, timeout=5)
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        # the message's name where the deserializer is a message's FromString (see the API tests)
        assert err.value.details() == "request: not a valid wasteml.test.Probe/Echo request (1 bytes)"
        violation = _bad_request(err.value).field_violations[0]
        assert violation.field == "request"
        count = channel.stream_unary(f"/{PROBE}/Count", request_serializer=None, response_deserializer=None)
        good = REQUEST(name="a").SerializeToString()
        assert await _code(count(iter([good, good, GARBAGE, good]), timeout=5)) is grpc.StatusCode.INVALID_ARGUMENT
        assert RESPONSE.FromString(await count(iter([good, good]), timeout=5)).model.name == "2"
        assert server.tracker.in_flight == 0


async def test_oversized_health_requests_are_refused_before_parsing(tmp_path: Path) -> None:
    """A Health/Check body over max_health_request_bytes is INVALID_ARGUMENT; a normal one works."""
    async with serving(tmp_path, max_health_request_bytes=256) as (_, _probe, channel):
        stub = health_pb2_grpc.HealthStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Check(health_pb2.HealthCheckRequest(service="s" * 1000), timeout=5)
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "at most 256 bytes" in (err.value.details() or "")
        assert (await _check(channel))[0] == health_pb2.HealthCheckResponse.SERVING


async def test_errors_holding_20kb_of_input_keep_their_code(tmp_path: Path) -> None:
    """A NOT_FOUND whose message echoes a 20 KB name, and an INVALID_ARGUMENT with 51
    violations of 20 KB each, arrive with their own codes (not RESOURCE_EXHAUSTED from the
    client's 16 KiB metadata limit); message and details are cut, and say so."""
    async with serving(tmp_path) as (_, _probe, channel):
        for name in ("x" * 20_000, "é" * 20_000):  # percent-encoded non-ASCII triples in size
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await _unary(channel, "NotFound")(REQUEST(name=name), timeout=5)
            assert err.value.code() is grpc.StatusCode.NOT_FOUND
            assert len((err.value.details() or "").encode()) <= 1024
            assert (err.value.details() or "").endswith("chars)")

            with pytest.raises(grpc.aio.AioRpcError) as err:
                await _unary(channel, "Invalid")(REQUEST(name=name), timeout=5)
            assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            violations = _bad_request(err.value).field_violations
            assert violations[0].field == "name" and 1 <= len(violations) < 51
            assert "more violations left out" in violations[-1].description
            status = rpc_status.from_call(err.value)
            assert status is not None and status.ByteSize() <= 3 * 1024


async def test_reflection_follows_the_bind_address_unless_set(tmp_path: Path) -> None:
    """Loopback bind: reflection on by default; reflection=False switches it off (UNIMPLEMENTED)."""
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    for enabled in (None, False):
        async with serving(tmp_path, reflection=enabled) as (_, _probe, channel):
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            call = stub.ServerReflectionInfo(iter([request]), timeout=5)
            if enabled is None:
                services = {s.name async for r in call for s in r.list_services_response.service}
                assert PROBE in services
            else:
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    async for _ in call:
                        pass
                assert err.value.code() is grpc.StatusCode.UNIMPLEMENTED
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("[::]") and not is_loopback("10.1.2.3")


async def test_connections_are_closed_at_their_maximum_age(tmp_path: Path) -> None:
    """max_connection_age_s and its grace reach grpc: a Health/Watch stream (which no idle
    limit ends) is closed after about age + grace, and the client reconnects for the next call."""
    async with serving(tmp_path, max_connection_age_s=0.5, max_connection_age_grace_s=0.5) as (_, _p, channel):
        start = time.perf_counter()
        watch = health_pb2_grpc.HealthStub(channel).Watch(CHECK, timeout=20)
        assert (await _first_or_status(watch))[0] is None
        code = await asyncio.wait_for(watch.code(), 10)
        assert code is grpc.StatusCode.UNAVAILABLE and time.perf_counter() - start < 5.0
        assert (await _check(channel))[0] == health_pb2.HealthCheckResponse.SERVING


async def test_clients_pinging_too_often_are_sent_away(tmp_path: Path) -> None:
    """Keepalive enforcement reaches grpc: a client pinging every 50 ms on a connection
    without data gets GOAWAY (too_many_pings) after max_ping_strikes; its stream ends."""
    async with serving(tmp_path, keepalive_min_ping_interval_s=5.0, keepalive_max_ping_strikes=1) as (s, _p, _c):
        options = [("grpc.keepalive_time_ms", 50), ("grpc.keepalive_timeout_ms", 1000),
                   ("grpc.keepalive_permit_without_calls", 1), ("grpc.http2.max_pings_without_data", 0)]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{s.port}", options=options) as pinger:
            watch = health_pb2_grpc.HealthStub(pinger).Watch(CHECK, timeout=20)
            assert (await _first_or_status(watch))[0] is None
            code = await asyncio.wait_for(watch.code(), 10)
            assert code is grpc.StatusCode.UNAVAILABLE


def test_channel_arguments_use_grpc_core_names() -> None:
    """The keepalive-enforcement and connection arguments carry grpc-core's names and the
    settings' values (a misspelt name is silently ignored by grpc)."""
    settings = server_settings(Path("/nonexistent"), keepalive_min_ping_interval_s=7.5,
                               max_connection_idle_s=1e9)
    options = dict(server_options(settings))
    assert options["grpc.http2.min_ping_interval_without_data_ms"] == 7500
    assert options["grpc.http2.max_ping_strikes"] == settings.keepalive_max_ping_strikes
    assert options["grpc.max_connection_idle_ms"] == 2**31 - 1
    assert options["grpc.max_connection_age_ms"] == int(settings.max_connection_age_s * 1000)
    assert options["grpc.max_connection_age_grace_ms"] == int(settings.max_connection_age_grace_s * 1000)
    assert "grpc.http2.min_recv_ping_interval_without_data_ms" not in options


def _bad_request(err: grpc.aio.AioRpcError) -> error_details_pb2.BadRequest:
    status = rpc_status.from_call(err)
    assert status is not None
    out = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(out)
    return out
