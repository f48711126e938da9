"""Prediction intervals for demand forecasts from Prophet models, fitted once per series.

The point forecast comes from the global LightGBM model (served on Triton). Prophet (Taylor &
Letham 2018, "Forecasting at scale", The American Statistician 72(1)) supplies the *shape and
width* of the predictive distribution: for each horizon step we draw Prophet's predictive
samples (trend-changepoint uncertainty plus Gaussian observation noise, ``predictive_samples``),
take their quantiles, and re-centre them on the LightGBM point forecast::

    q_tau(h) = max(0, lightgbm(h) + (prophet_quantile_tau(h) - prophet_median(h)))

so the reported median equals the point forecast. Coverage of the resulting intervals is
measured by the rolling-origin backtest (``backtest.py``) and printed with the other metrics.

Models are fitted at training time only, serialised with ``prophet.serialize.model_to_json``
into one JSON file per model version (``prophet.json`` next to ``model.onnx``) and loaded at
server start; a request never refits. Sampling is made deterministic by a fixed seed: NumPy's
global generator (which Prophet uses) is seeded under a process-wide lock and its previous state
restored afterwards.

Configurations (the data README's Prophet baselines):

* daily: weekly + yearly seasonality, no daily seasonality;
* weekly: yearly seasonality plus a regressor counting collection holidays Mon..Fri of the week.
"""

from __future__ import annotations

import json
import logging
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wasteml_server.core.errors import InvalidArgumentError, NotFoundError, shown
from wasteml_server.forecasting.features import DemandFeatureSpec, weekly_calendar

logger = logging.getLogger(__name__)

PROPHET_FILE = "prophet.json"
"""File name of the per-version Prophet bundle (``{series_id: model_to_json(...)}``)."""

UNCERTAINTY_SAMPLES = 500
"""Predictive samples drawn per horizon step (Prophet's default is 1000; 500 halves the cost)."""

SAMPLE_SEED = 20210704
"""Seed of the predictive sampling, so equal requests get equal intervals."""

_rng_lock = threading.Lock()


def _quiet() -> None:
    for name in ("cmdstanpy", "prophet"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # prophet logs "Importing plotly failed" at ERROR on import; plots are not used here
    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)


def _frame(index: pd.DatetimeIndex, spec: DemandFeatureSpec) -> pd.DataFrame:
    df = pd.DataFrame({"ds": index})
    if spec.grain == "weekly":
        cal = weekly_calendar(index, spec, np.array([0]))
        df["hol_week"] = cal[0, :, 4]
    return df


def fit_prophet(y_kg: pd.Series, spec: DemandFeatureSpec) -> Any:
    """Fit one Prophet model to a series.

    Args:
        y_kg: kilograms per period indexed by period end day (daily or weekly, per ``spec``).
        spec: the grain's feature spec (holiday names for the weekly regressor).

    Returns:
        A fitted ``prophet.Prophet``.
    """
    _quiet()
    from prophet import Prophet

    if spec.grain == "daily":
        m = Prophet(weekly_seasonality=True, yearly_seasonality=True, daily_seasonality=False,
                    uncertainty_samples=UNCERTAINTY_SAMPLES)
    else:
        m = Prophet(weekly_seasonality=False, yearly_seasonality=True, daily_seasonality=False,
                    uncertainty_samples=UNCERTAINTY_SAMPLES)
        m.add_regressor("hol_week")
    df = _frame(pd.DatetimeIndex(y_kg.index), spec)
    df["y"] = y_kg.to_numpy(np.float64)
    with warnings.catch_warnings():  # prophet 1.5 uses pandas APIs deprecated in pandas 3
        warnings.simplefilter("ignore", DeprecationWarning)
        m.fit(df)
    return m


def predictive_quantiles(model: Any, targets: pd.DatetimeIndex, quantiles: np.ndarray,
                         spec: DemandFeatureSpec) -> tuple[np.ndarray, np.ndarray]:
    """Prophet's predictive median and quantiles per target period (seeded sampling).

    Args:
        model: fitted Prophet.
        targets: ``[H]`` period end days to forecast.
        quantiles: float ``[Q]`` in (0, 1).
        spec: feature spec of the grain.

    Returns:
        ``(median float64 [H], quantiles float64 [Q, H])`` in kilograms.
    """
    df = _frame(targets, spec)
    with _rng_lock:
        state = np.random.get_state()
        try:
            np.random.seed(SAMPLE_SEED)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                samples = model.predictive_samples(df)["yhat"]  # [H, n_samples]
        finally:
            np.random.set_state(state)
    return np.median(samples, axis=1), np.quantile(samples, np.asarray(quantiles), axis=1)


def quantile_offsets(model: Any, targets: pd.DatetimeIndex, quantiles: np.ndarray,
                     spec: DemandFeatureSpec) -> np.ndarray:
    """Prophet predictive quantiles minus the predictive median, per target period.

    Returns:
        float64 ``[Q, H]`` offsets in kilograms to add to a point forecast.
    """
    median, qs = predictive_quantiles(model, targets, quantiles, spec)
    return qs - median[None, :]


def save_prophets(models: dict, path: Path) -> None:
    """Write ``{series_id: model_to_json(model)}`` as one JSON file."""
    _quiet()
    from prophet.serialize import model_to_json

    path.write_text(json.dumps({sid: model_to_json(m) for sid, m in models.items()}))


class ProphetBundle:
    """Prophet models of one model version, loaded once; ``offsets`` deserialises lazily.

    Args:
        path: the version's ``prophet.json``.

    Raises:
        NotFoundError: the file does not exist.
    """

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise NotFoundError(f"Prophet bundle {path} not found; run `wasteml train demand`")
        self._raw: dict[str, str] = json.loads(path.read_text())
        self._models: dict = {}
        self._lock = threading.Lock()

    def preload(self) -> None:
        """Deserialise every model now (server start), not at the first request."""
        for sid in self._raw:
            self.model(sid)

    def __contains__(self, series_id: str) -> bool:
        return series_id in self._raw

    def model(self, series_id: str) -> Any:
        """The deserialised Prophet model of a series.

        Raises:
            InvalidArgumentError: no model for ``series_id`` (field ``series.id``, as
                ``ForecastDemandRequest`` names the series).
        """
        if series_id not in self._raw:
            raise InvalidArgumentError("series.id", f"no interval model for {shown(series_id)}")
        with self._lock:
            if series_id not in self._models:
                _quiet()
                from prophet.serialize import model_from_json

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    self._models[series_id] = model_from_json(self._raw[series_id])
            return self._models[series_id]

    def quantiles(self, series_id: str, targets: pd.DatetimeIndex, quantiles: np.ndarray,
                  spec: DemandFeatureSpec) -> tuple[np.ndarray, np.ndarray]:
        """``predictive_quantiles`` of a series' stored model (median ``[H]``, ``[Q, H]`` kg)."""
        return predictive_quantiles(self.model(series_id), targets, quantiles, spec)
