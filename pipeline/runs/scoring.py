"""Score one decoded batch into FRAME_RESULTS rows: the step both engines share.

The local engine (`runner.classify_locally`) and the Spark engine (`spark_engine`, on each
worker) call the same `classify_batch`, so both write the same rows. Each frame is scored on
its views (pipeline/stages/views.py) and keeps its best view's score and box.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.schema import FRAME_RESULTS, ImageStatus, TimeFlag, ViewKind, ViewMode
from pipeline.stages.classify import BestView, Classifier, score_views
from pipeline.stages.clock import correct_capture_time
from pipeline.stages.decode import DecodedFrame, parse_exif_datetime
from pipeline.stages.embed import Backbone
from pipeline.stages.infobar import InfoBarPreset, read_infobar_times
from pipeline.stages.views import (
    FrameViews,
    MotionCandidate,
    ViewOptions,
    cut_views,
    motion_groups,
    motion_regions,
)

WHOLE_FRAME = ViewOptions(mode=ViewMode.WHOLE)
# The frame-list column holding another detector's boxes for a frame (list of [x, y, w, h]
# fractions), added by the runner for frames with imported MegaDetector boxes.
DETECTOR_COLUMN = "detector_boxes"


def classify_batch(
    rows: pa.Table,
    decoded: list[DecodedFrame],
    deployments: dict[str, dict[str, Any]],
    backbone: Backbone,
    classifier: Classifier,
    run_id: str,
    pad_to: int | None = None,
    tta_flip: bool = False,
    views: ViewOptions = WHOLE_FRAME,
    burst_gap_seconds: float = 60.0,
    infobar: InfoBarPreset | None = None,
) -> pa.Table:
    """Score one decoded batch; return its FRAME_RESULTS rows (failures included).

    Each frame is scored on its `views` (pipeline/stages/views.py) and keeps its best view's score
    and box; motion views come from bursts found within the batch (frames of one deployment
    at most `burst_gap_seconds` apart). `tta_flip` averages each view's features with its
    mirror image's before scoring.

    A frame whose row has `detector_boxes` (another detector's boxes, [x, y, w, h] fractions)
    gets a crop around each as a `detector` view, with the tiled view modes (whole-frame
    scoring decodes no working frame to cut them from).

    With an `infobar` preset, frames without an EXIF time get the time printed in their info
    bar (pipeline/stages/infobar.py: both reads agreeing), flagged `infobar`; frames whose bar
    cannot be read keep `missing`.

    `pad_to` pads the model batch with blank views to a fixed size: oneDNN builds new bf16
    kernels for every new batch shape (up to a second each), so fixed shapes are faster.
    """
    listed = rows.to_pylist()
    bar_times = _infobar_times(listed, decoded, infobar) if infobar is not None else {}
    records = []
    for i, row in enumerate(listed):
        frame = decoded[i]
        dep = deployments.get(row["deploymentID"])
        failure = frame.failure
        if dep is None and failure is None:
            failure = f"deployment {row['deploymentID']!r} is not in the deployments table"
        exif_time, utc_offset, exif_flag = parse_exif_datetime(
            frame.exif_datetime, frame.exif_offset
        )
        if i in bar_times:
            exif_time, exif_flag = bar_times[i], TimeFlag.INFOBAR.value
        captured_at, flag = correct_capture_time(
            exif_time,
            exif_flag,
            dep["clockOffsetSeconds"] if dep else 0,
            dep["deploymentStart"] if dep else None,
            dep["deploymentEnd"] if dep else None,
        )
        records.append(
            {
                "image_id": row["image_id"],
                "run_id": run_id,
                "deploymentID": row["deploymentID"],
                "file_path": row["file_path"],
                "relative_path": row["relative_path"],
                "file_size": row["file_size"],
                "file_mtime_ns": row.get("file_mtime_ns"),
                "content_sha256": frame.content_sha256,
                "width": frame.width,
                "height": frame.height,
                "exif_datetime": frame.exif_datetime,
                "captured_at": captured_at,
                "utc_offset_minutes": utc_offset,
                "time_flag": flag.value,
                "status": ImageStatus.FAILED.value,
                "failure": failure,
            }
        )
    ok = [i for i, r in enumerate(records) if r["failure"] is None]
    detector = [[tuple(b) for b in listed[i].get(DETECTOR_COLUMN) or ()] for i in ok]
    for i, best in zip(
        ok,
        _best_views(
            records,
            decoded,
            ok,
            backbone,
            classifier,
            pad_to,
            tta_flip,
            views,
            burst_gap_seconds,
            detector,
        ),
        strict=True,
    ):
        records[i].update(
            status=ImageStatus.OK.value,
            score=best.score,
            top5_labels=best.top5_labels,
            top5_scores=best.top5_scores,
            model_name=classifier.name,
            backbone=backbone.name,
            weights_sha256=backbone.weights_sha256,
            view=best.view.value,
            view_box_x=best.box[0],
            view_box_y=best.box[1],
            view_box_width=best.box[2],
            view_box_height=best.box[3],
        )
    return pa.Table.from_pylist(records, schema=FRAME_RESULTS)


def _infobar_times(
    rows: list[dict[str, Any]], decoded: list[DecodedFrame], preset: InfoBarPreset
) -> dict[int, datetime]:
    """The info-bar times of the decoded frames without a usable EXIF time, by row."""
    wanted = [
        i
        for i, frame in enumerate(decoded)
        if frame.failure is None
        and parse_exif_datetime(frame.exif_datetime, frame.exif_offset)[0] is None
    ]
    if not wanted:
        return {}
    readings = read_infobar_times([Path(rows[i]["file_path"]) for i in wanted], preset)
    return {i: r.time for i, r in zip(wanted, readings, strict=True) if r.time is not None}


def _best_views(
    records: list[dict[str, Any]],
    decoded: list[DecodedFrame],
    ok: list[int],
    backbone: Backbone,
    classifier: Classifier,
    pad_to: int | None,
    tta_flip: bool,
    views: ViewOptions,
    burst_gap_seconds: float,
    detector: list[list[tuple[float, ...]]],
) -> list[BestView]:
    """The best view of each frame in `ok` (indices into `decoded`), in that order;
    `detector[k]`: the other detector's boxes of frame `ok[k]`."""
    if not ok:
        return []
    size = backbone.input_size
    if not views.tiled or any(decoded[i].working is None for i in ok):
        cut = [_whole_view(decoded[i]) for i in ok]
    else:
        motion: list[list[tuple[float, float, float, float]]] = [[] for _ in ok]
        bursts: list[list[int]] = []
        moving: list[list[bool]] = [[] for _ in ok]
        if views.motion:
            candidates = [
                MotionCandidate(
                    records[i]["deploymentID"], records[i]["captured_at"], decoded[i].working
                )
                for i in ok
            ]
            bursts = motion_groups(candidates, burst_gap_seconds)
            for group in bursts:
                boxes, moves = motion_regions(
                    [decoded[ok[j]].working for j in group],  # type: ignore[misc]
                    views.motion_regions,
                )
                for j, found, flags in zip(group, boxes, moves, strict=True):
                    motion[j], moving[j] = found, flags
        cut = [
            cut_views(
                decoded[i].working,  # type: ignore[arg-type]
                views,
                size,
                motion[k],
                decoded[i].pixels,
                detector[k],  # type: ignore[arg-type]
            )
            for k, i in enumerate(ok)
        ]
        return score_views(cut, backbone, classifier, pad_to or len(ok), tta_flip, bursts, moving)
    return score_views(cut, backbone, classifier, pad_to or len(ok), tta_flip)


def _whole_view(frame: DecodedFrame) -> FrameViews:
    """The whole frame as its only view (the decoder already squeezed it to the input size)."""
    return FrameViews(
        pixels=frame.pixels[np.newaxis],  # type: ignore[index]
        boxes=np.array([[0.0, 0.0, 1.0, 1.0]], dtype=np.float32),
        kinds=(ViewKind.WHOLE,),
    )
