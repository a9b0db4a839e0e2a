"""A small survey store made in code, through the store's own functions (frame parts, run
record, finalize), for the interop tests: exact times, scores, boxes and camera gaps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline.hexgrid import add_cell_columns
from pipeline.schema import (
    DEPLOYMENTS,
    FRAME_RESULTS,
    INDIVIDUALS,
    LOCALIZATIONS,
    RunKind,
    conform,
)
from pipeline.stages.bursts import BurstOptions
from pipeline.stages.discover import image_id_for
from pipeline.store.store import (
    StorePaths,
    atomic_write_parquet,
    finalize,
    write_frame_part,
    write_run_deployments,
    write_run_record,
)

RUN_ID = "20240201T000000Z-abc123"
WEIGHTS = "ab" * 32


def frame(
    dep: str, when: datetime | None, score: float, name: str, box: tuple | None = None
) -> dict[str, Any]:
    """One classified frame; `box` (x, y, w, h fractions) makes its best view a tile."""
    row: dict[str, Any] = {
        "image_id": image_id_for(dep, name),
        "run_id": RUN_ID,
        "deploymentID": dep,
        "file_path": f"/survey/{dep}/{name}",
        "relative_path": name,
        "file_size": 1000,
        "content_sha256": image_id_for(dep, name) * 2,
        "width": 1920,
        "height": 1080,
        "exif_datetime": when.strftime("%Y:%m:%d %H:%M:%S") if when else None,
        "captured_at": when,
        "time_flag": "ok" if when else "missing",
        "status": "ok",
        "score": score,
        "top5_labels": ["snow leopard"] * 5,
        "top5_scores": [score] * 5,
        "model_name": "zeroshot-imagenet-289",
        "backbone": "efficientnet_lite0",
        "weights_sha256": WEIGHTS,
        "view": "whole",
        "view_box_x": 0.0,
        "view_box_y": 0.0,
        "view_box_width": 1.0,
        "view_box_height": 1.0,
    }
    if box is not None:
        row.update(view="tile", view_box_x=box[0], view_box_y=box[1],
                   view_box_width=box[2], view_box_height=box[3])  # fmt: skip
    return row


def build_store(
    out: Path,
    deployments: list[dict[str, Any]],
    frames: list[dict[str, Any]],
    threshold: float = 0.5,
    individuals: dict[str, str] | None = None,
) -> Path:
    """Write a finished store of `frames` into `out`; `individuals` maps image_id -> ID."""
    deps = add_cell_columns(pa.Table.from_pylist(
        [{"clockOffsetSeconds": 0, "cameraID": None, "locationName": None, **d}
         for d in deployments]))  # fmt: skip
    write_run_deployments(out, RUN_ID, conform(deps, DEPLOYMENTS))
    write_frame_part(out, RUN_ID, pa.Table.from_pylist(frames, FRAME_RESULTS))
    write_run_record(
        out,
        {
            "run_id": RUN_ID, "kind": RunKind.PIPELINE.value, "status": "finished",
            "started_at": "2024-02-01T00:00:00+00:00", "finished_at": "2024-02-01T01:00:00+00:00",
            "images_root": "/survey", "model_name": "zeroshot-imagenet-289",
            "backbone": "efficientnet_lite0", "weights_sha256": WEIGHTS,
            "leopard_threshold": threshold, "options_json": "{}", "frames_done": len(frames),
            "frames_failed": 0, "frames_skipped": 0, "uncia_version": "test",
        },
    )  # fmt: skip
    finalize(out, BurstOptions())
    if individuals:
        rows = [
            {"image_id": i, "individualID": ind, "sightings": 1, "status": "confirmed"}
            for i, ind in individuals.items()
        ]
        table = conform(pa.Table.from_pylist(rows, INDIVIDUALS), INDIVIDUALS)
        atomic_write_parquet(table, StorePaths(out).table("individuals"))
    return out


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# The MegaDetector and COCO exports' survey.
T0 = datetime(2024, 3, 1, 6, 0, 0)


def megadetector_store(tmp_path: Path) -> Path:
    """Frames with a tile as best view, a whole-frame view, a localization, a score under the
    export's min-conf, a frame without time and an unreadable frame."""
    frames = [
        frame("D1", T0, 0.9, "a1.jpg", box=(0.25, 0.5, 0.5, 0.25)),
        frame("D1", T0 + timedelta(seconds=2), 0.7, "a2.jpg"),
        frame("D1", T0 + timedelta(minutes=10), 0.8, "a3.jpg", box=(0.5, 0.5, 0.5, 0.5)),
        frame("D1", T0 + timedelta(days=1), 0.01, "e1.jpg"),
        frame("D2", T0 + timedelta(days=2), 0.3, "e2.jpg"),
        frame("D2", None, 0.95, "untimed.jpg"),
    ]
    broken = frame("D2", T0, 0.0, "broken.jpg")
    broken.update(status="failed", failure="truncated JPEG", score=None, view=None)
    frames.append(broken)
    deployments = [
        {"deploymentID": d, "locationID": f"L{d}", "latitude": 43.0, "longitude": 100.5,
         "deploymentStart": T0 - timedelta(days=1), "deploymentEnd": T0 + timedelta(days=9)}
        for d in ("D1", "D2")
    ]  # fmt: skip
    store = build_store(tmp_path / "store", deployments, frames)
    localization = {
        "image_id": image_id_for("D1", "a3.jpg"), "run_id": "r", "method": "gradcam",
        "target": "snow leopard", "score": 0.8, "target_score": 0.8, "box_x": 0.1,
        "box_y": 0.2, "box_width": 0.3, "box_height": 0.4, "heatmap_path": None,
        "crop_path": None, "seconds": 1.0, "failure": None,
    }  # fmt: skip
    table = conform(pa.Table.from_pylist([localization], LOCALIZATIONS), LOCALIZATIONS)
    atomic_write_parquet(table, StorePaths(store).table("localizations"))
    return store
