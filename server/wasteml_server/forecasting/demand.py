"""Demand forecasting: a global LightGBM model per grain, forecast recursively.

Two grains (see ``austin.py``): ``daily`` (city-daily kilograms per service line, Triton model
``demand_daily``) and ``weekly`` (weekly kilograms per garbage route, ``demand_route_weekly``).
One LightGBM regressor per grain is trained over all its series at once (series code as a
categorical feature), single-threaded and seeded. Multi-step forecasts are recursive: step ``h``
uses the predictions of steps ``1..h-1`` as lags (``recursive_forecast``).

Inference is injected: ``DemandForecaster`` builds the feature rows and calls
``infer(features: float32 [n, n_features]) -> float [n] or [n, 1]`` (kilograms), which is a
Triton call in the server and in-process ONNX Runtime (``inference.OnnxRuntimeInfer``) in
tests; both run the same ``model.onnx``, so they give the same numbers.

ONNX signature of both demand models (tensor names as their ``config.pbtxt`` states): input
float32 ``[batch, n_features]`` with columns in ``metadata.json["feature_names"]`` order
(``features.py`` documents each column); output float32 ``[batch, 1]``, kilograms per period.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import lightgbm as lgb
import numpy as np
import pandas as pd

from wasteml_models import DEMAND_DAILY, DEMAND_ROUTE_WEEKLY
from wasteml_server.core.common import ModelRef
from wasteml_server.core.errors import InvalidArgumentError, shown
from wasteml_server.forecasting.austin import SeriesSet
from wasteml_server.forecasting.features import DemandFeatureSpec, calendar_block, feature_rows
from wasteml_server.forecasting.inference import InferFn

if TYPE_CHECKING:
    from wasteml_server.forecasting.intervals import ProphetBundle

logger = logging.getLogger(__name__)


class SeriesGrain(enum.StrEnum):
    """The demand grains (``wasteml.v1.SeriesGrain``); values as stored in model metadata."""

    SERVICE_LINE_DAILY = "daily"
    """City-daily kilograms per service line (``demand_daily``)."""
    ROUTE_WEEKLY = "weekly"
    """Weekly kilograms per garbage route (``demand_route_weekly``)."""


class ModelFamily(enum.StrEnum):
    """Which model family answers a demand forecast (``wasteml.v1.DemandModel``)."""

    LIGHTGBM = "lightgbm"
    """Points from the ONNX LightGBM model (Triton), Prophet quantiles re-centred on them."""
    PROPHET = "prophet"
    """Prophet's predictive median and quantiles (in-process)."""


#: Registry/model name suffix of the Prophet interval models of a demand model version.
PROPHET_SUFFIX = "_prophet"


def model_family(value: str) -> ModelFamily:
    """``value`` as a :class:`ModelFamily` (the enum or its string value).

    Raises:
        InvalidArgumentError: not a known family (field ``model_family``).
    """
    try:
        return ModelFamily(value)
    except ValueError:
        raise InvalidArgumentError(
            "model_family", f"unknown family {shown(value)}; use one of {', '.join(ModelFamily)}"
        ) from None


@dataclass(frozen=True)
class GrainConfig:
    """Per-grain constants of demand modelling.

    Attributes:
        grain: the grain.
        model_name: Triton model name (folder in ``model_repository``).
        season: seasonal lag of the MASE scale and of the seasonal-naive baseline, in periods
            (7 days daily, as the README; weekly MASE uses lag 1 and the seasonal naive 52 weeks).
        mase_lag: lag of the in-sample MASE scale (README: 7 days daily, 1 week weekly).
        max_horizon: longest forecast, periods (issue 6: 56 days or 8 weeks).
        lgb_params: LightGBM parameters.
        num_boost_round: boosting rounds.
        base_feature: when set, the booster learns ``y - features[base_feature]`` and the
            exported graph adds that column back (``onnx_export.add_input_column``), so the
            served output is still kilograms. Daily uses the 4-week same-weekday mean: it cut
            garbage WAPE from 5.5 % to 5.1 % in the backtest and keeps leaf values (and so the
            float32 rounding of the ONNX trees) small.
    """

    grain: SeriesGrain
    model_name: str
    season: int
    mase_lag: int
    max_horizon: int
    lgb_params: dict = field(default_factory=dict)
    num_boost_round: int = 400
    base_feature: str | None = None

    def base_column(self, spec: DemandFeatureSpec) -> int | None:
        """Index of ``base_feature`` in ``spec.names`` (None without a base feature)."""
        return None if self.base_feature is None else spec.names.index(self.base_feature)


