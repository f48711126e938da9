"""The search service's limits and all-or-nothing ingestion (issue 12, findings 4, 5, 7, 8), on
Milvus Lite with the real ONNX encoder, and a stored count on a real mid-stream outage."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from wasteml_testing import REPO_ROOT

from wasteml_models import TEXT_ENCODER
from wasteml_models.config import EncoderSignature
from wasteml_models.tokenizer import TextTokenizer
from wasteml_server.adapters.milvus import MilvusStore
from wasteml_server.adapters.triton.client import TritonClient
from wasteml_server.core.errors import (
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
    UnavailableError,
)
from wasteml_server.search.documents import MAX_REPORTED_VIOLATIONS, Document
from wasteml_server.search.embedding import TritonEmbedder
from wasteml_server.search.encoder import TextEncoder
from wasteml_server.search.ingest import index_documents, with_stored_count
from wasteml_server.search.service import SearchLimits, SemanticSearchService


@pytest.fixture
def make_service(lite_path: Path, dimension: int, embedder, request: pytest.FixtureRequest) -> Iterator:
    """Makes a search service over Milvus Lite whose default collection is named after the test
    (created lazily; every collection the test names is dropped afterwards)."""
    made: list[MilvusStore] = []
    base = "s_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:120]

    def make(**limits: int) -> SemanticSearchService:
        store = MilvusStore(str(lite_path), collection=base, consistency_level="Strong", timeout_s=30,
                            dimension=dimension)
        made.append(store)
        return SemanticSearchService(store, embedder, batch_size=64, in_flight=2, limits=SearchLimits(**limits))

    make.base = base  # type: ignore[attr-defined]
    yield make
    for store in made:
        for name in store.list_collections():
            if name.startswith(base):
                store.drop_collection(name)
        store.close()


async def _stream(docs: list[Document]) -> AsyncIterator[Document]:
    for d in docs:
        yield d


async def test_one_bad_document_at_140_stores_nothing(make_service, slice_docs) -> None:
    """A stream of 150 with a newline in the kind of document 140 stores none of them (it stored
    128 before): the error names documents[140].kind, the collection keeps its 5 rows, and a
    collection the stream would have created is not created."""
    service = make_service()
    await service.index_documents(slice_docs[:5])
    docs = list(slice_docs[5:155])
    docs[140] = replace(docs[140], kind="Litter\nbin")
    with pytest.raises(InvalidArgumentError) as err:
        await service.index_documents(_stream(docs))
    assert err.value.field == "documents[140].kind" and "control characters" in str(err.value)
    assert service.store.count() == 5
    fresh = make_service.base + "_fresh"
    with pytest.raises(InvalidArgumentError):
        await service.index_documents(_stream(docs), fresh)
    assert not service.store.has_collection(fresh)


async def test_every_bad_document_is_named_and_the_list_is_bounded(make_service, slice_docs) -> None:
    """Many bad documents: the first ones are named by stream position, at most
    MAX_REPORTED_VIOLATIONS and a count of the rest; nothing is stored."""
    service = make_service()
    docs = [replace(d, id="") if i % 3 == 0 else d for i, d in enumerate(slice_docs[:120])]
    with pytest.raises(InvalidArgumentError) as err:
        await service.index_documents(docs)
    fields = [v.field for v in err.value.violations]
    assert fields[:3] == ["documents[0].id", "documents[3].id", "documents[6].id"]
    assert len(fields) == MAX_REPORTED_VIOLATIONS + 1 and fields[-1] == "documents"
    assert "24 more violations" in err.value.violations[-1].description
    assert not service.store.has_collection()


async def test_stream_and_text_limits(make_service, slice_docs) -> None:
    """One document past the stream limit, or a text past the character limit, is refused
    before anything is embedded or stored, naming the limit; a query past it likewise."""
    service = make_service(max_stream_documents=20, max_text_chars=300)
    with pytest.raises(InvalidArgumentError) as err:
        await service.index_documents(_stream(slice_docs[:21]))
    assert err.value.field == "documents" and "at most 20 documents" in str(err.value)
    docs = list(slice_docs[:10])
    docs[3] = replace(docs[3], text="overflowing " * 30)
    with pytest.raises(InvalidArgumentError) as err:
        await service.index_documents(docs)
    assert err.value.field == "documents[3].text" and "at most 300 characters, got 360" in str(err.value)
    with pytest.raises(InvalidArgumentError) as err:
        await service.search("trash " * 51, 5)
    assert err.value.field == "query"
    assert not service.store.has_collection()
    report = await service.index_documents(_stream(slice_docs[:20]))
    assert report.received == report.upserted == report.collection_size == 20


async def test_collection_quota_counts_new_ids_only(make_service, slice_docs) -> None:
    """With 30 documents per collection: 25, then the same 25 and 5 new ones pass; one more new
    id is RESOURCE_EXHAUSTED with nothing stored; updating a stored id at the quota passes; a
    new collection that could never hold its stream is not created."""
    service = make_service(max_collection_documents=30)
    await service.index_documents(slice_docs[:25])
    report = await service.index_documents(slice_docs[:30])
    assert report.collection_size == 30 and report.upserted == 5
    with pytest.raises(ResourceExhaustedError) as err:
        await service.index_documents(slice_docs[28:31])
    assert "holds 30 documents and this stream adds 1 new ones: at most 30" in str(err.value)
    assert service.store.count() == 30
    updated = replace(slice_docs[0], text=slice_docs[0].text + " (updated)")
    assert (await service.index_documents([updated])).upserted == 1
    fresh = make_service.base + "_big"
    with pytest.raises(ResourceExhaustedError):
        await service.index_documents(slice_docs[:31], fresh)
    assert not service.store.has_collection(fresh)


async def test_collection_count_limit(make_service, slice_docs) -> None:
    """When the back-end holds max_collections collections, ingestion into a new one is
    RESOURCE_EXHAUSTED and creates nothing."""
    probe = make_service()
    held = len(probe.store.list_collections())
    service = make_service(max_collections=held)
    with pytest.raises(ResourceExhaustedError) as err:
        await service.index_documents(slice_docs[:3])
    assert f"holds {held} collections, at most {held}" in str(err.value)
    assert len(service.store.list_collections()) == held


async def test_concurrent_ingestions_are_bounded(make_service, slice_docs) -> None:
    """With one ingestion at a time, a second stream is RESOURCE_EXHAUSTED at once while the
    first is still being received; once the first ends, the slot is free again."""
    service = make_service(max_concurrent_index_streams=1)
    release = asyncio.Event()
    bad = replace(slice_docs[1], kind="tab\there")

    async def slow() -> AsyncIterator[Document]:
        yield slice_docs[0]
        await release.wait()
        yield bad

    first = asyncio.create_task(service.index_documents(slow()))
    await asyncio.sleep(0.05)
    with pytest.raises(ResourceExhaustedError) as err:
        await service.index_documents([bad])
    assert "at most 1 at once" in str(err.value)
    release.set()
    with pytest.raises(InvalidArgumentError):
        await first
    with pytest.raises(InvalidArgumentError):  # the slot is free: refused for its content now
        await service.index_documents([bad])


async def test_reads_of_an_unknown_collection_are_not_found(make_service) -> None:
    """Search, statistics and delete on an unknown collection are NotFoundError (it created and
    loaded one, 3 s each) and the collection list is unchanged."""
    service = make_service()
    before = sorted(service.store.list_collections())
    missing = make_service.base + "_missing"
    with pytest.raises(NotFoundError):
        await service.search("overflowing dumpster", 5, collection=missing)
    with pytest.raises(NotFoundError):
        await service.stats(missing)
    with pytest.raises(NotFoundError):
        await service.delete_documents(["a"], missing)
    assert sorted(service.store.list_collections()) == before


async def test_quoted_ids_do_not_poison_a_collection(make_service, slice_docs) -> None:
    """An id holding a double quote (it was stored, then broke statistics and ingestion for every
    caller), O'Brien and a backslash id index, show in statistics, are found and deleted; more
    documents index after them; the issue's injection id deletes nothing."""
    service = make_service()
    odd = [replace(slice_docs[i], id=doc_id)
           for i, doc_id in enumerate(['say "hi"', "O'Brien", "back\\slash"])]
    await service.index_documents(odd)
    assert (await service.stats()).document_count == 3
    report = await service.index_documents(slice_docs[3:13])
    assert report.collection_size == 13
    hits = (await service.search(odd[1].text, 13)).hits
    assert {h.id for h in odd} <= {h.id for h in hits}
    assert await service.delete_documents(["zz'] or id not in ['d1"]) == 0
    assert await service.delete_documents(["O'Brien", "back\\slash", 'say "hi"']) == 3
    assert (await service.stats()).document_count == 10


