"""Forecasting as an async domain service over Triton: fill levels and collection demand.

Used by the ``Forecasting`` servicer and by the collection planner (``predict_fill_level``
takes and returns domain dataclasses, never protobuf).

Version resolution comes first on every call: a pinned version (``ModelRef.version``), else the
latest READY version of the model on Triton (its repository index, cached ``INDEX_TTL_S``
seconds). Everything after that uses *that* version: its ``metadata.json`` (feature spec,
residual quantiles, per-bin rates), its booster (``model.txt``, explanations), its Prophet
bundle, and Triton inference with that explicit version, so a retrained version N+1 loaded
next to N never mixes with N inside one reply.

State of a model and the status a call gets (FAILED_PRECONDITION rather than UNAVAILABLE for a
model that is not trained or not loaded: a retry without an operator's action cannot succeed,
and UNAVAILABLE tells clients to retry):

=========================================================  ====================================
the model has no trained version in ``model_repository``  FAILED_PRECONDITION (train it)
trained but no version READY on Triton (unloaded)          FAILED_PRECONDITION (LoadModel)
a version LOADING on Triton and none READY                 UNAVAILABLE (retry)
pinned version neither on Triton nor trained               NOT_FOUND (``model.version``)
Triton down                                                UNAVAILABLE (from the client)
=========================================================  ====================================

Fill level: features are built in a worker thread, the rows are sent to Triton in chunks of
the version's ``max_batch_size`` (concurrently), post-processed by the version's
``FillLevelPredictor`` (interval, time to full) and, when asked, explained in-process with
``pred_contrib`` of the version's booster.

Demand: one ``DemandForecaster`` per (grain, version), loaded once (Prophet models deserialised
at load; the latest version of each grain is loaded at start, never refitted); its recursive
forecast runs in a worker thread whose ``InferFn`` bridges each step to Triton with the explicit
version (``inference.triton_infer_fn``).

Audit: every served prediction is queued on the audit port (``core.audit.AuditSink``: the
``AuditWriter`` returns at once and writes in batches in the background) with the RPC it served
(``core.calls.current_method``: a prediction the planner asks for is audited as ``PlanDay``),
the request's sha256, the model version, a compact JSON summary of the output and the latency.

Dependencies are ports: the model server (``core.inference.InferenceServer``, Triton in the
server) and the audit sink, so the service runs against fakes in unit tests. Tensor names and
batch bounds are the models' own (``wasteml_models.config.TabularSignature``, from their
committed ``config.pbtxt``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import lightgbm as lgb
import numpy as np
import pandas as pd

from wasteml_models import FILL_LEVEL
from wasteml_models.config import TabularSignature
from wasteml_server.core import metrics
from wasteml_server.core.audit import AuditSink, request_hash
from wasteml_server.core.calls import current_method
from wasteml_server.core.common import ModelRef, version_number
from wasteml_server.core.deadlines import bounded_timeout
from wasteml_server.core.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
    shown,
)
from wasteml_server.core.inference import InferenceServer, ModelVersionState
from wasteml_server.core.settings import Settings
from wasteml_server.forecasting import explain, repository
from wasteml_server.forecasting import fill_level as fl
from wasteml_server.forecasting.demand import (
    GRAINS,
    PROPHET_SUFFIX,
    DemandForecast,
    DemandForecaster,
    ModelFamily,
    SeriesGrain,
    model_family,
    series_key,
)
from wasteml_server.forecasting.inference import served_infer_fn

logger = logging.getLogger(__name__)
T = TypeVar("T")

FILL_MODEL = FILL_LEVEL
"""Model name of the fill-level model."""

INDEX_TTL_S = 2.0
"""How long Triton's repository index is reused for resolving the latest version, seconds."""

MAX_FILL_BINS = 4096
"""Default of the most bins per ``predict_fill_level`` call (``Settings.forecast_max_bins``;
sent to Triton in chunks of max_batch_size)."""

AUDIT_MAX_ITEMS = 256
"""Most per-bin predictions written into one audit row's output (the rest is counted)."""

