"""Query embeddings kept in a cache, so a repeated query costs no encoder call.

An embedding is a pure function of the encoder model, its version and the text, so the key is
``cache_key("query-embedding", model name, model version, text)`` and the value the float32
vector (little-endian, ``dimension * 4`` bytes). The version is the one the encoder last
served: until a call has named it (and again after :meth:`QueryEmbeddingCache.invalidate`,
which the server calls when ``ModelAdmin.LoadModel``/``UnloadModel`` touches the encoder),
lookups are skipped and the next call goes to the encoder and learns it. Another replica that
shares a Redis cache learns the new version at its own next load or when entries expire
(``settings.query_cache_ttl_s``), whichever comes first.
"""

from __future__ import annotations

import numpy as np

from wasteml_server.core.cache import Cache, cache_key
from wasteml_server.core.common import ModelRef
from wasteml_server.search.embedding import Embedder

#: ``cache_key`` namespace of query embeddings.
NAMESPACE = "query-embedding"


class QueryEmbeddingCache:
    """Embeds one query at a time through ``embedder``, reading and filling ``cache``.

    Args:
        embedder: the text encoder that embeds a miss.
        cache: where vectors are kept (``adapters.cache``: in-process LRU or Redis).
        ttl_s: lifetime of an entry, seconds (> 0).
    """

    def __init__(self, embedder: Embedder, cache: Cache, ttl_s: float) -> None:
        if not ttl_s > 0:
            raise ValueError(f"ttl_s must be > 0, got {ttl_s}")
        self.embedder = embedder
        self.cache = cache
        self.ttl_s = ttl_s
        self._version: int | None = None
        self._generation = 0

    def invalidate(self) -> None:
        """Forget the learned model version: the next query goes to the encoder and the
        version it names keys the entries from then on."""
        self._version = None
        self._generation += 1

    async def embed(self, query: str) -> tuple[np.ndarray, ModelRef]:
        """The embedding of ``query`` and the encoder version it belongs to.

        Returns:
            ``(float32 [dimension] unit vector, model)``.

        Raises:
            as ``Embedder.embed`` (on a miss): InvalidArgumentError, UnavailableError, ...
        """
        name, dimension = self.embedder.model.name, self.embedder.dimension
        version = self._version
        if version is not None:
            raw = await self.cache.get(cache_key(NAMESPACE, name, version, query))
            if raw is not None and len(raw) == 4 * dimension:
                return np.frombuffer(raw, dtype="<f4").astype(np.float32), ModelRef(name, version)
        generation = self._generation
        vector = (await self.embedder.embed([query]))[0]
        model = self.embedder.model
        if model.version is not None:
            if generation == self._generation:
                self._version = model.version
            await self.cache.set(cache_key(NAMESPACE, name, model.version, query),
                                 np.ascontiguousarray(vector, dtype="<f4").tobytes(), self.ttl_s)
        return vector, model
