"""Units shared by the domains."""

from __future__ import annotations

#: Seconds in a day.
DAY_S = 86_400
