"""Search quality and filter correctness, measured on the real Boston 311 collection.

Run: ``wasteml ingest evaluate``. It ingests the Boston 311 file first (idempotent: a filled
collection costs only the unchanged-checks), then prints:

1. **Quality** over the labelled queries in ``eval_queries.json`` (plain words; relevance =
   the hit's case type is one of the query's ``relevant`` kinds): precision@10 and nDCG@10 of
   (a) semantic search through Milvus and (b) BM25 (Okapi, ``rank_bm25.BM25Okapi`` with its
   defaults k1 = 1.5, b = 0.75) over the same document texts. nDCG@10 uses binary gains and
   the ideal ranking of ``min(10, R)`` relevant documents, R = relevant documents in the
   collection (Järvelin & Kekäläinen, "Cumulated gain-based evaluation of IR techniques",
   TOIS 2002).
2. **Filter correctness**: for each filter case x query, every hit must satisfy the exact
   filter predicate (:func:`~wasteml_server.search.filters.matches`), and recall@10 against
   exact brute-force search (numpy dot products of the stored unit vectors) over the same
   filtered slice. Ties: a returned hit whose score equals the exact 10th score (within 1e-5)
   counts as found, since identical texts (many in this data) have identical vectors.

Exit status 1 when semantic nDCG@10 does not beat BM25, a hit violates its filter, or recall@10
is below 0.95.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from wasteml_server.adapters.milvus import MilvusStore
from wasteml_server.core.geo import GeoPoint
from wasteml_server.search.embedding import Embedder
from wasteml_server.search.filters import (
    GeoBoundingBox,
    GeoCircle,
    SearchFilters,
    TimeRange,
    matches,
    matches_mask,
)

logger = logging.getLogger(__name__)

#: Cut-off of the ranking metrics.
K = 10
#: Recall@10 that filtered search must reach against brute force.
MIN_RECALL = 0.95
#: Score tolerance for ties at the k-th exact score (float32 cosine).
TIE_EPS = 1e-5

_TOKEN = re.compile(r"[a-z0-9]+")


def bm25_tokens(text: str) -> list[str]:
    """Lower-cased alphanumeric tokens (the BM25 baseline's analyser)."""
    return _TOKEN.findall(text.lower())


def precision_at_k(relevant: list[bool], k: int = K) -> float:
    """Fraction of the first ``k`` results that are relevant (missing results count as not)."""
    return sum(relevant[:k]) / k


def ndcg_at_k(relevant: list[bool], n_relevant: int, k: int = K) -> float:
    """nDCG@k with binary gains: DCG / ideal DCG of ``min(k, n_relevant)`` relevant results."""
    dcg = sum(1.0 / math.log2(i + 2) for i, r in enumerate(relevant[:k]) if r)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, n_relevant)))
    return dcg / ideal if ideal > 0 else 0.0


def load_queries(path: Path | None = None) -> list[dict[str, Any]]:
    """The labelled queries: ``[{"query": str, "relevant": [kind, ...]}, ...]``."""
    if path is None:
        text = resources.files("wasteml_tools.search").joinpath("eval_queries.json").read_text()
    else:
        text = Path(path).read_text()
    return list(json.loads(text)["queries"])


@dataclass
class Corpus:
    """The stored collection read back: ids, texts, kinds, sources, times, coordinates, vectors."""

    ids: list[str]
    texts: list[str]
    kinds: list[str]
    sources: list[str]
    created_at_s: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    vectors: np.ndarray

    @classmethod
    def from_store(cls, store: MilvusStore, collection: str | None = None) -> Corpus:
        """Read every row (with vectors) through a query iterator."""
        rows = store.iterate(
            collection, ("text", "kind", "source", "created_at", "lat", "lon", "vector"), 2048
        )
        return cls(
            ids=[str(r["id"]) for r in rows],
            texts=[r["text"] for r in rows],
            kinds=[r["kind"] for r in rows],
            sources=[r["source"] for r in rows],
            created_at_s=np.array([int(r["created_at"]) for r in rows], dtype=np.int64),
            lat=np.array([float(r["lat"]) for r in rows]),
            lon=np.array([float(r["lon"]) for r in rows]),
            vectors=np.asarray([r["vector"] for r in rows], dtype=np.float32),
        )