async def test_delete_ids_follow_the_id_rule(make_service) -> None:
    """An id with a control character or past 128 UTF-8 bytes is INVALID_ARGUMENT naming ids[i]."""
    service = make_service()
    with pytest.raises(InvalidArgumentError) as err:
        await service.delete_documents(["ok", "nul\x00", "é" * 65])
    assert [v.field for v in err.value.violations] == ["ids[1]", "ids[2]"]
    assert "130" in err.value.violations[1].description


def test_stored_count_note_keeps_the_error_kind() -> None:
    """A dependency error keeps its class and dependency and gains the stored count; a field
    error is left as it is."""
    err = with_stored_count(UnavailableError("triton", "down"), 64, 150)
    assert isinstance(err, UnavailableError) and err.dependency == "triton"
    assert "64 of 150 documents were confirmed stored before the failure" in err.message
    bad = InvalidArgumentError("documents[3].id", "must not be empty")
    assert with_stored_count(bad, 0, 10) is bad


async def test_triton_outage_mid_stream_says_how_many_were_stored(make_service, slice_docs, dimension) -> None:
    """Triton down (nothing listens on its port) while a stream of 48 is ingested whose first
    batch of 16 is already stored unchanged: UNAVAILABLE from Triton saying 16 of 48 documents
    were stored, and the collection holds exactly those 16."""
    service = make_service()
    await service.index_documents(slice_docs[:16])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    client = TritonClient(dead, timeout_s=5.0)
    try:
        tokenizer = TextTokenizer.from_repository(REPO_ROOT / "model_repository")
        signature = EncoderSignature.load(REPO_ROOT / "model_repository", TEXT_ENCODER)
        triton = TritonEmbedder(TextEncoder(client, tokenizer, TEXT_ENCODER, signature), version=1)
        assert triton.model == service.embedder.model and signature.dimension == dimension
        with pytest.raises(UnavailableError) as err:
            await index_documents(slice_docs[:48], service.store, triton, batch_size=16, in_flight=1)
    finally:
        await client.close()
    assert err.value.dependency == "triton"
    assert "16 of 48 documents were confirmed stored before the failure" in err.value.message
    assert service.store.count() == 16


