"""Score one decoded batch into FRAME_RESULTS rows: the step both engines share.

The local engine (`runner.classify_locally`) and the Spark engine (`spark_engine`, on each
worker) call the same `classify_batch`, so both write the same rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.schema import FRAME_RESULTS, ImageStatus
from pipeline.stages.classify import Classifier
from pipeline.stages.clock import correct_capture_time
from pipeline.stages.decode import DecodedFrame, parse_exif_datetime
from pipeline.stages.embed import Backbone
from pipeline.store.embedding_cache import embed_pixels


def classify_batch(
    rows: pa.Table,
    decoded: list[DecodedFrame],
    deployments: dict[str, dict[str, Any]],
    backbone: Backbone,
    classifier: Classifier,
    run_id: str,
    pad_to: int | None = None,
    tta_flip: bool = False,
) -> pa.Table:
    """Score one decoded batch; return its FRAME_RESULTS rows (failures included).

    `tta_flip` averages each frame's features with its mirror image's before scoring.

    `pad_to` pads the model batch with blank frames to a fixed size: oneDNN builds new bf16
    kernels for every new batch shape (up to a second each), so fixed shapes are faster.
    """
    ok = [i for i, d in enumerate(decoded) if d.pixels is not None]
    scores: dict[int, tuple[float, list[str], list[float]]] = {}
    if ok:
        pixels = np.stack([decoded[i].pixels for i in ok])  # type: ignore[misc]
        if pad_to and len(ok) < pad_to:
            blank = np.zeros((pad_to - len(ok), *pixels.shape[1:]), dtype=pixels.dtype)
            pixels = np.concatenate([pixels, blank])
        result = classifier.score(embed_pixels(backbone, pixels, tta_flip)[: len(ok)])
        for j, i in enumerate(ok):
            scores[i] = (
                float(result.score[j]),
                list(result.top5_labels[j]),
                [float(x) for x in result.top5_scores[j]],
            )
    records = []
    for i, row in enumerate(rows.to_pylist()):
        frame = decoded[i]
        dep = deployments.get(row["deploymentID"])
        failure = frame.failure
        if dep is None and failure is None:
            failure = f"deployment {row['deploymentID']!r} is not in the deployments table"
        exif_time, utc_offset, exif_flag = parse_exif_datetime(
            frame.exif_datetime, frame.exif_offset
        )
        captured_at, flag = correct_capture_time(
            exif_time,
            exif_flag,
            dep["clockOffsetSeconds"] if dep else 0,
            dep["deploymentStart"] if dep else None,
            dep["deploymentEnd"] if dep else None,
        )
        score = scores.get(i) if failure is None else None
        records.append(
            {
                "image_id": row["image_id"],
                "run_id": run_id,
                "deploymentID": row["deploymentID"],
                "file_path": row["file_path"],
                "relative_path": row["relative_path"],
                "file_size": row["file_size"],
                "content_sha256": frame.content_sha256,
                "width": frame.width,
                "height": frame.height,
                "exif_datetime": frame.exif_datetime,
                "captured_at": captured_at,
                "utc_offset_minutes": utc_offset,
                "time_flag": flag.value,
                "status": (ImageStatus.OK if score else ImageStatus.FAILED).value,
                "failure": failure,
                "score": score[0] if score else None,
                "top5_labels": score[1] if score else None,
                "top5_scores": score[2] if score else None,
                "model_name": classifier.name if score else None,
                "backbone": backbone.name if score else None,
                "weights_sha256": backbone.weights_sha256 if score else None,
            }
        )
    return pa.Table.from_pylist(records, schema=FRAME_RESULTS)
