"""A real Milvus server process that dies or hangs mid-use: UnavailableError, then recovery."""

from __future__ import annotations

import time

import pytest

from wasteml_models import TEXT_ENCODER
from wasteml_server.adapters.milvus import MilvusStore
from wasteml_server.core.common import ModelRef
from wasteml_server.core.errors import UnavailableError

MODEL = ModelRef(TEXT_ENCODER, 1)


@pytest.fixture
def filled_store(milvus_server, slice_docs, slice_vectors, dimension):
    """A store with 100 real documents on the embedded server, timeout 3 s."""
    store = MilvusStore(
        milvus_server.uri, collection="outage", timeout_s=3.0, admin_timeout_s=120.0, dimension=dimension
    )
    store.drop_collection()
    store.upsert(slice_docs[:100], slice_vectors[:100], MODEL)
    store.flush()
    yield store
    if milvus_server.pid is None:
        milvus_server.start()
    store.drop_collection()
    store.close()


def _search_until_ok(store: MilvusStore, vector, deadline_s: float) -> list:
    end = time.monotonic() + deadline_s
    while True:
        try:
            return store.search(vector, 5)
        except UnavailableError:
            if time.monotonic() > end:
                raise
            time.sleep(1.0)


def test_killed_server_gives_unavailable_then_recovers(milvus_server, filled_store, slice_vectors) -> None:
    """Killing the server mid-use yields UnavailableError('milvus') quickly (no hang); after a
    restart on the same URI the same store object searches again."""
    before = [h.id for h in filled_store.search(slice_vectors[0], 5)]
    assert len(before) == 5
    milvus_server.kill()
    t0 = time.monotonic()
    with pytest.raises(UnavailableError) as err:
        filled_store.search(slice_vectors[0], 5)
    assert err.value.dependency == "milvus"
    assert time.monotonic() - t0 < filled_store.timeout_s + 2.0
    with pytest.raises(UnavailableError):
        filled_store.count()
    milvus_server.start()
    after = [h.id for h in _search_until_ok(filled_store, slice_vectors[0], 180.0)]
    assert after == before


def test_hung_server_times_out_instead_of_hanging(milvus_server, filled_store, slice_vectors) -> None:
    """A stopped (SIGSTOP) server makes a search fail with UnavailableError within about the
    timeout, and searches succeed again once it continues."""
    filled_store.search(slice_vectors[0], 5)
    milvus_server.pause()
    try:
        t0 = time.monotonic()
        with pytest.raises(UnavailableError):
            filled_store.search(slice_vectors[0], 5)
        assert time.monotonic() - t0 < filled_store.timeout_s + 5.0
    finally:
        milvus_server.resume()
    assert len(_search_until_ok(filled_store, slice_vectors[0], 120.0)) == 5


def test_unreachable_uri_is_unavailable(dimension) -> None:
    """A store pointed at a port where nothing listens raises UnavailableError, not a hang."""
    store = MilvusStore(
        "http://127.0.0.1:9", collection="nothing", timeout_s=2.0, admin_timeout_s=2.0, dimension=dimension
    )
    t0 = time.monotonic()
    with pytest.raises(UnavailableError):
        store.ensure_collection()
    assert time.monotonic() - t0 < 15.0
