"""Feature construction for the demand models (Austin), shared by training and serving.

The same functions build the training matrix (all periods at once) and the recursive
forecasting rows (one period at a time, with earlier predictions appended to the history),
so training/serving skew cannot creep in. Every matrix is float32 ``[n_rows, n_features]`` with
columns in the order of ``DemandFeatureSpec.names`` -- the order of the ONNX ``features`` input.

Daily grain (city-daily kilograms per service line; lags as the data README's LightGBM baseline):

====================  ==========================================================================
``series``            service-line code (categorical): index into ``series_ids`` of the metadata
``dow``               day of week of the target day, 0 = Monday
``month``             1..12
``doy``               day of year 1..366
``hol``               1 if the target day is a collection holiday
``hol_minor``         1 if the target day is another US federal holiday on a weekday (Austin
                      collects, but less: e.g. Memorial Day about -15 %)
``hol_shift``         number of collection holidays on Mon..(day-1) of the same week: Austin
                      delays the rest of the week's collections by one day per holiday
``hol_lag7``          ``hol`` of the day 7 days earlier (the seasonal-naive reference day)
``hol_shift_lag7``    ``hol_shift`` of the day 7 days earlier
``hol_next``          1 if the next day is a collection holiday
``lag_<k>``           kilograms ``k`` days before the target day (k = 1, 2, 7, 14, 21, 28, 364)
``mean_7``            mean kilograms of the 7 days before the target day
``mean_same_dow_4``   mean of lags 7, 14, 21, 28
====================  ==========================================================================

Weekly grain (kilograms per garbage route per week ending Sunday):

====================  ==========================================================================
``series``            route code (categorical): index into ``series_ids`` of the metadata
``route_dow``         service weekday parsed from the route code (the letter before the digits:
                      M/T/W/H/F -> 0..4; -1 when the code does not follow that pattern)
``woy``               ISO week of year of the week's Monday
``month``             month of the week's Sunday
``hol_week``          collection holidays on Mon..Fri of the week
``hol_before_route``  collection holidays on Mon..route weekday of the week (shifts that route)
``hol_week_lag1``     ``hol_week`` of the previous week
``lag_<k>``           kilograms ``k`` weeks before (k = 1, 2, 3, 4, 52)
``mean_4``            mean of lags 1..4
====================  ==========================================================================

Collection holidays are US federal holidays from the ``holidays`` package (``holidays.US``,
observed days included) whose name is in ``DemandFeatureSpec.holiday_names``; that list is chosen
from the training data by ``select_collection_holidays`` (holidays on which garbage tonnage drops
below half of the same weekday one week earlier), because Austin does not close on every federal
holiday.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import holidays as holidays_lib
import numpy as np
import pandas as pd

from wasteml_server.core.errors import InvalidArgumentError

DAILY_LAGS: tuple[int, ...] = (1, 2, 7, 14, 21, 28, 364)
"""Daily lags in days (the data README's LightGBM baseline)."""

WEEKLY_LAGS: tuple[int, ...] = (1, 2, 3, 4, 52)
"""Weekly lags in weeks (the data README's per-route LightGBM baseline)."""

_ROUTE_DAY = {"M": 0, "T": 1, "W": 2, "H": 3, "F": 4}
_ROUTE_RE = re.compile(r"([A-Z])(\d+)$")


@dataclass(frozen=True)
class DemandFeatureSpec:
    """Everything needed to rebuild demand features exactly; stored in the model metadata.

    Attributes:
        grain: ``"daily"`` or ``"weekly"``.
        series_ids: series ids in code order (the ``series`` feature is an index into this).
        holiday_names: names (as in ``holidays.US``) treated as collection holidays.
        lags: lags in periods.
    """

    grain: str
    series_ids: tuple[str, ...]
    holiday_names: tuple[str, ...]
    lags: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.grain not in ("daily", "weekly"):
            raise InvalidArgumentError("grain", f"must be 'daily' or 'weekly', got {self.grain!r}")
        if not self.lags:
            object.__setattr__(self, "lags", DAILY_LAGS if self.grain == "daily" else WEEKLY_LAGS)

    @property
    def calendar_names(self) -> tuple[str, ...]:
        """Names of the non-lag columns, in matrix order."""
        if self.grain == "daily":
            return ("series", "dow", "month", "doy", "hol", "hol_minor", "hol_shift", "hol_lag7",
                    "hol_shift_lag7", "hol_next")
        return ("series", "route_dow", "woy", "month", "hol_week", "hol_before_route",
                "hol_week_lag1")

    @property
    def lag_names(self) -> tuple[str, ...]:
        """Names of the lag and rolling-mean columns, in matrix order."""
        extra = ("mean_7", "mean_same_dow_4") if self.grain == "daily" else ("mean_4",)
        return tuple(f"lag_{k}" for k in self.lags) + extra

    @property
    def names(self) -> tuple[str, ...]:
        """All feature names in ONNX input column order."""
        return self.calendar_names + self.lag_names

    @property
    def max_lag(self) -> int:
        """Largest lag: the history length a forecast needs, in periods."""
        return max(self.lags)

    @property
    def period(self) -> pd.Timedelta:
        """Length of one period (1 day or 7 days)."""
        return pd.Timedelta(days=1 if self.grain == "daily" else 7)

    def to_json(self) -> dict:
        """JSON-serialisable form (metadata sidecar)."""
        return {"grain": self.grain, "series_ids": list(self.series_ids),
                "holiday_names": list(self.holiday_names), "lags": list(self.lags),
                "feature_names": list(self.names)}

    @classmethod
    def from_json(cls, d: dict) -> DemandFeatureSpec:
        """Inverse of ``to_json``."""
        return cls(d["grain"], tuple(d["series_ids"]), tuple(d["holiday_names"]), tuple(d["lags"]))


@lru_cache(maxsize=8)
def _us_holidays(first_year: int, last_year: int) -> dict:
    return dict(holidays_lib.US(years=range(first_year, last_year + 1)))


def holiday_calendar(start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
    """US federal holidays (observed days included) between two days, from ``holidays.US``.

    Returns:
        Series of holiday names indexed by day (datetime64), only days that are holidays.
    """
    hol = _us_holidays(start.year - 1, end.year + 1)
    s = pd.Series({pd.Timestamp(d): name for d, name in hol.items()}, dtype=object).sort_index()
    return s[(s.index >= start) & (s.index <= end)]


def select_collection_holidays(garbage_kg: pd.Series, min_years: int = 2) -> tuple[str, ...]:
    """Holiday names on which collection stops, learned from a daily garbage series.

    A holiday name is kept when, over its weekday occurrences in the series, the median ratio of
    that day's kilograms to the median of the same weekday 1, 2 and 3 weeks earlier (non-zero
    days only) is below 0.5 (collection was largely suspended), with at least ``min_years``
    weekday occurrences.

    Args:
        garbage_kg: daily kilograms indexed by consecutive days (training part only).
        min_years: fewest weekday occurrences needed to judge a holiday.

    Returns:
        Sorted tuple of holiday names (as in ``holidays.US``).
    """
    cal = holiday_calendar(garbage_kg.index[0], garbage_kg.index[-1])
    ratios: dict[str, list[float]] = {}
    for day, name in cal.items():
        refs = [day - pd.Timedelta(days=7 * k) for k in (1, 2, 3)]
        if day.day_of_week >= 5 or day not in garbage_kg.index:
            continue
        ref_kg = [garbage_kg[r] for r in refs if r in garbage_kg.index and garbage_kg[r] > 0]
        if not ref_kg:
            continue
        ratios.setdefault(name, []).append(float(garbage_kg[day] / np.median(ref_kg)))
    keep = [n for n, r in ratios.items() if len(r) >= min_years and float(np.median(r)) < 0.5]
    return tuple(sorted(keep))


def _holiday_flags(days: pd.DatetimeIndex, names: tuple[str, ...],
                   minor: bool = False) -> np.ndarray:
    """1.0 where a day is a holiday named in ``names`` (or, with ``minor``, any other one)."""
    cal = holiday_calendar(days.min() - pd.Timedelta(days=14), days.max() + pd.Timedelta(days=14))
    picked = ~cal.isin(names) if minor else cal.isin(names)
    hol_days = set(cal[picked].index)
    return np.array([d in hol_days for d in days], dtype=np.float64)


def daily_calendar(days: pd.DatetimeIndex, spec: DemandFeatureSpec) -> np.ndarray:
    """Calendar columns of the daily grain for target days (series column left 0).

    Returns:
        float64 ``[len(days), len(spec.calendar_names)]``.
    """
    span = pd.date_range(days.min() - pd.Timedelta(days=14), days.max() + pd.Timedelta(days=1))
    hol = pd.Series(_holiday_flags(span, spec.holiday_names), index=span)
    # holidays earlier in the same Mon..Sun week, excluding the day itself
    week = span - pd.to_timedelta(span.day_of_week, unit="D")
    shift = hol.groupby(week).cumsum() - hol
    out = np.zeros((len(days), len(spec.calendar_names)))
    out[:, 1] = days.day_of_week
    out[:, 2] = days.month
    out[:, 3] = days.day_of_year
    minor = pd.Series(_holiday_flags(span, spec.holiday_names, minor=True), index=span)
    out[:, 4] = hol.reindex(days).to_numpy()
    out[:, 5] = minor.reindex(days).to_numpy() * (days.day_of_week < 5)
    out[:, 6] = shift.reindex(days).to_numpy()
    lag7 = days - pd.Timedelta(days=7)
    out[:, 7] = hol.reindex(lag7).to_numpy()
    out[:, 8] = shift.reindex(lag7).to_numpy()
    out[:, 9] = hol.reindex(days + pd.Timedelta(days=1)).to_numpy()
    return out


def route_weekday(series_id: str) -> int:
    """Service weekday of a route code (0 = Monday .. 4 = Friday), -1 if not parseable.

    The data README: "the letter before the digits looks like the service weekday M/T/W/H/F".
    """
    m = _ROUTE_RE.search(series_id.split(":", 1)[-1])
    return _ROUTE_DAY.get(m.group(1), -1) if m else -1


def weekly_calendar(week_ends: pd.DatetimeIndex, spec: DemandFeatureSpec,
                    route_dows: np.ndarray) -> np.ndarray:
    """Calendar columns of the weekly grain for target weeks x routes.

    Args:
        week_ends: ``[W]`` Sundays ending the target weeks.
        spec: weekly feature spec.
        route_dows: int ``[S]`` route weekdays (``route_weekday``).

    Returns:
        float64 ``[S, W, len(spec.calendar_names)]`` (series column left 0).
    """
    mondays = week_ends - pd.Timedelta(days=6)
    span = pd.date_range(mondays.min() - pd.Timedelta(days=7), week_ends.max())
    hol = pd.Series(_holiday_flags(span, spec.holiday_names), index=span)
    s, w = len(route_dows), len(week_ends)
    out = np.zeros((s, w, len(spec.calendar_names)))
    out[:, :, 1] = route_dows[:, None]
    out[:, :, 2] = np.asarray(mondays.isocalendar().week, dtype=np.float64)[None, :]
    out[:, :, 3] = np.asarray(week_ends.month, dtype=np.float64)[None, :]
    # per week: holiday flags Mon..Fri  -> [W, 5]
    offs = np.arange(5)
    flags = np.stack([hol.reindex(mondays + pd.Timedelta(days=int(k))).to_numpy() for k in offs], 1)
    prev = np.stack([hol.reindex(mondays - pd.Timedelta(days=7 - int(k))).to_numpy()
                     for k in offs], 1)
    out[:, :, 4] = flags.sum(1)[None, :]
    upto = (offs[None, :] <= np.clip(route_dows, 0, 4)[:, None]) & (route_dows[:, None] >= 0)
    out[:, :, 5] = upto.astype(np.float64) @ flags.T
    out[:, :, 6] = prev.sum(1)[None, :]
    return out


def lag_block(values: np.ndarray, positions: np.ndarray, spec: DemandFeatureSpec) -> np.ndarray:
    """Lag and rolling-mean columns for target positions of a history array.

    Args:
        values: float64 ``[S, T]`` kilograms per period (history, possibly extended with
            predictions during recursive forecasting).
        positions: int ``[P]`` target positions in ``values``' time axis (may equal ``T``: the
            next, not yet known period). Each must be ``>= spec.max_lag``.
        spec: the feature spec.

    Returns:
        float64 ``[S, P, len(spec.lag_names)]``.

    Raises:
        InvalidArgumentError: a position has less history than ``spec.max_lag``.
    """
    positions = np.asarray(positions, dtype=np.int64)
    if positions.size and positions.min() < spec.max_lag:
        raise InvalidArgumentError("history", f"needs at least {spec.max_lag} periods of history")
    cols = [values[:, positions - k] for k in spec.lags]
    if spec.grain == "daily":
        cols.append(np.mean([values[:, positions - k] for k in range(1, 8)], axis=0))
        cols.append(np.mean([values[:, positions - k] for k in (7, 14, 21, 28)], axis=0))
    else:
        cols.append(np.mean([values[:, positions - k] for k in range(1, 5)], axis=0))
    return np.stack(cols, axis=-1)


def calendar_block(index: pd.DatetimeIndex, positions: np.ndarray, spec: DemandFeatureSpec,
                   codes: np.ndarray) -> np.ndarray:
    """Calendar columns (with the ``series`` code) for target positions of aligned series.

    Args:
        index: period end days of the history (position ``p`` is ``index[0] + p * period``).
        positions: int ``[P]`` target positions.
        spec: the feature spec.
        codes: int ``[S]`` series codes (indexes into ``spec.series_ids``).

    Returns:
        float64 ``[S, P, len(spec.calendar_names)]``.
    """
    positions = np.asarray(positions, dtype=np.int64)
    targets = pd.DatetimeIndex(index[0] + spec.period * positions)
    if spec.grain == "daily":
        cal = np.broadcast_to(daily_calendar(targets, spec), (len(codes), len(positions),
                                                              len(spec.calendar_names))).copy()
    else:
        dows = np.array([route_weekday(spec.series_ids[c]) for c in codes])
        cal = weekly_calendar(targets, spec, dows)
    cal[:, :, 0] = np.asarray(codes)[:, None]
    return cal


def feature_rows(values: np.ndarray, index: pd.DatetimeIndex, positions: np.ndarray,
                 spec: DemandFeatureSpec, series_rows: np.ndarray | None = None,
                 calendar: np.ndarray | None = None) -> np.ndarray:
    """Full feature matrix for target positions of aligned series.

    Args:
        values: float64 ``[S, T]`` history in kilograms; row ``s`` is series ``series_rows[s]``
            of ``spec.series_ids``.
        index: ``[T]`` period end days of ``values``.
        positions: int ``[P]`` target positions (``<= T``; ``T`` is the period after the history).
        spec: the feature spec.
        series_rows: int ``[S]`` code of each row of ``values`` (default ``0..S-1``).
        calendar: precomputed ``calendar_block`` for these positions (recursive forecasting
            computes it once for the whole horizon).

    Returns:
        float32 ``[S * P, n_features]``, series-major (all positions of series 0 first).
    """
    s_count = values.shape[0]
    codes = np.arange(s_count) if series_rows is None else np.asarray(series_rows)
    positions = np.asarray(positions, dtype=np.int64)
    cal = calendar_block(index, positions, spec, codes) if calendar is None else calendar
    lags = lag_block(values, positions, spec)
    return np.concatenate([cal, lags], axis=-1).reshape(s_count * len(positions), -1).astype(
        np.float32)
