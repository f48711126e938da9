"""MilvusStore on Milvus Lite and on a real Milvus 2.3 server: schema, upsert, filters, recall."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np

from wasteml_models import TEXT_ENCODER
from wasteml_server.adapters.milvus import MilvusStore
from wasteml_server.core.common import ModelRef
from wasteml_server.search.documents import Document, GeoPoint
from wasteml_server.search.filters import (
    GeoBoundingBox,
    GeoCircle,
    SearchFilters,
    TimeRange,
    matches,
    matches_mask,
)

MODEL = ModelRef(TEXT_ENCODER, 1)
DEAD_ANIMAL = "Pick up Dead Animal"


def _fill(store: MilvusStore, docs: list[Document], vectors: np.ndarray) -> None:
    store.ensure_collection()
    for s in range(0, len(docs), 64):
        store.upsert(docs[s : s + 64], vectors[s : s + 64], MODEL)
    store.flush()


def _exact_top(
    docs: list[Document], vectors: np.ndarray, q: np.ndarray, filters: SearchFilters | None, k: int
) -> tuple[list[str], np.ndarray]:
    lat = np.array([d.location.latitude_deg for d in docs])
    lon = np.array([d.location.longitude_deg for d in docs])
    mask = matches_mask(
        filters,
        kind=[d.kind for d in docs],
        source=[d.source for d in docs],
        created_at_s=np.array([int(d.created_at.timestamp()) for d in docs]),
        lat_deg=lat,
        lon_deg=lon,
    )
    idx = np.flatnonzero(mask)
    scores = vectors[idx] @ q
    order = np.argsort(-scores, kind="stable")[:k]
    return [docs[i].id for i in idx[order]], scores[order]


def test_schema_indexes_and_stats(store_factory, slice_docs, slice_vectors, dimension) -> None:
    """A new collection has the configured index (COSINE) and counts rows per kind exactly."""
    store = store_factory()
    _fill(store, slice_docs, slice_vectors)
    stats = store.stats()
    assert stats.document_count == len(slice_docs)
    assert stats.index_type == store.index_type and stats.metric_type == "COSINE"
    assert stats.dimension == dimension
    assert stats.backend == ("milvus-lite" if store_factory.backend == "lite" else "milvus")
    assert sum(stats.documents_by_kind.values()) == len(slice_docs)
    assert stats.embedding_models == {MODEL: len(slice_docs)}


def test_upsert_is_idempotent_by_id(store_factory, slice_docs, slice_vectors) -> None:
    """Upserting the same ids again keeps one row per id and replaces changed fields."""
    store = store_factory()
    docs, vecs = slice_docs[:50], slice_vectors[:50]
    _fill(store, docs, vecs)
    _fill(store, docs, vecs)
    assert store.count() == 50
    changed = replace(docs[0], text="Pick up Dead Animal. a changed note")
    assert store.changed([changed, docs[1]], MODEL) == [True, False]
    store.upsert([changed], vecs[:1], MODEL)
    assert store.count() == 50
    assert store.get([docs[0].id])[docs[0].id].fields["text"] == changed.text
    assert store.changed(docs[:5], "other_model:2") == [True] * 5


def test_delete_counts_only_existing_ids(store_factory, slice_docs, slice_vectors) -> None:
    """Delete removes the given ids, ignores unknown ones and reports the number removed."""
    store = store_factory()
    _fill(store, slice_docs[:20], slice_vectors[:20])
    gone = [d.id for d in slice_docs[:3]]
    assert store.delete([*gone, "no-such-id"]) == 3
    assert store.count() == 17
    assert store.get(gone, strong=True) == {}
    assert store.delete(gone) == 0


def test_dead_raccoon_finds_dead_animal_pickups_first(store_factory, slice_docs, slice_vectors, embedder) -> None:
    """'dead raccoon on the sidewalk' returns 'Pick up Dead Animal' documents first on a real slice."""
    store = store_factory()
    _fill(store, slice_docs, slice_vectors)
    q = embedder.embed_sync(["dead raccoon on the sidewalk"])[0]
    hits = store.search(q, 10)
    assert len(hits) == 10
    assert hits[0].kind == DEAD_ANIMAL
    assert sum(h.kind == DEAD_ANIMAL for h in hits[:5]) == 5
    assert all(-1.0 <= h.score <= 1.0 for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def _filters_cases(docs: list[Document]) -> list[SearchFilters]:
    centre = GeoPoint(42.3318, -71.0838)  # Roxbury (Dudley Square), a real dense area of the slice
    return [
        SearchFilters(kinds=(DEAD_ANIMAL, "Needle Pickup")),
        SearchFilters(created_at=TimeRange(datetime(2015, 6, 1, tzinfo=UTC), datetime(2015, 9, 1, tzinfo=UTC))),
        SearchFilters(radius=GeoCircle(centre, 1500.0)),
        SearchFilters(radius=GeoCircle(centre, 3000.0), kinds=("CE Collection", DEAD_ANIMAL)),
        SearchFilters(bounding_box=GeoBoundingBox(GeoPoint(42.33, -71.10), GeoPoint(42.36, -71.05))),
        SearchFilters(sources=(docs[0].source,), min_score=0.2),
    ]


def test_every_hit_satisfies_its_filter_and_recall_vs_brute_force(
    store_factory, slice_docs, slice_vectors, embedder
) -> None:
    """Each hit passes its filter (exact predicate) and recall@10 vs numpy brute force over the
    same filtered slice is >= 0.95 (ties at the 10th score count as found)."""
    store = store_factory()
    _fill(store, slice_docs, slice_vectors)
    queries = ["dead raccoon on the sidewalk", "needles in the park", "overflowing trash barrel", "old couch on the curb"]
    qv = embedder.embed_sync(queries)
    found = wanted = 0
    for filters in _filters_cases(slice_docs):
        for q in qv:
            hits = store.search(q, 10, filters)
            for h in hits:
                loc = h.location
                assert loc is not None
                assert matches(
                    filters,
                    kind=h.kind,
                    source=h.source,
                    created_at_s=int(h.created_at.timestamp()),
                    lat_deg=loc.latitude_deg,
                    lon_deg=loc.longitude_deg,
                ), (filters, h)
                if filters.min_score is not None:
                    assert h.score >= filters.min_score
                if filters.radius is not None:
                    assert h.distance_m is not None and h.distance_m <= filters.radius.radius_m
            exact_ids, exact_scores = _exact_top(slice_docs, slice_vectors, q, filters, 10)
            if filters.min_score is not None:
                keep = exact_scores >= filters.min_score
                exact_ids, exact_scores = list(np.array(exact_ids)[keep]), exact_scores[keep]
            if not exact_ids:
                assert hits == []
                continue
            kth = exact_scores[-1]
            wanted += len(exact_ids)
            found += sum(1 for h in hits if h.id in exact_ids or h.score >= kth - 1e-5)
            assert len(hits) == len(exact_ids), (filters, len(hits), len(exact_ids))
    assert found / wanted >= 0.95


def test_selective_radius_still_fills_top_k(store_factory, slice_docs, slice_vectors, embedder) -> None:
    """A radius that keeps few documents still returns top_k hits when that many exist (over-fetch)."""
    store = store_factory()
    _fill(store, slice_docs, slice_vectors)
    q = embedder.embed_sync(["dead raccoon on the sidewalk"])[0]
    circle = GeoCircle(GeoPoint(42.3318, -71.0838), 2500.0)
    inside = [d for d in slice_docs if matches(SearchFilters(radius=circle), kind="", source="", created_at_s=0,
                                                lat_deg=d.location.latitude_deg, lon_deg=d.location.longitude_deg)]
    assert 15 <= len(inside) < len(slice_docs) / 3
    hits = store.search(q, 15, SearchFilters(radius=circle))
    assert len(hits) == 15
    all_hits = store.search(q, 1000, SearchFilters(radius=circle))
    assert sorted(h.id for h in all_hits) == sorted(d.id for d in inside)


def test_kind_with_quotes_and_location_less_documents(store_factory, slice_vectors) -> None:
    """Kinds with quotes and backslashes filter correctly; documents without a location never
    pass a geo filter and come back with location None."""
    store = store_factory()
    t = datetime(2015, 5, 5, 12, 0, 1, tzinfo=UTC)
    docs = [
        Document("q1", "a text", 'odd "kind" \\ x', GeoPoint(42.35, -71.06), t, "src"),
        Document("q2", "another text", "plain", None, t, "src"),
    ]
    _fill(store, docs, slice_vectors[:2])
    hits = store.search(slice_vectors[0], 5, SearchFilters(kinds=('odd "kind" \\ x',)))
    assert [h.id for h in hits] == ["q1"]
    everywhere = GeoBoundingBox(GeoPoint(-90, -180), GeoPoint(90, 180))
    assert [h.id for h in store.search(slice_vectors[0], 5, SearchFilters(bounding_box=everywhere))] == ["q1"]
    assert [h.id for h in store.search(slice_vectors[0], 5, SearchFilters(radius=GeoCircle(GeoPoint(0, 0), 2.0e7)))] == ["q1"]
    no_loc = next(h for h in store.search(slice_vectors[0], 5) if h.id == "q2")
    assert no_loc.location is None and no_loc.created_at == t


def test_collection_dropped_behind_the_store_is_recreated(store_factory, slice_docs, slice_vectors) -> None:
    """When another client drops the collection, the store re-creates it on the next call
    instead of failing (searches then see an empty collection, upserts work)."""
    store = store_factory()
    _fill(store, slice_docs[:10], slice_vectors[:10])
    other = MilvusStore(store.uri, collection=store.default_collection, timeout_s=30, dimension=store.dimension)
    other.drop_collection()
    other.close()
    assert store.search(slice_vectors[0], 5) == []
    store.upsert(slice_docs[:3], slice_vectors[:3], MODEL)
    assert store.count() == 3
