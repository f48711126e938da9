"""Server settings, read from ``WASTEML_*`` environment variables (pydantic-settings).

This is the one place where environment knobs live: every other module receives a
``Settings`` instance (or the values it needs) instead of reading ``os.environ``.
Relative paths are resolved against the current working directory, which is the
repository root for the Makefile targets.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """All settings of the orchestration server; each field maps to ``WASTEML_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix="WASTEML_", env_file=None, extra="ignore", use_attribute_docstrings=True
    )

    # --- gRPC server -------------------------------------------------------------------------
    host: str = "127.0.0.1"
    """Interface the gRPC server binds to. ``0.0.0.0`` in containers, loopback locally."""

    port: int = Field(50051, ge=0, le=65535)
    """TCP port of the gRPC server; 0 picks a free port (tests)."""

    max_message_bytes: int = Field(16 * 1024 * 1024, gt=0, le=256 * 1024 * 1024)
    """Largest gRPC message accepted or sent, in bytes (both directions). Never unlimited."""

    keepalive_time_s: float = Field(30.0, gt=0)
    """Interval between HTTP/2 keepalive pings sent by the server, in seconds."""

    keepalive_timeout_s: float = Field(10.0, gt=0)
    """How long the server waits for a keepalive ping ack before closing the connection, seconds."""

    max_concurrent_rpcs: int = Field(256, gt=0)
    """Most API calls handled at once (streaming ones included; health and reflection not
    counted, see the transport limits); further calls get RESOURCE_EXHAUSTED stating the limit."""

    default_deadline_s: float = Field(60.0, gt=0)
    """Deadline applied to unary calls that arrive without one, in seconds."""

    max_deadline_s: float = Field(900.0, gt=0)
    """Longest deadline honoured; longer client deadlines are clamped to this, seconds."""

    shutdown_grace_s: float = Field(10.0, ge=0)
    """On SIGTERM, how long in-flight calls may run to completion before they are cancelled, s."""

    auth_token: str | None = None
    """Bearer token required in the ``authorization`` metadata; unset disables auth (local runs)."""

    metrics_port: int | None = Field(None, ge=0, le=65535)
    """Port of the Prometheus ``/metrics`` HTTP endpoint; unset disables it, 0 picks a free port."""

    log_level: str = "INFO"
    """Python logging level for the server (DEBUG, INFO, WARNING, ERROR)."""

    # --- Limits: transport ---
    max_concurrent_streams: int = Field(128, gt=0)
    """Most streaming API calls (WatchJob, PlanDay, IndexDocuments) in flight at once from all
    clients; beyond, RESOURCE_EXHAUSTED. They count against ``max_concurrent_rpcs`` too: keep
    this below it so unary calls always find room (default 128 of 256)."""

    max_streams_per_peer: int = Field(32, gt=0)
    """Most streaming API calls in flight at once from one client address (all its
    connections; behind a proxy every client is the proxy); default 32."""

    max_health_streams: int = Field(128, gt=0)
    """Most ``grpc.health.v1.Health/Watch`` and reflection streams open at once from all
    clients (default 128). They need no token and never take an API slot; ``Health/Check``
    is never capped."""

    max_health_streams_per_peer: int = Field(16, gt=0)
    """Most Health/Watch and reflection streams open at once from one client address (default 16)."""

    max_health_request_bytes: int = Field(4096, gt=0)
    """Largest request message of a health or reflection call, bytes (default 4096); larger
    ones get INVALID_ARGUMENT before they are parsed."""

    keepalive_min_ping_interval_s: float = Field(10.0, gt=0)
    """Keepalive enforcement: shortest interval between client pings on a connection without
    data that the server tolerates, seconds (``grpc.http2.min_ping_interval_without_data_ms``;
    default 10 s; grpc's own default is 5 min). Clients' keepalive time must be at least this."""

    keepalive_max_ping_strikes: int = Field(2, ge=0)
    """Keepalive enforcement: pings too early that the server bears before it sends GOAWAY
    ``too_many_pings`` and closes the connection (``grpc.http2.max_ping_strikes``; default 2;
    0 = unlimited)."""

    max_connection_idle_s: float = Field(300.0, gt=0)
    """A connection without calls for this long is closed with GOAWAY, seconds
    (``grpc.max_connection_idle_ms``; default 300 s). Clients reconnect transparently."""

    max_connection_age_s: float = Field(1800.0, gt=0)
    """A connection older than this (±10 % jitter) gets GOAWAY: new calls go to a new
    connection, seconds (``grpc.max_connection_age_ms``; default 1800 s). Bounds how long one
    connection (and the streams on it) can live, and spreads clients over replicas."""

    max_connection_age_grace_s: float = Field(900.0, ge=0)
    """After ``max_connection_age_s``, how long calls still running on the old connection may
    finish before it is closed, seconds (``grpc.max_connection_age_grace_ms``; default 900 s =
    ``max_deadline_s``, so no call within its deadline is cut; Health/Watch streams are)."""

    handshake_timeout_s: float = Field(10.0, gt=0)
    """A new connection that has not completed its HTTP/2 (or TLS) handshake after this long is
    closed, seconds (``grpc.server_handshake_timeout_ms``; default 10 s, grpc's is 120 s)."""

    reflection: bool | None = None
    """Serve gRPC server reflection. Unset (default): on when ``host`` is a loopback address
    (``127.0.0.1``, ``::1``, ``localhost``), off otherwise (e.g. ``0.0.0.0`` in containers);
    ``true``/``false`` force it."""

    # --- Triton ------------------------------------------------------------------------------
    triton_url: str | None = None
    """``host:port`` of an external Triton gRPC endpoint. Unset: start the bundled local Triton."""

    model_repository: Path = Path("model_repository")
    """The production Triton model repository (config.pbtxt per model, versions built by export/)."""

    triton_env_dir: Path = Path(".venv-triton")
    """Virtual environment holding nvidia-pytriton (the Triton binary) and the Python-backend
    execution environment (numpy<2, onnxruntime) used by the local Triton."""

    triton_startup_timeout_s: float = Field(120.0, gt=0)
    """How long to wait for the local Triton to report ready, in seconds."""

    triton_instance_count: int = Field(2, ge=1)
    """Instances per model in the local CPU Triton (each runs ONNX Runtime with one thread)."""

    triton_timeout_s: float = Field(30.0, gt=0)
    """Client-side timeout of one Triton inference call when the caller has no deadline, s."""

    triton_stop_grace_s: float = Field(10.0, ge=0)
    """On stop, how long the local Triton may drain in-flight requests after SIGTERM
    (also its ``--exit-timeout-secs``) before it and its Python stubs are killed, seconds."""

    # --- Limits: forecasting ---
    forecast_max_bins: int = Field(4096, ge=1, le=1_000_000)
    """Most bins per PredictFillLevel call, and per fill prediction of a PlanDay (default 4096);
    more get INVALID_ARGUMENT on ``bins`` before any bin is decoded."""

    forecast_max_readings_per_bin: int = Field(1024, ge=1, le=1_000_000)
    """Most ``recent_readings`` of one bin in a fill prediction (default 1024: 14 days, the
    model's horizon, of readings every 20 minutes; only the last 14 days are used)."""

    forecast_max_readings: int = Field(131_072, ge=1, le=100_000_000)
    """Most ``recent_readings`` of all bins of one fill prediction together (default 131072,
    about 2.6 MB of request); checked before any reading is decoded."""

    forecast_max_bin_id_chars: int = Field(256, ge=1, le=65_536)
    """Longest ``bin_id`` of a fill prediction, characters (default 256); ids are echoed in the
    reply and written to the prediction audit."""

    forecast_max_quantiles: int = Field(99, ge=1, le=10_000)
    """Most quantile levels per ForecastDemand call (default 99, every percentile 0.01..0.99);
    the reply holds one value per level and horizon step."""

    # --- storage -----------------------------------------------------------------------------
    database_url: str = "sqlite:///var/wasteml.db"
    """SQLAlchemy URL of the SQL store (model registry, prediction audit, jobs, plans).
    E.g. ``postgresql+psycopg://user@127.0.0.1:5432/wasteml`` in production."""

    var_dir: Path = Path("var")
    """Directory for local runtime state: SQLite file, Milvus Lite file, rendered CPU model
    repository, logs."""

    data_dir: Path = Path("../shared/data")
    """Directory of the real data sets (Boston 311, Austin collection, Blantyre skips, VRP)."""

    redis_url: str | None = None
    """Redis URL for the shared cache (e.g. ``redis://127.0.0.1:6379/0``); unset: in-process cache.
    The cache holds query embeddings (``query_cache_ttl_s``); a Redis that is down reads as
    misses (logged, and counted in ``wasteml_cache_requests_total{result="error"}``)."""

    database_connect_timeout_s: float = Field(5.0, gt=0)
    """Bound on opening a connection to a server database (PostgreSQL) and on waiting for a
    pooled connection, seconds; past it a call fails with UNAVAILABLE."""

    sqlite_busy_timeout_s: float = Field(5.0, gt=0)
    """How long a SQLite write waits for a competing writer's lock, seconds."""

    audit_queue_size: int = Field(10_000, ge=1)
    """Prediction-audit entries that may wait to be written; beyond this they are dropped and
    counted (``wasteml_audit_dropped_total``) rather than slowing replies."""

    audit_batch_size: int = Field(500, ge=1)
    """Most prediction-audit rows written in one insert statement."""

    query_cache_ttl_s: float = Field(3600.0, ge=0)
    """Lifetime of a cached query embedding (Search, and PlanDay's complaint query), seconds;
    0 turns the cache off. Entries are keyed by encoder name, version and text; after
    ``ModelAdmin.LoadModel``/``UnloadModel`` of the encoder the next query goes to the encoder
    and the version it names keys the entries from then on."""

    cache_max_entries: int = Field(10_000, ge=1)
    """Most entries of the in-process cache (LRU eviction beyond)."""

    cache_max_bytes: int = Field(64 * 1024 * 1024, ge=1)
    """Most value bytes held by the in-process cache (LRU eviction beyond)."""

    redis_timeout_s: float = Field(0.25, gt=0)
    """Socket connect and read/write timeout of Redis cache calls, seconds (no retries)."""

    redis_retry_after_s: float = Field(5.0, ge=0)
    """After a Redis error, serve cache misses for this long before trying Redis again, s."""

    fallbacks_enabled: bool = True
    """Serve calls by their declared fallbacks while a dependency is down (in-process models,
    heuristics, skipped stages; each reply names what served it in ``fallbacks``); false: such
    calls fail with UNAVAILABLE instead, for callers that prefer to retry elsewhere."""

    # --- Milvus ------------------------------------------------------------------------------
    milvus_uri: str = "var/milvus.db"
    """Milvus URI: a local file path (Milvus Lite) or ``http://host:19530`` (standalone/cluster)."""

    milvus_token: str | None = None
    """Milvus token (``user:password`` or API key) for a secured server; unset for Lite."""

    milvus_collection: str = "service_requests"
    """Collection holding the service-request documents."""

    milvus_timeout_s: float = Field(10.0, gt=0)
    """Timeout of one Milvus call, seconds; a down server yields UNAVAILABLE after this."""

    milvus_consistency_level: Literal["Strong", "Session", "Bounded", "Eventually"] = "Bounded"
    """Consistency level of Milvus searches. ``Bounded`` (Milvus' default): a search may miss
    writes of the last few seconds, but does not wait for every channel's time tick as
    ``Strong`` does (~0.2 s per search on Milvus 2.3). Counts use Strong. Lite ignores it."""

    milvus_admin_timeout_s: float = Field(120.0, gt=0)
    """Timeout of Milvus collection management calls (create, load, flush, describe index), s.
    Loading a collection into memory takes longer than a search, so it gets its own bound."""

    milvus_index_type: Literal["FLAT", "HNSW"] = "FLAT"
    """Vector index of new collections. FLAT (exact) by default: on the Boston 311 data, where
    6,680 distinct texts make 20,832 documents (one text 5,233 times), HNSW (M 16, ef 64-512)
    reached only 0.76-0.80 recall@10 against brute force on the Milvus 2.3 server and returned
    fewer than top_k hits under selective filters (exact duplicates collapse HNSW
    neighbourhoods), while FLAT searched 20k vectors in 3-8 ms there. HNSW for large
    collections of mostly distinct texts."""

    milvus_hnsw_ef: int = Field(64, ge=1, le=32768)
    """HNSW search list size (``ef``) floor; each search uses ``max(this, limit)``."""

    search_embed_batch: int = Field(64, ge=1, le=1024)
    """Texts per embedding request when indexing (the text encoder's ``max_batch_size``)."""

    search_embed_in_flight: int = Field(4, ge=1, le=64)
    """Embedding requests in flight at once when indexing, so Triton's batcher stays fed."""

    # --- Limits: search ---
    search_max_stream_documents: int = Field(25_000, ge=1)
    """Most documents one IndexDocuments stream may carry (default 25,000; the whole Boston
    311 2015 set, 20,832 documents, fits one stream). A stream is validated whole before
    anything is stored, so this also bounds what one stream holds in memory (at most ~9 KiB
    per document). One more: INVALID_ARGUMENT on ``documents``, nothing stored."""

    search_max_collection_documents: int = Field(100_000, ge=1)
    """Most documents one collection may hold (default 100,000: ~5x Boston 311, FLAT search
    on Milvus Lite stays below ~0.5 s). An IndexDocuments stream whose new ids would take a
    collection past it is refused whole with RESOURCE_EXHAUSTED, nothing stored."""

    search_max_collections: int = Field(64, ge=1)
    """Most collections the Milvus back-end may hold for IndexDocuments to create one more
    (default 64); beyond, RESOURCE_EXHAUSTED. Reads never create collections (NOT_FOUND),
    except the default collection (``milvus_collection``), created at start."""

    search_max_concurrent_index_streams: int = Field(4, ge=1)
    """IndexDocuments streams handled at once (default 4); one more gets RESOURCE_EXHAUSTED at
    once. With ``search_max_stream_documents`` it bounds the memory ingestion may hold."""

    search_max_embed_texts: int = Field(1024, ge=1)
    """Most texts one Embed call may carry (default 1024); more: INVALID_ARGUMENT on ``texts``."""

    search_max_text_chars: int = Field(8192, ge=1)
    """Longest text, in characters (Unicode code points), of a Search query, an Embed text or
    a document, checked before tokenising (default 8192; the encoder reads only the first 256
    tokens). Documents are also bounded by their stored column, 8192 UTF-8 bytes."""

    # --- solver pool -------------------------------------------------------------------------
    solver_workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    """Worker processes of the solver pool (default: CPU count)."""

    solver_queue_size: int = Field(16, ge=1)
    """Jobs that may wait for a worker; beyond this, submits get RESOURCE_EXHAUSTED."""

    solver_max_time_limit_s: float = Field(300.0, gt=0)
    """Largest time limit a Solve/SubmitJob may ask for, in seconds."""

    solver_kill_grace_s: float = Field(5.0, ge=0)
    """A worker still running this long past its job's time limit is terminated and replaced, s."""

    solver_cancel_grace_s: float = Field(0.5, ge=0)
    """Seconds a cancelled solve may take to stop by itself before its worker is killed."""

    # --- Limits: routing and planning ---
    # Checked on the counts of the parsed request, before anything of a request's size is
    # allocated (matrices, one Python object per stop); an excess is INVALID_ARGUMENT naming the
    # field and stating the limit. Sized for the reference machine (2 cores, 23 GiB, two solver
    # workers of at most solver_worker_memory_mib each).
    routing_max_stops: int = Field(2_000, ge=1)
    """Most stops of a Solve/SubmitJob problem (PlanDay: bins). OR-Tools builds node x node
    matrices as Python lists before copying them: 2,000 stops are 4 M entries per matrix
    (~160 MB of Python ints, 32 MB inside OR-Tools), well within a solver worker's memory limit;
    the 1,000-customer benchmark instances fit twice."""

    routing_max_depots: int = Field(100, ge=1)
    """Most depots of a problem (each is a location and a node of the engines)."""

    routing_max_facilities: int = Field(20, ge=0)
    """Most facilities (dumps, transfer stations) of a problem, and most entries of a vehicle
    type's ``reload_facility_indices``. OR-Tools gives every usable facility up to one node per
    trip the fleet may need, so its model grows with facilities x stops."""

    routing_max_matrix_size: int = Field(2_000, ge=1)
    """Largest ``matrix.size`` (locations) of a caller's matrix. The matrix must hold
    ``size * size`` distances (and durations, when given) - checked against the values actually
    sent before anything is allocated; the server keeps each as int64: 2,000^2 x 8 B = 32 MB
    (30.5 MiB) per matrix. (A 2,000-row matrix needs a 64 MB message; with the default
    ``max_message_bytes`` of 16 MiB about 1,000 rows with durations fit.)"""

    routing_max_coordinate_locations: int = Field(2_000, ge=1)
    """Most sites (depots + facilities + stops) of a problem given by coordinates (no matrix).
    Their haversine distance and duration matrices are O(n^2): 2,000^2 x 8 B = 32 MB (30.5 MiB)
    each as int64, 61 MiB for both, computed in row blocks so the transient peak stays near
    that (measured: 0.6 s for 2,000 sites on this machine, off the event loop)."""

    routing_max_vehicles: int = Field(1_000, ge=1)
    """Most vehicles of a problem: the sum of ``count`` over its vehicle types (PlanDay: the
    fleet). OR-Tools keeps per-vehicle start/end nodes, cost evaluators and dimension
    variables: a count of 20,000 made one worker reach 2.3 GB. The largest benchmark fleets
    (Gehring-Homberger, 1,000 customers) have 250 vehicles."""

    routing_max_time_windows: int = Field(16, ge=1)
    """Most time windows of one stop or facility (PyVRP models each window of a stop as a
    client of a mutually exclusive group)."""

    routing_max_dimensions: int = Field(8, ge=1)
    """Most load dimensions: entries of ``dimensions``, of a vehicle type's ``capacity`` and of
    a stop's ``demand`` (each is one OR-Tools dimension with a variable per node)."""

    planning_max_bins: int = Field(2_000, ge=1)
    """Most bins of a PlanDay request (each is forecast, searched for complaints and becomes a
    stop, so ``routing_max_stops`` and ``forecast_max_bins`` apply as well: the smallest wins)."""

    planning_max_readings: int = Field(100_000, ge=1)
    """Most fill readings of a PlanDay request, summed over its bins (each becomes a Python
    object of ~150 B: 100,000 are ~15 MB). The fill forecast gets each bin's readings plus its
    last emptying, so PlanDay takes at most ``forecast_max_readings_per_bin - 1`` readings per
    bin and ``forecast_max_readings - bins`` in all, if those are smaller."""

    solver_worker_memory_mib: int = Field(4_096, ge=0)
    """Address-space limit of each solver worker process (``RLIMIT_AS``), MiB; 0 = no limit.
    A worker idles at ~0.3 GiB with both engines imported; two workers at 4 GiB stay well
    inside the reference machine's 23 GiB. A job whose worker runs out of it fails with
    RESOURCE_EXHAUSTED ("solver worker memory limit N MiB exceeded") and the worker is
    replaced."""

    @property
    def sqlite_path(self) -> Path | None:
        """Filesystem path of the SQLite database, or None for other back-ends."""
        prefix = "sqlite:///"
        if self.database_url.startswith(prefix):
            return Path(self.database_url[len(prefix) :])
        return None
