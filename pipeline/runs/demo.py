"""A simulated multi-year snow-leopard survey in the Tost mountains, southern Mongolia.

The demo has the structure real surveys have: about 60 camera stations on a rugged range, each
deployed for part of each year; leopards concentrated on a few ridges and more active in the
mating season (Jan–Mar) and at dawn and dusk; motion triggers from ibex, livestock, people and
wind making up about 95% of frames. It is written through the same store code as real runs,
and its run record says kind="demo" so the dashboard can say plainly that it is simulated.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline import __version__
from pipeline.errors import StoreError
from pipeline.hexgrid import add_cell_columns
from pipeline.schema import (
    DEPLOYMENTS,
    FRAME_RESULTS,
    INDIVIDUALS,
    VIEW_FIELDS,
    ImageStatus,
    RunKind,
    RunStatus,
    TimeFlag,
    conform,
)
from pipeline.stages.bursts import BurstOptions
from pipeline.store import store
from pipeline.store.store import atomic_write_parquet

# Tost Uul, South Gobi: the Snow Leopard Trust's long-term study area.
TOST_BOUNDS = {"lat": (43.02, 43.30), "lng": (100.30, 101.15)}
# Ridges where leopards are most often recorded (lat, lng, relative intensity, spread in km).
LEOPARD_RIDGES = [(43.17, 100.62, 1.0, 6.0), (43.10, 100.95, 0.8, 5.0), (43.24, 100.42, 0.5, 4.0)]
DEMO_MODEL = "simulated"
OTHER_LABELS = ["ibex", "ram", "ox", "hare", "kite", "alp", "valley", "cliff", "worm fence"]
LEOPARD_LABELS = ["snow leopard", "leopard", "jaguar", "cheetah", "lynx"]


@dataclass(frozen=True)
class DemoOptions:
    n_stations: int = 60
    first_year: int = 2021
    n_years: int = 4
    seed: int = 7
    background_triggers_per_day: float = 1.5
    leopard_visits_per_day: float = 0.26
    threshold: float = 0.5


def _km(lat1: np.ndarray, lng1: np.ndarray, lat2: float, lng2: float) -> np.ndarray:
    dy = (lat1 - lat2) * 111.0
    dx = (lng1 - lng2) * 111.0 * math.cos(math.radians(lat2))
    return np.hypot(dx, dy)


def _stations(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Place `n` stations at least ~1.5 km apart inside the study area."""
    lats: list[float] = []
    lngs: list[float] = []
    while len(lats) < n:
        lat = rng.uniform(*TOST_BOUNDS["lat"])
        lng = rng.uniform(*TOST_BOUNDS["lng"])
        if lats and _km(np.array(lats), np.array(lngs), lat, lng).min() < 1.5:
            continue
        lats.append(lat)
        lngs.append(lng)
    return np.array(lats), np.array(lngs)


def _deployments(rng: np.random.Generator, opts: DemoOptions) -> pa.Table:
    lat, lng = _stations(rng, opts.n_stations)
    rows = []
    for s in range(opts.n_stations):
        for y in range(opts.first_year, opts.first_year + opts.n_years):
            if rng.random() < 0.15:  # stations rotate: not every station runs every year
                continue
            start = datetime(y, 1, 1) + timedelta(days=int(rng.integers(0, 60)), hours=11)
            end = start + timedelta(days=int(rng.integers(150, 330)))
            rows.append(
                {
                    "deploymentID": f"TOST-{s + 1:02d}-{y}",
                    "locationID": f"TOST-{s + 1:02d}",
                    "locationName": f"Tost station {s + 1:02d}",
                    "latitude": round(float(lat[s]), 5),
                    "longitude": round(float(lng[s]), 5),
                    "deploymentStart": start,
                    "deploymentEnd": end,
                    "cameraID": f"RECONYX-{1000 + s}",
                    "clockOffsetSeconds": 0,
                }
            )
    return add_cell_columns(pa.Table.from_pylist(rows)).cast(DEPLOYMENTS)


def _leopard_intensity(lat: float, lng: float) -> float:
    """Relative leopard visit rate at a station: Gaussian bumps on the ridges."""
    return (
        sum(
            w * math.exp(-0.5 * (float(_km(np.array([lat]), np.array([lng]), la, ln)[0]) / s) ** 2)
            for la, ln, w, s in LEOPARD_RIDGES
        )
        + 0.03
    )


def _season_factor(day_of_year: np.ndarray) -> np.ndarray:
    """Leopards range most in the mating season (peak mid-February)."""
    return 1.0 + 0.7 * np.cos(2 * np.pi * (day_of_year - 45) / 365.25)


def _bursts(
    rng: np.random.Generator,
    day0: datetime,
    days: np.ndarray,
    hours: np.ndarray,
) -> list[datetime]:
    return [day0 + timedelta(days=int(d), hours=float(h)) for d, h in zip(days, hours, strict=True)]


