"""Trap-night effort and leopard detection days per station, by the dashboard's rules, for the
occupancy and SECR exports.

A deployment works every day from its start date to its end date, less its reported outages
(pipeline.interop.outages: the days from an outage's first to its last, clipped to the
deployment; without an end, to the deployment's end) and, only when `gap_days` is set, less
stretches of more than `gap_days` days without a frame whose time is trustworthy: the
dashboard's camera gaps, by the same rules. A station is a camera location (`locationID`): its
deployments' working days together. A detection day is the day a leopard burst starts: a burst
at or above the threshold that no person rejected or relabelled, or one a person confirmed (a
review decision or an imported human label, pipeline.store.verdicts); verified only, just the
latter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa

from pipeline.interop import store_tables as st
from pipeline.schema import TRUSTED_TIME_FLAGS, ReviewDecision
from pipeline.store.verdicts import store_verdicts


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


def _outage_days(outages: pa.Table | None) -> dict[str, list[tuple[date, date | None]]]:
    by_deployment: dict[str, list[tuple[date, date | None]]] = {}
    for row in (outages.to_pylist() if outages is not None else []):
        by_deployment.setdefault(row["deploymentID"], []).append(
            (row["outage_first"], row["outage_last"])
        )
    return by_deployment


def operating_days(
    data_dir: Path, gap_days: int | None, outages: pa.Table | None = None
) -> dict[str, set[date]]:
    """Station (locationID) -> the days one of its cameras worked (`gap_days` None: no day
    counts as down for silence, the dashboard's default; `outages`: an OUTAGES table, whose
    days are down)."""
    reported = _outage_days(outages)
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
            if gap_days is not None and (b - a).days - 1 > gap_days:
                down.update(_days(a + timedelta(days=1), b - timedelta(days=1)))
        for outage_first, outage_last in reported.get(dep["deploymentID"], []):
            a, b = max(outage_first, first), min(outage_last or last, last)
            if a <= b:
                down.update(_days(a, b))
        worked = {d for d in _days(first, last) if d not in down}
        stations.setdefault(dep["locationID"], set()).update(worked)
    return stations


def leopard_bursts(data_dir: Path, threshold: float, verified_only: bool = False) -> list[dict]:
    """Bursts that count as leopard detections (with a start time), a person's verdicts
    applied (pipeline.store.verdicts: reviews and imported human labels). With
    `verified_only`, only those a person said are snow leopards, whatever their score (an
    imported frame in no burst too). Each: burst_id, locationID, start_time."""
    verdicts = {v["burst_id"]: v for v in store_verdicts(data_dir).to_pylist()}
    found = []
    for burst in st.rows(data_dir, "bursts"):
        verdict = verdicts.pop(burst["burst_id"], None)
        if burst["start_time"] is None:
            continue
        decision = verdict["decision"] if verdict else None
        by_score = burst["score"] >= threshold and decision in (None, ReviewDecision.CONFIRM)
        if decision == ReviewDecision.CONFIRM or (by_score and not verified_only):
            found.append(burst)
    # Verdicts on frames in no burst (an imported store) count like confirmed bursts.
    found.extend(
        v for v in verdicts.values()
        if v["decision"] == ReviewDecision.CONFIRM and v["start_time"] is not None
        and v["locationID"] is not None
    )  # fmt: skip
    return found


def detection_days(
    data_dir: Path, threshold: float, verified_only: bool = False
) -> dict[str, set[date]]:
    """Station (locationID) -> the days a leopard burst started there."""
    days: dict[str, set[date]] = {}
    for burst in leopard_bursts(data_dir, threshold, verified_only):
        days.setdefault(burst["locationID"], set()).add(burst["start_time"].date())
    return days
