"""The hand-made survey the dashboard tests read, with known answers.

Three cameras: A and C share one r7 hexagon (A all of 2023, C ten days in March), B is far east
and runs over the new year (Nov 2023 to Mar 2024). Leopard bursts are placed to test the
threshold, the 30-minute independence rule, seasons across the new year and date ranges.
`write_survey` writes it as a real store.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline.hexgrid import add_cell_columns, cell_for
from pipeline.schema import BURSTS, DEPLOYMENTS, DETECTIONS, IMAGES, RUNS, VIEW_FIELDS, conform
from pipeline.store import store
from tests.helpers import cell_center

# A cell in the western Tost mountains; A and C sit near its centre, B is 40 km east.
A_CELL_R7 = cell_for(43.10, 100.50, 7)
A_LAT, A_LNG = cell_center(A_CELL_R7)
LOCATIONS = {
    "A": (A_LAT, A_LNG),
    "C": (A_LAT + 0.004, A_LNG + 0.004),
    "B": (43.25, 101.00),
}
DEPLOYMENT_DAYS = {
    "A-2023": ("A", datetime(2023, 1, 1, 10), datetime(2023, 12, 31, 10)),
    "C-2023": ("C", datetime(2023, 3, 1, 9), datetime(2023, 3, 10, 16)),
    "B-2023": ("B", datetime(2023, 11, 1, 12), datetime(2024, 3, 31, 12)),
}


def deployments_table() -> pa.Table:
    rows = []
    for dep_id, (loc, start, end) in DEPLOYMENT_DAYS.items():
        lat, lng = LOCATIONS[loc]
        rows.append(
            {
                "deploymentID": dep_id,
                "locationID": loc,
                "locationName": f"station {loc}",
                "latitude": lat,
                "longitude": lng,
                "deploymentStart": start,
                "deploymentEnd": end,
                "cameraID": f"CAM-{loc}",
                "clockOffsetSeconds": 0,
            }
        )
    return conform(add_cell_columns(pa.Table.from_pylist(rows)), DEPLOYMENTS)


def burst(dep_id: str, start: datetime | None, score: float, minutes: int = 1) -> dict[str, Any]:
    end = None if start is None else start.replace(minute=start.minute + minutes)
    stamp = "untimed" if start is None else f"{start:%Y%m%dT%H%M%S}"
    return {
        "burst_id": f"{dep_id}/{stamp}",
        "deploymentID": dep_id,
        "locationID": DEPLOYMENT_DAYS[dep_id][0],
        "start_time": start,
        "end_time": end,
        "n_frames": 3,
        "score": score,
        "aggregation": "max",
        "best_image_id": f"img-{dep_id}-{stamp}",
    }


BURST_ROWS = [
    # A: one event of two bursts 19 min apart, then a burst exactly 30 min after -> new event.
    burst("A-2023", datetime(2023, 2, 10, 6, 0), 0.9),
    burst("A-2023", datetime(2023, 2, 10, 6, 20), 0.8),
    burst("A-2023", datetime(2023, 2, 10, 6, 51), 0.7),
    burst("A-2023", datetime(2023, 7, 15, 20, 0), 0.6),  # summer
    burst("A-2023", datetime(2023, 7, 16, 20, 0), 0.3),  # below 0.5
    burst("A-2023", None, 0.99),  # no capture time: cannot be placed, never counted
    burst("C-2023", datetime(2023, 3, 5, 4, 0), 0.99),
    # B: winter across the new year.
    burst("B-2023", datetime(2023, 12, 20, 22, 0), 0.95),
    burst("B-2023", datetime(2024, 1, 5, 3, 0), 0.55),
    burst("B-2023", datetime(2024, 3, 10, 3, 0), 0.4),
]


def frames_for(
    bursts: list[dict[str, Any]], views: dict[str, dict[str, Any]] | None = None
) -> tuple[pa.Table, pa.Table]:
    """One detection (and image) per timed burst, with the burst's score; `views` adds the
    best-view columns of some frames (image_id: columns)."""
    dep = {r["deploymentID"]: r for r in deployments_table().to_pylist()}
    detections, images = [], []
    for b in bursts:
        if b["start_time"] is None:
            continue
        d = dep[b["deploymentID"]]
        image_id = b["best_image_id"]
        path = f"/surveys/tost/{image_id}.jpg"
        detections.append(
            {
                **{k: d[k] for k in ("deploymentID", "locationID", "latitude", "longitude")},
                **{f"h3_r{r}": d[f"h3_r{r}"] for r in range(5, 10)},
                "image_id": image_id,
                "run_id": "run-2",
                "captured_at": b["start_time"],
                "time_flag": "ok",
                "score": b["score"],
                "top5_labels": ["snow leopard", "lynx", "ibex", "ram", "hare"],
                "top5_scores": [b["score"], 0.02, 0.01, 0.01, 0.0],
                "burst_id": b["burst_id"],
                "model_name": "head-v2",
                "backbone": "resnet50",
                "weights_sha256": "abc",
                "file_path": path,
                **dict.fromkeys(f.name for f in VIEW_FIELDS),  # scored before views existed
                **(views or {}).get(image_id, {}),
            }
        )
        images.append(
            {
                "image_id": image_id,
                "run_id": "run-2",
                "deploymentID": b["deploymentID"],
                "file_path": path,
                "relative_path": f"{image_id}.jpg",
                "file_size": 1000,
                "content_sha256": None,
                "width": 640,
                "height": 480,
                "exif_datetime": None,
                "captured_at": b["start_time"],
                "utc_offset_minutes": None,
                "time_flag": "ok",
                "status": "ok",
                "failure": None,
            }
        )
    return conform(pa.Table.from_pylist(detections), DETECTIONS), conform(
        pa.Table.from_pylist(images), IMAGES
    )


def run_row(run_id: str, started: datetime, kind: str, model: str, threshold: float) -> dict:
    return {
        "run_id": run_id,
        "kind": kind,
        "status": "finished",
        "started_at": started,
        "finished_at": started,
        "images_root": "/surveys/tost",
        "model_name": model,
        "backbone": "resnet50",
        "weights_sha256": "abc",
        "leopard_threshold": threshold,
        "options_json": "{}",
        "frames_done": 10,
        "frames_failed": 0,
        "frames_skipped": 0,
        "uncia_version": "0.1.0",
    }


RUNS_ROWS = [
    run_row("run-1", datetime(2024, 5, 1, tzinfo=UTC), "pipeline", "head-v1", 0.6),
    run_row("run-2", datetime(2024, 6, 1, tzinfo=UTC), "pipeline", "head-v2", 0.65),
]


def write_survey(
    out_dir: Path,
    bursts: list[dict[str, Any]] = BURST_ROWS,
    runs: list[dict] = RUNS_ROWS,
    file_paths: dict[str, str] | None = None,
    views: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """The hand-made survey's store in `out_dir`; `file_paths` moves frames (image_id: path),
    `views` gives frames their best view (image_id: view columns)."""
    detections, images = frames_for(bursts, views)
    if file_paths:
        rows = [{**r, "file_path": file_paths.get(r["image_id"], r["file_path"])}
                for r in images.to_pylist()]  # fmt: skip
        images = pa.Table.from_pylist(rows, schema=images.schema)
    store.write_tables(
        out_dir,
        {
            "deployments": deployments_table(),
            "bursts": conform(pa.Table.from_pylist(bursts), BURSTS),
            "detections": detections,
            "images": images,
            "runs": conform(pa.Table.from_pylist(runs), RUNS),
        },
    )
    return out_dir


def cell(loc: str, resolution: int = 7) -> str:
    return cell_for(*LOCATIONS[loc], resolution)


# The page's controls for the hand-made survey's whole year at resolution 7 (callback tests).
WHOLE_YEAR_R7: dict[str, Any] = {
    "resolution": 7,
    "start_date": None,
    "end_date": None,
    "season": "all",
    "month_start": 1,
    "month_end": 12,
    "threshold": 0.5,
}
