"""The cache port: an async bytes cache with TTL, and the one way its keys are made.

A cache is an optimisation, never a dependency: a back-end that is down answers misses
(``adapters.cache``). Keys are fixed-length hashes, so request-sized text never becomes a
Redis key as such.
"""

from __future__ import annotations

import hashlib
from typing import Protocol, runtime_checkable

from wasteml_server.core.errors import InvalidArgumentError


def cache_key(namespace: str, *parts: str | int | float | bytes) -> str:
    """A fixed-length key ``<namespace>:<sha256 hex>`` over ``parts``.

    Parts are length-prefixed before hashing, so ``("ab", "c")`` and ``("a", "bc")`` differ.

    Args:
        namespace: short readable prefix, e.g. ``"embed"``.
        parts: what identifies the value, e.g. model name, model version, query text.

    Raises:
        InvalidArgumentError: ``namespace`` is empty or contains ``:``.
    """
    if not namespace or ":" in namespace:
        raise InvalidArgumentError("namespace", "must be non-empty and contain no ':'")
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, bytes):
            raw = part
        elif isinstance(part, str):
            raw = part.encode()
        else:
            raw = repr(part).encode()
        digest.update(type(part).__name__.encode() + b"\x00" + len(raw).to_bytes(8, "big") + raw)
    return f"{namespace}:{digest.hexdigest()}"


@runtime_checkable
class Cache(Protocol):
    """What callers may rely on: async get/set of bytes with a TTL; failures read as misses.

    Implementations: ``adapters.cache.InProcessCache`` and ``adapters.cache.RedisCache``.
    """

    async def get(self, key: str) -> bytes | None:
        """The value stored under ``key``, or None (absent, expired, or back-end down)."""
        ...

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        """Store ``value`` under ``key`` for ``ttl_s`` seconds (best-effort)."""
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key`` if present (best-effort)."""
        ...

    async def aclose(self) -> None:
        """Release connections; the cache must not be used afterwards."""
        ...
