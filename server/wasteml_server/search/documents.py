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
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from wasteml_server.core.common import ModelRef
from wasteml_server.core.errors import FieldViolation, InvalidArgumentError
from wasteml_server.core.geo import GeoPoint

__all__ = ["GeoPoint"]  # the one point type (core.geo), re-exported for search callers

#: Longest document id accepted, in UTF-8 bytes (the Milvus VARCHAR primary key ``max_length``;
#: a Milvus server counts bytes, Milvus Lite characters, so bytes are the bound that holds on both).
MAX_ID_BYTES = 128

#: Longest document text stored, in UTF-8 bytes (Milvus VARCHAR ``max_length`` of ``text``).
MAX_TEXT_BYTES = 8192

#: Longest ``kind`` / ``source`` strings, in UTF-8 bytes (VARCHAR ``max_length``).
MAX_LABEL_BYTES = 256

#: Longest text by default, in characters (``settings.search_max_text_chars``).
DEFAULT_MAX_TEXT_CHARS = 8192

#: Most field violations one error lists; the rest are summed up in one last violation, so an
#: error's own size stays far below gRPC's 16 KiB metadata limit.
MAX_REPORTED_VIOLATIONS = 16

#: Characters an id, kind or source may not hold: C0 and C1 control characters (U+0000-U+001F,
#: U+007F-U+009F) and lone surrogates. Everything else (quotes, apostrophes, backslashes,
#: non-ASCII letters, emoji) is accepted and stored as sent.
_FORBIDDEN_LABEL_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
#: Lone surrogates (not encodable as UTF-8; a protobuf string never holds one).
_SURROGATE = re.compile("[\ud800-\udfff]")


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
        id: caller-chosen unique id, 1..128 UTF-8 bytes without control characters (e.g. the
            311 ``CASE_ENQUIRY_ID``; quotes, apostrophes and backslashes are fine).
        text: the text that is embedded and returned in hits; non-blank, <= 8192 characters
            (``settings.search_max_text_chars``) and <= 8192 UTF-8 bytes.
        kind: the document kind used by the kinds filter (e.g. the 311 case type); <= 256
            UTF-8 bytes without control characters, as is ``source``.
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


def label_violations(
    value: object, field: str, *, max_bytes: int, required: bool = False
) -> list[FieldViolation]:
    """Why ``value`` cannot be an id, kind or source: the one character and length rule.

    Accepted: any string of at most ``max_bytes`` UTF-8 bytes without control characters
    (U+0000-U+001F, U+007F-U+009F) or lone surrogates; quotes, apostrophes (``O'Brien``),
    backslashes and non-ASCII text are fine (expressions quote them, see
    ``search.filters.quote_string``). Cheap on huge input: the character count is checked
    before anything is scanned or encoded.

    Args:
        value: the caller's value.
        field: its request field path, e.g. ``"documents[3].id"``.
        max_bytes: most UTF-8 bytes (:data:`MAX_ID_BYTES` or :data:`MAX_LABEL_BYTES`).
        required: refuse the empty string.

    Returns:
        at most one violation, naming ``field``.
    """
    if not isinstance(value, str):
        return [FieldViolation(field, "must be a string")]
    if required and not value:
        return [FieldViolation(field, "must not be empty")]
    if len(value) > max_bytes:  # a character is >= 1 byte: too long without encoding it
        return [FieldViolation(field, f"must be at most {max_bytes} UTF-8 bytes, got {len(value)} characters")]
    bad = _FORBIDDEN_LABEL_CHARS.search(value)
    if bad is not None:
        return [FieldViolation(field, f"must not contain control characters, found U+{ord(bad.group()):04X} "
                                      f"at character {bad.start()}")]
    size = len(value.encode("utf-8"))
    if size > max_bytes:
        return [FieldViolation(field, f"must be at most {max_bytes} UTF-8 bytes, got {size}")]
    return []


