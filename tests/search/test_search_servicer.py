"""The SemanticSearch servicer over gRPC on loopback (issue 12 findings 2, 4, 5, 7, 8, 10): a real
server (``transport.server.create_server``) with the real search service on Milvus Lite and the
ONNX encoder; its Triton is down (nothing listens), so any Embed that reaches it is UNAVAILABLE."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import grpc
import pytest
import pytest_asyncio
from contract_paths import field_exists
from wasteml_testing import REPO_ROOT, bad_request, server_settings

from wasteml.v1 import search_pb2, search_pb2_grpc
from wasteml_models import TEXT_ENCODER
from wasteml_models.config import EncoderSignature
from wasteml_models.tokenizer import TextTokenizer
from wasteml_server.adapters.milvus import MilvusStore
from wasteml_server.adapters.triton.client import TritonClient
from wasteml_server.codecs.search import document_to_proto
from wasteml_server.search.encoder import TextEncoder
from wasteml_server.search.service import SearchLimits, SemanticSearchService
from wasteml_server.transport.server import ServiceBinding, create_server
from wasteml_server.transport.servicers.search import SemanticSearchServicer

SEARCH = search_pb2.DESCRIPTOR.services_by_name["SemanticSearch"].full_name
INJECTION = "zz'] or id not in ['d1"
ODD = "odd"  # the one collection these tests write (Lite creates one in ~3 s)
LIMITS = SearchLimits(max_stream_documents=200, max_collections=1)


@pytest_asyncio.fixture(scope="module")
async def search(tmp_path_factory: pytest.TempPathFactory, dimension: int, embedder):
    """``(stub, store)``: a SemanticSearch server on a free loopback port over its own Lite file."""
    var = tmp_path_factory.mktemp("search_servicer")
    store = MilvusStore(str(var / "milvus.db"), collection="default_docs", consistency_level="Strong",
                        timeout_s=30, dimension=dimension)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    triton = TritonClient(dead, timeout_s=5.0)
    repository = REPO_ROOT / "model_repository"
    encoder = TextEncoder(triton, TextTokenizer.from_repository(repository), TEXT_ENCODER,
                          EncoderSignature.load(repository, TEXT_ENCODER), max_texts=4, max_text_chars=100)
    servicer = SemanticSearchServicer(encoder, SemanticSearchService(store, embedder, limits=LIMITS))
    binding = ServiceBinding(SEARCH, lambda s: search_pb2_grpc.add_SemanticSearchServicer_to_server(servicer, s))
    server, port = await create_server(server_settings(var), [binding], {})
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield search_pb2_grpc.SemanticSearchStub(channel), store
    await channel.close()
    await server.stop()
    await triton.close()
    store.close()


def _messages(docs: list[search_pb2.SearchDocument], collection: str = ODD, per_message: int = 64
              ) -> Iterator[search_pb2.IndexDocumentsRequest]:
    for start in range(0, len(docs), per_message):
        yield search_pb2.IndexDocumentsRequest(collection=collection, documents=docs[start : start + per_message])


@pytest.fixture(scope="module")
def protos(slice_docs) -> list[search_pb2.SearchDocument]:
    """The real slice as SearchDocument messages."""
    return [document_to_proto(d) for d in slice_docs]


async def _count(stub, collection: str = ODD) -> int:
    reply = await stub.GetCollectionStats(search_pb2.GetCollectionStatsRequest(collection=collection), timeout=60)
    return reply.document_count


async def test_injection_and_awkward_ids_over_grpc(search, protos) -> None:
    """DeleteDocuments with the issue's injection id deletes nothing (it deleted 5 of 6); ids with
    an apostrophe, a backslash and a double quote (which poisoned the collection's statistics)
    index, count, are found by Search, and delete; more documents index afterwards."""
    stub, _ = search
    docs = [search_pb2.SearchDocument() for _ in range(3)] + list(protos[:6])
    for doc, doc_id, src in zip(docs[:3], ["O'Brien", "back\\slash", 'say "hi"'], protos[10:13], strict=True):
        doc.CopyFrom(src)
        doc.id = doc_id
    reply = await stub.IndexDocuments(_messages(docs), timeout=120)
    assert reply.documents_received == 9 and reply.collection_size == 9
    assert (await stub.DeleteDocuments(search_pb2.DeleteDocumentsRequest(collection=ODD, ids=[INJECTION]),
                                       timeout=60)).deleted_count == 0
    assert await _count(stub) == 9
    hits = await stub.Search(search_pb2.SearchRequest(collection=ODD, query=docs[0].text, top_k=9), timeout=60)
    assert {"O'Brien", "back\\slash", 'say "hi"'} <= {h.id for h in hits.hits}
    more = await stub.IndexDocuments(_messages(list(protos[6:10])), timeout=120)
    assert more.collection_size == 13
    deleted = await stub.DeleteDocuments(
        search_pb2.DeleteDocumentsRequest(collection=ODD, ids=["O'Brien", "back\\slash", 'say "hi"']), timeout=60)
    assert deleted.deleted_count == 3 and await _count(stub) == 10


@pytest.mark.parametrize(("field", "spoil"), [
    ("documents[140].kind", lambda d: setattr(d, "kind", "Litter\nbin")),
    ("documents[140].id", lambda d: setattr(d, "id", "")),
    ("documents[140].created_at", lambda d: d.ClearField("created_at")),
])
async def test_one_bad_document_at_140_stores_nothing_over_grpc(search, protos, field, spoil) -> None:
    """A stream of 150 (three messages) with one bad document at 140 is INVALID_ARGUMENT naming
    that document by stream position, a path that exists in IndexDocumentsRequest, and the
    collection's count does not change (128 of 150 were stored before)."""
    stub, _ = search
    await stub.IndexDocuments(_messages(list(protos[:3])), timeout=120)  # the collection exists
    before = await _count(stub)
    docs = list(protos[100:250])
    bad = search_pb2.SearchDocument()
    bad.CopyFrom(docs[140])
    spoil(bad)
    docs[140] = bad
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.IndexDocuments(_messages(docs), timeout=120)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = [v.field for v in bad_request(err.value).field_violations]
    assert fields == [field] and field_exists(search_pb2.IndexDocumentsRequest.DESCRIPTOR, field)
    assert await _count(stub) == before


async def test_stream_limit_over_grpc(search, protos) -> None:
    """One document past the stream limit (200 here) is INVALID_ARGUMENT on ``documents`` stating
    the limit, and nothing is stored."""
    stub, _ = search
    await stub.IndexDocuments(_messages(list(protos[:3])), timeout=120)
    before = await _count(stub)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.IndexDocuments(_messages(list(protos[:201])), timeout=120)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in bad_request(err.value).field_violations] == ["documents"]
    assert "at most 200 documents" in err.value.details()
    assert await _count(stub) == before