_BASE_PARAMS = {
    "objective": "regression_l1",
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.9,
    "bagging_freq": 1,
    "num_threads": 1,  # n_jobs=1: measured faster than 2 on these 2-core machines (issue 6)
    "deterministic": True,
    "force_row_wise": True,
    "seed": 42,
    "verbose": -1,
}

GRAINS: dict[SeriesGrain, GrainConfig] = {
    SeriesGrain.SERVICE_LINE_DAILY: GrainConfig(
                         SeriesGrain.SERVICE_LINE_DAILY, DEMAND_DAILY, season=7, mase_lag=7, max_horizon=56,
                         lgb_params=dict(_BASE_PARAMS), num_boost_round=600,
                         base_feature="mean_same_dow_4"),
    SeriesGrain.ROUTE_WEEKLY: GrainConfig(
                          SeriesGrain.ROUTE_WEEKLY, DEMAND_ROUTE_WEEKLY, season=52, mase_lag=1, max_horizon=8,
                          lgb_params=dict(_BASE_PARAMS, num_leaves=63, min_data_in_leaf=40),
                          num_boost_round=500, base_feature="mean_4"),
}
"""The two demand grains. Objective L1 because the scores (WAPE, MASE) are absolute errors."""


def training_matrix(series: SeriesSet, spec: DemandFeatureSpec) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows and targets for every series and every period with full lag history.

    Weekly rows before a route's first non-zero week are dropped (the route did not exist).

    Returns:
        ``(X float32 [n, n_features], y float64 [n])``, kilograms.
    """
    t = series.values.shape[1]
    positions = np.arange(spec.max_lag, t)
    x = feature_rows(series.values, series.index, positions, spec)
    y = series.values[:, positions].reshape(-1)
    keep = np.ones(len(y), dtype=bool)
    if spec.grain == "weekly":
        first = np.argmax(series.values > 0, axis=1)
        keep = (positions[None, :] >= first[:, None]).reshape(-1)
    return x[keep], y[keep]


def fit_booster(series: SeriesSet, spec: DemandFeatureSpec, config: GrainConfig) -> lgb.Booster:
    """Train the global LightGBM model of a grain on all periods of ``series``.

    Returns:
        The trained ``lightgbm.Booster`` (``series`` feature categorical).
    """
    x, y = training_matrix(series, spec)
    base = config.base_column(spec)
    if base is not None:
        y = y - x[:, base].astype(np.float64)
    ds = lgb.Dataset(x, y, feature_name=list(spec.names), categorical_feature=["series"],
                     free_raw_data=True)
    return lgb.train(config.lgb_params, ds, num_boost_round=config.num_boost_round)


def booster_infer(booster: lgb.Booster, base_column: int | None = None) -> InferFn:
    """In-process inference with a booster, numerically as the exported ONNX model.

    Args:
        booster: the trained booster.
        base_column: ``GrainConfig.base_column`` (added to the booster output when set).

    Returns:
        ``infer(float32 [n, f]) -> float64 [n]`` kilograms.
    """

    def infer(features: np.ndarray) -> np.ndarray:
        x = np.asarray(features, dtype=np.float32).astype(np.float64)
        out = np.asarray(booster.predict(x), dtype=np.float64)
        return out + x[:, base_column] if base_column is not None else out

    return infer


def recursive_forecast(values: np.ndarray, index: pd.DatetimeIndex, spec: DemandFeatureSpec,
                       horizon: int, infer: InferFn, series_rows: np.ndarray | None = None,
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Forecast ``horizon`` periods after the history, feeding predictions back as lags.

    Args:
        values: float64 ``[S, T]`` history in kilograms (``T > spec.max_lag``).
        index: ``[T]`` period end days of the history.
        spec: feature spec of the grain.
        horizon: number of periods, >= 1.
        infer: the model (see ``InferFn``); called once per step with ``[S, n_features]``.
        series_rows: code of each row of ``values`` in ``spec.series_ids`` (default ``0..S-1``).

    Returns:
        ``(predictions float64 [S, horizon] kg (clipped at 0), features float32
        [horizon, S, n_features])`` -- the rows each step sent to ``infer``.

    Raises:
        InvalidArgumentError: ``horizon < 1`` or too little history.
    """
    if horizon < 1:
        raise InvalidArgumentError("horizon", f"must be >= 1, got {horizon}")
    s, t = values.shape
    if t <= spec.max_lag:
        raise InvalidArgumentError("history", f"needs more than {spec.max_lag} periods")
    ext = np.concatenate([values, np.zeros((s, horizon))], axis=1)
    rows = np.empty((horizon, s, len(spec.names)), dtype=np.float32)
    codes = np.arange(s) if series_rows is None else np.asarray(series_rows)
    cal = calendar_block(index, np.arange(t, t + horizon), spec, codes)
    for h in range(horizon):
        pos = t + h
        x = feature_rows(ext, index, np.array([pos]), spec, codes, cal[:, h : h + 1])
        pred = np.asarray(infer(x), dtype=np.float64).reshape(-1)
        ext[:, pos] = np.maximum(pred, 0.0)
        rows[h] = x
    return ext[:, t:], rows


