"""The bytes caches behind the ``core.cache.Cache`` port: in-process LRU (default) or Redis
(``settings.redis_url``), chosen by :func:`create_cache`.

Used by search to cache query embeddings (``search.query_cache.QueryEmbeddingCache``, keyed by
model name, version and text).

The cache is an optimisation, never a dependency: the Redis implementation has bounded socket
timeouts, and when Redis is down it logs once, answers every ``get`` with a miss and ignores
``set`` (declared fallback) for ``retry_after_s`` before trying again. It never raises a Redis
error into the request path.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter

from wasteml_server.core.cache import Cache, cache_key
from wasteml_server.core.errors import InvalidArgumentError

if TYPE_CHECKING:
    from wasteml_server.core.settings import Settings

logger = logging.getLogger(__name__)

CACHE_REQUESTS = Counter(
    "wasteml_cache_requests",
    "Cache lookups by back-end and result (hit, miss, error: back-end down, answered as a miss).",
    ["backend", "result"],
)
CACHE_EVICTIONS = Counter(
    "wasteml_cache_evictions",
    "Entries the in-process cache dropped to stay within its entry and byte bounds.",
)

__all__ = ["Cache", "InProcessCache", "RedisCache", "cache_key", "create_cache"]


def _check_set(key: str, value: bytes, ttl_s: float) -> None:
    if not isinstance(key, str) or not key:
        raise InvalidArgumentError("key", "must be a non-empty string")
    if not isinstance(value, bytes | bytearray | memoryview):
        raise InvalidArgumentError("value", "must be bytes")
    if (
        isinstance(ttl_s, bool)
        or not isinstance(ttl_s, int | float)
        or not (math.isfinite(ttl_s) and ttl_s > 0)
    ):
        raise InvalidArgumentError("ttl_s", "must be a finite number of seconds > 0")


class InProcessCache:
    """Least-recently-used cache with per-entry TTL, bounded by entries and by bytes.

    Thread-safe (one lock); expired entries are removed when met and when evicting.

    Args:
        max_entries: most entries kept (>= 1).
        max_bytes: most value bytes kept (>= 1); a single larger value is not stored.

    Raises:
        InvalidArgumentError: a bound is < 1.
    """

    backend = "memory"

    def __init__(self, max_entries: int = 10_000, max_bytes: int = 64 * 1024 * 1024) -> None:
        if max_entries < 1:
            raise InvalidArgumentError("max_entries", "must be >= 1")
        if max_bytes < 1:
            raise InvalidArgumentError("max_bytes", "must be >= 1")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)

    @property
    def size_bytes(self) -> int:
        """Total bytes of the stored values."""
        return self._bytes

    async def get(self, key: str) -> bytes | None:
        """The live value under ``key`` (refreshing its recency), or None."""
        now = time.monotonic()
        with self._lock:
            item = self._data.get(key)
            if item is not None and item[0] <= now:
                self._remove(key)
                item = None
            if item is None:
                CACHE_REQUESTS.labels(self.backend, "miss").inc()
                return None
            self._data.move_to_end(key)
        CACHE_REQUESTS.labels(self.backend, "hit").inc()
        return item[1]

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        """Store ``value`` for ``ttl_s`` seconds, evicting least-recently-used entries to fit.

        Raises:
            InvalidArgumentError: empty key, non-bytes value or non-positive TTL.
        """
        _check_set(key, value, ttl_s)
        data = bytes(value)
        with self._lock:
            if key in self._data:
                self._remove(key)
            if len(data) > self.max_bytes:
                return
            self._data[key] = (time.monotonic() + ttl_s, data)
            self._bytes += len(data)
            self._evict()

    async def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        with self._lock:
            if key in self._data:
                self._remove(key)

    async def aclose(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._data.clear()
            self._bytes = 0

    def _remove(self, key: str) -> None:
        _, data = self._data.pop(key)
        self._bytes -= len(data)

    def _evict(self) -> None:
        now = time.monotonic()
        expired = [k for k, (exp, _) in self._data.items() if exp <= now]
        for key in expired:
            self._remove(key)
        while len(self._data) > self.max_entries or self._bytes > self.max_bytes:
            self._remove(next(iter(self._data)))
            CACHE_EVICTIONS.inc()


class RedisCache:
    """Cache in Redis (redis-py asyncio) with bounded timeouts and a declared miss-on-outage.

    Every key is stored as ``prefix + key``. After a Redis error the cache logs one warning,
    then for ``retry_after_s`` answers ``get`` with None and skips ``set``/``delete`` without
    touching the network; the next call after that tries Redis again (and logs when it is back).

    Args:
        url: Redis URL, e.g. ``redis://127.0.0.1:6379/0``.
        prefix: prepended to every key (namespaces several deployments in one Redis).
        timeout_s: socket connect and read/write timeout, seconds (> 0); no retries.
        retry_after_s: how long to stop trying after a failure, seconds (>= 0).

    Raises:
        InvalidArgumentError: a timeout is out of range, the URL is malformed, or the
            ``redis`` package is not installed (``pip install 'wasteml[redis]'``).
    """

    backend = "redis"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "wasteml:cache:",
        timeout_s: float = 0.25,
        retry_after_s: float = 5.0,
    ) -> None:
        if not timeout_s > 0:
            raise InvalidArgumentError("timeout_s", "must be > 0 seconds")
        if not retry_after_s >= 0:
            raise InvalidArgumentError("retry_after_s", "must be >= 0 seconds")
        try:
            import redis.asyncio as aioredis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError:
            raise InvalidArgumentError(
                "redis_url", "set, but the redis package is missing: pip install 'wasteml[redis]'"
            ) from None
        self.prefix = prefix
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        try:
            self._client: Any = aioredis.Redis.from_url(
                url,
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                retry=Retry(NoBackoff(), 0),
                retry_on_timeout=False,
                health_check_interval=0,
            )
        except ValueError as err:
            raise InvalidArgumentError("redis_url", f"not a Redis URL: {err}") from None
        self._down_until = 0.0
        self._down = False

    @property
    def available(self) -> bool:
        """False while in the fallback window after a Redis error."""
        return not self._down

    async def get(self, key: str) -> bytes | None:
        """The value under ``key``, or None when absent, expired or Redis is unavailable."""
        if self._skip():
            CACHE_REQUESTS.labels(self.backend, "error").inc()
            return None
        try:
            async with asyncio.timeout(self._call_bound_s):
                value = await self._client.get(self.prefix + key)
        except Exception as err:  # noqa: BLE001 - any Redis failure is a declared miss
            self._failed(err)
            CACHE_REQUESTS.labels(self.backend, "error").inc()
            return None
        self._succeeded()
        CACHE_REQUESTS.labels(self.backend, "hit" if value is not None else "miss").inc()
        return bytes(value) if value is not None else None

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        """Store ``value`` for ``ttl_s`` seconds (millisecond precision); skipped if Redis is down.

        Raises:
            InvalidArgumentError: empty key, non-bytes value or non-positive TTL.
        """
        _check_set(key, value, ttl_s)
        if self._skip():
            return
        try:
            async with asyncio.timeout(self._call_bound_s):
                await self._client.set(
                    self.prefix + key, bytes(value), px=max(1, round(ttl_s * 1000))
                )
        except Exception as err:  # noqa: BLE001 - declared fallback
            self._failed(err)
            return
        self._succeeded()

    async def delete(self, key: str) -> None:
        """Remove ``key``; skipped if Redis is down."""
        if self._skip():
            return
        try:
            async with asyncio.timeout(self._call_bound_s):
                await self._client.delete(self.prefix + key)
        except Exception as err:  # noqa: BLE001 - declared fallback
            self._failed(err)
            return
        self._succeeded()

    async def aclose(self) -> None:
        """Close the connection pool."""
        try:
            await self._client.aclose()
        except Exception as err:  # noqa: BLE001 - closing a dead connection may fail
            logger.debug("closing the Redis client: %s", err)

    @property
    def _call_bound_s(self) -> float:
        # Outer bound over connect + command, in case a step is not covered by socket timeouts.
        return 3 * self.timeout_s

    def _skip(self) -> bool:
        return self._down and time.monotonic() < self._down_until

    def _failed(self, err: BaseException) -> None:
        self._down_until = time.monotonic() + self.retry_after_s
        if not self._down:
            self._down = True
            logger.warning(
                "Redis cache unavailable (%s: %s); serving misses, retrying every %.1f s",
                type(err).__name__,
                err,
                self.retry_after_s,
            )

    def _succeeded(self) -> None:
        if self._down:
            self._down = False
            logger.info("Redis cache reachable again")


def create_cache(settings: Settings) -> InProcessCache | RedisCache:
    """The cache the settings ask for: Redis if ``redis_url`` is set, else in-process LRU.

    Raises:
        InvalidArgumentError: ``redis_url`` is malformed or the redis package is missing.
    """
    if settings.redis_url:
        return RedisCache(
            settings.redis_url,
            timeout_s=settings.redis_timeout_s,
            retry_after_s=settings.redis_retry_after_s,
        )
    return InProcessCache(
        max_entries=settings.cache_max_entries, max_bytes=settings.cache_max_bytes
    )