def simulate_deployment(rng: np.random.Generator, dep: dict, opts: DemoOptions) -> list[dict]:
    """Return the frames (FRAME_RESULTS rows) one deployment's camera would have produced."""
    start: datetime = dep["deploymentStart"]
    n_days = (dep["deploymentEnd"] - start).days
    day_index = np.arange(n_days)
    doy = np.array([(start + timedelta(days=int(d))).timetuple().tm_yday for d in day_index])
    windy = rng.gamma(2.0, 0.5)  # some cameras face grass that moves all day
    bg_rate = opts.background_triggers_per_day * windy
    leo_rate = opts.leopard_visits_per_day * _leopard_intensity(dep["latitude"], dep["longitude"])

    triggers: list[tuple[datetime, bool]] = []
    n_bg = rng.poisson(bg_rate, n_days)
    bg_days = np.repeat(day_index, n_bg)
    bg_hours = rng.uniform(5, 20, bg_days.size)  # ibex, herders and wind: daytime
    triggers += [(t, False) for t in _bursts(rng, start.replace(hour=0), bg_days, bg_hours)]
    n_visits = rng.poisson(leo_rate * _season_factor(doy))
    v_days = np.repeat(day_index, n_visits)
    # Crepuscular and nocturnal: around dawn and dusk, some at night.
    centre = rng.choice([6.0, 19.5, 1.0], v_days.size, p=[0.4, 0.4, 0.2])
    v_hours = np.clip(centre + rng.normal(0, 1.2, v_days.size), 0, 23.9)
    for t in _bursts(rng, start.replace(hour=0), v_days, v_hours):
        for k in range(int(rng.integers(1, 4))):  # a visit passes the camera 1–3 times
            triggers.append((t + timedelta(minutes=float(k * rng.uniform(2, 12))), True))

    rows: list[dict[str, Any]] = []
    for t, leopard in triggers:
        for f in range(3):  # each trigger fires a 3-frame burst, a second apart
            shot = t + timedelta(seconds=f)
            if leopard:
                score = float(rng.beta(6, 1.8)) if rng.random() < 0.85 else float(rng.beta(1, 6))
                labels = [LEOPARD_LABELS[0], *rng.permutation(LEOPARD_LABELS[1:])]
            else:
                score = float(rng.beta(0.6, 25)) if rng.random() < 0.995 else float(rng.beta(3, 2))
                labels = list(rng.permutation(OTHER_LABELS)[:5])
            rel = f"DCIM/100RECNX/IMG_{len(rows):05d}.JPG"
            key = f"{dep['deploymentID']}/{rel}".encode()
            rows.append(
                {
                    "image_id": hashlib.sha256(key).hexdigest()[:32],
                    "deploymentID": dep["deploymentID"],
                    "file_path": f"simulated://{dep['deploymentID']}/{rel}",
                    "relative_path": rel,
                    "captured_at": shot.replace(microsecond=0),
                    "score": score,
                    "labels": labels[:5],
                    "top5": _top5(score if leopard else (1.0 - score) * 0.8),
                }
            )
    return rows


def build_demo_survey(out_dir: Path, options: DemoOptions | None = None) -> dict[str, int]:
    """Write a simulated survey into `out_dir` through the store; return table row counts."""
    with store.writer_lock(Path(out_dir)):
        if any(w["kind"] != RunKind.DEMO for w in store.writers(Path(out_dir))):
            raise StoreError(
                f"{out_dir} holds a real survey (frames of `uncia run`); the simulated demo "
                "goes to a folder of its own"
            )
        return _build_demo_survey_locked(Path(out_dir), options or DemoOptions())