def text_violations(value: object, field: str, max_chars: int, max_bytes: int | None = None) -> list[FieldViolation]:
    """Why ``value`` cannot be a text to embed (a query, an Embed text, a document text).

    Args:
        value: the caller's text.
        field: its request field path, e.g. ``"query"`` or ``"texts[2]"``.
        max_chars: most characters (``settings.search_max_text_chars``), checked first, before
            the text is scanned, encoded or tokenised.
        max_bytes: most UTF-8 bytes as well (documents: :data:`MAX_TEXT_BYTES`); None: no bound.

    Returns:
        at most one violation: not a string, blank, too many characters or bytes.
    """
    if not isinstance(value, str):
        return [FieldViolation(field, "must be a string")]
    if len(value) > max_chars:
        return [FieldViolation(field, f"must be at most {max_chars} characters, got {len(value)}")]
    if not value.strip():
        return [FieldViolation(field, "must be a non-blank string")]
    if _SURROGATE.search(value) is not None:
        return [FieldViolation(field, "must be valid Unicode (holds a lone surrogate)")]
    if max_bytes is not None:
        size = len(value.encode("utf-8"))
        if size > max_bytes:
            return [FieldViolation(field, f"must be at most {max_bytes} UTF-8 bytes, got {size}")]
    return []


def raise_violations(violations: Sequence[FieldViolation], summary_field: str) -> None:
    """Raise ``InvalidArgumentError`` with the violations, at most :data:`MAX_REPORTED_VIOLATIONS`
    of them (then one more under ``summary_field`` counting the rest); nothing when empty."""
    if not violations:
        return
    shown_ = list(violations[:MAX_REPORTED_VIOLATIONS])
    if len(violations) > MAX_REPORTED_VIOLATIONS:
        shown_.append(FieldViolation(summary_field,
                                     f"{len(violations) - MAX_REPORTED_VIOLATIONS} more violations not listed"))
    first, *rest = shown_
    raise InvalidArgumentError(first.field, first.description, *rest)


def document_violations(
    doc: Document, prefix: str, max_text_chars: int = DEFAULT_MAX_TEXT_CHARS
) -> list[FieldViolation]:
    """Every reason ``doc`` cannot be stored, as field violations under ``prefix``.

    Rules: ``id`` 1..:data:`MAX_ID_BYTES` UTF-8 bytes, ``kind`` and ``source`` at most
    :data:`MAX_LABEL_BYTES`, none of them with control characters (:func:`label_violations`);
    ``text`` non-blank, at most ``max_text_chars`` characters and :data:`MAX_TEXT_BYTES` bytes;
    a valid location; an aware ``created_at``.

    Args:
        doc: the document.
        prefix: dotted path of the document in the request, e.g. ``"documents[3]"``.
        max_text_chars: most characters of ``text`` (``settings.search_max_text_chars``).

    Returns:
        violations (empty when the document is valid), e.g.
        ``FieldViolation("documents[3].location.latitude_deg", "must be within -90..90, got 91")``.
    """
    out = label_violations(doc.id, f"{prefix}.id", max_bytes=MAX_ID_BYTES, required=True)
    out += text_violations(doc.text, f"{prefix}.text", max_text_chars, MAX_TEXT_BYTES)
    for name in ("kind", "source"):
        out += label_violations(getattr(doc, name), f"{prefix}.{name}", max_bytes=MAX_LABEL_BYTES)
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
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
) -> None:
    """Check a batch of documents before embedding and storing them.

    Args:
        docs: the documents.
        prefix: field path of the list, e.g. ``"documents"``.
        start: index of ``docs[0]`` in the whole request or stream (for field paths).
        allow_repeats: accept a repeated id (a stream may update a document; the last wins).
        max_text_chars: most characters of a text (``settings.search_max_text_chars``).

    Raises:
        InvalidArgumentError: one violation per bad field (at most
            :data:`MAX_REPORTED_VIOLATIONS`, then a count of the rest under ``prefix``), the
            first naming e.g. ``documents[3].location.latitude_deg``; also when ``docs``
            repeats an id and ``allow_repeats`` is False.
    """
    violations: list[FieldViolation] = []
    seen: dict[str, int] = {}
    for j, doc in enumerate(docs):
        i = start + j
        violations.extend(document_violations(doc, f"{prefix}[{i}]", max_text_chars))
        if isinstance(doc.id, str):
            if doc.id in seen and not allow_repeats:
                violations.append(
                    FieldViolation(f"{prefix}[{i}].id", f"repeats the id of {prefix}[{seen[doc.id]}]")
                )
            seen.setdefault(doc.id, i)
    raise_violations(violations, prefix)
