"""The transport-free semantic search service (what the ``SemanticSearch`` servicer calls).

Async API over an :class:`~wasteml_server.search.embedding.Embedder` and a
:class:`~wasteml_server.adapters.milvus.MilvusStore`; the store's blocking pymilvus calls run in
worker threads (``asyncio.to_thread``) so the event loop never blocks on Milvus. Method
arguments and results are the plain types of :mod:`wasteml_server.search.documents` and
:mod:`wasteml_server.search.filters`, which mirror ``wasteml.v1`` messages field by field.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from wasteml_server.adapters.milvus import MilvusStore, validate_collection_name
from wasteml_server.core.errors import InvalidArgumentError
from wasteml_server.search.documents import CollectionStats, Document, Hit
from wasteml_server.search.embedding import Embedder
from wasteml_server.search.filters import SearchFilters, validate_search
from wasteml_server.search.ingest import IndexReport, index_documents

#: Most texts one ``Embed`` call may carry.
MAX_EMBED_TEXTS = 1024
#: Most ids one ``DeleteDocuments`` call may carry.
MAX_DELETE_IDS = 16384


@dataclass(frozen=True, slots=True)
class SearchResult:
    """Reply of :meth:`SemanticSearchService.search` (``wasteml.v1.SearchResponse``).

    Attributes:
        hits: by descending score, at most ``top_k``.
        model_name, model_version: the encoder that embedded the query.
        collection: the collection searched.
    """

    hits: list[Hit]
    model_name: str
    model_version: str
    collection: str


@dataclass(frozen=True, slots=True)
class EmbedResult:
    """Reply of :meth:`SemanticSearchService.embed`: float32 ``[n, 384]`` unit vectors."""

    vectors: np.ndarray
    model_name: str
    model_version: str


class SemanticSearchService:
    """Embed, index, search and delete documents.

    Args:
        store: the Milvus store.
        embedder: the text encoder (Triton in the server, ONNX Runtime in-process elsewhere).
        batch_size: documents per embedding request when indexing (``settings.search_embed_batch``).
        in_flight: embedding requests in flight when indexing (``settings.search_embed_in_flight``).
    """

    def __init__(
        self, store: MilvusStore, embedder: Embedder, *, batch_size: int = 64, in_flight: int = 4
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.batch_size = batch_size
        self.in_flight = in_flight

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

    async def embed(self, texts: Sequence[str]) -> EmbedResult:
        """Embed 1..:data:`MAX_EMBED_TEXTS` non-blank texts.

        Raises:
            InvalidArgumentError: ``texts`` empty, too many, or a blank text (``texts[i]``).
            UnavailableError: the encoder is down.
        """
        if len(texts) > MAX_EMBED_TEXTS:
            raise InvalidArgumentError("texts", f"at most {MAX_EMBED_TEXTS} texts per call")
        vectors = await self.embedder.embed(texts)
        return EmbedResult(vectors, self.embedder.model_name, self.embedder.model_version)

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
        vector = (await self.embedder.embed([query]))[0]
        hits = await asyncio.to_thread(self.store.search, vector, top_k, filters, name)
        return SearchResult(hits, self.embedder.model_name, self.embedder.model_version, name)

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