ANY_VERSION = ModelRef("")
"""A request that names no model and no version: the default model, its latest READY version."""


@dataclass(frozen=True)
class ForecastLimits:
    """Request-size limits of the forecasting calls (``Settings.forecast_*``; defaults as there).

    Checked before anything request-sized is built: the codec checks the protobuf counts before
    it decodes a reading, and the service checks its domain inputs again (the planner's path).
    Every violation is an ``InvalidArgumentError`` naming the field and stating the limit.

    Attributes:
        max_bins: bins per fill prediction.
        max_readings_per_bin: ``recent_readings`` of one bin.
        max_readings: ``recent_readings`` of all bins of one call together.
        max_bin_id_chars: characters of one ``bin_id``.
        max_quantiles: quantile levels of one demand forecast.
    """

    max_bins: int = MAX_FILL_BINS
    max_readings_per_bin: int = 1024
    max_readings: int = 131_072
    max_bin_id_chars: int = 256
    max_quantiles: int = 99

    @classmethod
    def from_settings(cls, settings: Settings) -> ForecastLimits:
        """The limits ``settings`` configures."""
        return cls(max_bins=settings.forecast_max_bins,
                   max_readings_per_bin=settings.forecast_max_readings_per_bin,
                   max_readings=settings.forecast_max_readings,
                   max_bin_id_chars=settings.forecast_max_bin_id_chars,
                   max_quantiles=settings.forecast_max_quantiles)

    def check_bins(self, count: int) -> None:
        """``count`` bins are 1..``max_bins``.

        Raises:
            InvalidArgumentError: none, or too many (field ``bins``).
        """
        if count == 0:
            raise InvalidArgumentError("bins", "at least one bin is required")
        if count > self.max_bins:
            raise InvalidArgumentError("bins", f"at most {self.max_bins} bins per call, got {count}")

    def check_bin(self, index: int, bin_id: str, readings: int) -> None:
        """Bin ``index`` has an id of at most ``max_bin_id_chars`` and at most
        ``max_readings_per_bin`` readings.

        Raises:
            InvalidArgumentError: fields ``bins[i].bin_id``, ``bins[i].recent_readings``.
        """
        if len(bin_id) > self.max_bin_id_chars:
            raise InvalidArgumentError(f"bins[{index}].bin_id", f"at most {self.max_bin_id_chars} "
                                       f"characters, got {len(bin_id)}")
        if readings > self.max_readings_per_bin:
            raise InvalidArgumentError(f"bins[{index}].recent_readings", f"at most "
                                       f"{self.max_readings_per_bin} readings per bin, got {readings}")

    def check_total_readings(self, total: int) -> None:
        """All bins together have at most ``max_readings`` readings.

        Raises:
            InvalidArgumentError: field ``bins``.
        """
        if total > self.max_readings:
            raise InvalidArgumentError("bins", f"at most {self.max_readings} recent_readings in all "
                                       f"bins of one call, got {total}")

    def check_quantiles(self, count: int) -> None:
        """At most ``max_quantiles`` quantile levels.

        Raises:
            InvalidArgumentError: field ``quantiles``.
        """
        if count > self.max_quantiles:
            raise InvalidArgumentError("quantiles", f"at most {self.max_quantiles} quantile "
                                       f"levels per call, got {count}")

    def check_fill(self, bins: Sequence[fl.BinReadings]) -> None:
        """Every limit above for a fill prediction's domain inputs.

        Raises:
            InvalidArgumentError: as the ``check_*`` methods.
        """
        self.check_bins(len(bins))
        total = 0
        for i, b in enumerate(bins):
            n = int(np.size(b.times_s))
            self.check_bin(i, b.bin_id, n)
            total += n
        self.check_total_readings(total)


def _r(x: float | None, digits: int = 6) -> float | None:
    """A JSON-safe rounded float (None for None/NaN/inf)."""
    if x is None or not np.isfinite(x):
        return None
    return round(float(x), digits)


