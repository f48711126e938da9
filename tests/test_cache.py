"""The bytes cache: in-process LRU+TTL, real Redis at 127.0.0.1:6379, and the Redis-down fallback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from wasteml_server.adapters.cache import Cache, InProcessCache, RedisCache, cache_key, create_cache
from wasteml_server.core.errors import InvalidArgumentError
from wasteml_server.core.settings import Settings

#: The Redis to test against; ``WASTEML_TEST_REDIS_HOST``/``_PORT`` override the loopback default.
REDIS_HOST = os.environ.get("WASTEML_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("WASTEML_TEST_REDIS_PORT", "6379"))


def _redis_skip_reason() -> str | None:
    try:
        import redis
    except ImportError:
        return "redis-py is not installed (pip install 'wasteml[redis]')"
    try:
        client = redis.Redis(
            host=REDIS_HOST, port=REDIS_PORT, socket_timeout=1, socket_connect_timeout=1
        )
        client.ping()
        client.close()
    except redis.RedisError as err:
        return f"Redis not reachable at {REDIS_HOST}:{REDIS_PORT}: {err}"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A unique key prefix in the real Redis; every key under it is deleted afterwards."""
    reason = _redis_skip_reason()
    if reason:
        pytest.skip(reason)
    import redis.asyncio as aioredis

    prefix = f"wasteml:test:{uuid.uuid4().hex}:"
    yield prefix
    client = aioredis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


# --- in-process --------------------------------------------------------------------------------


async def test_in_process_get_set_and_ttl():
    """Values read back until their TTL passes, then read as misses."""
    cache = InProcessCache()
    assert isinstance(cache, Cache)
    await cache.set("a", b"one", ttl_s=0.15)
    await cache.set("b", b"two", ttl_s=60)
    assert await cache.get("a") == b"one"
    await asyncio.sleep(0.25)
    assert await cache.get("a") is None
    assert await cache.get("b") == b"two"
    await cache.delete("b")
    assert await cache.get("b") is None and len(cache) == 0


async def test_in_process_lru_eviction_by_entries_and_bytes():
    """The least recently used entries go first when the entry or byte bound is exceeded."""
    cache = InProcessCache(max_entries=3, max_bytes=10)
    for key in "abc":
        await cache.set(key, b"x", ttl_s=60)
    assert await cache.get("a") == b"x"  # a is now the most recent
    await cache.set("d", b"x", ttl_s=60)  # evicts b
    assert [await cache.get(k) for k in "abcd"] == [b"x", None, b"x", b"x"]
    await cache.set("big", b"123456789", ttl_s=60)  # 9 bytes: a and c go, d (1 byte) still fits
    assert [await cache.get(k) for k in ("a", "c", "d")] == [None, None, b"x"]
    assert len(cache) == 2 and cache.size_bytes == 10
    # larger than the bound: not stored, nothing evicted
    await cache.set("huge", b"x" * 11, ttl_s=60)
    assert await cache.get("huge") is None and await cache.get("big") == b"123456789"
    await cache.set("big", b"12", ttl_s=60)  # overwrite adjusts the byte count
    assert cache.size_bytes == 3


async def test_bad_arguments_name_the_field():
    """Non-bytes values and non-positive TTLs raise InvalidArgumentError naming the argument."""
    cache = InProcessCache()
    with pytest.raises(InvalidArgumentError) as info:
        await cache.set("k", "text", ttl_s=1)  # type: ignore[arg-type]
    assert info.value.field == "value"
    with pytest.raises(InvalidArgumentError) as info:
        await cache.set("k", b"v", ttl_s=0)
    assert info.value.field == "ttl_s"


def test_cache_key_is_fixed_length_and_unambiguous():
    """Keys differ for different part boundaries and types, and have a fixed length."""
    a = cache_key("embed", "text_encoder", 1, "overflowing skip")
    assert a == cache_key("embed", "text_encoder", 1, "overflowing skip")
    assert a != cache_key("embed", "text_encoder", 2, "overflowing skip")
    assert cache_key("embed", "ab", "c") != cache_key("embed", "a", "bc")
    assert cache_key("embed", 1) != cache_key("embed", "1")
    assert len(a) == len("embed:") + 64
    with pytest.raises(InvalidArgumentError):
        cache_key("a:b", "x")


