"""Milvus expressions built safely (issue 12, findings 2 and 7), reads that never create
(finding 4) and Milvus errors mapped by origin, on Milvus Lite and on a real Milvus 2.3 server."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from milvus_lite.search.filter import parse_expr

from wasteml_models import TEXT_ENCODER
from wasteml_server.core.common import ModelRef
from wasteml_server.core.errors import InternalError, InvalidArgumentError, NotFoundError
from wasteml_server.search.documents import Document, GeoPoint
from wasteml_server.search.filters import SearchFilters, in_expression, quote_string

MODEL = ModelRef(TEXT_ENCODER, 1)
T0 = datetime(2015, 6, 1, 12, 0, tzinfo=UTC)
#: The issue's injection: as an id it closed pymilvus' quote and selected every other row.
INJECTION = "zz'] or id not in ['d1"
#: Ids a caller may honestly send, and ones only old data can hold (a newline, a tab).
AWKWARD_IDS = [
    "O'Brien",
    "back\\slash",
    'say "hi"',
    "trailing\\",
    '\\"',
    INJECTION,
    'zz"] or id not in ["d1',
    "é-ü-中文-🚮",
    "line\nbreak",
    "tab\there",
]


def _doc(doc_id: str, text: str = "overflowing trash can", kind: str = "Litter") -> Document:
    return Document(doc_id, text, kind, GeoPoint(42.35, -71.06), T0, "test")


def _vectors(n: int, dimension: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    v = rng.normal(size=(n, dimension)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(st.characters(exclude_categories=("Cs",))), min_size=1, max_size=4))
def test_quoted_strings_parse_back_to_themselves(values: list[str]) -> None:
    """Milvus Lite's own expression parser reads every ``in_expression`` list back as exactly
    the strings given, whatever quotes, backslashes or control characters they hold."""
    ast = parse_expr(in_expression("id", values))
    assert ast.field.name == "id" and not ast.negate
    assert [e.value for e in ast.values.elements] == values


def test_quote_string_examples() -> None:
    """Backslash, double quote, LF, CR and tab are escaped; apostrophes and the rest stay."""
    assert quote_string("O'Brien") == '"O\'Brien"'
    assert quote_string('a"b\\c') == '"a\\"b\\\\c"'
    assert quote_string("x\ny\rz\t") == '"x\\ny\\rz\\t"'
    assert in_expression("kind", ["a", "b"]) == 'kind in ["a", "b"]'
    with pytest.raises(ValueError):
        in_expression("id", [])


def test_injection_and_awkward_ids_round_trip(store_factory, dimension) -> None:
    """The issue's DeleteDocuments id ``zz'] or id not in ['d1`` (it deleted 5 of 6 documents)
    deletes nothing; ids with apostrophes, quotes, backslashes, non-ASCII text (and, as old
    data may hold, newlines) are stored, read, found, paged exactly once each by statistics
    (pages of 16) and deleted."""
    store = store_factory()
    plain = [_doc(f"d{i}") for i in range(1, 7)]
    padding = [_doc(f"{i:03d}{AWKWARD_IDS[i % 8]}") for i in range(60)]
    awkward = [_doc(i, text=f"complaint {n}", kind='odd "kind" \\') for n, i in enumerate(AWKWARD_IDS)]
    docs = plain + padding + awkward
    vectors = _vectors(len(docs), dimension)
    store.upsert(docs, vectors, MODEL)
    assert store.delete([INJECTION + "x", 'zz"] or id not in ["d1x']) == 0
    assert store.count() == len(docs)
    assert sorted(store.get(AWKWARD_IDS)) == sorted(AWKWARD_IDS)
    hits = store.search(vectors[-1], 50, SearchFilters(kinds=('odd "kind" \\',)))
    assert sorted(h.id for h in hits) == sorted(AWKWARD_IDS)
    assert sorted(r["id"] for r in store.iterate(output_fields=("kind",), batch_size=16)) == sorted(
        d.id for d in docs)
    stats = store.stats()
    assert stats.document_count == len(docs) and stats.documents_by_kind['odd "kind" \\'] == len(awkward)
    assert store.delete(AWKWARD_IDS[:1]) == 1  # one by itself, the rest at once
    assert store.delete(AWKWARD_IDS) == len(AWKWARD_IDS) - 1
    assert store.get(AWKWARD_IDS, strong=True) == {}
    assert store.count() == len(plain) + len(padding)


def test_reads_never_create_a_collection(store_factory) -> None:
    """Search, count, get, delete, statistics and flush on a collection that does not exist
    raise NotFoundError and leave the collection list as it was."""
    store = store_factory()
    store.ensure_collection()
    before = sorted(store.list_collections())
    missing = "no_such_collection_" + store.default_collection[-40:]
    reads = [
        lambda: store.search(np.ones(store.dimension, dtype=np.float32), 5, None, missing),
        lambda: store.count(missing),
        lambda: store.get(["a"], missing),
        lambda: store.delete(["a"], missing),
        lambda: store.stats(missing),
        lambda: store.flush(missing),
        lambda: store.ensure_collection(missing, create=False),
    ]
    for read in reads:
        with pytest.raises(NotFoundError):
            read()
    assert not store.has_collection(missing)
    assert sorted(store.list_collections()) == before


def test_milvus_refusals_map_by_origin(store_factory, dimension) -> None:
    """Milvus refusing a caller's row is INVALID_ARGUMENT on ``documents``; refusing an
    expression this server built is InternalError (a bug of ours, not the caller's)."""
    store = store_factory()
    store.ensure_collection()
    with pytest.raises(InvalidArgumentError) as err:  # past VARCHAR(128), validation bypassed
        store.upsert([_doc("x" * 129)], _vectors(1, dimension), MODEL)
    assert err.value.field == "documents" and "refused by Milvus" in str(err.value)
    with pytest.raises(InternalError):
        store.count(expr="id in [")
    assert store.count() == 0