@dataclass
class SystemScores:
    """Mean precision@10 and nDCG@10 of one ranking system over the queries."""

    name: str
    precision_at_10: float
    ndcg_at_10: float
    per_query: list[tuple[str, float, float]] = field(default_factory=list)


@dataclass
class FilterCase:
    """Outcome of one filter over all queries."""

    name: str
    slice_size: int
    hits_checked: int
    violations: int
    found: int
    wanted: int

    @property
    def recall(self) -> float:
        """Tie-aware recall@10 against brute force (1.0 when nothing was wanted)."""
        return self.found / self.wanted if self.wanted else 1.0


@dataclass
class EvalReport:
    """Everything :func:`evaluate` measured."""

    documents: int
    queries: int
    semantic: SystemScores
    bm25: SystemScores
    filters: list[FilterCase]
    seconds: float

    @property
    def recall_at_10(self) -> float:
        """Tie-aware recall@10 over all filter cases and queries."""
        wanted = sum(f.wanted for f in self.filters)
        return sum(f.found for f in self.filters) / wanted if wanted else 1.0

    @property
    def violations(self) -> int:
        """Hits that failed their filter's exact predicate (must be 0)."""
        return sum(f.violations for f in self.filters)

    @property
    def passed(self) -> bool:
        """Semantic beats BM25 on nDCG@10, no filter violation, recall@10 >= 0.95."""
        return (
            self.semantic.ndcg_at_10 > self.bm25.ndcg_at_10
            and self.violations == 0
            and self.recall_at_10 >= MIN_RECALL
        )


def filter_cases(corpus: Corpus) -> list[tuple[str, SearchFilters]]:
    """Filter cases over the Boston collection: kinds, a month, radii around real places, a box,
    combinations, a minimum score and a source."""
    dudley = GeoPoint(42.3293, -71.0839)  # Dudley Square, Roxbury
    back_bay = GeoPoint(42.3503, -71.0810)  # Copley Square
    fields_corner = GeoPoint(42.3006, -71.0617)  # Fields Corner, Dorchester
    july = TimeRange(datetime(2015, 7, 1, tzinfo=UTC), datetime(2015, 8, 1, tzinfo=UTC))
    first_source = sorted(set(corpus.sources))[0]
    return [
        ("kinds: dead animal + needles", SearchFilters(kinds=("Pick up Dead Animal", "Needle Pickup"))),
        ("created_at: July 2015", SearchFilters(created_at=july)),
        ("radius 1 km Dudley Sq", SearchFilters(radius=GeoCircle(dudley, 1000.0))),
        ("radius 300 m Copley Sq", SearchFilters(radius=GeoCircle(back_bay, 300.0))),
        (
            "radius 2 km Fields Corner + July",
            SearchFilters(radius=GeoCircle(fields_corner, 2000.0), created_at=july),
        ),
        (
            "bbox Back Bay + kinds litter",
            SearchFilters(
                bounding_box=GeoBoundingBox(GeoPoint(42.343, -71.092), GeoPoint(42.356, -71.066)),
                kinds=("Empty Litter Basket", "Litter Basket Maintenance"),
            ),
        ),
        ("min_score 0.5", SearchFilters(min_score=0.5)),
        (f"source {first_source}", SearchFilters(sources=(first_source,))),
    ]


