"""A small survey whose bursts people judged in three ways — a Timelapse import, dashboard
reviews before and after it — with the verified counts worked out by hand, for the verified
and history-download tests (tests/test_interop_verified.py and its browser twin)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pipeline.interop import store_tables as st
from pipeline.stages.discover import image_id_for
from tests.interop_fixtures import build_store, frame

STATIONS = {"A": 43.0, "B": 43.1, "C": 43.2}  # latitudes, 11 km apart: one hexagon each
# (station, day) -> score; every other day of 1-20 January 2024 has a 0.1 frame at noon.
SCORES = {
    ("A", 5): 0.2, ("A", 8): 0.9, ("A", 9): 0.9,
    ("B", 3): 0.9, ("B", 12): 0.8, ("B", 15): 0.7,
    ("C", 4): 0.6, ("C", 17): 0.95,
}  # fmt: skip
# What the Timelapse CSV says (RelativePath is the station's folder), Z-01 is not in the store.
TIMELAPSE_ROWS = [
    ("A-05.jpg", "A", "Snow Leopard"),  # a frame the model missed: verified leopard
    ("A-09.jpg", "A", "Empty"),  # a false alarm: verified not-leopard
    ("B-03.jpg", "B", "snow leopard"),
    ("B-12.jpg", "B", "empty"),  # ...but a later dashboard review confirms it
    ("B-15.jpg", "B", "Panthera uncia"),  # ...over an earlier dashboard review's reject
    ("C-04.jpg", "C", "Ibex"),
    ("Z-01.jpg", "Z", "Snow leopard"),
]
# Verified leopard events per station, by hand: A d5; B d3, d12 (review), d15 (import).
VERIFIED_EVENTS = {"A": 1, "B": 3, "C": 0}
# Occupancy, 5-day occasions from the survey's first day (o1 1-5, o2 6-10, o3 11-15, o4 16-20).
VERIFIED_HISTORY = {"A": (1, 0, 0, 0), "B": (1, 0, 1, 0), "C": (0, 0, 0, 0)}
# Machine detections (score >= 0.5) with people's verdicts applied: A d8 comes in, A d9 (empty)
# and C d4 (ibex) go out, C d17 (never judged) comes in.
MACHINE_HISTORY = {"A": (1, 1, 0, 0), "B": (1, 0, 1, 0), "C": (0, 0, 0, 1)}


def day(d: int) -> datetime:
    return datetime(2024, 1, d, 12)


def image(station: str, d: int) -> str:
    return image_id_for(station, f"{station}-{d:02d}.jpg")


def burst_of(store: Path, station: str, d: int) -> str:
    """The burst of `station`'s frame of day `d`."""
    detections = st.rows(store, "detections")
    return next(r["burst_id"] for r in detections if r["image_id"] == image(station, d))


def build_verified_survey(out: Path) -> Path:
    """The store (threshold 0.5), no labels yet."""
    frames = [
        frame(s, day(d), SCORES.get((s, d), 0.1), f"{s}-{d:02d}.jpg")
        for s in STATIONS
        for d in range(1, 21)
    ]
    deployments = [
        {"deploymentID": s, "locationID": s, "latitude": lat, "longitude": 100.5,
         "deploymentStart": datetime(2024, 1, 1, 9), "deploymentEnd": datetime(2024, 1, 20, 15)}
        for s, lat in STATIONS.items()
    ]  # fmt: skip
    return build_store(out, deployments, frames)


def write_timelapse_csv(path: Path) -> Path:
    lines = ["File,RelativePath,DateTime,DeleteFlag,Species"]
    for file, folder, species in TIMELAPSE_ROWS:
        d = int(file[2:4])
        lines.append(f"{file},{folder},2024-01-{d:02d} 12:00:00,false,{species}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


EARLY = datetime(2020, 1, 1, tzinfo=UTC)  # a review made before any import
