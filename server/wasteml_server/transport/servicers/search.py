"""SemanticSearch servicer: protobuf <-> the text encoder and the search domain."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from wasteml.v1 import common_pb2, search_pb2, search_pb2_grpc
from wasteml_server.core.errors import InvalidArgumentError
from wasteml_server.search.documents import Document, GeoPoint, Hit
from wasteml_server.search.encoder import EMBEDDING_DIM, TextEncoder
from wasteml_server.search.filters import GeoBoundingBox, GeoCircle, SearchFilters, TimeRange
from wasteml_server.search.service import SemanticSearchService


def _point(p: common_pb2.GeoPoint) -> GeoPoint:
    return GeoPoint(p.latitude_deg, p.longitude_deg)


def _time(ts: Timestamp):
    return ts.ToDatetime(tzinfo=UTC)


def filters_from_proto(request: search_pb2.SearchRequest) -> SearchFilters | None:
    """``wasteml.v1.SearchFilters`` -> domain filters (None when unset)."""
    if not request.HasField("filters"):
        return None
    f = request.filters
    created = None
    if f.HasField("created_at"):
        created = TimeRange(
            _time(f.created_at.start_time) if f.created_at.HasField("start_time") else None,
            _time(f.created_at.end_time) if f.created_at.HasField("end_time") else None,
        )
    geo = f.WhichOneof("geo")
    return SearchFilters(
        kinds=tuple(f.kinds),
        created_at=created,
        radius=GeoCircle(_point(f.radius.center), f.radius.radius_m) if geo == "radius" else None,
        bounding_box=GeoBoundingBox(_point(f.bounding_box.south_west), _point(f.bounding_box.north_east))
        if geo == "bounding_box" else None,
        min_score=f.min_score if f.HasField("min_score") else None,
        sources=tuple(f.sources),
    )


def document_from_proto(doc: search_pb2.SearchDocument, field: str) -> Document:
    """``wasteml.v1.SearchDocument`` -> domain document (validated by the search service)."""
    if not doc.HasField("created_at"):
        raise InvalidArgumentError(f"{field}.created_at", "is required")
    return Document(
        id=doc.id,
        text=doc.text,
        kind=doc.kind,
        location=_point(doc.location) if doc.HasField("location") else None,
        created_at=_time(doc.created_at),
        source=doc.source,
        location_approximate=doc.location_approximate,
    )


def hit_to_proto(hit: Hit) -> search_pb2.SearchHit:
    """Domain hit -> ``wasteml.v1.SearchHit``."""
    out = search_pb2.SearchHit(
        id=hit.id, score=hit.score, text=hit.text, kind=hit.kind, source=hit.source,
        location_approximate=hit.location_approximate,
    )
    if hit.location is not None:
        out.location.latitude_deg = hit.location.latitude_deg
        out.location.longitude_deg = hit.location.longitude_deg
    out.created_at.FromDatetime(hit.created_at)
    if hit.distance_m is not None:
        out.distance_m = hit.distance_m
    return out


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
        if request.model.name and request.model.name != self._encoder.model:
            raise InvalidArgumentError(
                "model.name", f"unknown encoder {request.model.name!r}; this server serves {self._encoder.model!r}"
            )
        result = await self._encoder.embed(list(request.texts), version=request.model.version)
        return search_pb2.EmbedResponse(
            embeddings=[
                search_pb2.Embedding(values=vec.tolist(), token_count=int(n), truncated=bool(t))
                for vec, n, t in zip(result.vectors, result.token_counts, result.truncated, strict=True)
            ],
            model=common_pb2.ModelRef(name=result.model, version=result.version),
            dimension=EMBEDDING_DIM,
        )

    async def Search(self, request: search_pb2.SearchRequest, context: grpc.aio.ServicerContext):
        result = await self._search.search(
            request.query, request.top_k, filters_from_proto(request), request.collection or None
        )
        return search_pb2.SearchResponse(
            hits=[hit_to_proto(h) for h in result.hits],
            model=common_pb2.ModelRef(name=result.model_name, version=result.model_version),
            collection=result.collection,
        )

    async def IndexDocuments(self, request_iterator, context: grpc.aio.ServicerContext):
        collections: set[str] = set()

        async def documents() -> AsyncIterator[Document]:
            n = 0
            async for message in request_iterator:
                collections.add(message.collection)
                if len(collections) > 1:
                    raise InvalidArgumentError("collection", "all messages of a stream must name the same collection")
                for doc in message.documents:
                    yield document_from_proto(doc, f"documents[{n}]")
                    n += 1

        stream = documents()
        first = await anext(stream, None)
        if first is None:
            raise InvalidArgumentError("documents", "the stream carried no documents")

        async def all_documents() -> AsyncIterator[Document]:
            yield first
            async for doc in stream:
                yield doc

        collection = next(iter(collections)) or None
        report = await self._search.index_documents(all_documents(), collection)
        stats = await self._search.stats(collection)
        name, _, version = report.model.partition(":")
        return search_pb2.IndexDocumentsResponse(
            collection=stats.collection,
            documents_received=report.received,
            documents_upserted=report.upserted,
            collection_size=stats.document_count,
            model=common_pb2.ModelRef(name=name, version=version),
        )

    async def DeleteDocuments(self, request: search_pb2.DeleteDocumentsRequest, context: grpc.aio.ServicerContext):
        deleted = await self._search.delete_documents(list(request.ids), request.collection or None)
        return search_pb2.DeleteDocumentsResponse(deleted_count=deleted)

    async def GetCollectionStats(
        self, request: search_pb2.GetCollectionStatsRequest, context: grpc.aio.ServicerContext
    ):
        s = await self._search.stats(request.collection or None)
        name, _, version = next(iter(s.embedding_models), ":").partition(":")
        return search_pb2.GetCollectionStatsResponse(
            collection=s.collection,
            document_count=s.document_count,
            dimension=s.dimension,
            index_type=s.index_type,
            metric_type=s.metric_type,
            backend=s.backend,
            consistency_level=s.consistency_level,
            documents_by_kind=s.documents_by_kind,
            embedding_model=common_pb2.ModelRef(name=name, version=version),
        )
