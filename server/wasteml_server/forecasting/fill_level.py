"""Skip fill level: data, features, model and the predictor the servicer calls (Blantyre skips).

Data (``settings.data_dir``/collection, data README section 3, CC BY 4.0, N. Seemann-Ricard,
ETH Zurich GHE, "Optimization of solid waste collections in Blantyre, Malawi"):

* ``blantyre_skip_fullness_daily_2020_2021.csv``: daily readings of 16 skips, quantised in steps
  of 1.75 up to 8. A 7 m3 skip makes 7 = full and 8 = overflowing (the README's inference).
  **Fill fraction** = ``min(reading / 7, 1)``: 8 (overflowing) maps to 1.0, the same as full,
  because a planner acts on both alike; ``.`` is a missing reading.
* ``blantyre_skip_filling_rate_estimates.csv``: the study's ``Q1`` filling rate, fraction of a
  skip per day, per site (the constant-rate baseline).

Task: given a skip's recent readings (times, fill fractions), predict its fill fraction at a
later time *if it is not emptied before then*, an interval, and the time until it is full.

Samples for training and scoring: an origin reading at day ``t`` and a target reading at
``t + h`` (``h`` = 0..``MAX_HORIZON_DAYS`` days) of the same skip with no emptying in between.
An emptying is a reading of 0 after a non-zero one, or a target more than one quantisation
step (0.25) below the origin (an emptying hidden by missing days).

Features (float32 ``[n, 8]``, ONNX input ``features``, in this order):

=======================  =====================================================================
``fill_now``             last reading, fraction 0..1
``horizon_days``         days from the last reading to the asked time (0..14)
``days_since_empty``     days since the skip was last seen empty (NaN if not in the readings)
``rate_since_empty``     ``fill_now / days_since_empty``, fraction per day (NaN if unknown)
``rate_recent``          fill change per day over the readings of the last ~3 days of the
                         current fill cycle (NaN if too few)
``days_at_level``        days the reading has stayed at its current value
``prior_rate``           the skip's typical filling rate, fraction per day (NaN if unknown):
                         given by the caller, or learned per skip from its history at training
``rate_extrapolation``   ``min(1, fill_now + rate * horizon_days)`` with the first known of
                         ``rate_since_empty``, ``prior_rate``
=======================  =====================================================================

Model: LightGBM on the fill *change* ``y - fill_now`` with the L1 objective (the score is MAE;
LightGBM refuses monotone constraints with L1, so none are set), ``min_data_in_leaf=100``, 150
rounds, seeded and single-threaded; the exported graph adds ``fill_now`` back, so the ONNX
output ``prediction`` float32 ``[n, 1]`` is the fill fraction (clipped to 0..1 in
``postprocess``). Learning the change beat learning the level (MAE at 1 day 0.079 vs 0.091).

Intervals: empirical quantiles of out-of-fold residuals (purged blocked cross-validation over
time, ``calibrate``) per horizon bucket x fill level, split-conformal style (Lei et al. 2018,
JASA 113(523)), stored in the metadata for levels 0.01..0.99 so any central coverage can be
served.

Time to full (a simpler model that won its backtest, ``backtest.score_time_to_full``):
``(1 - predicted fill at the target time) / rate`` with ``rate`` the mean of the known ones of
the current cycle's rate (``rate_since_empty``) and the bin's prior rate, else the recent rate.
Scanning the LightGBM trajectory for the first horizon reaching full was much worse (MAE
6.7 days vs 3.1 on 535 origins): pairs end at emptyings, and skips are emptied when full, so
long-horizon pairs over-represent slow fillers and the median trajectory rarely reaches full.
The same selection makes long-horizon fill predictions conservative (low) for fast fillers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from wasteml_server.core.errors import InvalidArgumentError

logger = logging.getLogger(__name__)

FULLNESS_FILE = "collection/blantyre_skip_fullness_daily_2020_2021.csv"
RATES_FILE = "collection/blantyre_skip_filling_rate_estimates.csv"

SKIP_CAPACITY_READING = 7.0
"""Reading of a full skip (7 m3; README: capacity 7,000 litres, readings step 1.75 up to 8)."""

STEP_FRACTION = 1.75 / SKIP_CAPACITY_READING
"""One quantisation step of the readings as a fraction (0.25)."""

MAX_HORIZON_DAYS = 14
"""Longest horizon trained and accepted, days."""

MAX_FILL_RATE_PER_DAY = 1000.0
"""Largest ``prior_fill_rate_per_day`` accepted (a bin filled a thousand times a day); larger
values are no rate a bin has, and would overflow the model's float32 features."""

