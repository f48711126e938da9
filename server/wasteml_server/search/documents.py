"""Plain domain types of semantic search: documents, hits, collection statistics.

Field names follow ``proto/wasteml/v1/search.proto`` and ``common.proto`` (``SearchDocument``,
``SearchHit``, ``GeoPoint``, ``GetCollectionStatsResponse``) so the servicer converts field by
field: ``GeoPoint.latitude_deg`` <-> :attr:`GeoPoint.latitude_deg`, ``Timestamp`` <->
timezone-aware ``datetime`` (``ts.ToDatetime(tzinfo=UTC)`` / ``ts.FromDatetime(dt)``).

Times are stored in Milvus as int64 epoch seconds (UTC), so sub-second parts are dropped
(floored) on the way in and every ``datetime`` coming back is whole seconds, UTC.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from wasteml_server.core.common import ModelRef
from wasteml_server.core.errors import FieldViolation, InvalidArgumentError
from wasteml_server.core.geo import GeoPoint

__all__ = ["GeoPoint"]  # the one point type (core.geo), re-exported for search callers

#: Longest document id accepted, in characters (Milvus VARCHAR primary key ``max_length``).
MAX_ID_CHARS = 128

#: Longest document text stored, in UTF-8 bytes (Milvus VARCHAR ``max_length`` of ``text``).
MAX_TEXT_BYTES = 8192

#: Longest ``kind`` / ``source`` strings, in UTF-8 bytes (VARCHAR ``max_length``).
MAX_LABEL_BYTES = 256


def epoch_s(when: datetime) -> int:
    """Whole epoch seconds (UTC) of an aware ``datetime``, floored.

    Raises:
        ValueError: ``when`` is naive (no tzinfo); a naive time has no defined instant.
    """
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("datetime must be timezone-aware")
    return math.floor(when.timestamp())


def from_epoch_s(seconds: int) -> datetime:
    """UTC ``datetime`` of integer epoch seconds."""
    return datetime.fromtimestamp(int(seconds), tz=UTC)


@dataclass(frozen=True, slots=True)
class Document:
    """One searchable document (``wasteml.v1.SearchDocument``).

    Attributes:
        id: caller-chosen unique id, 1..128 characters (e.g. the 311 ``CASE_ENQUIRY_ID``).
        text: the text that is embedded and returned in hits; non-blank, <= 8192 UTF-8 bytes.
        kind: the document kind used by the kinds filter (e.g. the 311 case type).
        location: where the document refers to; ``None`` = no location (never passes a geo
            filter).
        location_approximate: True when ``location`` is a fallback geocode (Boston's City Hall
            default point) rather than the real place.
        created_at: aware ``datetime`` of creation (the 311 open time), stored at 1 s resolution.
        source: where the document came from (e.g. the 311 intake channel).
    """

    id: str
    text: str
    kind: str
    location: GeoPoint | None
    created_at: datetime
    source: str = ""
    location_approximate: bool = False


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result (``wasteml.v1.SearchHit``).

    Attributes:
        id, text, kind, location, location_approximate, created_at, source: as in
            :class:`Document` (``created_at`` is UTC, whole seconds).
        score: cosine similarity of query and document embeddings, -1..1, higher is closer.
        distance_m: haversine distance in metres from a radius filter's centre; ``None``
            when the search had no radius filter.
    """

    id: str
    score: float
    text: str
    kind: str
    location: GeoPoint | None
    created_at: datetime
    source: str
    location_approximate: bool
    distance_m: float | None = None


@dataclass(frozen=True, slots=True)
class CollectionStats:
    """Size and configuration of a collection (``wasteml.v1.GetCollectionStatsResponse``).

    Attributes:
        collection: collection name.
        document_count: rows in the collection (an exact ``count(*)`` query).
        dimension: vector dimension (the encoder's, 384 for all-MiniLM-L6-v2).
        index_type: vector index type, e.g. ``"HNSW"``.
        metric_type: similarity metric of the index (``"COSINE"``).
        backend: ``"milvus-lite"`` (a local file) or ``"milvus"`` (a server reached by URI).
        consistency_level: consistency level of searches, e.g. ``"Bounded"``.
        documents_by_kind: number of documents per kind.
        embedding_models: number of documents per embedding model and version.
        index_params: build parameters of the vector index, e.g. ``{"M": "16", ...}``.
        server_version: Milvus version string reported by the back-end.
    """

    collection: str
    document_count: int
    dimension: int
    index_type: str
    metric_type: str
    backend: str
    consistency_level: str
    documents_by_kind: dict[str, int] = field(default_factory=dict)
    embedding_models: dict[ModelRef, int] = field(default_factory=dict)
    index_params: dict[str, str] = field(default_factory=dict)
    server_version: str = ""


