"""Search protobuf <-> domain: documents, filters, hits, collection statistics.

The domain types mirror ``search.proto`` field by field (``search.documents``,
``search.filters``); Timestamps <-> aware ``datetime`` (UTC).
"""

from __future__ import annotations

from collections.abc import Sequence

from wasteml.v1 import search_pb2
from wasteml_server.codecs.common import (
    instant,
    model_ref_to_proto,
    point_from_proto,
    point_to_proto,
    timestamp,
)
from wasteml_server.core.errors import InvalidArgumentError, under
from wasteml_server.search.documents import CollectionStats, Document, Hit
from wasteml_server.search.filters import GeoBoundingBox, GeoCircle, SearchFilters, TimeRange


def filters_from_proto(request: search_pb2.SearchRequest) -> SearchFilters | None:
    """``wasteml.v1.SearchFilters`` -> domain filters (None when unset)."""
    if not request.HasField("filters"):
        return None
    f = request.filters
    created = None
    if f.HasField("created_at"):
        created = TimeRange(
            instant(f.created_at.start_time, "filters.created_at.start_time") if f.created_at.HasField("start_time") else None,
            instant(f.created_at.end_time, "filters.created_at.end_time") if f.created_at.HasField("end_time") else None,
        )
    geo = f.WhichOneof("geo")
    return SearchFilters(
        kinds=tuple(f.kinds),
        created_at=created,
        radius=GeoCircle(point_from_proto(f.radius.center), f.radius.radius_m) if geo == "radius" else None,
        bounding_box=GeoBoundingBox(point_from_proto(f.bounding_box.south_west),
                                    point_from_proto(f.bounding_box.north_east))
        if geo == "bounding_box" else None,
        min_score=f.min_score if f.HasField("min_score") else None,
        sources=tuple(f.sources),
    )


def document_from_proto(doc: search_pb2.SearchDocument) -> Document:
    """``wasteml.v1.SearchDocument`` -> domain document (validated by the search service).

    Raises:
        InvalidArgumentError: no ``created_at`` (wrap in ``under("documents[i]")``).
    """
    if not doc.HasField("created_at"):
        raise InvalidArgumentError("created_at", "is required")
    return Document(
        id=doc.id,
        text=doc.text,
        kind=doc.kind,
        location=point_from_proto(doc.location) if doc.HasField("location") else None,
        created_at=instant(doc.created_at, "created_at"),
        source=doc.source,
        location_approximate=doc.location_approximate,
    )


def documents_from_proto(docs: Sequence[search_pb2.SearchDocument], start: int = 0) -> list[Document]:
    """The documents of one ``IndexDocumentsRequest`` message, decoded (not yet validated).

    Args:
        docs: the message's ``documents``.
        start: stream position of ``docs[0]`` (documents are named by their position in the
            whole stream, ``documents[<n>]``, whatever message carried them).

    Raises:
        InvalidArgumentError: a document without ``created_at`` or with a time out of range,
            e.g. ``documents[140].created_at``.
    """
    out = []
    for j, doc in enumerate(docs):
        with under(f"documents[{start + j}]"):
            out.append(document_from_proto(doc))
    return out


def document_to_proto(doc: Document) -> search_pb2.SearchDocument:
    """Domain document -> ``wasteml.v1.SearchDocument`` (tools that stream documents to
    ``IndexDocuments``; the inverse of :func:`document_from_proto`)."""
    out = search_pb2.SearchDocument(id=doc.id, text=doc.text, kind=doc.kind, source=doc.source,
                                    location_approximate=doc.location_approximate)
    if doc.location is not None:
        point_to_proto(doc.location, out.location)
    out.created_at.CopyFrom(timestamp(doc.created_at))
    return out


def hit_to_proto(hit: Hit) -> search_pb2.SearchHit:
    """Domain hit -> ``wasteml.v1.SearchHit``."""
    out = search_pb2.SearchHit(
        id=hit.id, score=hit.score, text=hit.text, kind=hit.kind, source=hit.source,
        location_approximate=hit.location_approximate,
    )
    if hit.location is not None:
        point_to_proto(hit.location, out.location)
    out.created_at.FromDatetime(hit.created_at)
    if hit.distance_m is not None:
        out.distance_m = hit.distance_m
    return out


def stats_to_proto(s: CollectionStats) -> search_pb2.GetCollectionStatsResponse:
    """Domain statistics -> ``GetCollectionStatsResponse`` (the encoder of most documents)."""
    reply = search_pb2.GetCollectionStatsResponse(
        collection=s.collection, document_count=s.document_count, dimension=s.dimension,
        index_type=s.index_type, metric_type=s.metric_type, backend=s.backend,
        consistency_level=s.consistency_level, documents_by_kind=s.documents_by_kind,
    )
    if s.embedding_models:
        top = max(s.embedding_models.items(), key=lambda kv: kv[1])[0]
        reply.embedding_model.CopyFrom(model_ref_to_proto(top))
    return reply
