"""The transport-free semantic search service (what the ``SemanticSearch`` servicer calls).

Async API over an :class:`~wasteml_server.search.embedding.Embedder` and a
:class:`~wasteml_server.search.store.DocumentStore` (Milvus in the server); the store's blocking
calls run in worker threads (``asyncio.to_thread``) so the event loop never blocks on Milvus. Method
arguments and results are the plain types of :mod:`wasteml_server.search.documents` and
:mod:`wasteml_server.search.filters`, which mirror ``wasteml.v1`` messages field by field.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from wasteml_server.core.cache import Cache
from wasteml_server.core.common import ModelRef
from wasteml_server.core.errors import InvalidArgumentError
from wasteml_server.search.documents import CollectionStats, Document, Hit, validate_collection_name
from wasteml_server.search.embedding import Embedder
from wasteml_server.search.filters import SearchFilters, filter_violations, validate_search
from wasteml_server.search.ingest import IndexReport, index_documents
from wasteml_server.search.query_cache import QueryEmbeddingCache
from wasteml_server.search.store import DocumentStore

#: Most ids one ``DeleteDocuments`` call may carry.
MAX_DELETE_IDS = 16384


@dataclass(frozen=True, slots=True)
class SearchResult:
    """Reply of :meth:`SemanticSearchService.search` (``wasteml.v1.SearchResponse``).

    Attributes:
        hits: by descending score, at most ``top_k``.
        model: the encoder (and version) that embedded the query.
        collection: the collection searched.
    """

    hits: list[Hit]
    model: ModelRef
    collection: str


class SemanticSearchService:
    """Embed, index, search and delete documents.

    Args:
        store: the document store (Milvus).
        embedder: the text encoder (Triton in the server, ONNX Runtime in-process elsewhere).
        batch_size: documents per embedding request when indexing (``settings.search_embed_batch``).
        in_flight: embedding requests in flight when indexing (``settings.search_embed_in_flight``).
        query_cache: where query embeddings are kept (``search.query_cache``; None: every
            query calls the encoder).
        query_cache_ttl_s: lifetime of a cached query embedding, seconds (> 0).
    """

    def __init__(
        self,
        store: DocumentStore,
        embedder: Embedder,
        *,
        batch_size: int = 64,
        in_flight: int = 4,
        query_cache: Cache | None = None,
        query_cache_ttl_s: float = 3600.0,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.batch_size = batch_size
        self.in_flight = in_flight
        self.query_cache = (None if query_cache is None
                            else QueryEmbeddingCache(embedder, query_cache, query_cache_ttl_s))

    async def model_changed(self, name: str) -> None:
        """A model was loaded or unloaded (``ModelAdmin``): if it is the encoder, cached query
        embeddings are no longer trusted to match the version that now serves."""
        if self.query_cache is not None and name == self.embedder.model.name:
            self.query_cache.invalidate()

    async def _embed_query(self, query: str) -> tuple[np.ndarray, ModelRef]:
        if self.query_cache is not None:
            return await self.query_cache.embed(query)
        vector = (await self.embedder.embed([query]))[0]
        return vector, self.embedder.model

    def _collection(self, collection: str | None) -> str:
        if not collection:
            return self.store.default_collection
        return validate_collection_name(collection)

    async def start(self) -> None:
        """Create/load the default collection (call at server start).

        Raises:
            UnavailableError: Milvus is down.
        """
        await asyncio.to_thread(self.store.ensure_collection)

    async def index_documents(
        self,
        docs: Iterable[Document] | AsyncIterable[Document],
        collection: str | None = None,
        *,
        skip_unchanged: bool = True,
    ) -> IndexReport:
        """Upsert documents by id, embedding them in batches (see ``ingest.index_documents``).

        Raises:
            InvalidArgumentError: a bad document or collection name.
            UnavailableError: Milvus or the encoder is down.
        """
        name = self._collection(collection)
        return await index_documents(
            docs,
            self.store,
            self.embedder,
            collection=name,
            batch_size=self.batch_size,
            in_flight=self.in_flight,
            skip_unchanged=skip_unchanged,
        )

    async def search(
        self,
        query: str,
        top_k: int,
        filters: SearchFilters | None = None,
        collection: str | None = None,
    ) -> SearchResult:
        """The ``top_k`` documents closest to ``query`` that pass ``filters``.

        Raises:
            InvalidArgumentError: blank query, ``top_k`` outside 1..1000, or a bad filter
                (e.g. ``filters.radius.radius_m``).
            UnavailableError: Milvus or the encoder is down.
        """
        validate_search(query, top_k, filters)
        name = self._collection(collection)
        vector, model = await self._embed_query(query)
        hits = await asyncio.to_thread(self.store.search, vector, top_k, filters, name)
        return SearchResult(hits, model, name)

    async def search_many(
        self,
        query: str,
        top_k: int,
        filters: Sequence[SearchFilters],
        collection: str | None = None,
    ) -> tuple[list[list[Hit]], ModelRef]:
        """One query under several filters (e.g. a radius around each of many bins): the query
        is embedded once and searched once per filter.

        Returns:
            ``(hits per filter, in filter order; the encoder that embedded the query)``.

        Raises:
            as :meth:`search` (a bad filter is named ``filters[i]...``).
        """
        validate_search(query, top_k, None)
        violations = [v for i, f in enumerate(filters) for v in filter_violations(f, f"filters[{i}]")]
        if violations:
            raise InvalidArgumentError(violations[0].field, violations[0].description, *violations[1:])
        name = self._collection(collection)
        vector, model = await self._embed_query(query)
        results = await asyncio.gather(*(asyncio.to_thread(self.store.search, vector, top_k, f, name)
                                         for f in filters))
        return list(results), model

    async def delete_documents(self, ids: Sequence[str], collection: str | None = None) -> int:
        """Delete documents by id; unknown ids are ignored. Returns the number deleted.

        Raises:
            InvalidArgumentError: no ids, too many, or an empty id (``ids[i]``).
            UnavailableError: Milvus is down.
        """
        if isinstance(ids, str) or not ids:
            raise InvalidArgumentError("ids", "give at least one id")
        if len(ids) > MAX_DELETE_IDS:
            raise InvalidArgumentError("ids", f"at most {MAX_DELETE_IDS} ids per call")
        for i, doc_id in enumerate(ids):
            if not isinstance(doc_id, str) or not doc_id:
                raise InvalidArgumentError(f"ids[{i}]", "must be a non-empty string")
        name = self._collection(collection)
        return await asyncio.to_thread(self.store.delete, list(dict.fromkeys(ids)), name)

    async def stats(self, collection: str | None = None) -> CollectionStats:
        """Size and configuration of a collection.

        Raises:
            UnavailableError: Milvus is down.
        """
        name = self._collection(collection)
        return await asyncio.to_thread(self.store.stats, name)