@pytest.mark.slow  # ~40 s: most of it the killed server's restart and collection reload
async def test_milvus_outage_mid_stream_says_how_many_were_stored(milvus_server, slice_docs, embedder, dimension) -> None:
    """A Milvus server killed after the first batch of 16 was written fails the ingestion with
    UNAVAILABLE saying 16 of 48 documents were stored, which is what Milvus holds once back
    (the fast test of the same path: ``test_triton_outage_mid_stream_says_how_many_were_stored``)."""
    store = MilvusStore(milvus_server.uri, collection="outage_mid_stream", timeout_s=3.0,
                        admin_timeout_s=120.0, consistency_level="Strong", dimension=dimension)
    store.drop_collection()
    store.ensure_collection()

    def progress(_: int) -> None:
        if milvus_server.pid is not None:
            milvus_server.kill()

    try:
        with pytest.raises(UnavailableError) as err:
            await index_documents(slice_docs[:48], store, embedder, batch_size=16, in_flight=1,
                                  progress=progress, flush=False)
        assert "16 of 48 documents were confirmed stored before the failure" in err.value.message
    finally:
        if milvus_server.pid is None:
            milvus_server.start()
    for _ in range(120):
        try:
            count = store.count()
            break
        except UnavailableError:
            await asyncio.sleep(1.0)
    assert count == 16
    store.drop_collection()
    store.close()


def test_default_limits_match_the_settings() -> None:
    """SearchLimits() equals SearchLimits.from_settings(Settings()) (documented defaults)."""
    from wasteml_server.core.settings import Settings

    assert SearchLimits() == SearchLimits.from_settings(Settings())
