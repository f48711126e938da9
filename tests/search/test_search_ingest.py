"""Boston 311 document building and idempotent ingestion through the real encoder and Milvus."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from wasteml_models import TEXT_ENCODER
from wasteml_server.core.common import ModelRef
from wasteml_server.core.errors import InvalidArgumentError
from wasteml_server.search.documents import Document, GeoPoint
from wasteml_server.search.filters import GeoCircle, SearchFilters
from wasteml_server.search.ingest import index_documents
from wasteml_server.search.service import SemanticSearchService
from wasteml_tools.search.boston311 import (
    BOSTON_311_ROWS,
    CITY_HALL_FALLBACK,
    boston_local_to_utc,
    closure_note,
    document_text,
)


@pytest.mark.parametrize(
    ("reason", "note"),
    [
        ("Case Closed Case Resolved trash picked up", "trash picked up"),
        ("Case Closed. Closed date : 2015-10-01 10:11:10.793 Case Resolved picked up", "picked up"),
        ("Case Closed Bulk Item Automation", ""),
        ("Case Closed. Closed date : 2015-11-19 16:34:12.343 Bulk Item Automation", ""),
        ("Case Closed VIOCOR: Violation Corrected", ""),
        ("Case Closed Case Noted Cart delivered", "Cart delivered"),
        ("Case Closed Duplicate of Existing Case  reference case #1010013", "reference case #1010013"),
        ("Case Closed Case Referred to External Agency reported to DCR", "reported to DCR"),
        ("", ""),
    ],
)
def test_closure_note_strips_boilerplate(reason: str, note: str) -> None:
    """The closure boilerplate prefix (status, closed date, code) is removed, the note kept."""
    assert closure_note(reason) == note


def test_document_text_skips_a_title_repeating_the_type() -> None:
    """A title equal to the case type is not repeated; a distinct title is kept."""
    assert document_text("Pick up Dead Animal", "Pick up Dead Animal", "picked up") == "Pick up Dead Animal. picked up"
    assert document_text("Empty Litter Basket", "Park Maintenance: Polcari Park", "") == (
        "Empty Litter Basket. Park Maintenance: Polcari Park"
    )


def test_open_time_is_boston_local_to_utc() -> None:
    """OPEN_DT is read as America/New_York: UTC-5 in winter, UTC-4 in summer."""
    assert boston_local_to_utc("01/01/2015 08:48:34 AM") == datetime(2015, 1, 1, 13, 48, 34, tzinfo=UTC)
    assert boston_local_to_utc("07/04/2015 11:00:00 PM") == datetime(2015, 7, 5, 3, 0, 0, tzinfo=UTC)


def test_whole_file_parses_with_unique_ids_and_flags_fallback(boston_docs: list[Document]) -> None:
    """All 20,832 rows become documents with unique ids, valid Boston coordinates, 2015 UTC times,
    and exactly the rows at City Hall's fallback point are flagged approximate."""
    assert len(boston_docs) == BOSTON_311_ROWS
    assert len({d.id for d in boston_docs}) == BOSTON_311_ROWS
    flagged = [d for d in boston_docs if d.location_approximate]
    at_hall = [
        d
        for d in boston_docs
        if (round(d.location.latitude_deg, 4), round(d.location.longitude_deg, 4)) == CITY_HALL_FALLBACK
    ]
    assert flagged == at_hall and 600 < len(flagged) < 900
    assert all(42.2 < d.location.latitude_deg < 42.4 and -71.2 < d.location.longitude_deg < -70.9 for d in boston_docs)
    assert all(2015 <= d.created_at.year <= 2016 and d.created_at.tzinfo is not None for d in boston_docs)
    assert not any(d.text.startswith("Case Closed") or "Closed date" in d.text for d in boston_docs)


async def test_ingestion_is_idempotent_and_keeps_fallback_flag(store_factory, slice_docs, embedder) -> None:
    """Ingesting a real slice twice writes every document once; the second run embeds and writes
    nothing; City Hall fallback documents are stored and returned flagged, not dropped."""
    store = store_factory()
    first = await index_documents(slice_docs, store, embedder, batch_size=64, in_flight=3)
    assert first.received == len(slice_docs) and first.upserted == len(slice_docs)
    assert first.approximate_location >= 10
    assert store.count() == len(slice_docs)
    second = await index_documents(slice_docs, store, embedder, batch_size=64, in_flight=3)
    assert second.upserted == 0 and second.unchanged == len(slice_docs)
    assert store.count() == len(slice_docs)
    service = SemanticSearchService(store, embedder)
    hall = SearchFilters(radius=GeoCircle(GeoPoint(*CITY_HALL_FALLBACK), 5.0))
    res = await service.search("trash", 50, hall)
    assert len(res.hits) >= 10 and all(h.location_approximate for h in res.hits)


async def test_service_validates_before_embedding(store_factory, embedder, dimension) -> None:
    """The async service and its embedder reject bad searches, deletes and embeds with the
    field named."""
    service = SemanticSearchService(store_factory(), embedder)
    with pytest.raises(InvalidArgumentError) as err:
        await service.search("dead raccoon", 0)
    assert err.value.field == "top_k"
    with pytest.raises(InvalidArgumentError) as err:
        await service.search("x", 5, SearchFilters(radius=GeoCircle(GeoPoint(42.0, -71.0), 0)))
    assert err.value.field == "filters.radius.radius_m"
    with pytest.raises(InvalidArgumentError) as err:
        await service.delete_documents([])
    assert err.value.field == "ids"
    with pytest.raises(InvalidArgumentError) as err:
        await service.embedder.embed(["ok", "  "])
    assert err.value.field == "texts[1]"
    with pytest.raises(InvalidArgumentError) as err:
        await service.search("x", 5, collection="bad-name")
    assert err.value.field == "collection"
    vectors = await service.embedder.embed(["dead raccoon on the sidewalk"])
    assert vectors.shape == (1, dimension) and service.embedder.model == ModelRef(TEXT_ENCODER, 1)


async def test_async_stream_and_concurrent_searches(store_factory, slice_docs, embedder) -> None:
    """Documents arriving as an async stream (as IndexDocuments delivers them) are all indexed,
    and 16 concurrent searches through the service return what sequential ones return."""
    store = store_factory()
    service = SemanticSearchService(store, embedder, batch_size=32, in_flight=4)

    async def stream():
        for d in slice_docs[:120]:
            yield d

    report = await service.index_documents(stream())
    assert report.received == 120 and report.upserted == 120
    stats = await service.stats()
    assert stats.document_count == 120
    queries = ["dead raccoon on the sidewalk", "needles in the park", "overflowing dumpster", "old couch"] * 4
    sequential = [[h.id for h in (await service.search(q, 5)).hits] for q in queries]
    concurrent = await asyncio.gather(*(service.search(q, 5) for q in queries))
    assert [[h.id for h in r.hits] for r in concurrent] == sequential
    assert await service.delete_documents([slice_docs[0].id, "missing"]) == 1


async def test_bad_document_in_a_stream_names_its_position(store_factory, slice_docs, embedder) -> None:
    """A document with an invalid latitude at stream position 70 is rejected as
    documents[70].location.latitude_deg (its position in the whole stream)."""
    docs = list(slice_docs[:80])
    bad = docs[70]
    docs[70] = Document(bad.id, bad.text, bad.kind, GeoPoint(95.0, -71.0), bad.created_at, bad.source)
    with pytest.raises(InvalidArgumentError) as err:
        await index_documents(docs, store_factory(), embedder, batch_size=32)
    assert err.value.field == "documents[70].location.latitude_deg"
