"""Trap-night effort and leopard detection days per station, by the dashboard's rules, for the
occupancy and SECR exports.

A deployment works every day from its start date to its end date, less its gaps: stretches of
more than `gap_days` days without a frame whose time is trustworthy (`time_flag` ok), the
dashboard's camera gaps. A station is a camera location (`locationID`): its deployments'
working days together. A detection day is the day a leopard burst starts: a burst at or above
the threshold that no reviewer rejected or relabelled, or one a reviewer confirmed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from pipeline.interop import store_tables as st
from pipeline.schema import TRUSTED_TIME_FLAGS, ReviewDecision


@dataclass(frozen=True)
class Occasions:
    """Consecutive occasions of `days` days from `first_day`: occasion k (0-based) covers
    `first_day + k*days` to `first_day + (k+1)*days - 1`."""

    first_day: date
    days: int
    count: int

    def index(self, day: date) -> int:
        return (day - self.first_day).days // self.days

    def span(self, k: int) -> tuple[date, date]:
        start = self.first_day + timedelta(days=k * self.days)
        return start, start + timedelta(days=self.days - 1)


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def operating_days(data_dir: Path, gap_days: int) -> dict[str, set[date]]:
    """Station (locationID) -> the days one of its cameras worked."""
    seen: dict[str, set[date]] = {}
    for image in st.rows(data_dir, "images"):
        if image["time_flag"] in TRUSTED_TIME_FLAGS and image["captured_at"] is not None:
            seen.setdefault(image["deploymentID"], set()).add(image["captured_at"].date())
    stations: dict[str, set[date]] = {}
    for dep in st.rows(data_dir, "deployments"):
        first, last = dep["deploymentStart"].date(), dep["deploymentEnd"].date()
        days = sorted(seen.get(dep["deploymentID"], set()) | {first, last})
        down: set[date] = set()
        for a, b in zip(days, days[1:], strict=False):
            if (b - a).days - 1 > gap_days:
                down.update(_days(a + timedelta(days=1), b - timedelta(days=1)))
        worked = {d for d in _days(first, last) if d not in down}
        stations.setdefault(dep["locationID"], set()).update(worked)
    return stations


def leopard_bursts(data_dir: Path, threshold: float) -> list[dict]:
    """Bursts that count as leopard detections (with a start time), reviews applied."""
    decisions = {r["burst_id"]: r["decision"] for r in st.latest_reviews(data_dir)}
    found = []
    for burst in st.rows(data_dir, "bursts"):
        if burst["start_time"] is None:
            continue
        decision = decisions.get(burst["burst_id"])
        by_score = burst["score"] >= threshold and decision in (None, ReviewDecision.CONFIRM)
        if by_score or decision == ReviewDecision.CONFIRM:
            found.append(burst)
    return found


def detection_days(data_dir: Path, threshold: float) -> dict[str, set[date]]:
    """Station (locationID) -> the days a leopard burst started there."""
    days: dict[str, set[date]] = {}
    for burst in leopard_bursts(data_dir, threshold):
        days.setdefault(burst["locationID"], set()).add(burst["start_time"].date())
    return days