def document_violations(doc: Document, prefix: str) -> list[FieldViolation]:
    """Every reason ``doc`` cannot be stored, as field violations under ``prefix``.

    Args:
        doc: the document.
        prefix: dotted path of the document in the request, e.g. ``"documents[3]"``.

    Returns:
        violations (empty when the document is valid), e.g.
        ``FieldViolation("documents[3].location.latitude_deg", "must be within -90..90, got 91")``.
    """
    out: list[FieldViolation] = []
    if not isinstance(doc.id, str) or not doc.id or len(doc.id) > MAX_ID_CHARS:
        out.append(FieldViolation(f"{prefix}.id", f"must be 1..{MAX_ID_CHARS} characters"))
    if not isinstance(doc.text, str) or not doc.text.strip():
        out.append(FieldViolation(f"{prefix}.text", "must be a non-blank string"))
    elif len(doc.text.encode("utf-8")) > MAX_TEXT_BYTES:
        out.append(FieldViolation(f"{prefix}.text", f"must be at most {MAX_TEXT_BYTES} UTF-8 bytes"))
    for name in ("kind", "source"):
        value = getattr(doc, name)
        if not isinstance(value, str) or len(value.encode("utf-8")) > MAX_LABEL_BYTES:
            out.append(
                FieldViolation(f"{prefix}.{name}", f"must be a string of <= {MAX_LABEL_BYTES} bytes")
            )
    if doc.location is not None:
        out.extend(doc.location.violations(f"{prefix}.location"))
    if not isinstance(doc.created_at, datetime) or doc.created_at.tzinfo is None:
        out.append(FieldViolation(f"{prefix}.created_at", "must be a timezone-aware time"))
    return out


_COLLECTION_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def validate_collection_name(name: str, field: str = "collection") -> str:
    """Check a collection name (Milvus rules: a letter or ``_`` first, then letters, digits,
    ``_``; at most 255 characters).

    Raises:
        InvalidArgumentError: naming ``field``.
    """
    if (
        not name
        or len(name) > 255
        or not (name[0].isalpha() or name[0] == "_")
        or not set(name) <= _COLLECTION_NAME_CHARS
    ):
        raise InvalidArgumentError(
            field, "must start with a letter or '_' and hold only letters, digits and '_'"
        )
    return name


def validate_documents(
    docs: Sequence[Document],
    prefix: str = "documents",
    *,
    start: int = 0,
    allow_repeats: bool = False,
) -> None:
    """Check a batch of documents before embedding and storing them.

    Args:
        docs: the documents.
        prefix: field path of the list, e.g. ``"documents"``.
        start: index of ``docs[0]`` in the whole request or stream (for field paths).
        allow_repeats: accept a repeated id (a stream may update a document; the last wins).

    Raises:
        InvalidArgumentError: one violation per bad field (all of them), the first naming e.g.
            ``documents[3].location.latitude_deg``; also when ``docs`` repeats an id and
            ``allow_repeats`` is False.
    """
    violations: list[FieldViolation] = []
    seen: dict[str, int] = {}
    for j, doc in enumerate(docs):
        i = start + j
        violations.extend(document_violations(doc, f"{prefix}[{i}]"))
        if doc.id in seen and not allow_repeats:
            violations.append(
                FieldViolation(f"{prefix}[{i}].id", f"repeats the id of {prefix}[{seen[doc.id]}]")
            )
        seen.setdefault(doc.id, i)
    if violations:
        first, *rest = violations
        raise InvalidArgumentError(first.field, first.description, *rest)
