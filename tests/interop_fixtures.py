"""A small survey store made in code, through the store's own functions (frame parts, run
record, finalize), for the interop tests: exact times, scores, boxes and camera gaps."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline.hexgrid import add_cell_columns
from pipeline.schema import DEPLOYMENTS, FRAME_RESULTS, INDIVIDUALS, RunKind, conform
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