@dataclass(frozen=True)
class DemandForecast:
    """One series' forecast.

    Attributes:
        series_id: e.g. ``"daily:garbage"`` or ``"weekly:PAM03"``.
        period_ends: ``[H]`` last day of each forecast period (day, or the Sunday ending a week).
        point_kg: float64 ``[H]`` point forecast, kilograms per period (>= 0).
        quantiles: float64 ``[Q]`` requested quantile levels in (0, 1).
        quantile_kg: float64 ``[Q, H]`` forecast quantiles, kilograms (>= 0).
        model_name, model_version: the demand model version (Prophet intervals come from the
            same version folder).
        origin: the last observed period the forecast starts after.
        family: the family that produced the points.
        contributions: per step, a tuple of ``explain.Contribution`` (empty unless asked for;
            LightGBM family only).
    """

    series_id: str
    period_ends: pd.DatetimeIndex
    point_kg: np.ndarray
    quantiles: np.ndarray
    quantile_kg: np.ndarray
    model_name: str
    model_version: int
    origin: pd.Timestamp
    family: ModelFamily = ModelFamily.LIGHTGBM
    contributions: tuple = ()

    @property
    def model(self) -> ModelRef:
        """The model that made the points: the LightGBM model, or its Prophet models
        (registered as ``<model_name>_prophet`` with the same version)."""
        suffix = PROPHET_SUFFIX if self.family is ModelFamily.PROPHET else ""
        return ModelRef(self.model_name + suffix, self.model_version)

    @property
    def interval_model(self) -> ModelRef | None:
        """The Prophet models behind the quantiles, None without quantiles."""
        if not len(self.quantiles):
            return None
        return ModelRef(self.model_name + PROPHET_SUFFIX, self.model_version)


def series_key(grain: SeriesGrain, series_id: str) -> str:
    """Internal series id from the contract's ``SeriesId`` (grain name + id).

    Args:
        grain: the grain.
        series_id: service line (``"garbage"``, ``"recycling"``) or route code (``"PAM03"``).

    Raises:
        InvalidArgumentError: unknown grain (field ``series.grain``) or empty id (``series.id``).
    """
    if grain not in GRAINS:
        raise InvalidArgumentError("series.grain", f"must be one of {', '.join(g.name for g in GRAINS)}")
    if not series_id:
        raise InvalidArgumentError("series.id", "must not be empty")
    return f"{grain}:{series_id}"


