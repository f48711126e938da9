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
    """Upper bound on RPCs handled at once; further calls get RESOURCE_EXHAUSTED."""

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

    @property
    def sqlite_path(self) -> Path | None:
        """Filesystem path of the SQLite database, or None for other back-ends."""
        prefix = "sqlite:///"
        if self.database_url.startswith(prefix):
            return Path(self.database_url[len(prefix) :])
        return None