def _domain_hash(bins: Sequence[fl.BinReadings], coverage: float, top_k: int) -> str:
    """sha256 of a canonical encoding of a fill request given as domain objects (callers that
    have no protobuf request, e.g. the planner)."""
    h = hashlib.sha256()
    h.update(f"{coverage!r}|{top_k}|{len(bins)}".encode())
    for b in bins:
        h.update(b.bin_id.encode() + b"\0")
        h.update(np.asarray(b.times_s, dtype=np.float64).tobytes())
        h.update(np.asarray(b.fill_fractions, dtype=np.float64).tobytes())
        h.update(repr((b.target_time_s, b.last_emptied_s, b.prior_fill_rate_per_day)).encode())
    return h.hexdigest()


class _Once:
    """Per-key single-flight cache of async loads (failed loads are not cached)."""

    def __init__(self) -> None:
        self._tasks: dict[Any, asyncio.Task] = {}

    async def get(self, key: Any, load: Callable[[], Awaitable[T]]) -> T:
        task = self._tasks.get(key)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = asyncio.ensure_future(load())
            self._tasks[key] = task
        return await asyncio.shield(task)

    def cancel_all(self) -> list[asyncio.Task]:
        pending = [t for t in self._tasks.values() if not t.done()]
        for t in pending:
            t.cancel()
        return pending


