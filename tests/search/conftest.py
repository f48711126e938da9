"""Fixtures of the search tests: a real slice of Boston 311, the real ONNX text encoder (texts
embedded once per session), Milvus Lite files and one embedded Milvus 2.3 server process."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from wasteml_testing import DATA_DIR, ENCODER_ONNX, REPO_ROOT

from wasteml_models import TEXT_ENCODER
from wasteml_models.config import EncoderSignature
from wasteml_server.adapters.milvus import MilvusStore
from wasteml_server.search.documents import Document
from wasteml_server.search.embedding import OnnxEmbedder
from wasteml_tools.search.boston311 import BOSTON_311_FILE, read_boston_311, stratified_slice

BOSTON_CSV = DATA_DIR / BOSTON_311_FILE
#: Documents per case type in the test slice (15 types -> <= 300 documents).
PER_KIND = 20


@pytest.fixture(scope="session")
def boston_docs() -> list[Document]:
    """All 20,832 real Boston 311 documents (parsing takes ~3 s)."""
    if not BOSTON_CSV.is_file():
        pytest.skip(f"real data missing: {BOSTON_CSV}")
    return list(read_boston_311(BOSTON_CSV))


@pytest.fixture(scope="session")
def slice_docs(boston_docs: list[Document]) -> list[Document]:
    """A real slice: up to 20 documents per case type, plus 10 City Hall fallback documents."""
    docs = stratified_slice(boston_docs, PER_KIND)
    ids = {d.id for d in docs}
    fallback = [d for d in boston_docs if d.location_approximate and d.id not in ids][:10]
    return docs + fallback


@pytest.fixture(scope="session")
def dimension() -> int:
    """The text encoder's embedding dimension, as its ``config.pbtxt`` states it."""
    return EncoderSignature.load(REPO_ROOT / "model_repository", TEXT_ENCODER).dimension


@pytest.fixture(scope="session")
def embedder() -> OnnxEmbedder:
    """The exported all-MiniLM-L6-v2 ONNX graph in ONNX Runtime (needs the export to have run)."""
    if not ENCODER_ONNX.is_file():
        pytest.fail(f"{ENCODER_ONNX} missing: run `make models` (python -m wasteml_export text-encoder)")
    return OnnxEmbedder(ENCODER_ONNX, threads=2)


@pytest.fixture(scope="session")
def slice_vectors(slice_docs: list[Document], embedder: OnnxEmbedder) -> np.ndarray:
    """float32 [n, dimension] embeddings of the slice's texts, computed once per session."""
    texts = sorted({d.text for d in slice_docs})
    vecs = embedder.embed_sync(texts)
    row = {t: i for i, t in enumerate(texts)}
    return vecs[[row[d.text] for d in slice_docs]]


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One real Milvus 2.3 standalone process (PyPI ``milvus``) on loopback for the session."""
    if importlib.util.find_spec("milvus") is None:
        pytest.skip("PyPI package 'milvus' (embedded Milvus server) is not installed")
    from wasteml_tools.search.milvus_server import EmbeddedMilvus

    data = tmp_path_factory.mktemp("milvus-server")
    server = EmbeddedMilvus(data, startup_timeout_s=180)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def lite_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Milvus Lite file for the session (collections are per test)."""
    return tmp_path_factory.mktemp("milvus-lite") / "milvus.db"


@pytest.fixture(params=["lite", "server"])
def store_factory(request: pytest.FixtureRequest, lite_path: Path, dimension: int):
    """Makes a ``MilvusStore`` on Milvus Lite (FLAT, the default index) or on the embedded server
    (HNSW), with a fresh collection named after the test; collections are dropped afterwards."""
    made: list[MilvusStore] = []

    def make(collection: str | None = None, **kwargs: object) -> MilvusStore:
        if request.param == "lite":
            uri = str(lite_path)  # default index (FLAT)
        else:
            uri = request.getfixturevalue("milvus_server").uri
            kwargs.setdefault("index_type", "HNSW")  # prove the server's HNSW path
        name = collection or ("t_" + "".join(c if c.isalnum() else "_" for c in request.node.name))[:200]
        kwargs.setdefault("consistency_level", "Strong")
        kwargs.setdefault("dimension", dimension)
        store = MilvusStore(uri, collection=name, timeout_s=30, **kwargs)
        store.drop_collection()
        made.append(store)
        return store

    make.backend = request.param  # type: ignore[attr-defined]
    yield make
    for s in made:
        try:
            s.drop_collection()
        finally:
            s.close()
