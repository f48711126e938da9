"""The document-store port: what the search domain needs from a vector store.

``adapters.milvus.MilvusStore`` implements it (Milvus Lite or a Milvus server); tests may use
fakes. Methods are blocking (the service runs them with ``asyncio.to_thread``); a store that
is down raises ``UnavailableError("milvus", ...)``. Vectors are float32 unit vectors of the
store's ``dimension``; ``model`` is the encoder version that made them.

Reads never create a collection: every method but ``ensure_collection`` (and ``upsert``, which
ingestion calls after it) raises ``NotFoundError`` for a collection that does not exist, the
default collection excepted (a store may create that one on any call).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from wasteml_server.core.common import ModelRef
from wasteml_server.search.documents import CollectionStats, Document, Hit
from wasteml_server.search.filters import SearchFilters


class DocumentStore(Protocol):
    """Documents and their vectors, by collection (None = the default collection)."""

    default_collection: str
    dimension: int

    def ensure_collection(self, collection: str | None = None, *, create: bool = True) -> None:
        """Load the collection; create it first when missing and ``create`` (else
        ``NotFoundError``, unless it is the default collection)."""
        ...

    def has_collection(self, collection: str | None = None) -> bool:
        """Whether the collection exists (never creates it)."""
        ...

    def list_collections(self) -> list[str]:
        """Names of every collection of the back-end."""
        ...

    def get(self, ids: Sequence[str], collection: str | None = None, *, strong: bool = False) -> dict[str, Any]:
        """Stored rows of those ``ids`` that exist, by id (``strong``: see every completed write)."""
        ...

    def changed(self, docs: Sequence[Document], model: ModelRef, collection: str | None = None) -> list[bool]:
        """Per document: True when it is new or differs from its stored row."""
        ...

    def upsert(self, docs: Sequence[Document], vectors: np.ndarray, model: ModelRef,
               collection: str | None = None) -> int:
        """Write documents with their vectors; returns how many."""
        ...

    def flush(self, collection: str | None = None) -> None:
        """Make written rows durable and indexed."""
        ...

    def search(self, vector: np.ndarray, top_k: int, filters: SearchFilters | None = None,
               collection: str | None = None) -> list[Hit]:
        """The ``top_k`` closest documents passing ``filters``, best first."""
        ...

    def delete(self, ids: Sequence[str], collection: str | None = None) -> int:
        """Delete by id; returns how many existed."""
        ...

    def stats(self, collection: str | None = None) -> CollectionStats:
        """Size and configuration of a collection."""
        ...

    def count(self, collection: str | None = None, expr: str = "") -> int:
        """Rows of a collection (matching ``expr``)."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...
