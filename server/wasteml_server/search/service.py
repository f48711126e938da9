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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from wasteml_server.core.cache import Cache
from wasteml_server.core.common import ModelRef
from wasteml_server.core.errors import InvalidArgumentError, ResourceExhaustedError, shown
from wasteml_server.search.documents import (
    DEFAULT_MAX_TEXT_CHARS,
    MAX_ID_BYTES,
    CollectionStats,
    Document,
    Hit,
    label_violations,
    raise_violations,
    validate_collection_name,
    validate_documents,
)
from wasteml_server.search.embedding import Embedder
from wasteml_server.search.filters import SearchFilters, filter_violations, validate_search
from wasteml_server.search.ingest import IndexReport, index_documents
from wasteml_server.search.query_cache import QueryEmbeddingCache
from wasteml_server.search.store import DocumentStore

#: Most ids one ``DeleteDocuments`` call may carry.
MAX_DELETE_IDS = 16384


@dataclass(frozen=True, slots=True)
class SearchLimits:
    """Request-size limits of the search service (the ``# --- Limits: search ---`` settings).

    Attributes:
        max_stream_documents: documents per ``IndexDocuments`` stream
            (``search_max_stream_documents``); more: ``InvalidArgumentError("documents")``.
        max_collection_documents: documents per collection (``search_max_collection_documents``);
            a stream that would pass it: ``ResourceExhaustedError``.
        max_collections: collections the back-end may hold for ingestion to create another
            (``search_max_collections``); more: ``ResourceExhaustedError``.
        max_concurrent_index_streams: ingestions at once (``search_max_concurrent_index_streams``);
            one more: ``ResourceExhaustedError``.
        max_text_chars: characters per query or document text (``search_max_text_chars``).
    """

    max_stream_documents: int = 25_000
    max_collection_documents: int = 100_000
    max_collections: int = 64
    max_concurrent_index_streams: int = 4
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS

    @classmethod
    def from_settings(cls, settings: Any) -> SearchLimits:
        """The limits of ``wasteml_server.core.settings.Settings``."""
        return cls(
            max_stream_documents=settings.search_max_stream_documents,
            max_collection_documents=settings.search_max_collection_documents,
            max_collections=settings.search_max_collections,
            max_concurrent_index_streams=settings.search_max_concurrent_index_streams,
            max_text_chars=settings.search_max_text_chars,
        )


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
        limits: request-size limits (``SearchLimits.from_settings(settings)`` in the server).
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
        limits: SearchLimits | None = None,
    ) -> None:
        self.store = store
        self.limits = limits if limits is not None else SearchLimits()
        #: Ingestions running now (``limits.max_concurrent_index_streams``).
        self._ingesting = 0
        #: New documents admitted per collection and not yet written (quota bookkeeping).
        self._pending: dict[str, int] = {}
        #: Serialises admission (quota checks and collection creation).
        self._admit_lock = asyncio.Lock()
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
        """Upsert documents by id, all or nothing as far as the request's own content goes.

        Steps: take an ingestion slot (at most ``limits.max_concurrent_index_streams``); read
        every document (at most ``limits.max_stream_documents``); validate them all (off the
        event loop) before anything is embedded or stored; keep the last document of a repeated
        id; admit the stream against the collection quota and, for a new collection, the
        collection count; then embed and upsert in batches (``ingest.index_documents``).
        A bad field anywhere therefore stores nothing. A dependency failing after some batches
        were written (Milvus or the encoder down) leaves those stored: its error says how many
        (``ingest.with_stored_count``), and re-sending the stream is safe (idempotent).

        Args:
            docs: the documents (``IndexDocuments`` delivers an async stream).
            collection: target collection; None: the default one. Created when missing.
            skip_unchanged: do not re-embed documents identical to their stored row.

        Returns:
            the report; ``received`` counts every document read (repeats included) and
            ``collection_size`` the rows afterwards.

        Raises:
            InvalidArgumentError: a bad collection name; no documents or more than
                ``limits.max_stream_documents`` (field ``documents``); bad documents
                (``documents[i].<field>``, ``i`` the position in the stream).
            ResourceExhaustedError: too many ingestions at once, the collection would exceed
                ``limits.max_collection_documents``, or a new collection would exceed
                ``limits.max_collections``; nothing stored.
            UnavailableError: Milvus or the encoder is down.
        """
        name = self._collection(collection)
        limits = self.limits
        if self._ingesting >= limits.max_concurrent_index_streams:
            raise ResourceExhaustedError(
                f"{self._ingesting} IndexDocuments streams are running, at most "
                f"{limits.max_concurrent_index_streams} at once (setting "
                "search_max_concurrent_index_streams); retry later")
        self._ingesting += 1
        try:
            received = await self._receive(docs)
            await asyncio.to_thread(validate_documents, received, allow_repeats=True,
                                    max_text_chars=limits.max_text_chars)
            latest = list({d.id: d for d in received}.values())  # a repeated id: the last wins
            admitted = await self._admit(name, latest)
            try:
                report = await index_documents(
                    latest,
                    self.store,
                    self.embedder,
                    collection=name,
                    batch_size=self.batch_size,
                    in_flight=self.in_flight,
                    skip_unchanged=skip_unchanged,
                    max_text_chars=limits.max_text_chars,
                )
            finally:
                self._pending[name] = self._pending.get(name, 0) - admitted
                if self._pending[name] <= 0:
                    del self._pending[name]
            report.received = len(received)
            report.collection_size = await asyncio.to_thread(self.store.count, name)
            return report
        finally:
            self._ingesting -= 1

    async def _receive(self, docs: Iterable[Document] | AsyncIterable[Document]) -> list[Document]:
        """Every document of the input, refusing it past ``limits.max_stream_documents``."""
        limit = self.limits.max_stream_documents
        out: list[Document] = []

        def add(doc: Document) -> None:
            if len(out) >= limit:
                raise InvalidArgumentError(
                    "documents", f"at most {limit} documents per IndexDocuments stream "
                    "(setting search_max_stream_documents), got more; split the stream; nothing was stored")
            out.append(doc)

        if isinstance(docs, AsyncIterable):
            async for doc in docs:
                add(doc)
        else:
            for doc in docs:
                add(doc)
        if not out:
            raise InvalidArgumentError("documents", "give at least one document")
        return out

    async def _admit(self, name: str, docs: list[Document]) -> int:
        """Check the collection quota (and, for a new collection, the collection count), create
        the collection when missing, and book the stream's new ids; returns how many were booked.

        The check counts the collection's rows (Strong), the new ids of streams admitted but
        not yet written, and this stream's ids that are not stored yet (looked up only when the
        quota is close), so concurrent streams cannot pass it together.
        """
        limits = self.limits
        quota = limits.max_collection_documents
        store = self.store
        async with self._admit_lock:
            pending = self._pending.get(name, 0)
            if await asyncio.to_thread(store.has_collection, name):
                count = await asyncio.to_thread(store.count, name)
            else:
                if len(docs) + pending > quota:
                    raise self._over_quota(name, 0, pending, len(docs), quota)
                held = len(await asyncio.to_thread(store.list_collections))
                if held >= limits.max_collections:
                    raise ResourceExhaustedError(
                        f"the search back-end holds {held} collections, at most {limits.max_collections} "
                        f"(setting search_max_collections); collection {shown(name)} was not created "
                        "and nothing was stored")
                await asyncio.to_thread(store.ensure_collection, name)
                count = 0
            new = len(docs)
            if count + pending + new > quota:
                stored = await asyncio.to_thread(store.get, [d.id for d in docs], name, strong=True)
                new = len(docs) - len(stored)
                if count + pending + new > quota:
                    raise self._over_quota(name, count, pending, new, quota)
            self._pending[name] = pending + new
            return new

    @staticmethod
    def _over_quota(name: str, count: int, pending: int, new: int, quota: int) -> ResourceExhaustedError:
        held = f"{count} documents" + (f" (+{pending} being written)" if pending else "")
        return ResourceExhaustedError(
            f"collection {shown(name)} holds {held} and this stream adds {new} new ones: at most "
            f"{quota} documents per collection (setting search_max_collection_documents); "
            "nothing was stored")

    async def search(
        self,
        query: str,
        top_k: int,
        filters: SearchFilters | None = None,
        collection: str | None = None,
    ) -> SearchResult:
        """The ``top_k`` documents closest to ``query`` that pass ``filters``.

        Raises:
            InvalidArgumentError: blank query or one longer than ``limits.max_text_chars``,
                ``top_k`` outside 1..1000, or a bad filter (e.g. ``filters.radius.radius_m``,
                ``filters.kinds[2]``).
            NotFoundError: the collection does not exist (checked before the query is embedded;
                searching never creates a collection).
            UnavailableError: Milvus or the encoder is down.
        """
        validate_search(query, top_k, filters, self.limits.max_text_chars)
        name = self._collection(collection)
        await self._existing(name)
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
        validate_search(query, top_k, None, self.limits.max_text_chars)
        filters = list(filters)
        violations = await asyncio.to_thread(
            lambda: [v for i, f in enumerate(filters) for v in filter_violations(f, f"filters[{i}]")])
        raise_violations(violations, "filters")
        name = self._collection(collection)
        await self._existing(name)
        vector, model = await self._embed_query(query)
        results = await asyncio.to_thread(self._search_each, vector, top_k, filters, name)
        return results, model

    def _search_each(self, vector: np.ndarray, top_k: int, filters: list[SearchFilters], name: str
                     ) -> list[list[Hit]]:
        """Blocking: one store search per filter, ``in_flight`` at a time, in filter order. One
        thread hop for the whole batch, so thousands of filters (a PlanDay's bins) cost the event
        loop nothing per filter."""
        with ThreadPoolExecutor(max_workers=max(1, self.in_flight), thread_name_prefix="search-each") as pool:
            return list(pool.map(lambda f: self.store.search(vector, top_k, f, name), filters))

    async def _existing(self, name: str) -> None:
        """Load ``name``; ``NotFoundError`` when it does not exist (the default one excepted)."""
        await asyncio.to_thread(self.store.ensure_collection, name, create=False)

    async def delete_documents(self, ids: Sequence[str], collection: str | None = None) -> int:
        """Delete documents by id; unknown ids are ignored. Returns the number deleted.

        Ids follow the stored id rule (1..128 UTF-8 bytes, no control characters; apostrophes,
        quotes and backslashes are ids like any other).

        Raises:
            InvalidArgumentError: no ids, too many, or a bad id (``ids[i]``).
            NotFoundError: the collection does not exist (deleting never creates one).
            UnavailableError: Milvus is down.
        """
        if isinstance(ids, str) or not ids:
            raise InvalidArgumentError("ids", "give at least one id")
        if len(ids) > MAX_DELETE_IDS:
            raise InvalidArgumentError("ids", f"at most {MAX_DELETE_IDS} ids per call, got {len(ids)}")
        raise_violations([v for i, doc_id in enumerate(ids)
                          for v in label_violations(doc_id, f"ids[{i}]", max_bytes=MAX_ID_BYTES, required=True)],
                         "ids")
        name = self._collection(collection)
        return await asyncio.to_thread(self.store.delete, list(dict.fromkeys(ids)), name)

    async def stats(self, collection: str | None = None) -> CollectionStats:
        """Size and configuration of a collection.

        Raises:
            InvalidArgumentError: a bad collection name.
            NotFoundError: the collection does not exist (never created by this call).
            UnavailableError: Milvus is down.
        """
        name = self._collection(collection)
        return await asyncio.to_thread(self.store.stats, name)