FULL_FRACTION = 0.95
"""A predicted fill at or above this counts as full (time to full 0); the quantised reading
below full is 0.75, so 0.95 means the model puts the skip at the top level."""


def time_to_full_days(fill: np.ndarray, rate_since_empty: np.ndarray, prior_rate: np.ndarray,
                      rate_recent: np.ndarray) -> np.ndarray:
    """Days until full from a fill fraction, by constant-rate extrapolation.

    ``rate`` = mean of the known (non-NaN) of ``rate_since_empty`` and ``prior_rate``; when both
    are unknown, ``rate_recent``. Full (``fill >= FULL_FRACTION``) gives 0; no positive rate
    gives ``inf``.

    Args:
        fill, rate_since_empty, prior_rate, rate_recent: float ``[n]`` (fraction, fraction/day).

    Returns:
        float64 ``[n]`` days (may be ``inf``).
    """
    fill = np.asarray(fill, dtype=np.float64)
    pair = np.stack([np.asarray(rate_since_empty, np.float64), np.asarray(prior_rate, np.float64)])
    known = ~np.isnan(pair)
    rate = np.where(known.any(0), np.where(known, pair, 0).sum(0) / np.maximum(known.sum(0), 1),
                    np.asarray(rate_recent, np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        days = np.where(rate > 0, (1.0 - fill) / rate, np.inf)
    return np.where(fill >= FULL_FRACTION, 0.0, np.maximum(days, 0.0))

FEATURE_NAMES: tuple[str, ...] = ("fill_now", "horizon_days", "days_since_empty",
                                  "rate_since_empty", "rate_recent", "days_at_level",
                                  "prior_rate", "rate_extrapolation")
"""ONNX input column order of the fill_level model."""

SITE_TO_STUDY_NAME = {"Bangwe": "Bangwe market", "BCA": "BCA market", "Naizi": "Naizi market",
                      "Chigumula": "Chigumula"}
"""Site prefix of a fullness column -> ``Name`` in the filling-rate file."""

HORIZON_BUCKETS = (0.0, 1.5, 3.5, 7.5, MAX_HORIZON_DAYS + 1.0)
"""Edges of the horizon buckets (days) of the residual quantiles: [0,1.5), [1.5,3.5), ..."""

N_FILL_BUCKETS = 5
"""Fill-level buckets of the residual quantiles: nearest of 0, 0.25, 0.5, 0.75, 1."""

RESIDUAL_LEVELS: tuple[float, ...] = tuple(round(0.01 * k, 2) for k in range(1, 100))
"""Quantile levels 0.01..0.99 stored per residual cell; intervals of any coverage interpolate."""

DEFAULT_COVERAGE = 0.8
"""Nominal coverage of the interval when the caller asks for none (quantiles 0.1 and 0.9)."""

LGB_PARAMS = {
    "objective": "regression_l1",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 100,
    "feature_fraction": 0.9,
    "lambda_l2": 1.0,
    "num_threads": 1,
    "deterministic": True,
    "force_row_wise": True,
    "seed": 42,
    "verbose": -1,
}
NUM_BOOST_ROUND = 150


def load_fullness(data_dir: Path) -> pd.DataFrame:
    """Daily fill fractions per skip column.

    Returns:
        float64 DataFrame indexed by day (datetime64), one column per skip (e.g.
        ``Bangwe_Organic_1``), values ``min(reading / 7, 1)``, NaN where missing.

    Raises:
        InvalidArgumentError: the file is missing (field ``data_dir``).
    """
    path = Path(data_dir) / FULLNESS_FILE
    if not path.is_file():
        raise InvalidArgumentError("data_dir", f"Blantyre fullness file not found at {path}")
    raw = pd.read_csv(path, encoding="utf-8-sig", dtype=str)
    index = pd.to_datetime(raw.pop("date"), format="%d-%b-%y")
    vals = raw.apply(lambda c: pd.to_numeric(c.str.strip(), errors="coerce"))
    frac = np.minimum(vals.to_numpy(np.float64) / SKIP_CAPACITY_READING, 1.0)
    return pd.DataFrame(frac, index=pd.DatetimeIndex(index, name="date"), columns=raw.columns)


def study_rates(data_dir: Path, columns: list[str]) -> dict[str, float]:
    """The study's ``Q1`` filling rate (fraction of a skip per day) for each fullness column.

    Raises:
        InvalidArgumentError: the rates file is missing (field ``data_dir``).
    """
    path = Path(data_dir) / RATES_FILE
    if not path.is_file():
        raise InvalidArgumentError("data_dir", f"Blantyre filling-rate file not found at {path}")
    q1 = pd.read_csv(path).dropna(subset=["Q1"]).groupby("Name")["Q1"].first()
    out = {}
    for col in columns:
        name = SITE_TO_STUDY_NAME.get(col.split("_", 1)[0])
        if name in q1.index:
            out[col] = float(q1[name])
    return out


def cycle_rates(fill: pd.Series) -> list[float]:
    """Filling rates (fraction per day) of complete cycles: from a 0 reading to the first full.

    A cycle starts at the last 0 reading before the skip fills and ends at its first reading
    >= 1; rate = 1 / days. Cycles broken by missing readings count as long as both ends exist.
    """
    rates = []
    empty_day = None
    days = (fill.index - fill.index[0]).days.to_numpy()
    for d, v in zip(days, fill.to_numpy(), strict=True):
        if np.isnan(v):
            continue
        if v == 0.0:
            empty_day = d
        elif v >= 1.0 and empty_day is not None:
            if d > empty_day:
                rates.append(1.0 / (d - empty_day))
            empty_day = None
    return rates


def own_rates(fullness: pd.DataFrame) -> dict[str, float]:
    """Median complete-cycle filling rate per skip (fraction per day), pooled median fallback."""
    per = {c: cycle_rates(fullness[c]) for c in fullness.columns}
    pooled = [r for rs in per.values() for r in rs]
    fallback = float(np.median(pooled)) if pooled else float("nan")
    return {c: (float(np.median(rs)) if rs else fallback) for c, rs in per.items()}


def state_features(times_days: np.ndarray, fills: np.ndarray, prior_rate: float,
                   last_emptied_days: float = np.nan) -> np.ndarray:
    """The horizon-free features of one skip at its last reading.

    Args:
        times_days: float64 ``[R]`` reading times in days (any epoch), strictly increasing.
        fills: float64 ``[R]`` fill fractions 0..1 (no NaN).
        prior_rate: typical filling rate, fraction per day, or NaN.
        last_emptied_days: when the skip was last emptied (same epoch), NaN if unknown; the
            later of this and the last 0 reading counts as "last seen empty".

    Returns:
        float64 ``[6]``: fill_now, days_since_empty, rate_since_empty, rate_recent,
        days_at_level, prior_rate.
    """
    t = times_days[-1]
    f = fills[-1]
    zeros = np.flatnonzero(fills == 0.0)
    empty_t = times_days[zeros[-1]] if zeros.size else np.nan
    if not np.isnan(last_emptied_days) and last_emptied_days <= t and not (
            empty_t >= last_emptied_days):
        empty_t = last_emptied_days
    if not np.isnan(empty_t):
        since = t - empty_t
        rate_empty = f / since if since > 0 else np.nan
        start = int(np.searchsorted(times_days, empty_t))
    else:
        since, rate_empty, start = np.nan, np.nan, 0
    ref = np.flatnonzero((times_days <= t - 3.0 + 1e-9) & (np.arange(len(fills)) >= start))
    rate_recent = (f - fills[ref[-1]]) / (t - times_days[ref[-1]]) if ref.size else np.nan
    diff = np.flatnonzero(fills != f)
    at_level = t - times_days[diff[-1] + 1] if diff.size else t - times_days[0]
    return np.array([f, since, rate_empty, rate_recent, at_level, prior_rate])


def with_horizons(state: np.ndarray, horizons_days: np.ndarray) -> np.ndarray:
    """Feature rows for one state at several horizons.

    Args:
        state: float64 ``[6]`` from ``state_features``.
        horizons_days: float64 ``[H]`` days after the last reading.

    Returns:
        float32 ``[H, 8]`` in ``FEATURE_NAMES`` order.
    """
    f, since, rate_empty, rate_recent, at_level, prior = state
    rate = rate_empty if not np.isnan(rate_empty) else prior
    h = np.asarray(horizons_days, dtype=np.float64)
    extrap = np.minimum(1.0, f + rate * h) if not np.isnan(rate) else np.full(len(h), np.nan)
    out = np.empty((len(h), len(FEATURE_NAMES)))
    out[:] = [f, 0.0, since, rate_empty, rate_recent, at_level, prior, 0.0]
    out[:, 1] = h
    out[:, 7] = extrap
    return out.astype(np.float32)


@dataclass
class FillSamples:
    """Origin/target pairs of the fullness data.

    Attributes:
        x: float32 ``[n, 8]`` features.
        y: float64 ``[n]`` target fill fraction at ``t + h``.
        origin: ``[n]`` origin day; ``target_day`` ``[n]``; ``skip`` ``[n]`` column names;
        horizon: int ``[n]`` days; ``fill_now`` float64 ``[n]``.
    """

    x: np.ndarray
    y: np.ndarray
    origin: pd.DatetimeIndex
    target_day: pd.DatetimeIndex
    skip: np.ndarray
    horizon: np.ndarray

    @property
    def fill_now(self) -> np.ndarray:
        """float64 ``[n]`` origin fill fraction."""
        return self.x[:, 0].astype(np.float64)

    def subset(self, mask: np.ndarray) -> FillSamples:
        """Rows where ``mask`` is true."""
        return FillSamples(self.x[mask], self.y[mask], self.origin[mask], self.target_day[mask],
                           self.skip[mask], self.horizon[mask])


def build_samples(fullness: pd.DataFrame, prior_rates: dict[str, float],
                  max_horizon: int = MAX_HORIZON_DAYS, history_days: int = 14) -> FillSamples:
    """All valid (origin, target) pairs with features from readings up to the origin.

    Args:
        fullness: ``load_fullness`` output (daily index).
        prior_rates: skip column -> prior filling rate (fraction per day).
        max_horizon: largest ``h`` in days.
        history_days: readings older than this before the origin are not used (the API
            receives the recent readings only).
    """
    xs, ys, origins, targets, skips, hs = [], [], [], [], [], []
    days_all = (fullness.index - fullness.index[0]).days.to_numpy().astype(np.float64)
    for col in fullness.columns:
        v = fullness[col].to_numpy()
        known = np.flatnonzero(~np.isnan(v))
        prior = prior_rates.get(col, np.nan)
        for k, i in enumerate(known):
            lo = np.searchsorted(known, i - history_days)
            idx = known[lo : k + 1]
            state = state_features(days_all[idx], v[idx], prior)
            later = known[k + 1 :]
            later = later[later - i <= max_horizon]
            cand = [0]
            for j in later:
                if v[j] == 0.0 and v[i] > 0.0:
                    break
                if v[j] < v[i] - STEP_FRACTION - 1e-9:
                    break
                if np.any(v[i + 1 : j + 1] == 0.0) and v[i] > 0.0:
                    break
                cand.append(j - i)
            h = np.array(cand, dtype=np.float64)
            xs.append(with_horizons(state, h))
            ys.append(v[i + h.astype(int)])
            origins.extend([fullness.index[i]] * len(h))
            targets.extend(fullness.index[i + h.astype(int)])
            skips.extend([col] * len(h))
            hs.append(h.astype(int))
    return FillSamples(np.vstack(xs), np.concatenate(ys), pd.DatetimeIndex(origins),
                       pd.DatetimeIndex(targets), np.array(skips), np.concatenate(hs))


def fit_fill_booster(samples: FillSamples, num_boost_round: int = NUM_BOOST_ROUND) -> lgb.Booster:
    """Train the fill-level LightGBM regressor (params ``LGB_PARAMS``, single-threaded).

    The booster learns the fill *change* ``y - fill_now``; the exported ONNX graph adds
    ``fill_now`` back (``onnx_export.add_input_column``), so Triton returns the fill fraction.
    """
    ds = lgb.Dataset(samples.x, samples.y - samples.fill_now, feature_name=list(FEATURE_NAMES),
                     free_raw_data=True)
    return lgb.train(LGB_PARAMS, ds, num_boost_round=num_boost_round)


def predict_fill(booster: lgb.Booster, features: np.ndarray) -> np.ndarray:
    """In-process fill fraction: ``clip(fill_now + booster(features), 0, 1)``, float64 ``[n]``.

    Numerically the same as the ONNX model followed by ``FillLevelPredictor.postprocess``'s clip.
    """
    x = np.asarray(features, dtype=np.float32)
    return np.clip(x[:, 0].astype(np.float64) + booster.predict(x.astype(np.float64)), 0.0, 1.0)


def horizon_bucket(horizon_days: np.ndarray) -> np.ndarray:
    """Index of the ``HORIZON_BUCKETS`` bucket of each horizon (int ``[n]``)."""
    return np.clip(np.searchsorted(HORIZON_BUCKETS, horizon_days, side="right") - 1, 0,
                   len(HORIZON_BUCKETS) - 2)


def fill_bucket(fill_now: np.ndarray) -> np.ndarray:
    """Index 0..4 of the nearest quantisation level (0, 0.25, 0.5, 0.75, 1) of a fill fraction."""
    return np.clip(np.rint(np.asarray(fill_now, dtype=np.float64) / STEP_FRACTION), 0,
                   N_FILL_BUCKETS - 1).astype(np.int64)


def residual_quantiles(y: np.ndarray, pred: np.ndarray, horizon_days: np.ndarray,
                       fill_now: np.ndarray) -> list[list[list[float]]]:
    """Empirical quantiles of ``y - pred`` per horizon bucket x fill-level bucket.

    Residual spread depends strongly on the current fill (a full skip stays full; an empty one
    may or may not be used), hence the second conditioning variable.

    Args:
        y, pred, horizon_days, fill_now: float ``[n]`` out-of-sample targets, predictions
            (fill fraction), horizons (days) and origin fill fractions.

    Returns:
        ``[n_horizon_buckets][N_FILL_BUCKETS][len(RESIDUAL_LEVELS)]`` residual quantiles (fill
        fraction); a cell with fewer than 20 residuals falls back to its horizon bucket.
    """
    r = np.asarray(y, dtype=np.float64) - np.asarray(pred, dtype=np.float64)
    hb = horizon_bucket(np.asarray(horizon_days, dtype=np.float64))
    fb = fill_bucket(fill_now)
    out = []
    for k in range(len(HORIZON_BUCKETS) - 1):
        in_h = hb == k
        base = r[in_h] if in_h.any() else r
        row = []
        for j in range(N_FILL_BUCKETS):
            cell = r[in_h & (fb == j)]
            use = cell if cell.size >= 20 else base
            row.append([round(float(q), 6) for q in np.quantile(use, RESIDUAL_LEVELS)])
        out.append(row)
    return out


def interval_levels(coverage: float) -> tuple[float, float]:
    """Lower and upper quantile levels of a central interval of nominal ``coverage``.

    Raises:
        InvalidArgumentError: coverage not in [0.02, 0.98] (field ``interval_coverage``).
    """
    if not 0.02 <= coverage <= 0.98:
        raise InvalidArgumentError("interval_coverage", f"must be in [0.02, 0.98], got {coverage}")
    return round((1.0 - coverage) / 2.0, 9), round((1.0 + coverage) / 2.0, 9)


def interval_bounds(pred: np.ndarray, horizon_days: np.ndarray, fill_now: np.ndarray,
                    residual_q: list, coverage: float = DEFAULT_COVERAGE,
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper interval bounds (clipped to 0..1) from stored residual quantiles.

    The bounds are ``pred + residual quantile`` at the levels of ``interval_levels(coverage)``
    (linear interpolation on ``RESIDUAL_LEVELS``), widened to contain ``pred``.

    Returns:
        two float64 ``[n]`` arrays.
    """
    lo_l, hi_l = interval_levels(coverage)
    q = np.asarray(residual_q, dtype=np.float64)
    levels = np.asarray(RESIDUAL_LEVELS)
    hb = horizon_bucket(np.asarray(horizon_days, dtype=np.float64))
    fb = fill_bucket(fill_now)
    cells = q[hb, fb]  # [n, L]
    lo_r = np.array([np.interp(lo_l, levels, c) for c in cells])
    hi_r = np.array([np.interp(hi_l, levels, c) for c in cells])
    pred = np.asarray(pred, dtype=np.float64)
    lo = np.clip(pred + lo_r, 0.0, 1.0)
    hi = np.clip(pred + hi_r, 0.0, 1.0)
    return np.minimum(lo, pred), np.maximum(hi, pred)


def calibrate(samples: FillSamples, folds: int = 4, gap_days: int = MAX_HORIZON_DAYS,
              num_boost_round: int = NUM_BOOST_ROUND) -> list[list[list[float]]]:
    """Residual quantiles from blocked cross-validation over time (out-of-fold residuals).

    The origins are cut into ``folds`` consecutive blocks; each block is scored by a model
    trained on the pairs that lie entirely outside the block widened by ``gap_days`` on both
    sides (a purged blocked split, so no pair shares days with the scored block). Horizon-0
    pairs are not scored.

    Returns:
        ``residual_quantiles`` of the out-of-fold residuals.
    """
    days = samples.origin.sort_values()
    edges = [days[int(len(days) * k / folds)] for k in range(folds)] + [
        days[-1] + pd.Timedelta(days=1)]
    gap = pd.Timedelta(days=gap_days)
    ys, ps, hs, f0s = [], [], [], []
    for k in range(folds):
        lo, hi = edges[k], edges[k + 1]
        inside = np.asarray((samples.origin >= lo) & (samples.origin < hi)) & (
            samples.horizon >= 1)
        outside = np.asarray((samples.target_day < lo - gap) | (samples.origin >= hi + gap))
        if not inside.any() or not outside.any():
            continue
        booster = fit_fill_booster(samples.subset(outside), num_boost_round)
        test = samples.subset(inside)
        ys.append(test.y)
        ps.append(predict_fill(booster, test.x))
        hs.append(test.horizon.astype(np.float64))
        f0s.append(test.fill_now)
    x0 = np.concatenate(f0s)
    return residual_quantiles(np.concatenate(ys), np.concatenate(ps), np.concatenate(hs), x0)


@dataclass(frozen=True)
class BinReadings:
    """One bin to predict, as ``wasteml.v1.BinFillInput`` carries it.

    Attributes:
        bin_id: the caller's id (also the key of per-bin prior rates in the metadata).
        times_s: float64 ``[R]`` reading times, Unix seconds, strictly increasing.
        fill_fractions: float64 ``[R]`` fill fraction 0..1 per reading (overflowing = 1).
        target_time_s: Unix seconds to predict the fill at, 0..``MAX_HORIZON_DAYS`` days after
            the last reading.
        last_emptied_s: when the bin was last emptied, Unix seconds, if known.
        prior_fill_rate_per_day: the bin's typical filling rate, fraction per day, if known
            (e.g. the study's Q1); else the per-bin rate learned at training, if any.
    """

    bin_id: str
    times_s: np.ndarray
    fill_fractions: np.ndarray
    target_time_s: float
    last_emptied_s: float | None = None
    prior_fill_rate_per_day: float | None = None


@dataclass(frozen=True)
class FillPrediction:
    """Prediction for one bin.

    Attributes:
        bin_id: as asked.
        fill_fraction: predicted fill 0..1 at the target time (if not emptied before then).
        lower, upper: interval bounds 0..1 at quantile levels ``lower_quantile`` and
            ``upper_quantile``.
        time_to_full_s: seconds from the target time until full (``time_to_full_days`` from the
            predicted fill); 0 if full at the target time; None when not expected to fill within
            ``MAX_HORIZON_DAYS`` of the last reading (or no filling rate is known).
        contributions: top ``(feature, value, contribution)`` triples of the point prediction
            (empty unless asked for; see ``explain.py``).
    """

    bin_id: str
    fill_fraction: float
    lower: float
    upper: float
    lower_quantile: float
    upper_quantile: float
    time_to_full_s: float | None
    contributions: tuple = ()


@dataclass
class FillLevelPredictor:
    """Feature building and post-processing around the fill_level model (inference injected).

    Usage (the servicer; ``infer`` is Triton or in-process ONNX Runtime)::

        x = predictor.features(bins)                  # float32 [n_bins, 8]
        raw = infer(x)                                # [n] or [n, 1] fill fractions
        preds = predictor.postprocess(x, raw, [b.bin_id for b in bins], coverage=0.8)

    One feature row per bin (its target time).

    Attributes:
        model_version: version of the metadata in use.
        residual_q: ``[n_horizon_buckets][N_FILL_BUCKETS][len(RESIDUAL_LEVELS)]`` (metadata).
        bin_rates: bin id -> prior filling rate (fraction per day) learned at training.
    """

    model_version: int
    residual_q: list
    bin_rates: dict[str, float] = field(default_factory=dict)
    model_name: str = "fill_level"

    @classmethod
    def from_metadata(cls, metadata: dict) -> FillLevelPredictor:
        """Build from a ``metadata.json`` dict of the fill_level model.

        Raises:
            InvalidArgumentError: the metadata's feature order differs from this code's.
        """
        if list(metadata["feature_names"]) != list(FEATURE_NAMES):
            raise InvalidArgumentError("metadata.feature_names", "differ from this code's order")
        return cls(int(metadata["version"]), metadata["residual_quantiles"],
                   {k: float(v) for k, v in metadata.get("bin_rates", {}).items()},
                   metadata.get("model_name", "fill_level"))

    @classmethod
    def load(cls, model_repository: Path, version: int | None = None,
             model_name: str = "fill_level") -> FillLevelPredictor:
        """Predictor of a trained version (latest when ``version`` is None).

        Raises:
            NotFoundError: no such trained version.
        """
        from wasteml_server.forecasting import repository

        return cls.from_metadata(repository.load_metadata(model_repository, model_name, version))

    def explain(self, booster: lgb.Booster, features: np.ndarray, top_k: int) -> list[tuple]:
        """Top ``top_k`` contributions of each bin's target-time prediction (``pred_contrib``
        of the version's booster, ``fill_now`` carrying its value as the graph adds it).

        Args:
            booster: the version's booster (``repository.load_booster``).
            features: the ``features`` output for the batch.
            top_k: 1..``explain.MAX_TOP_K``.

        Returns:
            One tuple of ``explain.Contribution`` per bin, largest absolute first.
        """
        from wasteml_server.forecasting.explain import top_contributions

        rows = np.asarray(features)[:: self.rows_per_bin]
        return top_contributions(booster, rows, list(FEATURE_NAMES), top_k, base_column=0)

    @property
    def rows_per_bin(self) -> int:
        """Feature rows per bin (1: the target time)."""
        return 1

    def features(self, bins: list[BinReadings]) -> np.ndarray:
        """Feature rows for a batch of bins.

        Returns:
            float32 ``[len(bins), 8]`` in ``FEATURE_NAMES`` order.

        Raises:
            InvalidArgumentError: empty batch, no readings, unsorted times, fractions outside
                0..1 or NaN, a rate outside 0..``MAX_FILL_RATE_PER_DAY`` or NaN, a last emptying
                after the last reading, or a target time out of range (fields
                ``bins[i].recent_readings``, ``bins[i].target_time``, ...).
        """
        if not bins:
            raise InvalidArgumentError("bins", "at least one bin is required")
        rows = []
        for i, b in enumerate(bins):
            t = np.asarray(b.times_s, dtype=np.float64).ravel()
            f = np.asarray(b.fill_fractions, dtype=np.float64).ravel()
            field_r = f"bins[{i}].recent_readings"
            if t.size == 0:
                raise InvalidArgumentError(field_r, "at least one reading is required")
            if t.shape != f.shape:
                raise InvalidArgumentError(field_r, "one fill fraction per reading time")
            if np.isnan(t).any() or np.any(np.diff(t) <= 0):
                raise InvalidArgumentError(field_r, "reading times must be strictly increasing")
            if np.isnan(f).any() or f.min() < 0.0 or f.max() > 1.0:
                raise InvalidArgumentError(field_r, "fill fractions must be within 0..1")
            rate = b.prior_fill_rate_per_day
            if rate is not None and not (0.0 <= rate <= MAX_FILL_RATE_PER_DAY):  # NaN fails too
                raise InvalidArgumentError(f"bins[{i}].prior_fill_rate_per_day", "must be a "
                                           f"fraction per day in 0..{MAX_FILL_RATE_PER_DAY:g}, "
                                           f"got {rate}")
            h = (b.target_time_s - t[-1]) / 86400.0
            if not 0.0 <= h <= MAX_HORIZON_DAYS:
                raise InvalidArgumentError(
                    f"bins[{i}].target_time", f"must be 0..{MAX_HORIZON_DAYS} days after the "
                    f"last reading (is {h:.2f} days)")
            emptied = np.nan
            if b.last_emptied_s is not None:
                if b.last_emptied_s > t[-1]:
                    raise InvalidArgumentError(f"bins[{i}].last_emptied_at",
                                               "must not be after the last reading")
                emptied = b.last_emptied_s / 86400.0
            keep = t >= t[-1] - MAX_HORIZON_DAYS * 86400.0
            prior = rate if rate is not None else self.bin_rates.get(b.bin_id, np.nan)
            state = state_features(t[keep] / 86400.0, f[keep], float(prior), emptied)
            rows.append(with_horizons(state, np.array([h])))
        return np.vstack(rows)

    def postprocess(self, features: np.ndarray, raw_outputs: np.ndarray, bin_ids: list[str],
                    coverage: float = DEFAULT_COVERAGE) -> list[FillPrediction]:
        """Turn model outputs into predictions.

        Args:
            features: the ``features`` output the model saw, ``[n_bins, 8]``.
            raw_outputs: model outputs (fill fractions) ``[n_bins]`` or ``[n_bins, 1]``.
            bin_ids: ``[n_bins]`` ids in request order.
            coverage: nominal interval coverage in [0.02, 0.98].

        Raises:
            InvalidArgumentError: row counts do not match (field ``raw_outputs``) or a bad
                coverage (field ``interval_coverage``).
        """
        k = self.rows_per_bin
        raw = np.asarray(raw_outputs, dtype=np.float64).reshape(-1)
        if raw.size != len(bin_ids) * k or features.shape[0] != raw.size:
            raise InvalidArgumentError("raw_outputs", f"expected {len(bin_ids) * k} rows")
        lo_q, hi_q = interval_levels(coverage)
        pred = np.clip(raw, 0.0, 1.0)
        x = np.asarray(features, dtype=np.float64)
        lo, hi = interval_bounds(pred, x[:, 1], x[:, 0], self.residual_q, coverage)
        days = time_to_full_days(pred, x[:, 3], x[:, 6], x[:, 4])
        out = []
        for i, bin_id in enumerate(bin_ids):
            ttf = None if x[i, 1] + days[i] > MAX_HORIZON_DAYS else float(days[i] * 86400.0)
            out.append(FillPrediction(bin_id, float(pred[i]), float(lo[i]), float(hi[i]), lo_q,
                                      hi_q, ttf))
        return out
