"""Occupancy detection histories and SECR capture histories of snow leopards
(docs/interop.md).

Detection history: station x occasion, 1 (a leopard detected), 0 (the station worked and none
was detected) or NA (it did not work a single day of the occasion), shaped like camtrapR's
`detectionHistory` (rows the stations, columns o1, o2, ...), with the effort matrix (days
worked per occasion) beside it. Capture history: what the R package secr reads with
`read.capthist(captures, traps, fmt = "trapID", detector = "proximity")`: one capture per
individual, occasion and detector, and traps with x, y in metres of a projected CRS and a
0/1 usage string per occasion.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyproj

from pipeline.errors import ConfigError, StoreError
from pipeline.interop import store_tables as st
from pipeline.interop.effort import Occasions, detection_days, leopard_bursts, operating_days
from pipeline.interop.outages import outages_path, read_outages
from pipeline.schema import TRUSTED_TIME_FLAGS

DAY1_CHOICES = ("station", "survey")


ALL_MONTHS = tuple(range(1, 13))


@dataclass(frozen=True)
class HistoryOptions:
    """How a history is cut: occasions, the detection rule and the window.

    `start`, `end` (dates, inclusive) and `months` (the season) keep only the days inside them
    as working days, as the dashboard's filters do; days outside are not worked (NA).
    `verified_only`: detections are only what a person said is a snow leopard (the dashboard's
    "Human-verified only"). `gap_days` None (the default, as the dashboard's): no camera gap
    is guessed from silence. `outages_file`: the field team's CSV of camera outages
    (pipeline.interop.outages), whose days are not worked; None: DATA/outages.csv when it
    exists, as the dashboard reads it.
    """

    occasion_days: int = 7
    day1: str = "station"  # occasions from each station's first day, or the survey's
    threshold: float | None = None  # default: the latest run's
    gap_days: int | None = None  # the camera-gap rule (None: off, the dashboard's default)
    outages_file: Path | None = None
    start: date | None = None
    end: date | None = None
    months: tuple[int, ...] = ALL_MONTHS
    verified_only: bool = False

    def __post_init__(self) -> None:
        if self.occasion_days < 1:
            raise ConfigError(f"an occasion lasts at least 1 day, not {self.occasion_days}")
        if self.day1 not in DAY1_CHOICES:
            raise ConfigError(f"day1 is one of {DAY1_CHOICES}, not {self.day1!r}")
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ConfigError(f"the window starts ({self.start}) after it ends ({self.end})")
        if self.gap_days is not None and self.gap_days < 1:
            raise ConfigError(f"gap days are at least 1 (or off), not {self.gap_days}")
        if not self.months or any(m not in ALL_MONTHS for m in self.months):
            raise ConfigError(f"months are 1-12, not {list(self.months)}")

    def keeps(self, day: date) -> bool:
        """Whether `day` is inside the window and the season."""
        return (
            (self.start is None or day >= self.start)
            and (self.end is None or day <= self.end)
            and day.month in self.months
        )


def _working(data_dir: Path, options: HistoryOptions) -> dict[str, set[date]]:
    """Each station's working days inside the window and season."""
    path = outages_path(data_dir, options.outages_file)
    outages = read_outages(path) if path is not None else None
    working = operating_days(data_dir, options.gap_days, outages)
    return {s: {d for d in days if options.keeps(d)} for s, days in working.items()}


@dataclass(frozen=True)
class DetectionHistory:
    stations: tuple[str, ...]
    detections: tuple[tuple[int | None, ...], ...]  # None: NA
    effort: tuple[tuple[int, ...], ...]  # days worked per occasion
    first_days: tuple[date, ...]  # each station's occasion 1

    def csv(self, matrix: str = "detections") -> str:
        rows = self.detections if matrix == "detections" else self.effort
        width = max((len(r) for r in rows), default=0)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["station", *(f"o{k + 1}" for k in range(width))])
        for station, row in zip(self.stations, rows, strict=True):
            writer.writerow([station, *("NA" if v is None else v for v in row)])
        return out.getvalue()


def _threshold(data_dir: Path, given: float | None) -> float:
    found = given if given is not None else st.latest_threshold(data_dir)
    if found is None:
        raise StoreError(f"{data_dir} has no run to take a threshold from: give --threshold")
    return found


def _occasions(origin: date, length: int, last: date) -> Occasions:
    return Occasions(origin, length, math.ceil(((last - origin).days + 1) / length))


