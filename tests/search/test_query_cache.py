"""QueryEmbeddingCache over the real in-process ONNX encoder: hits skip the encoder and return
the same vector, entries are keyed by version and text, a corrupt entry reads as a miss, and
invalidation sends the next query to the encoder."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from wasteml_server.adapters.cache import InProcessCache
from wasteml_server.core.cache import cache_key
from wasteml_server.search.embedding import OnnxEmbedder
from wasteml_server.search.query_cache import NAMESPACE, QueryEmbeddingCache


class CountingEmbedder:
    """The real encoder, counting the texts it is asked to embed."""

    def __init__(self, inner: OnnxEmbedder) -> None:
        self.inner = inner
        self.model = inner.model
        self.dimension = inner.dimension
        self.texts: list[str] = []

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.texts.extend(texts)
        return await self.inner.embed(texts)


async def test_hits_skip_the_encoder_and_match_it(embedder: OnnxEmbedder) -> None:
    counting = CountingEmbedder(embedder)
    cache = InProcessCache()
    queries = QueryEmbeddingCache(counting, cache, ttl_s=60)
    first, model = await queries.embed("bin not emptied on Tuesday")
    again, model_again = await queries.embed("bin not emptied on Tuesday")
    other, _ = await queries.embed("graffiti on the recycling bank")
    assert counting.texts == ["bin not emptied on Tuesday", "graffiti on the recycling bank"]
    assert again.dtype == np.float32 and np.array_equal(again, first)
    np.testing.assert_allclose(first, embedder.embed_sync(["bin not emptied on Tuesday"])[0], atol=1e-6)
    assert model == model_again == embedder.model
    assert not np.array_equal(other, first)
    assert len(cache) == 2


async def test_a_corrupt_entry_is_a_miss_and_invalidation_goes_back_to_the_encoder(
    embedder: OnnxEmbedder,
) -> None:
    counting = CountingEmbedder(embedder)
    cache = InProcessCache()
    queries = QueryEmbeddingCache(counting, cache, ttl_s=60)
    text = "missed collection"
    await queries.embed(text)
    key = cache_key(NAMESPACE, embedder.model.name, embedder.model.version, text)
    await cache.set(key, b"\x00" * 7, ttl_s=60)
    vector, _ = await queries.embed(text)
    assert len(counting.texts) == 2 and vector.shape == (embedder.dimension,)
    await queries.embed(text)
    assert len(counting.texts) == 2
    queries.invalidate()
    await queries.embed(text)
    assert len(counting.texts) == 3


def test_ttl_must_be_positive(embedder: OnnxEmbedder) -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        QueryEmbeddingCache(embedder, InProcessCache(), ttl_s=0)
