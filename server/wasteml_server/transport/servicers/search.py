"""SemanticSearch servicer: decode, call the text encoder or ``search.service``, encode
(``codecs.search``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from wasteml.v1 import search_pb2, search_pb2_grpc
from wasteml_server.codecs.common import model_ref_from_proto, model_ref_to_proto
from wasteml_server.codecs.search import (
    documents_from_proto,
    filters_from_proto,
    hit_to_proto,
    stats_to_proto,
)
from wasteml_server.core.errors import InvalidArgumentError, shown, under
from wasteml_server.search.documents import Document
from wasteml_server.search.encoder import TextEncoder
from wasteml_server.search.service import SemanticSearchService


class SemanticSearchServicer(search_pb2_grpc.SemanticSearchServicer):
    """``wasteml.v1.SemanticSearch``.

    Args:
        encoder: embeds texts through Triton (Embed, with token counts).
        search: the search domain service (Milvus + the same encoder).
    """

    def __init__(self, encoder: TextEncoder, search: SemanticSearchService) -> None:
        self._encoder = encoder
        self._search = search

    async def Embed(self, request: search_pb2.EmbedRequest, context: grpc.aio.ServicerContext):
        with under("model"):
            model = model_ref_from_proto(request.model)
        if model.name and model.name != self._encoder.model:
            raise InvalidArgumentError(
                "model.name", f"unknown encoder {shown(model.name)}; this server serves {self._encoder.model!r}")
        result = await self._encoder.embed(list(request.texts), version=model.version)
        return search_pb2.EmbedResponse(
            embeddings=[
                search_pb2.Embedding(values=vec.tolist(), token_count=int(n), truncated=bool(t))
                for vec, n, t in zip(result.vectors, result.token_counts, result.truncated, strict=True)
            ],
            model=model_ref_to_proto(result.model),
            dimension=self._encoder.dimension,
        )

    async def Search(self, request: search_pb2.SearchRequest, context: grpc.aio.ServicerContext):
        result = await self._search.search(
            request.query, request.top_k, filters_from_proto(request), request.collection or None
        )
        return search_pb2.SearchResponse(hits=[hit_to_proto(h) for h in result.hits],
                                         model=model_ref_to_proto(result.model), collection=result.collection)

    async def IndexDocuments(self, request_iterator, context: grpc.aio.ServicerContext):
        """Read the whole stream (documents decoded off the event loop, named ``documents[n]``
        by stream position), then index it all or nothing (``SemanticSearchService.index_documents``)."""
        messages = aiter(request_iterator)
        first = await anext(messages, None)
        if first is None:
            raise InvalidArgumentError("documents", "the stream carried no documents")
        collection = first.collection
        limit = self._search.limits.max_stream_documents

        async def documents(message: search_pb2.IndexDocumentsRequest | None) -> AsyncIterator[Document]:
            n = 0
            while message is not None:
                if message.collection != collection:
                    raise InvalidArgumentError("collection", "all messages of a stream must name the same collection")
                count = len(message.documents)
                if n + count > limit:  # refused before the message's documents are decoded
                    raise InvalidArgumentError(
                        "documents", f"at most {limit} documents per IndexDocuments stream (setting "
                        f"search_max_stream_documents), got {n + count} so far; split the stream; "
                        "nothing was stored")
                if count:
                    for doc in await asyncio.to_thread(documents_from_proto, message.documents, n):
                        yield doc
                n += count
                message = await anext(messages, None)

        stream = documents(first)
        del first  # each message is dropped once its documents are decoded
        report = await self._search.index_documents(stream, collection or None)
        return search_pb2.IndexDocumentsResponse(
            collection=collection or self._search.store.default_collection,
            documents_received=report.received,
            documents_upserted=report.upserted,
            collection_size=report.collection_size or 0,
            model=model_ref_to_proto(report.model),
        )

    async def DeleteDocuments(self, request: search_pb2.DeleteDocumentsRequest, context: grpc.aio.ServicerContext):
        deleted = await self._search.delete_documents(list(request.ids), request.collection or None)
        return search_pb2.DeleteDocumentsResponse(deleted_count=deleted)

    async def GetCollectionStats(
        self, request: search_pb2.GetCollectionStatsRequest, context: grpc.aio.ServicerContext
    ):
        return stats_to_proto(await self._search.stats(request.collection or None))