class ForecastingService:
    """Fill-level and demand predictions through Triton, per explicit model version.

    Create with :meth:`create` inside the server's event loop.

    Args:
        triton: the model server (``InferenceServer``; Triton in the server).
        model_repository: the production model repository (version folders with
            ``metadata.json``, ``model.txt``, ``prophet.json``).
        data_dir: the real data directory (Austin history for demand).
        audit: the prediction-audit sink; None records nothing.
        timeout_s: timeout of one Triton request when the call has no deadline, seconds.
        limits: request-size limits (``ForecastLimits``; None: the defaults).
    """

    def __init__(
        self,
        triton: InferenceServer,
        model_repository: Path,
        data_dir: Path,
        audit: AuditSink | None = None,
        timeout_s: float = 30.0,
        limits: ForecastLimits | None = None,
    ) -> None:
        self.limits = limits if limits is not None else ForecastLimits()
        self._triton = triton
        self.model_repository = Path(model_repository)
        self.data_dir = Path(data_dir)
        self._audit = audit
        self.timeout_s = timeout_s
        self._loop = asyncio.get_running_loop()
        self._index: tuple[float, list[ModelVersionState]] | None = None
        self._predictors = _Once()
        self._boosters = _Once()
        self._forecasters = _Once()
        self._batch_sizes = _Once()
        self._fill_signature = TabularSignature.load(self.model_repository, FILL_MODEL)

    @classmethod
    async def create(
        cls, settings: Settings, triton: InferenceServer, audit: AuditSink | None
    ) -> ForecastingService:
        """The service with the latest trained version of every forecasting model loaded.

        A model without a trained version (or whose files fail to load) is logged and left
        out: the server still starts, and that model's RPC answers FAILED_PRECONDITION (or the
        load error) until it is trained and loaded (module docstring).
        """
        service = cls(triton, settings.model_repository, settings.data_dir, audit,
                      timeout_s=settings.triton_timeout_s,
                      limits=ForecastLimits.from_settings(settings))
        await service.preload()
        return service

    async def preload(self) -> None:
        """Load the latest trained version of each model (fill-level predictor and booster,
        both demand forecasters with their Prophet models); failures are logged, not raised."""
        jobs: list[tuple[str, Awaitable[Any]]] = []
        fill = repository.trained_versions(self.model_repository, FILL_MODEL)
        if fill:
            jobs.append((f"{FILL_MODEL} v{fill[-1]}", self._predictor(fill[-1])))
            jobs.append((f"{FILL_MODEL} v{fill[-1]} booster", self._booster(FILL_MODEL, fill[-1])))
        else:
            logger.warning("%s has no trained version in %s; PredictFillLevel will answer "
                           "FAILED_PRECONDITION until it is trained (wasteml train fill-level)",
                           FILL_MODEL, self.model_repository)
        for grain, config in GRAINS.items():
            versions = repository.trained_versions(self.model_repository, config.model_name)
            if versions:
                jobs.append((f"{config.model_name} v{versions[-1]}",
                             self._forecaster(grain, versions[-1])))
            else:
                logger.warning("%s has no trained version in %s; ForecastDemand (%s) will "
                               "answer FAILED_PRECONDITION until it is trained (wasteml train "
                               "demand)", config.model_name, self.model_repository, grain)
        started = time.perf_counter()
        results = await asyncio.gather(*(job for _, job in jobs), return_exceptions=True)
        for (what, _), result in zip(jobs, results, strict=True):
            if isinstance(result, BaseException):
                logger.warning("forecasting: could not preload %s: %s", what, result)
        logger.info("forecasting: preloaded %d artefacts in %.1f s", len(jobs),
                    time.perf_counter() - started)

    async def aclose(self) -> None:
        """Cancel loads still running (server shutdown)."""
        for groups in (self._predictors, self._boosters, self._forecasters, self._batch_sizes):
            pending = groups.cancel_all()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    # --- version resolution ---------------------------------------------------------------

    async def _index_rows(self, fresh: bool = False) -> list[ModelVersionState]:
        now = time.monotonic()
        if fresh or self._index is None or now - self._index[0] > INDEX_TTL_S:
            rows = await self._triton.repository_index()
            self._index = (time.monotonic(), rows)
        return self._index[1]

    async def resolve_version(self, model: str, wanted: int | None = None, fresh: bool = False) -> int:
        """The version a call is served by: ``wanted`` if given (it must be READY on Triton),
        else the latest READY one. ``fresh`` bypasses the cached repository index.

        Raises:
            NotFoundError: the pinned version is neither on Triton nor trained.
            FailedPreconditionError: the model is not trained, or the version is not loaded.
            UnavailableError: the version is still loading, or Triton is down.
        """
        # a miss in the cached index is re-checked on a fresh one
        for refetch in (True,) if fresh else (False, True):
            rows = [r for r in await self._index_rows(refetch) if r.name == model]
            ready = sorted(n for r in rows
                           if r.state == "READY" and (n := version_number(r.version)) is not None)
            if wanted is None and ready:
                return ready[-1]
            if wanted is not None and wanted in ready:
                return wanted
        trained = await asyncio.to_thread(repository.trained_versions, self.model_repository,
                                          model)
        loading = sorted(r.version for r in rows if r.state == "LOADING")
        if wanted is None:
            if not trained:
                raise FailedPreconditionError(
                    f"model {model!r} has no trained version in {self.model_repository}; train "
                    "it (wasteml train) and load it (ModelAdmin.LoadModel)")
            if loading:
                raise UnavailableError("triton", f"model {model!r} is loading (versions "
                                       f"{', '.join(loading)}); retry shortly")
            raise FailedPreconditionError(
                f"model {model!r} has no version loaded on Triton (trained: "
                f"{', '.join(map(str, trained))}); load it with ModelAdmin.LoadModel")
        if str(wanted) in loading:
            raise UnavailableError("triton", f"version {wanted} of {model!r} is loading; retry")
        if wanted in trained or any(r.version == str(wanted) for r in rows):
            raise FailedPreconditionError(
                f"version {wanted} of model {model!r} is not loaded on Triton; load it with "
                f"ModelAdmin.LoadModel(name={model!r}, version='{wanted}')")
        raise NotFoundError(f"model {model!r} has no version {wanted} (trained: "
                            f"{', '.join(map(str, trained)) or 'none'})")

    # --- cached per-version artefacts -----------------------------------------------------

    def _predictor(self, version: int) -> Awaitable[fl.FillLevelPredictor]:
        return self._predictors.get(version, lambda: asyncio.to_thread(
            fl.FillLevelPredictor.load, self.model_repository, version, FILL_MODEL))

    def _booster(self, model: str, version: int) -> Awaitable[lgb.Booster]:
        return self._boosters.get((model, version), lambda: asyncio.to_thread(
            repository.load_booster, self.model_repository, model, version))

    async def _max_batch(self, model: str, version: int) -> int:
        async def load() -> int:
            config = await self._triton.model_config(model, str(version))
            return max(1, int(config.get("max_batch_size", 0)) or 1)

        return await self._batch_sizes.get((model, version), load)

    def _forecaster(self, grain: SeriesGrain, version: int) -> Awaitable[DemandForecaster]:
        async def load() -> DemandForecaster:
            model = GRAINS[grain].model_name
            signature = TabularSignature.load(self.model_repository, model)
            try:  # the served configuration's bound, else the committed one
                signature = dataclasses.replace(signature, max_batch_size=await self._max_batch(model, version))
            except (NotFoundError, UnavailableError):
                pass

            def infer(features: np.ndarray) -> np.ndarray:
                # runs in the request's worker thread, whose context carries the RPC deadline
                # (asyncio.to_thread copies it): each Triton step is bounded by what is left
                return served_infer_fn(self._triton, model, signature, self._loop, version=str(version),
                                       timeout_s=bounded_timeout(self.timeout_s))(features)

            return await asyncio.to_thread(DemandForecaster.load, self.model_repository,
                                           self.data_dir, grain, version, infer, True)

        return self._forecasters.get((grain, version), load)

    # --- fill level -----------------------------------------------------------------------

    async def predict_fill_level(
        self,
        bins: list[fl.BinReadings],
        coverage: float = fl.DEFAULT_COVERAGE,
        top_k: int = 0,
        model: ModelRef = ANY_VERSION,
        *,
        request_bytes: bytes | None = None,
    ) -> tuple[list[fl.FillPrediction], ModelRef]:
        """Fill fraction of each bin at its target time, interval and time to full.

        Args:
            bins: 1..``limits.max_bins`` bins (``fill_level.BinReadings``), each with at most
                ``limits.max_readings_per_bin`` readings and an id of at most
                ``limits.max_bin_id_chars`` characters.
            coverage: nominal interval coverage in [0.02, 0.98]; 0 means 0.8.
            top_k: contributions per bin, 0..``explain.MAX_TOP_K`` (0 = none).
            model: the requested model: name "" or ``"fill_level"``, version None for the
                latest READY on Triton.
            request_bytes: the serialized request for the audit hash (deterministic
                serialization); None hashes the domain inputs.

        Returns:
            ``(predictions in bin order, served model and version)``.

        Raises:
            InvalidArgumentError: bad input, naming the field (``bins[i].recent_readings``,
                ``bins[i].target_time``, ``bins[i].bin_id``, ``interval_coverage``,
                ``top_contributions``, ``model.name``, ``model.version``, ``bins``).
            NotFoundError, FailedPreconditionError, UnavailableError: see the module docstring.
            DeadlineExceededError: Triton did not answer before the call's deadline.
        """
        started = time.perf_counter()
        if model.name and model.name != FILL_MODEL:
            raise InvalidArgumentError("model.name", f"unknown fill-level model {shown(model.name)}; "
                                       f"this server serves {FILL_MODEL!r}")
        _check_version(model)
        if coverage == 0:
            coverage = fl.DEFAULT_COVERAGE
        fl.interval_levels(coverage)  # validates (field interval_coverage)
        if not 0 <= top_k <= explain.MAX_TOP_K:
            raise InvalidArgumentError("top_contributions",
                                       f"must be 0..{explain.MAX_TOP_K}, got {top_k}")
        self.limits.check_fill(bins)
        for attempt in range(2):
            v = await self.resolve_version(FILL_MODEL, model.version, fresh=attempt > 0)
            predictor = await self._predictor(v)
            x = await asyncio.to_thread(predictor.features, bins)
            try:
                max_rows = await self._max_batch(FILL_MODEL, v)
                parts = await asyncio.gather(*(self._infer_fill(x[i : i + max_rows], v)
                                               for i in range(0, len(x), max_rows)))
                break
            except NotFoundError:  # unloaded since the cached index said READY: re-resolve
                if attempt:
                    raise
        raw = np.concatenate(parts)
        ids = [b.bin_id for b in bins]
        preds = await asyncio.to_thread(predictor.postprocess, x, raw, ids, coverage)
        if top_k:
            booster = await self._booster(FILL_MODEL, v)
            contribs = await asyncio.to_thread(predictor.explain, booster, x, top_k)
            preds = [dataclasses.replace(p, contributions=c)
                     for p, c in zip(preds, contribs, strict=True)]
        ref = ModelRef(FILL_MODEL, v)
        if self._audit is not None:
            digest = (request_hash(request_bytes) if request_bytes is not None
                      else _domain_hash(bins, coverage, top_k))
            self._audit.record(rpc_method=current_method(), model_name=FILL_MODEL, model_version=v,
                               request_hash=digest, output=_fill_summary(preds, coverage),
                               latency_ms=(time.perf_counter() - started) * 1000.0)
        return preds, ref

    async def _infer_fill(self, rows: np.ndarray, version: int) -> np.ndarray:
        start = time.perf_counter()
        sig = self._fill_signature
        out, served = await self._triton.infer_versioned(
            FILL_MODEL, {sig.features: np.ascontiguousarray(rows, dtype=np.float32)},
            [sig.prediction], version=str(version), timeout_s=bounded_timeout(self.timeout_s))
        metrics.INFERENCE_LATENCY.labels(FILL_MODEL).observe(time.perf_counter() - start)
        if served and served != str(version):
            raise UnavailableError("triton", f"{FILL_MODEL}: asked for version {version}, "
                                   f"served by {served}")
        pred = np.asarray(out[sig.prediction]).reshape(-1)
        if pred.shape != (len(rows),):
            raise UnavailableError("triton", f"{FILL_MODEL} returned {pred.size} values for "
                                   f"{len(rows)} rows")
        return pred

    # --- demand ---------------------------------------------------------------------------

    async def forecast_demand(
        self,
        grain: SeriesGrain,
        series_id: str,
        horizon: int,
        quantiles: Sequence[float] = (),
        top_k: int = 0,
        family: ModelFamily = ModelFamily.LIGHTGBM,
        origin: dt.date | None = None,
        model: ModelRef = ANY_VERSION,
        *,
        request_bytes: bytes | None = None,
    ) -> DemandForecast:
        """Forecast one demand series in kilograms per period.

        Args:
            grain: SERVICE_LINE_DAILY (``demand_daily``) or ROUTE_WEEKLY (``demand_route_weekly``).
            series_id: service line (``"garbage"``, ``"recycling"``) or route (``"PAM03"``).
            horizon: 1..56 days (daily) or 1..8 weeks (weekly).
            quantiles: levels in (0, 1), empty for none.
            top_k: contributions per step, 0..``explain.MAX_TOP_K`` (LightGBM family only).
            family: LIGHTGBM (points from Triton, Prophet quantiles re-centred on them) or
                PROPHET (Prophet's median and quantiles; needs no Triton).
            origin: last observed period to forecast from; None = last period of the data.
            model: the requested model: name "" or the grain's model name
                (``"<name>_prophet"`` too for Prophet); version None = latest READY on Triton
                (for PROPHET the latest trained).
            request_bytes: the serialized request for the audit hash; None hashes the arguments.

        Returns:
            ``DemandForecast``: the served model and version, the origin it started after.

        Raises:
            InvalidArgumentError: bad input naming the field (``series.grain``, ``series.id``,
                ``horizon``, ``quantiles[i]``, ``top_contributions``, ``forecast_origin``,
                ``model.name``, ``model.version``, ``model_family``).
            NotFoundError, FailedPreconditionError, UnavailableError: see the module docstring.
        """
        started = time.perf_counter()
        key = series_key(grain, series_id)
        config = GRAINS[grain]
        family = model_family(family)
        allowed = {config.model_name} | ({config.model_name + PROPHET_SUFFIX}
                                         if family is ModelFamily.PROPHET else set())
        if model.name and model.name not in allowed:
            raise InvalidArgumentError("model.name", f"{shown(model.name)} does not serve the "
                                       f"{grain.name} grain; use {' or '.join(sorted(allowed))}")
        _check_version(model)
        if not 1 <= horizon <= config.max_horizon:
            raise InvalidArgumentError("horizon", f"must be 1..{config.max_horizon} for the "
                                       f"{grain} grain, got {horizon}")
        if not 0 <= top_k <= explain.MAX_TOP_K:
            raise InvalidArgumentError("top_contributions",
                                       f"must be 0..{explain.MAX_TOP_K}, got {top_k}")
        self.limits.check_quantiles(len(quantiles))
        v = 0
        if family is ModelFamily.PROPHET:
            try:
                v = await asyncio.to_thread(repository.resolve_version, self.model_repository,
                                            config.model_name, model.version)
            except NotFoundError as err:
                if model.version is None:
                    raise FailedPreconditionError(err.message) from err
                raise
        ts = pd.Timestamp(origin) if origin is not None else None
        for attempt in range(2):
            if family is ModelFamily.LIGHTGBM:
                v = await self.resolve_version(config.model_name, model.version, fresh=attempt > 0)
            forecaster = await self._forecaster(grain, v)
            try:
                result = await asyncio.to_thread(forecaster.forecast, key, horizon,
                                                 tuple(float(q) for q in quantiles), top_k if
                                                 family is ModelFamily.LIGHTGBM else 0, ts, family)
                break
            except NotFoundError:  # unloaded since the cached index said READY: re-resolve
                if attempt or family is not ModelFamily.LIGHTGBM:
                    raise
        if self._audit is not None:
            digest = request_hash(request_bytes if request_bytes is not None else repr(
                (grain.value, series_id, horizon, tuple(quantiles), top_k, family.value, origin,
                 model.version)).encode())
            self._audit.record(rpc_method=current_method(), model_name=config.model_name,
                               model_version=v, request_hash=digest,
                               output=_demand_summary(result),
                               latency_ms=(time.perf_counter() - started) * 1000.0)
        return result