def test_factory_follows_settings():
    """create_cache returns the in-process cache without redis_url and Redis with it."""
    local = create_cache(Settings(redis_url=None, cache_max_entries=7))
    assert isinstance(local, InProcessCache) and local.max_entries == 7
    pytest.importorskip("redis", reason="redis-py is not installed")
    remote = create_cache(Settings(redis_url="redis://127.0.0.1:6379/0", redis_timeout_s=0.1))
    assert isinstance(remote, RedisCache) and remote.timeout_s == 0.1


# --- real Redis ---------------------------------------------------------------------------------


@pytest.mark.redis
async def test_redis_round_trip_ttl_and_prefix(redis_prefix):
    """Against the real Redis: values round-trip, expire after their TTL, and stay inside the prefix."""
    cache = RedisCache(f"redis://{REDIS_HOST}:{REDIS_PORT}/0", prefix=redis_prefix)
    other = RedisCache(f"redis://{REDIS_HOST}:{REDIS_PORT}/0", prefix=redis_prefix + "other:")
    try:
        key = cache_key("embed", "text_encoder", 1, "bin overflowing on Main St")
        vector = bytes(range(256)) * 6  # 1536 bytes, like a 384-d float32 embedding
        assert await cache.get(key) is None
        await cache.set(key, vector, ttl_s=60)
        assert await cache.get(key) == vector
        assert await other.get(key) is None
        await cache.set("short", b"v", ttl_s=0.2)
        assert await cache.get("short") == b"v"
        await asyncio.sleep(0.4)
        assert await cache.get("short") is None
        await cache.delete(key)
        assert await cache.get(key) is None
        assert cache.available
    finally:
        await cache.aclose()
        await other.aclose()


# --- Redis down ---------------------------------------------------------------------------------


async def test_redis_down_closed_port_is_a_quick_miss(caplog):
    """With nothing listening, get returns None and set is a no-op, fast, logging one warning."""
    pytest.importorskip("redis", reason="redis-py is not installed")
    cache = RedisCache(f"redis://127.0.0.1:{_free_port()}/0", timeout_s=0.2, retry_after_s=30)
    caplog.set_level(logging.WARNING, logger="wasteml_server.adapters.cache")
    try:
        start = time.monotonic()
        assert await cache.get("k") is None
        await cache.set("k", b"v", ttl_s=10)
        for _ in range(20):
            assert await cache.get("k") is None
        assert time.monotonic() - start < 1.0
        assert not cache.available
    finally:
        await cache.aclose()
    assert len([r for r in caplog.records if r.name == "wasteml_server.adapters.cache"]) == 1


async def test_redis_unresponsive_is_bounded_by_the_timeout():
    """A server that accepts but never answers costs one socket timeout, then misses are immediate."""
    pytest.importorskip("redis", reason="redis-py is not installed")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # the kernel completes handshakes; nobody ever reads or replies
    try:
        cache = RedisCache(
            f"redis://127.0.0.1:{silent.getsockname()[1]}/0", timeout_s=0.2, retry_after_s=30
        )
        start = time.monotonic()
        assert await cache.get("k") is None
        first = time.monotonic() - start
        start = time.monotonic()
        assert await cache.get("k") is None
        second = time.monotonic() - start
        await cache.aclose()
    finally:
        silent.close()
    assert 0.15 <= first < 1.5
    assert second < 0.05


class _Proxy:
    """A TCP forwarder to the real Redis that the test can take down and bring back on one port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True
        )

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(REDIS_HOST, REDIS_PORT)
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.difference_update((writer, up_writer))


@pytest.mark.redis
async def test_redis_outage_and_recovery(redis_prefix):
    """Through a real outage: misses while Redis is away, stored values served again once it is back."""
    proxy = _Proxy(_free_port())
    await proxy.start()
    cache = RedisCache(
        f"redis://127.0.0.1:{proxy.port}/0", prefix=redis_prefix, timeout_s=0.3, retry_after_s=0.3
    )
    try:
        await cache.set("k", b"kept", ttl_s=60)
        assert await cache.get("k") == b"kept"
        await proxy.stop()
        assert await cache.get("k") is None
        assert not cache.available
        await proxy.start()
        await asyncio.sleep(0.4)  # past retry_after_s
        assert await cache.get("k") == b"kept"
        assert cache.available
    finally:
        await cache.aclose()
        await proxy.stop()
