"""Rolling-origin backtests of the demand and fill-level models, with baselines.

Demand (Austin; holdout = the data README's last 8 weeks, 2021-05-10 .. 2021-07-04):

* ``daily``: 8 weekly origins (Sundays 2021-05-09 .. 2021-06-27), horizon 1..7 days, the model
  refitted at every origin on the data up to it (the README's protocol "8 weekly origins, h = 1-7
  d, refit weekly"); scored on Mon-Fri service days (40 per series), as the README.
* ``weekly``: one origin (week ending 2021-05-09), horizon 1..8 weeks (README protocol B).

Baselines on the same points: seasonal naive (same weekday last week for daily; 52 weeks earlier
for weekly, as the README) and naive (last observed period; for daily the last Mon-Fri service
day, because the origins are Sundays with no collection). MASE is scaled by the in-sample
seasonal-naive MAE of the training series at the first origin (lag 7 days daily, 1 week weekly);
weekly MASE is the mean over routes, WAPE is pooled. Interval coverage is that of the 10-90 %
interval (``intervals.py``).

Fill level (Blantyre): monthly folds of origins from 2021-06-01 to the end of the data; each fold
trains on pairs whose target is before the fold and scores pairs with the origin in the fold.
Baselines: constant rate with the study's Q1, constant rate with the skip's own median cycle
rate (from the training part), and persistence (fill stays as read).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from wasteml_server.forecasting import fill_level as fl
from wasteml_server.forecasting.austin import SeriesSet
from wasteml_server.forecasting.demand import (
    GrainConfig,
    booster_infer,
    fit_booster,
    recursive_forecast,
)
from wasteml_server.forecasting.features import DemandFeatureSpec
from wasteml_server.forecasting.intervals import fit_prophet, quantile_offsets
from wasteml_server.forecasting.metrics import coverage, mae, seasonal_naive_scale, wape

logger = logging.getLogger(__name__)

HOLDOUT_START = pd.Timestamp("2021-05-10")
"""First day of the Austin holdout (data README: last 8 weeks 2021-05-10 .. 2021-07-04)."""

DAILY_ORIGINS = pd.date_range("2021-05-09", "2021-06-27", freq="7D")
"""The 8 weekly origins of the daily backtest (last training day of each refit)."""

WEEKLY_ORIGIN = pd.Timestamp("2021-05-09")
"""The origin of the weekly backtest (Sunday ending the last training week)."""

INTERVAL = (0.1, 0.9)
"""Quantile levels of the scored interval (80 % nominal coverage)."""

FILL_BACKTEST_START = pd.Timestamp("2021-06-01")
"""First origin of the fill-level backtest (about the last 4 months of the data)."""


@dataclass
class DemandBacktest:
    """Rolling-origin predictions of one grain.

    Attributes:
        frame: one row per series x origin x horizon with columns ``series_id``, ``origin``,
            ``h``, ``period_end``, ``y``, ``lightgbm``, ``seasonal_naive``, ``naive``, ``lower``,
            ``upper`` (kilograms; lower/upper NaN without intervals).
        scales: series id -> in-sample MASE scale (kg).
        seconds: wall time of the backtest.
    """

    grain: str
    frame: pd.DataFrame
    scales: dict[str, float]
    seconds: float


def backtest_demand(series: SeriesSet, spec: DemandFeatureSpec, config: GrainConfig,
                    intervals: bool = True, long_horizon: bool = False) -> DemandBacktest:
    """Run the README's backtest protocol for ``series.grain`` (see module docstring).

    Args:
        long_horizon: daily only: the README's other protocol, one origin (2021-05-09) and
            h = 1..56 days (the API's longest horizon) instead of 8 weekly origins x 1..7 d.
    """
    t0 = time.perf_counter()
    if series.grain == "daily" and long_horizon:
        origins, horizon = [DAILY_ORIGINS[0]], 56
    elif series.grain == "daily":
        origins, horizon = list(DAILY_ORIGINS), 7
    else:
        origins, horizon = [WEEKLY_ORIGIN], 8
    first_train = series.until(origins[0])
    scales = {}
    for s, sid in enumerate(series.series_ids):
        y = first_train.values[s]
        start = int(np.argmax(y > 0))
        scales[sid] = seasonal_naive_scale(y[start:], config.mase_lag)
    parts = []
    for origin in origins:
        train = series.until(origin)
        t = len(train.index)
        booster = fit_booster(train, spec, config)
        pred, _ = recursive_forecast(train.values, train.index, spec, horizon,
                                     booster_infer(booster, config.base_column(spec)))
        steps = np.arange(1, horizon + 1)
        ends = train.index[-1] + spec.period * steps
        actual = series.values[:, t - 1 + steps]
        m = config.season
        snaive = series.values[:, t - 1 + steps - m * np.ceil(steps / m).astype(int)]
        last = t - 1
        if series.grain == "daily":  # last service day (Mon-Fri), not the origin's Sunday
            while train.index[last].day_of_week >= 5:
                last -= 1
        naive = np.repeat(series.values[:, last : last + 1], horizon, axis=1)
        lower = np.full_like(pred, np.nan)
        upper = np.full_like(pred, np.nan)
        if intervals:
            for s, sid in enumerate(series.series_ids):
                model = fit_prophet(train.series(sid), spec)
                off = quantile_offsets(model, pd.DatetimeIndex(ends), np.array(INTERVAL), spec)
                lower[s] = np.maximum(pred[s] + off[0], 0.0)
                upper[s] = np.maximum(pred[s] + off[1], 0.0)
        for s, sid in enumerate(series.series_ids):
            parts.append(pd.DataFrame({
                "series_id": sid, "origin": origin, "h": steps, "period_end": ends,
                "y": actual[s], "lightgbm": pred[s], "seasonal_naive": snaive[s],
                "naive": naive[s], "lower": lower[s], "upper": upper[s]}))
        logger.info("%s origin %s done", series.grain, origin.date())
    return DemandBacktest(series.grain, pd.concat(parts, ignore_index=True), scales,
                          time.perf_counter() - t0)


METHODS = ("lightgbm", "seasonal_naive", "naive")


def score_demand(bt: DemandBacktest) -> list[dict]:
    """Score a demand backtest: one row per scored group x method.

    Daily: one group per series, Mon-Fri target days only. Weekly: one pooled group
    ``weekly:all-routes`` (WAPE pooled over route-weeks, MASE mean over routes).

    Returns:
        dicts with ``group``, ``method``, ``n``, ``wape``, ``accuracy`` (1 - WAPE), ``mase``,
        ``coverage`` (lightgbm only, else NaN).
    """
    df = bt.frame
    rows = []
    if bt.grain == "daily":
        df = df[df["period_end"].dt.day_of_week < 5]
        groups = [(sid, g) for sid, g in df.groupby("series_id", sort=False)]
    else:
        groups = [("weekly:all-routes", df)]
    for name, g in groups:
        for method in METHODS:
            if bt.grain == "daily":
                m = mae(g["y"], g[method]) / bt.scales[name]
            else:
                m = float(np.mean([mae(r["y"], r[method]) / bt.scales[sid]
                                   for sid, r in g.groupby("series_id")]))
            w = wape(g["y"], g[method])
            cov = float("nan")
            if method == "lightgbm" and g["lower"].notna().all():
                cov = coverage(g["y"], g["lower"], g["upper"])
            rows.append({"group": name, "method": method, "n": len(g), "wape": w,
                         "accuracy": 1.0 - w, "mase": m, "coverage": cov})
    return rows


def format_demand_table(rows: list[dict]) -> str:
    """Markdown table of ``score_demand`` rows (percentages for WAPE, accuracy, coverage)."""
    lines = ["| series | method | n | WAPE % | 1 - WAPE % | MASE | 80% interval coverage % |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        cov = "" if np.isnan(r["coverage"]) else f"{100 * r['coverage']:.1f}"
        lines.append(f"| {r['group']} | {r['method']} | {r['n']} | {100 * r['wape']:.1f} | "
                     f"{100 * r['accuracy']:.1f} | {r['mase']:.3f} | {cov} |")
    return "\n".join(lines)


@dataclass
class FillBacktest:
    """Fill-level backtest predictions.

    Attributes:
        frame: one row per scored pair: ``skip``, ``origin``, ``h``, ``y``, ``lightgbm``,
            ``lower``, ``upper``, ``rate_study``, ``rate_own``, ``persistence``.
        seconds: wall time.
    """

    frame: pd.DataFrame
    seconds: float
    time_to_full: pd.DataFrame | None = None


TTF_GRID_DAYS = np.arange(0.25, fl.MAX_HORIZON_DAYS + 1e-9, 0.25)
"""Horizons (days) scanned by the LightGBM-trajectory time-to-full alternative."""

TTF_METHODS = ("served", "lightgbm_trajectory", "rate_own", "rate_study")
"""Time-to-full estimators scored: ``served`` is ``fill_level.time_to_full_days`` from the
model's fill (what the API returns); ``lightgbm_trajectory`` is the first grid horizon whose
LightGBM fill reaches ``FULL_FRACTION``; the others are constant-rate baselines from the
origin fill."""


def _time_to_full(booster, in_fold: fl.FillSamples, own: dict[str, float],
                  study: dict[str, float]) -> pd.DataFrame:
    """Predicted vs actual days until full for origins that are not yet full and whose first
    full reading is observed (no emptying before it, within ``MAX_HORIZON_DAYS``)."""
    rows = []
    keys = pd.DataFrame({"skip": in_fold.skip, "origin": in_fold.origin, "y": in_fold.y,
                         "h": in_fold.horizon})
    full_at = keys[keys["y"] >= 1.0].groupby(["skip", "origin"])["h"].min()
    for i in np.flatnonzero(in_fold.horizon == 0):
        key = (in_fold.skip[i], in_fold.origin[i])
        f0 = float(in_fold.x[i, 0])
        if f0 >= fl.FULL_FRACTION or key not in full_at.index:
            continue
        x0 = in_fold.x[i : i + 1]
        p0 = fl.predict_fill(booster, x0)
        served = fl.time_to_full_days(p0, x0[:, 3], x0[:, 6], x0[:, 4])[0]
        state = in_fold.x[i, [0, 2, 3, 4, 5, 6]].astype(np.float64)
        traj = fl.predict_fill(booster, fl.with_horizons(state, TTF_GRID_DAYS))
        hit = np.flatnonzero(traj >= fl.FULL_FRACTION)
        rows.append({
            "skip": key[0], "origin": key[1], "actual_days": float(full_at[key]),
            "served": float(served),
            "lightgbm_trajectory": float(TTF_GRID_DAYS[hit[0]]) if hit.size else np.inf,
            "rate_own": (1.0 - f0) / own[key[0]] if own[key[0]] > 0 else np.inf,
            "rate_study": (1.0 - f0) / study[key[0]] if study.get(key[0]) else np.inf})
    return pd.DataFrame(rows)


def score_time_to_full(bt: FillBacktest) -> list[dict]:
    """MAE in days of time-to-full per method (estimates beyond the horizon count as
    ``MAX_HORIZON_DAYS``), and the share within one day of the actual."""
    df = bt.time_to_full
    out = []
    for m in TTF_METHODS:
        pred = np.minimum(df[m].to_numpy(), fl.MAX_HORIZON_DAYS)
        err = np.abs(pred - df["actual_days"].to_numpy())
        out.append({"method": m, "n": len(df), "mae_days": float(err.mean()),
                    "within_1_day": float((err <= 1.0).mean())})
    return out


def format_ttf_table(rows: list[dict]) -> str:
    """Markdown table of ``score_time_to_full`` rows."""
    lines = ["| method | n origins | time-to-full MAE (days) | within 1 day % |",
             "|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['n']} | {r['mae_days']:.2f} | "
                     f"{100 * r['within_1_day']:.1f} |")
    return "\n".join(lines)


def backtest_fill(fullness: pd.DataFrame, study: dict[str, float],
                  start: pd.Timestamp = FILL_BACKTEST_START,
                  num_boost_round: int = fl.NUM_BOOST_ROUND) -> FillBacktest:
    """Monthly rolling-origin backtest of the fill-level model and its baselines."""
    t0 = time.perf_counter()
    end = fullness.index[-1]
    fold_starts = list(pd.date_range(start, end, freq="MS"))
    parts, ttf_parts = [], []
    for k, fs in enumerate(fold_starts):
        fe = fold_starts[k + 1] if k + 1 < len(fold_starts) else end + pd.Timedelta(days=1)
        history = fullness[fullness.index < fs]
        own = fl.own_rates(history)
        samples = fl.build_samples(fullness, own)
        train = samples.subset(np.asarray(samples.target_day < fs))
        in_fold = samples.subset(np.asarray((samples.origin >= fs) & (samples.origin < fe)))
        test = in_fold.subset(in_fold.horizon >= 1)
        if len(test.y) == 0:
            continue
        booster = fl.fit_fill_booster(train, num_boost_round)
        resid_q = fl.calibrate(train, num_boost_round=num_boost_round)
        pred = fl.predict_fill(booster, test.x)
        h = test.horizon.astype(np.float64)
        f0 = test.fill_now
        lower, upper = fl.interval_bounds(pred, h, f0, resid_q, fl.DEFAULT_COVERAGE)
        study_r = np.array([study.get(s, np.nan) for s in test.skip])
        own_r = np.array([own[s] for s in test.skip])
        parts.append(pd.DataFrame({
            "skip": test.skip, "origin": test.origin, "h": test.horizon, "y": test.y,
            "lightgbm": pred, "lower": lower, "upper": upper,
            "rate_study": np.minimum(1.0, f0 + study_r * h),
            "rate_own": np.minimum(1.0, f0 + own_r * h), "persistence": f0}))
        ttf_parts.append(_time_to_full(booster, in_fold, own, study))
    return FillBacktest(pd.concat(parts, ignore_index=True), time.perf_counter() - t0,
                        pd.concat(ttf_parts, ignore_index=True))


FILL_METHODS = ("lightgbm", "rate_own", "rate_study", "persistence")


def score_fill(bt: FillBacktest, horizons: tuple[int, ...] = (1, 3, 7)) -> list[dict]:
    """MAE of fill fraction per horizon and method, plus the model's interval coverage.

    Returns:
        dicts with ``h``, ``n``, ``<method>`` MAE for each of ``FILL_METHODS``, ``coverage``.
    """
    rows = []
    df = bt.frame
    for h in horizons:
        g = df[df["h"] == h]
        row = {"h": h, "n": len(g)}
        for m in FILL_METHODS:
            row[m] = mae(g["y"], g[m])
        row["coverage"] = coverage(g["y"], g["lower"], g["upper"])
        rows.append(row)
    return rows


def format_fill_table(rows: list[dict]) -> str:
    """Markdown table of ``score_fill`` rows (MAE in fill fraction, coverage in %)."""
    lines = ["| horizon (days) | n | LightGBM MAE | constant rate (own history) MAE | "
             "constant rate (study Q1) MAE | persistence MAE | 80% interval coverage % |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['h']} | {r['n']} | {r['lightgbm']:.4f} | {r['rate_own']:.4f} | "
                     f"{r['rate_study']:.4f} | {r['persistence']:.4f} | "
                     f"{100 * r['coverage']:.1f} |")
    return "\n".join(lines)