def _check_version(model: ModelRef) -> None:
    """A pinned version within what ``ModelRef.parse_version`` accepts (the codec parsed it;
    direct callers may not have).

    Raises:
        InvalidArgumentError: field ``model.version``.
    """
    if model.version is not None:
        ModelRef.parse_version(str(model.version), "model.version")


def _fill_summary(preds: list[fl.FillPrediction], coverage: float) -> dict[str, Any]:
    """Compact JSON of a fill reply for the audit row."""
    items = []
    for p in preds[:AUDIT_MAX_ITEMS]:
        item: dict[str, Any] = {"bin_id": p.bin_id, "fill": _r(p.fill_fraction),
                                "lower": _r(p.lower), "upper": _r(p.upper),
                                "time_to_full_s": _r(p.time_to_full_s, 1)}
        if p.contributions:
            item["top"] = [[c.feature, _r(c.contribution)] for c in p.contributions]
        items.append(item)
    return {"coverage": coverage, "n_bins": len(preds), "predictions": items,
            "truncated": len(preds) > AUDIT_MAX_ITEMS}


def _demand_summary(result: DemandForecast) -> dict[str, Any]:
    """Compact JSON of a demand reply for the audit row."""
    return {"series_id": result.series_id, "family": result.family.value,
            "first_period": str(result.period_ends[0].date()),
            "point_kg": [_r(x, 3) for x in result.point_kg],
            "quantiles": [_r(q) for q in result.quantiles],
            "quantile_kg": [[_r(x, 3) for x in row] for row in result.quantile_kg],
            "interval_model": str(result.interval_model) if result.interval_model else None}