def detection_history(data_dir: Path, options: HistoryOptions | None = None) -> DetectionHistory:
    """The leopard detection history of every station of the store in `data_dir`."""
    options = options or HistoryOptions()
    st.require_store(data_dir)
    working = _working(data_dir, options)
    detected = detection_days(
        data_dir, _threshold(data_dir, options.threshold), options.verified_only
    )
    stations = tuple(sorted(s for s in working if working[s]))
    if not stations:
        raise StoreError(f"{data_dir} has no deployment with a working day in the window")
    survey_first = min(min(working[s]) for s in stations)
    survey_last = max(max(working[s]) for s in stations)
    per_station = {
        s: _occasions(
            survey_first if options.day1 == "survey" else min(working[s]),
            options.occasion_days,
            survey_last if options.day1 == "survey" else max(working[s]),
        )
        for s in stations
    }
    width = max(o.count for o in per_station.values())
    detections, effort = [], []
    for s in stations:
        occ = per_station[s]
        worked = [0] * width
        for day in working[s]:
            worked[occ.index(day)] += 1
        seen = [0] * width
        for day in detected.get(s, set()) & working[s]:
            seen[occ.index(day)] = 1
        detections.append(tuple(seen[k] if worked[k] else None for k in range(width)))
        effort.append(tuple(worked))
    return DetectionHistory(
        stations=stations,
        detections=tuple(detections),
        effort=tuple(effort),
        first_days=tuple(per_station[s].first_day for s in stations),
    )


@dataclass(frozen=True)
class CaptureHistory:
    captures: tuple[tuple[str, str, int, str], ...]  # session, ID, occasion (1-based), detector
    traps: tuple[tuple[str, float, float, str], ...]  # detector, x, y (metres), usage
    crs: str
    occasions: Occasions

    def captures_text(self) -> str:
        lines = ["# Session ID Occasion Detector"]
        lines += [f"{s} {i} {o} {d}" for s, i, o, d in self.captures]
        return "\n".join(lines) + "\n"

    def traps_text(self) -> str:
        lines = [f"# Detector x y usage ({self.crs}, metres; usage: one digit per occasion)"]
        lines += [f"{d} {x:.1f} {y:.1f} {u}" for d, x, y, u in self.traps]
        return "\n".join(lines) + "\n"


def utm_crs(lat: float, lng: float) -> str:
    """The WGS 84 UTM zone holding `lat`/`lng`, e.g. EPSG:32647 (north) or EPSG:32747."""
    zone = min(int((lng + 180) // 6) + 1, 60)
    return f"EPSG:{32600 + zone if lat >= 0 else 32700 + zone}"


def capture_history(
    data_dir: Path,
    options: HistoryOptions | None = None,
    session: str = "1",
    crs: str | None = None,
) -> CaptureHistory:
    """SECR captures of the individuals `uncia identify` formed, and the traps (stations).

    Occasions run from the survey's first working day (every trap shares them); a trap's usage
    is 1 for an occasion it worked at least a day of. Raises StoreError without individuals.
    """
    options = options or HistoryOptions()
    st.require_store(data_dir)
    individuals = {r["image_id"]: r["individualID"] for r in st.rows(data_dir, "individuals")}
    if not individuals:
        raise StoreError(f"{data_dir} has no individuals: run `uncia identify` first")
    working = _working(data_dir, options)
    stations = sorted(s for s in working if working[s])
    if not stations:
        raise StoreError(f"{data_dir} has no deployment with a working day in the window")
    first = min(min(working[s]) for s in stations)
    last = max(max(working[s]) for s in stations)
    occ = _occasions(first, options.occasion_days, last)
    threshold = _threshold(data_dir, options.threshold)
    leopard = {b["burst_id"] for b in leopard_bursts(data_dir, threshold, options.verified_only)}
    captures = set()
    for det in st.rows(data_dir, "detections"):
        ind = individuals.get(det["image_id"])
        trusted = det["time_flag"] in TRUSTED_TIME_FLAGS
        if ind is None or not trusted or det["burst_id"] not in leopard:
            continue
        day = det["captured_at"].date()
        if day in working.get(det["locationID"], set()):
            captures.add((session, ind, occ.index(day) + 1, det["locationID"]))
    locations = {d["locationID"]: d for d in st.rows(data_dir, "deployments")}
    lats = [locations[s]["latitude"] for s in stations]
    lngs = [locations[s]["longitude"] for s in stations]
    crs = crs or utm_crs(sum(lats) / len(lats), sum(lngs) / len(lngs))
    try:
        to_metres = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)
        if not pyproj.CRS(crs).is_projected:
            raise ConfigError(f"{crs} is not a projected CRS (x and y must be metres)")
    except pyproj.exceptions.CRSError as exc:
        raise ConfigError(f"unknown CRS {crs!r}: {exc}") from exc
    traps = []
    for s, lat, lng in zip(stations, lats, lngs, strict=True):
        x, y = to_metres.transform(lng, lat)
        usage = "".join(
            "1" if any(occ.index(d) == k for d in working[s]) else "0" for k in range(occ.count)
        )
        traps.append((s, float(x), float(y), usage))
    return CaptureHistory(tuple(sorted(captures)), tuple(traps), crs, occ)