async def evaluate(
    store: MilvusStore,
    embedder: Embedder,
    queries: list[dict[str, Any]],
    collection: str | None = None,
) -> EvalReport:
    """Measure quality (semantic vs BM25) and filter correctness on a filled collection.

    Raises:
        UnavailableError: Milvus or the encoder is down.
    """
    from rank_bm25 import BM25Okapi

    t0 = time.perf_counter()
    corpus = await asyncio.to_thread(Corpus.from_store, store, collection)
    texts = [q["query"] for q in queries]
    qvecs = await embedder.embed(texts)
    kinds = np.asarray(corpus.kinds, dtype=object)

    bm25 = BM25Okapi([bm25_tokens(t) for t in corpus.texts])
    sem = SystemScores("semantic (Milvus)", 0.0, 0.0)
    lex = SystemScores("BM25 (rank_bm25)", 0.0, 0.0)
    for q, qv in zip(queries, qvecs, strict=True):
        relevant_kinds = set(q["relevant"])
        n_rel = int(np.isin(kinds, list(relevant_kinds)).sum())
        hits = await asyncio.to_thread(store.search, qv, K, None, collection)
        rel = [h.kind in relevant_kinds for h in hits]
        scores = bm25.get_scores(bm25_tokens(q["query"]))
        top = np.argsort(-scores, kind="stable")[:K]
        rel_b = [corpus.kinds[i] in relevant_kinds for i in top]
        for sys_scores, r in ((sem, rel), (lex, rel_b)):
            p, n = precision_at_k(r), ndcg_at_k(r, n_rel)
            sys_scores.per_query.append((q["query"], p, n))
    for s in (sem, lex):
        s.precision_at_10 = float(np.mean([p for _, p, _ in s.per_query]))
        s.ndcg_at_10 = float(np.mean([n for _, _, n in s.per_query]))

    cases: list[FilterCase] = []
    for name, filters in filter_cases(corpus):
        mask = matches_mask(
            filters,
            kind=corpus.kinds,
            source=corpus.sources,
            created_at_s=corpus.created_at_s,
            lat_deg=corpus.lat,
            lon_deg=corpus.lon,
        )
        idx = np.flatnonzero(mask)
        case = FilterCase(name, len(idx), 0, 0, 0, 0)
        for qv in qvecs:
            hits = await asyncio.to_thread(store.search, qv, K, filters, collection)
            for h in hits:
                case.hits_checked += 1
                loc = h.location
                ok = loc is not None and matches(
                    filters,
                    kind=h.kind,
                    source=h.source,
                    created_at_s=int(h.created_at.timestamp()),
                    lat_deg=loc.latitude_deg,
                    lon_deg=loc.longitude_deg,
                )
                if filters.min_score is not None and h.score < filters.min_score:
                    ok = False
                case.violations += not ok
            exact = corpus.vectors[idx] @ qv
            order = np.argsort(-exact, kind="stable")[:K]
            exact_ids = {corpus.ids[i] for i in idx[order]}
            exact_scores = exact[order]
            if filters.min_score is not None:
                keep = exact_scores >= filters.min_score
                exact_ids = {corpus.ids[i] for i in idx[order][keep]}
                exact_scores = exact_scores[keep]
            if not exact_ids:
                continue
            kth = float(exact_scores[-1])
            case.wanted += len(exact_ids)
            case.found += min(
                len(exact_ids),
                sum(1 for h in hits if h.id in exact_ids or h.score >= kth - TIE_EPS),
            )
        cases.append(case)
    return EvalReport(
        documents=len(corpus.ids),
        queries=len(queries),
        semantic=sem,
        bm25=lex,
        filters=cases,
        seconds=time.perf_counter() - t0,
    )


def render(report: EvalReport, per_query: bool = False) -> None:
    """Print the report as rich tables (CLI/report code)."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = Table(title=f"Search quality: {report.queries} labelled queries, {report.documents} documents")
    for col in ("system", "precision@10", "nDCG@10"):
        t.add_column(col)
    for s in (report.semantic, report.bm25):
        t.add_row(s.name, f"{s.precision_at_10:.3f}", f"{s.ndcg_at_10:.3f}")
    console.print(t)
    if per_query:
        pq = Table(title="Per query (semantic / BM25 nDCG@10)")
        for col in ("query", "semantic", "BM25"):
            pq.add_column(col)
        for (q, _, ns), (_, _, nb) in zip(report.semantic.per_query, report.bm25.per_query, strict=True):
            pq.add_row(q, f"{ns:.2f}", f"{nb:.2f}")
        console.print(pq)
    f = Table(title="Filter correctness vs exact brute force over the filtered slice")
    for col in ("filter", "slice", "hits checked", "violations", "recall@10"):
        f.add_column(col)
    for c in report.filters:
        f.add_row(c.name, str(c.slice_size), str(c.hits_checked), str(c.violations), f"{c.recall:.3f}")
    console.print(f)
    verdict = "PASS" if report.passed else "FAIL"
    console.print(
        f"{verdict}: semantic nDCG@10 {report.semantic.ndcg_at_10:.3f} vs BM25 "
        f"{report.bm25.ndcg_at_10:.3f}; filter violations {report.violations}; "
        f"recall@10 {report.recall_at_10:.3f} (>= {MIN_RECALL}); {report.seconds:.1f} s"
    )