async def test_reads_of_unknown_collections_are_not_found_over_grpc(search, protos) -> None:
    """Search, GetCollectionStats and DeleteDocuments on an unknown collection are NOT_FOUND and
    leave the collection list unchanged; a new collection past max_collections (1 here) is
    RESOURCE_EXHAUSTED and is not created either."""
    stub, store = search
    await stub.IndexDocuments(_messages(list(protos[:3])), timeout=120)  # the collection exists
    before = sorted(store.list_collections())
    calls = [
        stub.Search(search_pb2.SearchRequest(collection="no_such", query="overflowing dumpster", top_k=5), timeout=60),
        stub.GetCollectionStats(search_pb2.GetCollectionStatsRequest(collection="no_such"), timeout=60),
        stub.DeleteDocuments(search_pb2.DeleteDocumentsRequest(collection="no_such", ids=["a"]), timeout=60),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert sorted(store.list_collections()) == before == [ODD]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        doc = search_pb2.SearchDocument(id="x", text="a bin", kind="k")
        doc.created_at.seconds = 1_430_000_000
        await stub.IndexDocuments(iter([search_pb2.IndexDocumentsRequest(collection="second", documents=[doc])]),
                                  timeout=60)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert sorted(store.list_collections()) == before


async def test_embed_limits_are_checked_before_triton(search) -> None:
    """Embed with more texts than the limit (4 here) or a text past the character limit (100) is
    INVALID_ARGUMENT naming the field; an acceptable call reaches (the down) Triton: UNAVAILABLE."""
    stub, _ = search
    cases = [(["a bin"] * 5, "texts"), (["ok", "x" * 101], "texts[1]")]
    for texts, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Embed(search_pb2.EmbedRequest(texts=texts), timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in bad_request(err.value).field_violations] == [field]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Embed(search_pb2.EmbedRequest(texts=["a bin"] * 4), timeout=30)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_echoed_input_stays_bounded(search) -> None:
    """A 20 KB collection name, encoder name or query gets its own code (INVALID_ARGUMENT), not
    RESOURCE_EXHAUSTED from an oversized error; an unknown 255-character name's NOT_FOUND
    message is short."""
    stub, _ = search
    huge = "a" * 20_000
    calls = [
        stub.GetCollectionStats(search_pb2.GetCollectionStatsRequest(collection=huge), timeout=30),
        stub.Search(search_pb2.SearchRequest(query=huge, top_k=5), timeout=30),
        stub.Embed(search_pb2.EmbedRequest(texts=["a bin"], model={"name": huge}), timeout=30),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetCollectionStats(search_pb2.GetCollectionStatsRequest(collection="b" * 255), timeout=30)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and len(err.value.details()) < 300
