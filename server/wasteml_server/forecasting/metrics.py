"""Forecast accuracy metrics: WAPE, MASE, MAE, interval coverage.

Definitions follow the data README's "Baselines" section (``../shared/data/README-real-data.md``)
and Hyndman & Koehler (2006), "Another look at measures of forecast accuracy", IJF 22(4):

* ``WAPE = sum|y - yhat| / sum|y|`` (weighted absolute percentage error, a fraction, not %);
  ``accuracy = 1 - WAPE`` is the figure quoted for ">85 % accuracy" claims.
* ``MASE = MAE(forecast) / MAE(in-sample seasonal naive)``, where the scale is the mean absolute
  lag-``m`` difference of the *training* series (m = 7 for daily, 1 for weekly data, as the README
  defines). MASE < 1 means the forecast beats the in-sample seasonal-naive one-step error.
* Interval coverage: the fraction of actuals inside ``[lower, upper]`` (both inclusive).
"""

from __future__ import annotations

import numpy as np

from wasteml_server.core.errors import InvalidArgumentError


def _as_pair(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise InvalidArgumentError("y_pred", f"shape {p.shape} differs from y_true {y.shape}")
    if y.size == 0:
        raise InvalidArgumentError("y_true", "no points to score")
    return y, p


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute error, in the unit of ``y``.

    Args:
        y_true, y_pred: float arrays of the same shape (any, flattened).

    Raises:
        InvalidArgumentError: shapes differ or the arrays are empty.
    """
    y, p = _as_pair(y_true, y_pred)
    return float(np.mean(np.abs(y - p)))


def wape(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Weighted absolute percentage error ``sum|y - yhat| / sum|y|`` as a fraction (0.07 = 7 %).

    Args:
        y_true, y_pred: float arrays of the same shape, e.g. kilograms per day.

    Raises:
        InvalidArgumentError: shapes differ, the arrays are empty, or ``sum|y| == 0``.
    """
    y, p = _as_pair(y_true, y_pred)
    denom = float(np.sum(np.abs(y)))
    if denom == 0.0:
        raise InvalidArgumentError("y_true", "WAPE is undefined when all actuals are zero")
    return float(np.sum(np.abs(y - p)) / denom)


def seasonal_naive_scale(y_train: np.ndarray, season: int) -> float:
    """In-sample MAE of the seasonal-naive forecast ``y[t] = y[t - season]``: the MASE denominator.

    Args:
        y_train: float array ``[T]`` of the training series (no gaps; NaN not allowed).
        season: lag ``m`` in steps (7 for daily series, 1 for weekly series).

    Raises:
        InvalidArgumentError: ``season < 1``, the series is shorter than ``season + 1`` or
            has NaN, or the scale is 0 (a constant series).
    """
    y = np.asarray(y_train, dtype=np.float64).ravel()
    if season < 1:
        raise InvalidArgumentError("season", f"must be >= 1, got {season}")
    if y.size <= season:
        raise InvalidArgumentError("y_train", f"needs more than {season} points, got {y.size}")
    if np.isnan(y).any():
        raise InvalidArgumentError("y_train", "contains NaN")
    scale = float(np.mean(np.abs(y[season:] - y[:-season])))
    if scale == 0.0:
        raise InvalidArgumentError("y_train", "constant series: the MASE scale is 0")
    return scale


def mase(y_true: np.ndarray, y_pred: np.ndarray, y_train: np.ndarray, season: int) -> float:
    """Mean absolute scaled error: ``MAE(y, yhat) / seasonal_naive_scale(y_train, season)``.

    Args:
        y_true, y_pred: float arrays of the same shape (the scored points only).
        y_train: the in-sample history of the same series, ``[T]``.
        season: seasonal lag of the scale (7 daily, 1 weekly, as the data README's baselines).

    Raises:
        InvalidArgumentError: as ``mae`` and ``seasonal_naive_scale``.
    """
    return mae(y_true, y_pred) / seasonal_naive_scale(y_train, season)


def coverage(y_true: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Fraction of actuals with ``lower <= y <= upper`` (0..1).

    Raises:
        InvalidArgumentError: shapes differ, arrays empty, or any ``lower > upper``.
    """
    y, lo = _as_pair(y_true, lower)
    _, hi = _as_pair(y_true, upper)
    if np.any(lo > hi):
        raise InvalidArgumentError("lower", "lower bound above upper bound")
    return float(np.mean((y >= lo) & (y <= hi)))
