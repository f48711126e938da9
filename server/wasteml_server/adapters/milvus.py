"""The Milvus document store: schema, indexes, upsert/delete/search, reconnects.

One :class:`MilvusStore` talks to one Milvus back-end through ``pymilvus.MilvusClient``:

- **Milvus Lite** (the default): ``uri`` is a local path ending in ``.db`` (``var/milvus.db``).
  milvus-lite 3.x runs in-process (a Python engine over faiss, served to pymilvus on a
  loopback gRPC port by a thread); it is not the C++ Milvus, so its latencies do not stand
  for a server's.
- **A Milvus server** (standalone or cluster): ``uri`` ``http://host:19530`` with an optional
  token (``user:password`` or an API key).

Schema (explicit, no dynamic fields): ``id`` VARCHAR(128) primary key; ``vector``
FLOAT_VECTOR(dimension), L2-normalised; ``text`` VARCHAR(8192); ``kind``, ``source`` VARCHAR(256);
``lat``, ``lon`` DOUBLE (WGS84 degrees, :data:`~wasteml_server.search.filters.NO_LOCATION_DEG`
when the document has none); ``created_at`` INT64 (epoch seconds, UTC); ``geo_fallback`` BOOL
(``location_approximate``); ``model`` VARCHAR(128) (``name:version`` of the encoder that made
the vector, so re-ingestion after a model change re-embeds).

Indexes:

- vector: metric COSINE (vectors are unit norm, so COSINE = IP; scores in -1..1), index type
  ``settings.milvus_index_type``: **FLAT (exact) by default**, HNSW (M = 16,
  efConstruction = 200) by setting. Why FLAT: the Boston 311 texts repeat a lot (6,680
  distinct texts in 20,832 documents, one of them 5,233 times) and exact duplicates collapse
  HNSW neighbourhoods; measured with ``search/evaluate.py`` over the 20,832 real documents,
  HNSW reached recall@10 0.755 (ef 64) / 0.797 (ef 512) against brute force on the Milvus 2.3
  server and only 0.53 on Milvus Lite 3.2 (faiss), and under selective filters returned fewer
  than top_k hits although more passed; FLAT had recall 1.0 at 3-8 ms per search on the server
  (20k vectors) and ~75 ms on Lite. HNSW remains the choice for large collections of mostly
  distinct texts (Milvus Lite 3.x offers FLAT, HNSW, HNSW_SQ, IVF_FLAT, IVF_SQ8; no IVF_PQ,
  DISKANN, SCANN; planning measured on 5k distinct embeddings FLAT 12 ms p50, HNSW (M 16,
  ef 64) 4 ms p50 at recall 0.995, IVF_FLAT nprobe 8 recall 0.84). M 16 / efConstruction 200
  are the middle settings of Malkov & Yashunin ("Efficient and robust approximate nearest
  neighbor search using HNSW graphs", TPAMI 2020: M 12-48). HNSW search-time ``ef`` is
  ``max(settings.milvus_hnsw_ef, limit)`` (Milvus requires ef >= limit). On Lite a filtered
  HNSW search divides that ef by the filter's selectivity (rows passing the expression / all
  rows, two ``count(*)`` queries): Lite's faiss HNSW skips filtered-out nodes during the walk
  with a fixed-size search list, so a selective filter otherwise loses hits (measured: 8 of 10
  on a 3 % slice).
- scalar: on ``kind``, ``source``, ``created_at``, ``lat``, ``lon``, the filter fields, by back-end:
  Milvus Lite and Milvus >= 2.4: INVERTED; Milvus 2.3 (the embedded ``milvus`` package):
  Trie for VARCHAR, STL_SORT for numbers (2.3 has no INVERTED and no BOOL index).
- Milvus Lite builds indexes on flushed data only (unflushed rows are brute-force scanned at
  ~2 s per query over 20k rows here), so :meth:`MilvusStore.flush` is called after ingestion.

Consistency level: searches use ``settings.milvus_consistency_level``, ``Bounded`` by default
(Milvus' default): a search may miss writes of the last few seconds (the graceful time) but
does not wait for every channel's time tick, which ``Strong`` does (~0.2 s per call measured on
the embedded Milvus 2.3). Row counts and the existence check before a delete use ``Strong`` so
that ``IndexDocuments``/``DeleteDocuments`` replies are exact. ``Session`` is not the default:
with pymilvus 3.0 against Milvus 2.3 a Session read did not see the client's own delete
(measured). Milvus Lite is immediately consistent whatever the level.

Collections: reads (search, count, get, delete, stats) never create one: an unknown name is
:class:`~wasteml_server.core.errors.NotFoundError`. ``ensure_collection`` (ingestion, server
start) creates; the store's default collection (``settings.milvus_collection``) is the one
that any call may create, so a fresh server, or one whose Milvus came back empty, serves it.

Expressions: pymilvus' own ``get(ids=)``, ``delete(ids=)`` and ``query_iterator`` write ids
into expressions unquoted (``id in ['...']``, ``id > "..."``), so an id holding a quote
changed or broke the expression. This store builds every expression itself with
:func:`~wasteml_server.search.filters.quote_string` (ids in chunks of :data:`ID_CHUNK`) and
pages by primary key with its own cursor (:meth:`MilvusStore.iterate`). Milvus Lite 3.2 has no
expression templates (``filter_params``), so quoting is the one way that holds on both
back-ends.

Failure handling: every pymilvus call carries a timeout (``timeout_s`` for data calls,
``admin_timeout_s`` for create/load/flush/drop, since loading takes longer than a search); a connection failure, an
RPC deadline or a server that is down raises :class:`~wasteml_server.core.errors.UnavailableError`
(``"milvus"``) and drops the client, and the next call connects afresh, so a restarted server
is used again without restarting this process. Milvus refusing an argument (``IllegalArgument``
/ ``ParameterInvalid``) is ``InvalidArgumentError`` on the request field it came from where the
value is the caller's (rows of ``upsert``: ``documents``), and ``InternalError`` where this
server built it (expressions, search parameters); any other Milvus error is ``InternalError``.
Methods are blocking; the async service runs them with ``asyncio.to_thread``.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import numpy as np
from pymilvus import DataType, MilvusClient, MilvusException

from wasteml_server.core.common import ModelRef
from wasteml_server.core.errors import (
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
    shown,
)
from wasteml_server.search.documents import (
    MAX_ID_BYTES,
    MAX_LABEL_BYTES,
    MAX_TEXT_BYTES,
    CollectionStats,
    Document,
    GeoPoint,
    Hit,
    epoch_s,
    from_epoch_s,
    validate_collection_name,
)
from wasteml_server.search.filters import (
    NO_LOCATION_DEG,
    SearchFilters,
    build_expression,
    in_expression,
    quote_string,
    within_radius,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: HNSW graph degree (Milvus ``M``); see the module docstring for the source.
HNSW_M = 16
#: HNSW build-time candidate list (Milvus ``efConstruction``).
HNSW_EF_CONSTRUCTION = 200
#: Similarity metric; on unit vectors COSINE equals IP and scores lie in -1..1.
METRIC = "COSINE"
#: Largest ``limit`` one Milvus search accepts (Milvus ``topk`` upper bound, 16384).
MILVUS_MAX_LIMIT = 16384
#: First over-fetch of a radius search, as a multiple of ``top_k`` (then x4 per round).
OVERFETCH_FACTOR = 4
#: Smallest first fetch of a radius search.
OVERFETCH_MIN = 64

#: Fields returned with every hit (all but the vector).
OUTPUT_FIELDS = ["text", "kind", "lat", "lon", "created_at", "source", "geo_fallback", "model"]
#: Fields that define "unchanged" for idempotent ingestion.
COMPARE_FIELDS = ("text", "kind", "lat", "lon", "created_at", "source", "geo_fallback", "model")

#: Milvus error codes of a collection that does not exist (100) or is not loaded (101).
_COLLECTION_GONE_CODES = (100, 101)
#: Milvus error codes of a refused argument: ``ParameterInvalid`` (1100) of Milvus >= 2.3 and
#: the legacy ``IllegalArgument`` (5, the ``compatible_code``); Milvus Lite 3.x answers 6.
_ILLEGAL_ARGUMENT_CODES = (1100, 5)
_LITE_ILLEGAL_ARGUMENT_CODE = 6
#: Legacy Milvus error codes (``compatible_code``) of a server that is there but not serving
#: now: NotShardLeader, NoReplicaAvailable, RateLimit, TimeTickLongDelay, NotReadyServe,
#: NotReadyCoordActivating (e.g. a query node that lost its channel after a stall); and the
#: Milvus >= 2.3 code of a channel not available (503). Clients may retry: UNAVAILABLE.
_TRANSIENT_LEGACY_CODES = (45, 46, 49, 55, 56, 57)
_TRANSIENT_CODES = (503,)
#: Ids per expression of a get or delete (``id in [...]``), so an expression stays small
#: (<= ~140 KB) and a query's result stays far below Milvus' 16384-row window.
ID_CHUNK = 1024
#: Longest Milvus message quoted in an error, characters.
_MILVUS_MESSAGE_CHARS = 200
#: Vector index types this store creates.
VECTOR_INDEX_TYPES = ("HNSW", "FLAT")
#: Valid Milvus consistency levels (pymilvus names).
CONSISTENCY_LEVELS = ("Strong", "Session", "Bounded", "Eventually")

def is_lite_uri(uri: str) -> bool:
    """True for a Milvus Lite URI (a local path ending in ``.db``), False for a server URI."""
    return not uri.startswith(("http://", "https://", "tcp://", "unix:", "grpc://")) and uri.endswith(
        ".db"
    )


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """A stored row without its vector, for idempotent re-ingestion and evaluation.

    Attributes:
        fields: the stored scalar fields (:data:`COMPARE_FIELDS`), as Milvus returns them.
    """

    id: str
    fields: dict[str, Any]


def document_row(doc: Document, vector: np.ndarray, model: ModelRef) -> dict[str, Any]:
    """The Milvus row of a document: scalar fields plus its float32 vector; ``model`` is stored
    as ``"name:version"`` (``str(ModelRef)``).

    ``created_at`` becomes floored epoch seconds; a missing location becomes
    :data:`NO_LOCATION_DEG` for both coordinates.
    """
    loc = doc.location
    return {
        "id": doc.id,
        "vector": np.asarray(vector, dtype=np.float32),
        "text": doc.text,
        "kind": doc.kind,
        "lat": float(loc.latitude_deg) if loc else NO_LOCATION_DEG,
        "lon": float(loc.longitude_deg) if loc else NO_LOCATION_DEG,
        "created_at": epoch_s(doc.created_at),
        "source": doc.source,
        "geo_fallback": bool(doc.location_approximate),
        "model": str(model),
    }


def _same(row: dict[str, Any], stored: dict[str, Any]) -> bool:
    for f in COMPARE_FIELDS:
        a, b = row[f], stored.get(f)
        if isinstance(a, float):
            if b is None or not math.isclose(a, float(b), rel_tol=0, abs_tol=1e-12):
                return False
        elif a != b:
            return False
    return True


class MilvusStore:
    """Documents and their vectors in Milvus (Lite file or server), one client, reconnecting.

    Args:
        uri: ``path/to/file.db`` (Milvus Lite) or ``http://host:port`` (server).
        token: server token (``user:password`` or API key); ``None`` for none.
        collection: default collection name (``settings.milvus_collection``).
        timeout_s: timeout of every data call (search, get, upsert, delete, count), seconds
            (``settings.milvus_timeout_s``).
        consistency_level: one of :data:`CONSISTENCY_LEVELS` (``settings.milvus_consistency_level``).
        hnsw_ef: HNSW search list size floor (``settings.milvus_hnsw_ef``); raised to the limit.
        admin_timeout_s: timeout of collection management calls (create, load, flush, drop),
            seconds (``settings.milvus_admin_timeout_s``; at least ``timeout_s``).
        index_type: vector index of collections this store creates, ``"FLAT"`` or ``"HNSW"``
            (``settings.milvus_index_type``); an existing collection keeps its index.
        dimension: vector dimension, the encoder's (``EncoderSignature.dimension``).

    Raises:
        ValueError: bad ``consistency_level`` or ``timeout_s`` <= 0.
    """

    def __init__(
        self,
        uri: str,
        *,
        token: str | None = None,
        collection: str = "service_requests",
        timeout_s: float = 10.0,
        consistency_level: str = "Bounded",
        hnsw_ef: int = 64,
        admin_timeout_s: float = 120.0,
        index_type: str = "FLAT",
        dimension: int,
    ) -> None:
        if consistency_level not in CONSISTENCY_LEVELS:
            raise ValueError(f"consistency_level must be one of {CONSISTENCY_LEVELS}")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        self.uri = uri
        self.lite = is_lite_uri(uri)
        self.backend = "milvus-lite" if self.lite else "milvus"
        self.default_collection = validate_collection_name(collection)
        self.timeout_s = float(timeout_s)
        self.admin_timeout_s = max(float(admin_timeout_s), self.timeout_s)
        self.consistency_level = consistency_level
        self.hnsw_ef = int(hnsw_ef)
        self.index_type = index_type.upper()
        if self.index_type not in VECTOR_INDEX_TYPES:
            raise ValueError(f"index_type must be one of {VECTOR_INDEX_TYPES}")
        if dimension < 1:
            raise ValueError("dimension must be >= 1")
        self.dimension = int(dimension)
        self._token = token
        self._client: MilvusClient | None = None
        self._lock = threading.Lock()
        #: Serialises collection creation: concurrent first calls (e.g. the planner's searches
        #: around 53 bins at once) must not both create the same collection.
        self._ensure_lock = threading.Lock()
        self._ready: set[str] = set()
        self._server_version: str | None = None

    @classmethod
    def from_settings(cls, settings: Any, dimension: int) -> MilvusStore:
        """A store configured from ``wasteml_server.core.settings.Settings``, for vectors of
        ``dimension``."""
        return cls(
            str(settings.milvus_uri),
            token=settings.milvus_token,
            collection=settings.milvus_collection,
            timeout_s=settings.milvus_timeout_s,
            consistency_level=settings.milvus_consistency_level,
            hnsw_ef=settings.milvus_hnsw_ef,
            admin_timeout_s=settings.milvus_admin_timeout_s,
            index_type=settings.milvus_index_type,
            dimension=dimension,
        )

    # --- connection ---------------------------------------------------------------------------

    def _connect(self) -> MilvusClient:
        with self._lock:
            if self._client is not None:
                return self._client
            if self.lite:
                from pathlib import Path

                Path(self.uri).parent.mkdir(parents=True, exist_ok=True)
            kwargs: dict[str, Any] = {"uri": self.uri, "timeout": self.timeout_s}
            if self._token:
                kwargs["token"] = self._token
            try:
                self._client = MilvusClient(**kwargs)
            except MilvusException as exc:
                raise UnavailableError("milvus", f"cannot connect to {self._safe_uri()}: {exc.message}") from exc
            except Exception as exc:  # grpc / socket errors while connecting
                raise UnavailableError("milvus", f"cannot connect to {self._safe_uri()}: {exc}") from exc
            self._ready.clear()  # a fresh connection re-checks collections (server may be new)
            return self._client

    def _safe_uri(self) -> str:
        return self.uri.split("@")[-1]

    def _drop_client(self, client: MilvusClient) -> None:
        with self._lock:
            if self._client is not client:
                return
            self._client = None
        try:
            if client is not None:
                client.close()
        except Exception:  # closing a broken channel may itself fail
            logger.debug("closing a broken Milvus client failed", exc_info=True)

    @staticmethod
    def _is_connectivity(exc: BaseException) -> bool:
        if isinstance(exc, grpc.RpcError):
            code = exc.code() if callable(getattr(exc, "code", None)) else None
            return code in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.StatusCode.CANCELLED,
            )
        if isinstance(exc, MilvusException):
            if (getattr(exc, "compatible_code", None) in _TRANSIENT_LEGACY_CODES
                    or getattr(exc, "code", None) in _TRANSIENT_CODES):
                return True
            text = (exc.message or "").lower()
            return any(
                s in text
                for s in (
                    "fail connecting",
                    "server unavailable",
                    "deadline exceeded",
                    "unavailable",
                    "connection refused",
                    "timeout",
                    "timed out",
                    "not ready",
                    "socket closed",
                )
            )
        return isinstance(exc, TimeoutError | ConnectionError)

    def _call(
        self,
        what: str,
        fn: Callable[[MilvusClient], T],
        collection: str | None = None,
        *,
        create: bool = False,
        field: str | None = None,
    ) -> T:
        """Run one Milvus operation, mapping its failures to domain errors.

        - an outage (connection, deadline, server down): ``UnavailableError("milvus")``, and the
          client is dropped so the next call reconnects;
        - with ``collection`` given, a collection that vanished or was released behind this
          store's back (dropped or released by another client, Milvus codes 100 and 101) is
          re-loaded (re-created only when ``create`` or it is the default collection, else
          ``NotFoundError``) once and the operation retried;
        - a refused argument: ``InvalidArgumentError(field, ...)`` when ``field`` names the
          request field the value came from, else ``InternalError`` (this server built it);
        - anything else from Milvus: ``InternalError``.
        """
        client = self._connect()
        try:
            return fn(client)
        except (MilvusException, grpc.RpcError, TimeoutError, ConnectionError) as exc:
            if self._is_connectivity(exc):
                self._drop_client(client)
                msg = getattr(exc, "message", None) or str(exc)
                raise UnavailableError("milvus", f"{what} failed: {msg}") from exc
            if collection is not None and getattr(exc, "code", None) in _COLLECTION_GONE_CODES:
                logger.warning("collection %s not found or not loaded; re-opening it", collection)
                self._ready.discard(collection)
                self.ensure_collection(collection, create=create)
                return self._call(what, fn, create=create, field=field)
            raise self._refused(what, exc, field) from exc

    def _refused(self, what: str, exc: BaseException, field: str | None) -> Exception:
        """The domain error for a Milvus error that is not an outage (see :meth:`_call`)."""
        message = str(getattr(exc, "message", None) or exc)
        if isinstance(exc, MilvusException) and self._is_illegal_argument(exc) and field is not None:
            return InvalidArgumentError(field, f"refused by Milvus: {shown(message, _MILVUS_MESSAGE_CHARS)}")
        return InternalError(f"milvus {what} failed: {message}")

    def _is_illegal_argument(self, exc: MilvusException) -> bool:
        codes = {getattr(exc, "code", None), getattr(exc, "compatible_code", None)}
        if self.lite and _LITE_ILLEGAL_ARGUMENT_CODE in codes:
            return True
        return any(c in codes for c in _ILLEGAL_ARGUMENT_CODES)

    def close(self) -> None:
        """Close the client (idempotent)."""
        client = self._client
        if client is not None:
            self._drop_client(client)

    def server_version(self) -> str:
        """Version string of the back-end, e.g. ``"v2.3.5-lite"`` or ``"milvus_lite-3.2.2"``."""
        if self._server_version is None:
            self._server_version = str(
                self._call("get_server_version", lambda c: c.get_server_version(timeout=self.timeout_s))
            )
        return self._server_version

    def _scalar_index_types(self) -> dict[str, str]:
        """Scalar index type per filter field for this back-end (see the module docstring)."""
        fields = ("kind", "source", "created_at", "lat", "lon")
        if self.lite:
            return dict.fromkeys(fields, "INVERTED")
        version = self.server_version().lstrip("v").split("-")[0]
        try:
            major, minor = (int(x) for x in version.split(".")[:2])
        except ValueError:
            major, minor = (2, 4)
        if (major, minor) < (2, 4):
            return {
                "kind": "Trie",
                "source": "Trie",
                "created_at": "STL_SORT",
                "lat": "STL_SORT",
                "lon": "STL_SORT",
            }
        return dict.fromkeys(fields, "INVERTED")

    # --- collection -----------------------------------------------------------------------

    def _name(self, collection: str | None) -> str:
        return self.default_collection if not collection else validate_collection_name(collection)

    def ensure_collection(self, collection: str | None = None, *, create: bool = True) -> None:
        """Load the collection, creating it with its schema and indexes first if missing and
        allowed.

        Idempotent; an existing collection is loaded (a restarted Lite file or server may hold
        it released).

        Args:
            collection: the collection; default the store's.
            create: create it when missing (ingestion, server start). Reads pass False: a
                missing collection other than the default one is then ``NotFoundError``.

        Raises:
            NotFoundError: missing, ``create`` is False and it is not the default collection.
            UnavailableError: Milvus is down.
            FailedPreconditionError: a collection of that name exists with a different vector
                dimension.
        """
        name = self._name(collection)
        if name in self._ready and self._client is not None:
            return
        t = self.admin_timeout_s
        creatable = create or name == self.default_collection

        def run(c: MilvusClient) -> None:
            if not c.has_collection(name, timeout=t):
                if not creatable:
                    raise NotFoundError(f"collection {shown(name)} does not exist "
                                        "(IndexDocuments creates a collection)")
                schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
                schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=MAX_ID_BYTES)
                schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dimension)
                schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT_BYTES)
                schema.add_field("kind", DataType.VARCHAR, max_length=MAX_LABEL_BYTES)
                schema.add_field("source", DataType.VARCHAR, max_length=MAX_LABEL_BYTES)
                schema.add_field("lat", DataType.DOUBLE)
                schema.add_field("lon", DataType.DOUBLE)
                schema.add_field("created_at", DataType.INT64)
                schema.add_field("geo_fallback", DataType.BOOL)
                schema.add_field("model", DataType.VARCHAR, max_length=128)
                params = c.prepare_index_params()
                if self.index_type == "HNSW":
                    vparams: dict[str, Any] = {"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION}
                else:
                    vparams = {}
                params.add_index(
                    "vector", index_type=self.index_type, metric_type=METRIC, params=vparams
                )
                for field_name, index_type in self._scalar_index_types().items():
                    params.add_index(field_name, index_type=index_type, index_name=f"{field_name}_idx")
                c.create_collection(
                    name,
                    schema=schema,
                    index_params=params,
                    consistency_level=self.consistency_level,
                    timeout=t,
                )
                logger.info("created Milvus collection %s on %s", name, self.backend)
            else:
                desc = c.describe_collection(name, timeout=t)
                dims = [
                    int(f.get("params", {}).get("dim", 0))
                    for f in desc.get("fields", [])
                    if f.get("name") == "vector"
                ]
                if dims != [self.dimension]:
                    raise FailedPreconditionError(
                        f"collection {shown(name)} exists with vector dimension {dims}, "
                        f"expected {self.dimension}"
                    )
            c.load_collection(name, timeout=t)

        with self._ensure_lock:
            if name in self._ready and self._client is not None:
                return
            self._call("ensure_collection", run, field="collection")
            self._ready.add(name)

    def has_collection(self, collection: str | None = None) -> bool:
        """Whether the collection exists (never creates it).

        Raises:
            UnavailableError: Milvus is down.
        """
        name = self._name(collection)
        return bool(self._call("has_collection", lambda c: c.has_collection(name, timeout=self.admin_timeout_s)))

    def list_collections(self) -> list[str]:
        """Names of every collection in the back-end.

        Raises:
            UnavailableError: Milvus is down.
        """
        return [str(n) for n in self._call("list_collections",
                                           lambda c: c.list_collections(timeout=self.admin_timeout_s))]

    def drop_collection(self, collection: str | None = None) -> None:
        """Drop the collection if it exists (tests, benchmarks, re-ingestion from scratch)."""
        name = self._name(collection)
        self._call(
            "drop_collection",
            lambda c: c.drop_collection(name, timeout=self.admin_timeout_s)
            if c.has_collection(name, timeout=self.admin_timeout_s)
            else None,
        )
        self._ready.discard(name)

    def flush(self, collection: str | None = None) -> None:
        """Seal written rows so indexes are built on them (Milvus Lite indexes flushed data only).

        Raises:
            NotFoundError: the collection does not exist (and is not the default one).
            UnavailableError: Milvus is down.
        """
        name = self._name(collection)
        self.ensure_collection(name, create=False)
        self._call("flush", lambda c: c.flush(name, timeout=self.admin_timeout_s), name)

    # --- writes ---------------------------------------------------------------------------

    def upsert(
        self,
        docs: Sequence[Document],
        vectors: np.ndarray,
        model: ModelRef,
        collection: str | None = None,
    ) -> int:
        """Insert or replace documents by id (idempotent).

        Args:
            docs: n validated documents with distinct ids.
            vectors: float32 ``[n, dimension]``, unit norm (cosine).
            model: ``name:version`` of the encoder that produced ``vectors``.
            collection: target collection; default the store's.

        Returns:
            number of rows upserted (n).

        Raises:
            InternalError: ``vectors`` has the wrong shape (the caller's embedding is wrong).
            InvalidArgumentError: Milvus refused a row (field ``documents``; rows are validated
                by ``documents.validate_documents`` first, so this means a rule of the back-end
                that validation does not know).
            UnavailableError: Milvus is down.
        """
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (len(docs), self.dimension):
            raise InternalError(f"upsert: vectors must be [{len(docs)}, {self.dimension}], "
                                f"got {list(vectors.shape)}")
        if not docs:
            return 0
        name = self._name(collection)
        self.ensure_collection(name)
        rows = [document_row(d, v, model) for d, v in zip(docs, vectors, strict=True)]
        res = self._call("upsert", lambda c: c.upsert(name, rows, timeout=self.timeout_s), name,
                         create=True, field="documents")
        return int(res.get("upsert_count", len(rows)) if isinstance(res, dict) else len(rows))

    def changed(
        self, docs: Sequence[Document], model: ModelRef, collection: str | None = None
    ) -> list[bool]:
        """For each document, whether it differs from the stored row (or is not stored).

        Used by idempotent ingestion to skip embedding and writing unchanged documents.

        Raises:
            UnavailableError: Milvus is down.
        """
        if not docs:
            return []
        stored = self.get([d.id for d in docs], collection)
        out = []
        for d in docs:
            s = stored.get(d.id)
            out.append(s is None or not _same(document_row(d, np.zeros(0), model), s.fields))
        return out

    def get(
        self, ids: Sequence[str], collection: str | None = None, *, strong: bool = False
    ) -> dict[str, StoredDocument]:
        """Stored rows (without vectors) of the given ids that exist.

        Ids go into ``id in [...]`` expressions through ``quote_string``, :data:`ID_CHUNK` per
        query, so any string is looked up as itself. ``strong=True`` reads at Strong
        consistency (sees every completed write); otherwise at the store's level.

        Raises:
            NotFoundError: the collection does not exist (and is not the default one).
            UnavailableError: Milvus is down.
        """
        if not ids:
            return {}
        name = self._name(collection)
        self.ensure_collection(name, create=False)
        level = "Strong" if strong else self.consistency_level
        wanted = list(dict.fromkeys(ids))
        out = {}
        for start in range(0, len(wanted), ID_CHUNK):
            expr = in_expression("id", wanted[start : start + ID_CHUNK])

            def query(c: MilvusClient, expr: str = expr) -> list[dict[str, Any]]:
                return list(c.query(name, filter=expr, output_fields=OUTPUT_FIELDS,
                                    consistency_level=level, timeout=self.timeout_s))

            for row in self._call("get", query, name):
                row = dict(row)
                rid = str(row.pop("id"))
                out[rid] = StoredDocument(rid, row)
        return out

    def delete(self, ids: Sequence[str], collection: str | None = None) -> int:
        """Delete documents by id; unknown ids are ignored.

        The ids that exist are found with a Strong ``get`` first, then deleted by a quoted
        ``id in [...]`` expression (:data:`ID_CHUNK` per call), so an id is only ever itself.

        Returns:
            the number of ids that existed and were deleted (counted with the ``get``, since
            Milvus 2.3 reports the number of ids sent, not the rows removed).

        Raises:
            NotFoundError: the collection does not exist (and is not the default one).
            UnavailableError: Milvus is down.
        """
        if not ids:
            return 0
        name = self._name(collection)
        existing = list(self.get(ids, name, strong=True))
        for start in range(0, len(existing), ID_CHUNK):
            expr = in_expression("id", existing[start : start + ID_CHUNK])

            def delete(c: MilvusClient, expr: str = expr) -> object:
                return c.delete(name, filter=expr, timeout=self.timeout_s)

            self._call("delete", delete, name)
        return len(existing)

    # --- reads ----------------------------------------------------------------------------

    def _hit(self, raw: dict[str, Any], distance_m: float | None) -> Hit:
        e = raw.get("entity", raw)
        lat, lon = float(e["lat"]), float(e["lon"])
        located = abs(lat) <= 90.0 and abs(lon) <= 180.0
        return Hit(
            id=str(raw.get("id", e.get("id"))),
            score=float(raw["distance"]),
            text=e["text"],
            kind=e["kind"],
            location=GeoPoint(lat, lon) if located else None,
            created_at=from_epoch_s(e["created_at"]),
            source=e["source"],
            location_approximate=bool(e["geo_fallback"]),
            distance_m=distance_m,
        )

    def search(
        self,
        vector: np.ndarray,
        top_k: int,
        filters: SearchFilters | None = None,
        collection: str | None = None,
    ) -> list[Hit]:
        """The ``top_k`` stored documents most similar to ``vector`` that pass ``filters``.

        Kinds, sources, time and bounding box are pushed into the Milvus expression. A radius
        filter pushes its enclosing box and checks each candidate exactly (haversine); the
        fetch grows (``max(4 top_k, 64)``, then x4) until ``top_k`` candidates pass, the slice
        is exhausted (Milvus returned fewer than asked) or Milvus' limit of 16384 is reached;
        in that last case fewer than ``top_k`` hits may come back although more exist (a
        warning is logged). ``min_score`` stops the growth once a returned score is below it.

        Args:
            vector: float32 ``[dimension]`` query embedding, unit norm.
            top_k: 1..1000 hits wanted (validated by the caller).
            filters: validated filters or ``None``.
            collection: collection to search; default the store's.

        Returns:
            hits by descending score (cosine similarity, -1..1); ``distance_m`` set for
            radius searches.

        Raises:
            NotFoundError: the collection does not exist (and is not the default one).
            UnavailableError: Milvus is down or did not answer within ``timeout_s``.
        """
        name = self._name(collection)
        self.ensure_collection(name, create=False)
        q = np.asarray(vector, dtype=np.float32).reshape(-1)
        expr = build_expression(filters)
        circle = filters.radius if filters is not None else None
        min_score = filters.min_score if filters is not None else None
        fetch = top_k if circle is None else min(max(top_k * OVERFETCH_FACTOR, OVERFETCH_MIN), MILVUS_MAX_LIMIT)
        selectivity = 1.0
        slice_rows: int | None = None
        if self.lite and expr and self.index_type == "HNSW":
            # faiss HNSW in Lite skips filtered-out nodes during the walk but keeps the search
            # list at ef, so a selective filter starves it (measured: 8 of 10 hits on a 3 %
            # slice). Widen ef by 1/selectivity; the count also tells when the slice is done.
            slice_rows = self.count(name, expr)
            if slice_rows == 0:
                return []
            selectivity = slice_rows / max(1, self.count(name))
        while True:
            limit = fetch
            ef = max(self.hnsw_ef, limit)
            if selectivity < 1.0:
                ef = math.ceil(ef / selectivity)

            def run(c: MilvusClient, limit: int = limit, ef: int = ef) -> list[dict[str, Any]]:
                res = c.search(
                    name,
                    data=[q],
                    limit=limit,
                    filter=expr,
                    output_fields=OUTPUT_FIELDS,
                    search_params={"metric_type": METRIC, "params": {"ef": ef}},
                    consistency_level=self.consistency_level,
                    timeout=self.timeout_s,
                )
                return list(res[0]) if res else []

            raw = self._call("search", run, name)
            hits: list[Hit] = []
            below_min = False
            for r in raw:
                if min_score is not None and float(r["distance"]) < min_score:
                    below_min = True
                    break
                dist = None
                if circle is not None:
                    e = r.get("entity", r)
                    inside, dist = within_radius(circle, float(e["lat"]), float(e["lon"]))
                    if not inside:
                        continue
                hits.append(self._hit(r, dist))
                if len(hits) == top_k:
                    break
            exhausted = len(raw) < limit or (slice_rows is not None and limit >= slice_rows)
            if len(hits) >= top_k or exhausted or below_min or circle is None:
                return hits
            if fetch >= MILVUS_MAX_LIMIT:
                logger.warning(
                    "radius search stopped at Milvus' limit of %d candidates with %d/%d hits",
                    MILVUS_MAX_LIMIT,
                    len(hits),
                    top_k,
                )
                return hits
            fetch = min(fetch * OVERFETCH_FACTOR, MILVUS_MAX_LIMIT)

    def count(self, collection: str | None = None, expr: str = "") -> int:
        """Exact number of rows (``count(*)``), optionally of those matching ``expr`` (an
        expression this server built, e.g. by ``filters.build_expression``).

        Raises:
            NotFoundError: the collection does not exist (and is not the default one).
            UnavailableError: Milvus is down.
        """
        name = self._name(collection)
        self.ensure_collection(name, create=False)
        res = self._call(
            "count",
            lambda c: c.query(
                name,
                filter=expr,
                output_fields=["count(*)"],
                consistency_level="Strong",
                timeout=self.timeout_s,
            ),
            name,
        )
        return int(res[0]["count(*)"])

    def iterate(
        self,
        collection: str | None = None,
        output_fields: Sequence[str] = ("kind",),
        batch_size: int = 4096,
    ) -> list[dict[str, Any]]:
        """Every row's ``output_fields`` (plus ``id``), paged by primary key.

        Pages are ``id > <last id>`` queries in primary-key order (``iterator`` query
        parameter, as pymilvus' own iterator asks), ``batch_size`` rows each, until one comes
        back empty; the cursor is quoted by ``quote_string``, so any stored id pages correctly
        (pymilvus' ``query_iterator`` writes it unquoted, and one id holding ``"`` broke every
        later statistics call). Meant for statistics and evaluation (tens of thousands of
        rows), not for requests.

        Raises:
            NotFoundError: the collection does not exist (and is not the default one).
            UnavailableError: Milvus is down.
        """
        name = self._name(collection)
        self.ensure_collection(name, create=False)
        fields = list(dict.fromkeys(["id", *output_fields]))
        rows: list[dict[str, Any]] = []
        last: str | None = None
        while True:
            expr = "" if last is None else f"id > {quote_string(last)}"

            def page(c: MilvusClient, expr: str = expr) -> list[dict[str, Any]]:
                return [dict(r) for r in c.query(
                    name,
                    filter=expr,
                    output_fields=fields,
                    limit=batch_size,
                    iterator="True",
                    consistency_level=self.consistency_level,
                    timeout=self.timeout_s,
                )]

            batch = self._call("query_page", page, name)
            if not batch:
                return rows
            rows.extend(batch)
            last = max(str(r["id"]) for r in batch)

    def stats(self, collection: str | None = None) -> CollectionStats:
        """Row count, index configuration and per-kind / per-model counts of a collection.

        Raises:
            NotFoundError: the collection does not exist (and is not the default one).
            UnavailableError: Milvus is down.
        """
        name = self._name(collection)
        self.ensure_collection(name, create=False)
        count = self.count(name)
        rows = self.iterate(name, ("kind", "model"))
        index = self._call(
            "describe_index", lambda c: c.describe_index(name, "vector", timeout=self.timeout_s), name
        ) or {}
        params = {
            k: str(v)
            for k, v in index.items()
            if k in ("M", "efConstruction", "nlist", "params")
        }
        return CollectionStats(
            collection=name,
            document_count=count,
            dimension=self.dimension,
            index_type=str(index.get("index_type", "")),
            metric_type=str(index.get("metric_type", METRIC)),
            backend=self.backend,
            consistency_level=self.consistency_level,
            documents_by_kind=dict(Counter(r["kind"] for r in rows)),
            embedding_models=dict(Counter(ModelRef.parse(r["model"]) for r in rows)),
            index_params=params,
            server_version=self.server_version(),
        )