class DemandForecaster:
    """Serves one demand model version: recursive LightGBM points plus Prophet quantiles.

    Args:
        metadata: the version's ``metadata.json``.
        history: the grain's series (all of ``metadata['feature_spec']['series_ids']``), from
            the data file the model was trained on.
        infer: ``InferFn`` running the version's ``model.onnx`` (Triton in the server,
            ``inference.OnnxRuntimeInfer`` in-process).
        prophets: the version's Prophet bundle (needed for quantiles).
        booster: the version's booster (needed for contributions).

    Raises:
        InvalidArgumentError: the history lacks a series of the model (field ``history``).
    """

    def __init__(self, metadata: dict, history: SeriesSet, infer: InferFn,
                 prophets: ProphetBundle | None = None, booster: lgb.Booster | None = None) -> None:
        self.metadata = metadata
        self.spec = DemandFeatureSpec.from_json(metadata["feature_spec"])
        self.config = GRAINS[SeriesGrain(self.spec.grain)]
        self.model_name: str = metadata["model_name"]
        self.model_version: int = int(metadata["version"])
        self._infer = infer
        self._prophets = prophets
        self._booster = booster
        rows = []
        for sid in self.spec.series_ids:
            if sid not in history.series_ids:
                raise InvalidArgumentError("history", f"no history for {sid!r}")
            rows.append(history.series_ids.index(sid))
        self._values = history.values[rows]
        self._index = history.index

    @classmethod
    def load(cls, model_repository: Path, data_dir: Path, grain: SeriesGrain,
             version: int | None = None, infer: InferFn | None = None,
             preload: bool = True) -> DemandForecaster:
        """Load a trained version from ``model_repository`` and its history from ``data_dir``.

        Args:
            model_repository: ``settings.model_repository``.
            data_dir: ``settings.data_dir``.
            grain: the grain.
            version: the version, or None for the latest trained one.
            infer: inference function; None runs the version's ``model.onnx`` in-process.
            preload: deserialise all Prophet models now (server start) rather than lazily.

        Raises:
            NotFoundError: no trained version.
            InvalidArgumentError: unknown grain (field ``grain``).
        """
        from wasteml_server.forecasting import austin, repository
        from wasteml_server.forecasting.inference import OnnxRuntimeInfer
        from wasteml_server.forecasting.intervals import PROPHET_FILE, ProphetBundle

        if grain not in GRAINS:
            raise InvalidArgumentError("series.grain", f"must be one of {', '.join(g.name for g in GRAINS)}")
        grain = SeriesGrain(grain)  # a plain "daily" / "weekly" too (the identity test below)
        name = GRAINS[grain].model_name
        v = repository.resolve_version(model_repository, name, version)
        meta = repository.load_metadata(model_repository, name, v)
        vdir = repository.version_dir(model_repository, name, v)
        path = Path(data_dir) / austin.AUSTIN_FILE
        if austin.file_sha256(path) != meta["data"]["sha256"]:
            logger.warning("%s differs from the file %s v%d was trained on", path, name, v)
        df = austin.load_austin(data_dir)
        history = austin.city_daily(df) if grain is SeriesGrain.SERVICE_LINE_DAILY else austin.route_weekly(df)
        if infer is None:
            infer = OnnxRuntimeInfer(vdir / repository.ONNX_FILE)
        prophets = ProphetBundle(vdir / PROPHET_FILE) if (vdir / PROPHET_FILE).is_file() else None
        if prophets is not None and preload:
            prophets.preload()
        booster = repository.load_booster(model_repository, name, v)
        return cls(meta, history, infer, prophets, booster)

    @property
    def series_ids(self) -> tuple[str, ...]:
        """Internal ids of the series this model forecasts."""
        return self.spec.series_ids

    @property
    def last_observed(self) -> pd.Timestamp:
        """Last period end of the history (the default forecast origin)."""
        return self._index[-1]

    def forecast(self, series_id: str, horizon: int, quantiles: tuple[float, ...] = (),
                 top_k: int = 0, origin: pd.Timestamp | None = None,
                 family: ModelFamily = ModelFamily.LIGHTGBM) -> DemandForecast:
        """Forecast one series.

        Args:
            series_id: internal id (``series_key``), e.g. ``"daily:garbage"``.
            horizon: periods after the origin, 1..``max_horizon`` (56 days or 8 weeks).
            quantiles: levels in (0, 1); empty for none.
            top_k: number of contributions per step (0 = none; LightGBM family only).
            origin: last observed period to forecast from (a backtest origin); None = the
                last period of the data. Must be a period end within the history with at
                least ``spec.max_lag`` periods before it.
            family: LIGHTGBM (points from the ONNX model, Prophet quantiles re-centred on them)
                or PROPHET (Prophet's predictive median and quantiles).

        Returns:
            ``DemandForecast`` in kilograms.

        Raises:
            InvalidArgumentError: unknown series (``series.id``), horizon out of range
                (``horizon``), a quantile outside (0, 1) (``quantiles[i]``), a bad origin
                (``forecast_origin``), a bad family (``model_family``), quantiles or the
                Prophet family without a Prophet bundle (``quantiles``).
        """
        if series_id not in self.spec.series_ids:
            raise InvalidArgumentError("series.id", f"unknown series {shown(series_id)} for model "
                                       f"{self.model_name}")
        if not 1 <= horizon <= self.config.max_horizon:
            raise InvalidArgumentError("horizon", f"must be 1..{self.config.max_horizon} for "
                                       f"the {self.spec.grain} grain, got {horizon}")
        q = np.asarray(quantiles, dtype=np.float64).reshape(-1)
        for i, level in enumerate(q):
            if not 0.0 < level < 1.0:
                raise InvalidArgumentError(f"quantiles[{i}]", f"must be in (0, 1), got {level}")
        family = model_family(family)
        if (q.size or family is ModelFamily.PROPHET) and self._prophets is None:
            raise InvalidArgumentError("quantiles", "this model version has no Prophet models")
        end = len(self._index)
        if origin is not None:
            pos = self._index.get_indexer([pd.Timestamp(origin)])[0]
            if pos < 0 or pos < self.spec.max_lag:
                raise InvalidArgumentError(
                    "forecast_origin", f"must be a period end between "
                    f"{self._index[self.spec.max_lag].date()} and {self._index[-1].date()}")
            end = pos + 1
        code = self.spec.series_ids.index(series_id)
        hist = self._values[code : code + 1, :end]
        index = self._index[:end]
        ends = pd.DatetimeIndex(index[-1] + self.spec.period * np.arange(1, horizon + 1))
        contribs: tuple = ()
        if family is ModelFamily.LIGHTGBM:
            pred, rows = recursive_forecast(hist, index, self.spec, horizon, self._infer,
                                            np.array([code]))
            point = pred[0]
            if top_k:
                contribs = self._explain(rows[:, 0, :], top_k)
        median, qs = np.zeros(horizon), np.zeros((0, horizon))
        if q.size or family is ModelFamily.PROPHET:
            assert self._prophets is not None  # checked above
            median, qs = self._prophets.quantiles(series_id, ends, q, self.spec)
        if family is ModelFamily.PROPHET:
            point = np.maximum(median, 0.0)
            qkg = np.maximum(qs, 0.0)
        elif q.size:
            qkg = np.maximum(point[None, :] + (qs - median[None, :]), 0.0)
        else:
            qkg = np.zeros((0, horizon))
        return DemandForecast(series_id, ends, point, q, qkg, self.model_name,
                              self.model_version, index[-1], family, contribs)

    def _explain(self, rows: np.ndarray, top_k: int) -> tuple:
        from wasteml_server.forecasting.explain import top_contributions

        if self._booster is None:
            raise InvalidArgumentError("top_contributions", "no booster loaded for explanations")
        out = top_contributions(self._booster, rows, list(self.spec.names), top_k,
                                self.config.base_column(self.spec))
        return tuple(out)
