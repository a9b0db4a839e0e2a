"""What the user asked to see, as one frozen `Filters` parsed and validated from the controls.

Seasons are month ranges that may wrap across the new year (Winter is November to March).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

import h3

from pipeline.errors import ConfigError
from pipeline.schema import H3_RESOLUTIONS

MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class Season(StrEnum):
    ALL = "all"
    WINTER = "winter"
    MATING = "mating"
    SUMMER = "summer"
    CUSTOM = "custom"


# (first month, last month), inclusive; first > last wraps across the new year.
SEASON_MONTHS: dict[Season, tuple[int, int]] = {
    Season.ALL: (1, 12),
    Season.WINTER: (11, 3),
    Season.MATING: (1, 3),
    Season.SUMMER: (6, 8),
}

SEASON_LABELS: dict[Season, str] = {
    Season.ALL: "All year",
    Season.WINTER: "Winter (Nov–Mar)",
    Season.MATING: "Mating season (Jan–Mar)",
    Season.SUMMER: "Summer (Jun–Aug)",
    Season.CUSTOM: "Custom months",
}


class Period(StrEnum):
    WEEK = "week"
    MONTH = "month"


def month_span(first: int, last: int) -> tuple[int, ...]:
    """Return the months from `first` to `last` inclusive, wrapping past December."""
    for m in (first, last):
        if not 1 <= m <= 12:
            raise ConfigError(f"a month must be 1–12, got {m}")
    n = (last - first) % 12 + 1
    return tuple((first - 1 + i) % 12 + 1 for i in range(n))


@dataclass(frozen=True)
class Filters:
    """One view of the survey: hexagon size, time window, season, threshold, series period.

    `start`/`end` are inclusive local dates; None leaves that side open.
    """

    resolution: int = 6
    start: date | None = None
    end: date | None = None
    season: Season = Season.ALL
    month_start: int = 1
    month_end: int = 12
    threshold: float = 0.5
    period: Period = Period.MONTH
    verified_only: bool = False  # count only bursts a person confirmed in the review gallery

    def __post_init__(self) -> None:
        if self.resolution not in H3_RESOLUTIONS:
            raise ConfigError(f"H3 resolution must be 5–9, got {self.resolution}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"score threshold must be between 0 and 1, got {self.threshold}")
        if self.start and self.end and self.start > self.end:
            raise ConfigError("the start date is after the end date")
        object.__setattr__(self, "season", Season(self.season))
        object.__setattr__(self, "period", Period(self.period))
        if self.season is not Season.CUSTOM:
            first, last = SEASON_MONTHS[self.season]
            object.__setattr__(self, "month_start", first)
            object.__setattr__(self, "month_end", last)
        month_span(self.month_start, self.month_end)  # validates both months

    @property
    def months(self) -> tuple[int, ...]:
        """The calendar months (1–12) this view keeps."""
        return month_span(self.month_start, self.month_end)

    @property
    def h3_column(self) -> str:
        """The deployments column holding each camera's cell at this resolution."""
        return f"h3_r{self.resolution}"

    def describe_season(self) -> str:
        if self.season is Season.CUSTOM:
            return f"{MONTH_NAMES[self.month_start - 1]}–{MONTH_NAMES[self.month_end - 1]}"
        return SEASON_LABELS[self.season]


_CELL_ID = re.compile(r"[0-9a-f]{15}")  # how h3 writes a cell id


def parse_hexagon(value: Any) -> str | None:
    """The picked hexagon: None, or an H3 cell id as the map and the table send it.

    Raises ConfigError for anything else, a request the page itself never makes (the value is
    not repeated in the message).
    """
    if value is None or value == "":
        return None
    # h3 parses any string as hexadecimal and overflows on some ("-1e309"): check the form first.
    if isinstance(value, str) and _CELL_ID.fullmatch(value) and h3.is_valid_cell(value):
        return value
    raise ConfigError("the picked hexagon is not an H3 cell")


def parse_filters(
    *,
    resolution: Any,
    start_date: Any,
    end_date: Any,
    season: Any,
    month_start: Any,
    month_end: Any,
    threshold: Any,
    period: Any = None,
    default_threshold: float = 0.5,
    verified: Any = None,
) -> Filters:
    """Build `Filters` from raw control values (strings, numbers or None).

    Raises ConfigError with a message fit for the user when a value cannot be used.
    """
    season_value = _choice(season, Season, Season.ALL, "season")
    return Filters(
        resolution=_integer(resolution, "H3 resolution"),
        start=_date(start_date, "start date"),
        end=_date(end_date, "end date"),
        season=season_value,
        month_start=_integer(month_start if month_start is not None else 1, "first month"),
        month_end=_integer(month_end if month_end is not None else 12, "last month"),
        threshold=_number(threshold if threshold is not None else default_threshold),
        period=_choice(period, Period, Period.MONTH, "period"),
        verified_only=verified in (True, "verified"),
    )


def _choice(value: Any, enum: type[StrEnum], default: StrEnum, what: str) -> Any:
    if value in (None, ""):
        return default
    try:
        return enum(value)
    except ValueError:
        raise ConfigError(f"unknown {what} {value!r}") from None


def _integer(value: Any, what: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a whole number, got {value!r}") from None
    if not number.is_integer():
        raise ConfigError(f"{what} must be a whole number, got {value!r}")
    return int(number)


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"score threshold must be a number, got {value!r}") from None
    if number != number:  # NaN
        raise ConfigError("score threshold must be a number")
    return number


def _date(value: Any, what: str) -> date | None:
    """Dash's date pickers send 'YYYY-MM-DD', sometimes with a time part."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise ConfigError(f"{what} must be a date like 2024-01-31, got {value!r}") from None
