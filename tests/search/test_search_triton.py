"""TritonEmbedder over the real local Triton: same vectors as in-process ONNX Runtime, a pinned
served version, and idempotent ingestion through Triton."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
from wasteml_testing import ENCODER_ONNX, REPO_ROOT, TRITON_ENV

from wasteml_models import TEXT_ENCODER
from wasteml_models.config import EncoderSignature
from wasteml_models.tokenizer import TextTokenizer
from wasteml_server.adapters.milvus import MilvusStore
from wasteml_server.core.common import ModelRef
from wasteml_server.search.embedding import TritonEmbedder
from wasteml_server.search.ingest import index_documents

ENCODER_SOURCE = REPO_ROOT / "model_repository" / TEXT_ENCODER


@pytest.fixture(scope="module")
def encoder_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository holding only the exported text encoder (version 1), linked, not copied."""
    if not (TRITON_ENV / ".wasteml-triton-env").is_file() or not ENCODER_ONNX.is_file():
        pytest.fail(f"needs {TRITON_ENV} (make triton-env) and {ENCODER_ONNX} (make models)")
    root = tmp_path_factory.mktemp("search_encoder_repo")
    (root / TEXT_ENCODER / "1").mkdir(parents=True)
    (root / TEXT_ENCODER / "config.pbtxt").write_text((ENCODER_SOURCE / "config.pbtxt").read_text())
    for name in ("model.onnx", "tokenizer.json"):
        (root / TEXT_ENCODER / "1" / name).symlink_to((ENCODER_SOURCE / "1" / name).resolve())
    return root


@pytest_asyncio.fixture(scope="module")
async def triton_embedder(encoder_repository: Path, tmp_path_factory: pytest.TempPathFactory):
    """TritonEmbedder over the server's TextEncoder on the real local Triton (CPU)."""
    from wasteml_server.adapters.triton.manager import LocalTriton
    from wasteml_server.core.settings import Settings
    from wasteml_server.search.encoder import TextEncoder

    settings = Settings(
        model_repository=encoder_repository,
        var_dir=tmp_path_factory.mktemp("search_triton_var"),
        triton_env_dir=TRITON_ENV,
        triton_startup_timeout_s=300,
        triton_stop_grace_s=2,
    )
    async with LocalTriton(settings) as local:
        tokenizer = TextTokenizer.from_repository(encoder_repository)
        signature = EncoderSignature.load(encoder_repository, TEXT_ENCODER)
        yield TritonEmbedder(TextEncoder(local.client, tokenizer, TEXT_ENCODER, signature))


async def test_triton_embedder_matches_onnx_and_ingests_idempotently(
    triton_embedder: TritonEmbedder, embedder, slice_docs, tmp_path
) -> None:
    """Vectors through Triton equal in-process ONNX Runtime to 1e-5; the served version is pinned
    before ingestion, so a second ingestion through Triton writes nothing."""
    assert await triton_embedder.resolve_version() == ModelRef(TEXT_ENCODER, 1)
    texts = sorted({d.text for d in slice_docs})[:40]
    np.testing.assert_allclose(await triton_embedder.embed(texts), embedder.embed_sync(texts), atol=1e-5)
    store = MilvusStore(
        str(tmp_path / "milvus.db"), collection="triton_ingest", timeout_s=30, dimension=triton_embedder.dimension
    )
    try:
        first = await index_documents(slice_docs[:100], store, triton_embedder, batch_size=64, in_flight=4)
        second = await index_documents(slice_docs[:100], store, triton_embedder, batch_size=64, in_flight=4)
        assert first.upserted == 100 and first.model == ModelRef(TEXT_ENCODER, 1)
        assert second.upserted == 0 and second.unchanged == 100
    finally:
        store.close()


async def test_query_embedding_cache_spares_triton_until_the_encoder_is_reloaded(
    triton_embedder: TritonEmbedder, slice_docs, tmp_path
) -> None:
    """A repeated query is answered from the cache (Triton sees no request, the vector is the
    same bytes); after ModelAdmin.LoadModel of the encoder the next query goes to Triton again."""
    from wasteml_server.adapters.cache import InProcessCache
    from wasteml_server.adapters.storage import Database, ModelRegistry, migrate
    from wasteml_server.admin.service import ModelAdmin
    from wasteml_server.search.filters import SearchFilters
    from wasteml_server.search.service import SemanticSearchService

    client = triton_embedder._encoder._server
    store = MilvusStore(str(tmp_path / "milvus.db"), collection="query_cache", timeout_s=30,
                        dimension=triton_embedder.dimension)
    search = SemanticSearchService(store, triton_embedder, query_cache=InProcessCache(), query_cache_ttl_s=60)

    url = f"sqlite:///{tmp_path / 'registry.db'}"
    migrate(url)
    db = Database(url)
    admin = ModelAdmin(client, ModelRegistry(db), on_change=search.model_changed)

    async def rows_inferred() -> int:
        return int((await client.model_statistics(TEXT_ENCODER)).get("inference_count", 0))

    try:
        await search.index_documents(slice_docs[:20])
        query = "overflowing dumpster behind the restaurant"
        start = await rows_inferred()
        first = await search.search(query, top_k=5)
        after_first = await rows_inferred()
        second = await search.search(query, top_k=5)
        many, model = await search.search_many(query, top_k=5, filters=[SearchFilters(), SearchFilters()])
        after_cached = await rows_inferred()
        assert after_first - start == 1
        assert after_cached == after_first
        assert [h.id for h in second.hits] == [h.id for h in first.hits] == [h.id for h in many[0]]
        assert second.model == first.model == model == ModelRef(TEXT_ENCODER, 1)

        await admin.load(TEXT_ENCODER)  # Triton's statistics restart with the reloaded model
        reloaded = await rows_inferred()
        third = await search.search(query, top_k=5)
        assert await rows_inferred() == reloaded + 1
        assert [h.id for h in third.hits] == [h.id for h in first.hits]
    finally:
        store.close()
        db.dispose()