def _build_demo_survey_locked(out_dir: Path, opts: DemoOptions) -> dict[str, int]:
    rng = np.random.default_rng(opts.seed)
    run_id = f"demo-seed{opts.seed}"
    started = datetime.now(UTC)
    deployments = _deployments(rng, opts)
    store.write_run_deployments(out_dir, run_id, deployments)

    done = failed = 0
    leopard_frames: list[dict[str, Any]] = []
    for dep in deployments.to_pylist():
        rows = simulate_deployment(rng, dep, opts)
        if not rows:
            continue
        n = len(rows)
        scores = np.array([r["score"] for r in rows], dtype=np.float32)
        # A few frames are unreadable in every real survey; the demo keeps that honest too.
        broken = rng.random(n) < 0.002
        part = pa.table(
            {
                "image_id": [r["image_id"] for r in rows],
                "run_id": [run_id] * n,
                "deploymentID": [r["deploymentID"] for r in rows],
                "file_path": [r["file_path"] for r in rows],
                "relative_path": [r["relative_path"] for r in rows],
                "file_size": pa.nulls(n, pa.int64()),
                "content_sha256": pa.nulls(n, pa.string()),
                "width": pa.array([None if b else 2048 for b in broken], pa.int32()),
                "height": pa.array([None if b else 1536 for b in broken], pa.int32()),
                "exif_datetime": [r["captured_at"].strftime("%Y:%m:%d %H:%M:%S") for r in rows],
                "captured_at": [r["captured_at"] for r in rows],
                "utc_offset_minutes": pa.nulls(n, pa.int32()),
                "time_flag": [TimeFlag.OK.value] * n,
                "status": [(ImageStatus.FAILED if b else ImageStatus.OK).value for b in broken],
                "failure": ["truncated image: simulated card error" if b else None for b in broken],
                "file_mtime_ns": pa.nulls(n, pa.int64()),
                "score": pa.array(np.where(broken, np.nan, scores), pa.float32(), mask=broken),
                "top5_labels": [
                    None if b else r["labels"] for r, b in zip(rows, broken, strict=True)
                ],
                "top5_scores": [
                    None if b else r["top5"] for r, b in zip(rows, broken, strict=True)
                ],
                "model_name": [None if b else DEMO_MODEL for b in broken],
                "backbone": [None if b else DEMO_MODEL for b in broken],
                "weights_sha256": [None if b else "simulated" for b in broken],
                # Simulated frames have no pixels, so no view found the animal anywhere.
                **{f.name: pa.nulls(n, f.type) for f in VIEW_FIELDS},
            }
        )
        store.write_frame_part(out_dir, run_id, part.cast(FRAME_RESULTS))
        leopard_frames += [
            {**r, "latitude": dep["latitude"], "longitude": dep["longitude"]}
            for r, b in zip(rows, broken, strict=True)
            if not b and r["labels"][0] == LEOPARD_LABELS[0]
        ]
        failed += int(broken.sum())
        done += n - int(broken.sum())

    store.write_run_record(
        out_dir,
        {
            "run_id": run_id,
            "kind": RunKind.DEMO.value,
            "status": RunStatus.FINISHED.value,
            "started_at": started.isoformat(),
            "finished_at": datetime.now(UTC).isoformat(),
            "images_root": None,
            "model_name": DEMO_MODEL,
            "backbone": DEMO_MODEL,
            "weights_sha256": "simulated",
            "leopard_threshold": opts.threshold,
            "options_json": json.dumps(opts.__dict__),
            "frames_done": done,
            "frames_failed": failed,
            "frames_skipped": 0,
            "uncia_version": __version__,
        },
    )
    counts = store.finalize(out_dir, BurstOptions())
    individuals = simulated_individuals(leopard_frames, opts.seed)
    atomic_write_parquet(
        conform(individuals, INDIVIDUALS), store.StorePaths(out_dir).table("individuals")
    )
    return {**counts, "individuals": individuals.num_rows}


# The demo's leopards: a few residents around each ridge (lat, lng of the home-range centre).
SIMULATED_INDIVIDUALS = 9
IDENTIFIED_SHARE = 0.6  # visits whose flank shows well enough to tell the leopard by its spots


def simulated_individuals(frames: list[dict[str, Any]], seed: int) -> pa.Table:
    """INDIVIDUALS rows for the demo's leopard frames, as `uncia identify` would write them,
    every one with status "simulated" and an individualID "simulated-NN".

    Residents get home-range centres near the ridges; each visit (a station's leopard frames
    less than 30 minutes apart) is one resident's, drawn by distance to the centres, and about
    IDENTIFIED_SHARE of the visits are identified. Its own random stream (seeded by `seed`), so
    the survey's frames stay those of earlier demos.
    """
    rng = np.random.default_rng(seed + 9001)
    ridges = rng.choice(len(LEOPARD_RIDGES), SIMULATED_INDIVIDUALS)
    centres = [
        (
            LEOPARD_RIDGES[r][0] + rng.normal(0, 0.03),
            LEOPARD_RIDGES[r][1] + rng.normal(0, 0.04),
        )
        for r in ridges
    ]
    frames = sorted(frames, key=lambda f: (f["deploymentID"], f["captured_at"]))
    chosen: dict[str, str] = {}
    previous: dict[str, Any] | None = None
    who: str | None = None
    for frame in frames:
        new_visit = (
            previous is None
            or previous["deploymentID"] != frame["deploymentID"]
            or (frame["captured_at"] - previous["captured_at"]) > timedelta(minutes=30)
        )
        if new_visit:
            who = None
            if rng.random() < IDENTIFIED_SHARE:
                km = np.array(
                    [
                        float(
                            _km(
                                np.array([frame["latitude"]]),
                                np.array([frame["longitude"]]),
                                lat,
                                lng,
                            )[0]
                        )  # fmt: skip
                        for lat, lng in centres
                    ]
                )
                weights = np.exp(-0.5 * (km / 6.0) ** 2) + 1e-9
                who = (
                    f"simulated-{int(rng.choice(len(centres), p=weights / weights.sum())) + 1:02d}"
                )
        if who is not None:
            chosen[frame["image_id"]] = who
        previous = frame
    sightings: dict[str, int] = {}
    for who in chosen.values():
        sightings[who] = sightings.get(who, 0) + 1
    return pa.Table.from_pylist(
        [
            {
                "image_id": image_id,
                "individualID": who,
                "sightings": sightings[who],
                "status": "simulated",
            }
            for image_id, who in sorted(chosen.items())
        ],
        schema=INDIVIDUALS,
    )


def _top5(first: float) -> list[float]:
    """Plausible descending top-5 probabilities whose first is `first`."""
    rest = (1.0 - first) * np.array([0.5, 0.25, 0.15, 0.1])
    return [float(first), *(float(min(first, r)) for r in rest)]
