"""Stage (c) of PlanDay: choose must-visit and optional bins, and price leaving a bin.

Rules (transport-free, unit-tested):

* **must-visit** when the predicted fill at the planned service time is at or above
  ``PlanPolicy.must_visit_fill_fraction``, or when a recent complaint sits within
  ``complaint_radius_m`` of the bin and ``complaint_makes_must_visit`` is set;
* **optional** otherwise, with a skip penalty (routing cost units, the same as the vehicles'
  ``cost_per_km``) that grows with the overflow predicted if the bin is left until the next
  service opportunity ``next_service_s`` later::

      fill_next = fill + rate * next_service_s      (rate from the forecast's time to full)
      overflow  = min(MAX_OVERFLOW, max(0, fill_next - 1))   (skip volumes beside a full skip)
      penalty   = base_skip_penalty + overflow_penalty * overflow
                  (+ overflow_penalty when a complaint counts for the bin but
                   ``complaint_makes_must_visit`` is off)

  ``rate = (1 - fill) / time_to_full_s``; when the forecast gives no time to full (not full
  within its horizon) the rate is taken from the upper interval bound over the horizon, and
  is 0 when that is not above the point either. A bin is a **predicted overflow** when
  ``fill_next >= 1`` (it would be full or overflowing before the next opportunity).

The solver then serves every must-visit bin (or reports why it cannot) and an optional bin
whenever serving it costs less than its penalty.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from wasteml_server.core.errors import InvalidArgumentError, shown
from wasteml_server.core.units import DAY_S
from wasteml_server.forecasting.fill_level import MAX_HORIZON_DAYS
from wasteml_server.routing.problem import MAX_COST
from wasteml_server.search.documents import DEFAULT_MAX_TEXT_CHARS

#: Complaints younger than this count by default, days.
DEFAULT_COMPLAINT_LOOKBACK_DAYS = 14

#: Overflow counted in the penalty, skip volumes: beyond two volumes the extrapolated rate says
#: more about the forecast's uncertainty than about the waste on the ground.
MAX_OVERFLOW = 2.0


class Selection(enum.Enum):
    """How the planner treats a bin."""

    MUST_VISIT = "MUST_VISIT"
    OPTIONAL = "OPTIONAL"


@dataclass(frozen=True)
class PlanPolicy:
    """Rules of a day plan (``wasteml.v1.PlanningPolicy``).

    Attributes:
        must_visit_fill_fraction: predicted fill (0..1] at or above which a bin must be visited.
        overflow_penalty: cost units per skip-volume of predicted overflow left for tomorrow.
        base_skip_penalty: cost units of leaving any optional bin.
        complaint_radius_m: complaints within this distance of a bin count for it, metres.
        complaint_lookback_s: complaints younger than this count, seconds.
        complaint_query: text of the complaint search (semantic, e.g. "overflowing skip").
        complaint_min_score: minimum cosine similarity of a complaint to the query (-1..1).
        complaint_makes_must_visit: a matching complaint makes the bin must-visit.
        complaint_collection: search collection of the complaints ("" = the server's default).
        next_service_s: time to the next service opportunity, seconds (overflow horizon).
    """

    must_visit_fill_fraction: float = 0.8
    overflow_penalty: float = 200.0
    base_skip_penalty: float = 5.0
    complaint_radius_m: float = 250.0
    complaint_lookback_s: float = DEFAULT_COMPLAINT_LOOKBACK_DAYS * DAY_S
    complaint_query: str = "overflowing skip, rubbish piling up around the dumpster"
    complaint_min_score: float = 0.3
    complaint_makes_must_visit: bool = True
    complaint_collection: str = ""
    next_service_s: float = float(DAY_S)

    def __post_init__(self) -> None:
        checks = (
            ("must_visit_fill_fraction", 0.0 < self.must_visit_fill_fraction <= 1.0, "must be in (0, 1]"),
            ("overflow_penalty", 0 <= self.overflow_penalty <= MAX_COST,
             f"must be a finite number in [0, {MAX_COST:g}] (the engines' 64-bit cost range)"),
            ("base_skip_penalty", 0 <= self.base_skip_penalty <= MAX_COST,
             f"must be a finite number in [0, {MAX_COST:g}] (the engines' 64-bit cost range)"),
            ("complaint_radius_m", 0 < self.complaint_radius_m <= 50_000, "must be in (0, 50000] metres"),
            ("complaint_lookback", 0 < self.complaint_lookback_s <= 366 * DAY_S, "must be in (0, 366] days"),
            ("complaint_min_score", -1.0 <= self.complaint_min_score <= 1.0, "must be in -1..1"),
            ("next_service_s", 0 < self.next_service_s <= 30 * DAY_S, "must be in (0, 30] days"),
        )
        for name, ok, why in checks:
            if not ok:
                raise InvalidArgumentError(name, why)
        if len(self.complaint_query) > DEFAULT_MAX_TEXT_CHARS:
            raise InvalidArgumentError("complaint_query", f"must be at most {DEFAULT_MAX_TEXT_CHARS} characters, "
                                       f"got {len(self.complaint_query)}")
        if not self.complaint_query.strip():
            raise InvalidArgumentError("complaint_query", "must not be blank")


@dataclass(frozen=True)
class FillForecast:
    """The fill prediction of one bin at the planned service time.

    Attributes:
        fill_fraction: predicted fill 0..1.
        lower, upper: interval bounds 0..1.
        time_to_full_s: seconds from the service time until full; None if not within the
            model's horizon.
        horizon_s: the fill model's horizon, seconds (for the rate when ``time_to_full_s`` is
            None): ``forecasting.fill_level.MAX_HORIZON_DAYS``.
        fallback: why a declared fallback produced this forecast instead of the model ("" if none).
    """

    fill_fraction: float
    lower: float
    upper: float
    time_to_full_s: float | None
    horizon_s: float = MAX_HORIZON_DAYS * DAY_S
    fallback: str = ""


@dataclass(frozen=True)
class Complaint:
    """A service request near a bin.

    Attributes:
        id: document id (e.g. the 311 case id).
        score: cosine similarity to the complaint query, -1..1.
        distance_m: haversine distance to the bin, metres.
        created_at: when it was made (aware datetime).
        text: its text.
    """

    id: str
    score: float
    distance_m: float
    created_at: datetime
    text: str


@dataclass(frozen=True)
class BinDecision:
    """Why a bin is (or is not) in the plan (``wasteml.v1.BinDecision``).

    Attributes:
        bin_id: the bin.
        selection: must-visit or optional.
        forecast: its fill forecast at the service time.
        complaints: complaints that count for it, best first.
        over_fill_threshold: the forecast reached ``must_visit_fill_fraction``.
        complaint_backed: at least one complaint counts for it.
        skip_penalty: cost of leaving it (optional bins; 0 for must-visit), cost units.
        fill_next: predicted fill at the next service opportunity if left today (uncapped).
        predicted_overflow: ``fill_next >= 1``.
        served: filled in after solving.
    """

    bin_id: str
    selection: Selection
    forecast: FillForecast
    complaints: tuple[Complaint, ...]
    over_fill_threshold: bool
    complaint_backed: bool
    skip_penalty: float
    fill_next: float
    predicted_overflow: bool
    served: bool = False
    notes: tuple[str, ...] = field(default=())

    @property
    def explanation(self) -> str:
        """One sentence a dispatcher can read."""
        parts = [f"predicted fill {self.forecast.fill_fraction:.0%}"
                 f" ({self.forecast.lower:.0%}-{self.forecast.upper:.0%})"]
        if self.over_fill_threshold:
            parts.append("at or above the must-visit threshold")
        if self.complaint_backed:
            ids = ", ".join(c.id for c in self.complaints[:3])
            parts.append(f"complaint{'s' if len(self.complaints) > 1 else ''} nearby ({ids})")
        if self.selection is Selection.OPTIONAL:
            parts.append(f"optional, leaving it costs {self.skip_penalty:.1f}")
        if self.predicted_overflow and self.forecast.fill_fraction < 1.0:
            parts.append(f"would reach {self.fill_next:.0%} by the next service")
        if self.forecast.fallback:
            parts.append(f"fallback: {self.forecast.fallback}")
        parts.extend(self.notes)
        return "; ".join(parts)


def fill_rate_per_s(forecast: FillForecast) -> float:
    """Filling rate implied by a forecast, fraction per second (>= 0; see module docstring)."""
    if forecast.time_to_full_s is not None and forecast.time_to_full_s > 0:
        return max(0.0, 1.0 - forecast.fill_fraction) / forecast.time_to_full_s
    if forecast.time_to_full_s == 0:
        return 0.0 if forecast.fill_fraction < 1.0 else max(0.0, forecast.upper - forecast.lower) / DAY_S
    return max(0.0, forecast.upper - forecast.fill_fraction) / max(forecast.horizon_s, 1.0)


def decide(
    bin_ids: Sequence[str],
    forecasts: Mapping[str, FillForecast],
    complaints: Mapping[str, Sequence[Complaint]],
    policy: PlanPolicy,
) -> list[BinDecision]:
    """Choose must-visit/optional for every bin and price the optional ones.

    Args:
        bin_ids: the bins of the plan, in request order.
        forecasts: bin id -> fill forecast at the service time (every bin must have one).
        complaints: bin id -> complaints within the radius and look-back (may be missing).
        policy: the planning rules.

    Returns:
        One decision per bin, in ``bin_ids`` order.

    Raises:
        InvalidArgumentError: a bin without a forecast (``bins[i]``).
    """
    out = []
    for i, bin_id in enumerate(bin_ids):
        forecast = forecasts.get(bin_id)
        if forecast is None:
            raise InvalidArgumentError(f"bins[{i}]", f"no fill forecast for bin {shown(bin_id)}")
        near = tuple(sorted(complaints.get(bin_id, ()), key=lambda c: (-c.score, c.distance_m)))
        over = forecast.fill_fraction >= policy.must_visit_fill_fraction
        backed = bool(near)
        fill_next = forecast.fill_fraction + fill_rate_per_s(forecast) * policy.next_service_s
        overflow = min(MAX_OVERFLOW, max(0.0, fill_next - 1.0))
        must = over or (backed and policy.complaint_makes_must_visit)
        penalty = 0.0 if must else (
            policy.base_skip_penalty + policy.overflow_penalty * (overflow + (1.0 if backed else 0.0))
        )
        out.append(
            BinDecision(
                bin_id=bin_id,
                selection=Selection.MUST_VISIT if must else Selection.OPTIONAL,
                forecast=forecast,
                complaints=near,
                over_fill_threshold=over,
                complaint_backed=backed,
                skip_penalty=penalty,
                fill_next=fill_next,
                predicted_overflow=fill_next >= 1.0,
            )
        )
    return out
