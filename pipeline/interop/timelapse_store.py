"""`uncia import timelapse … --data DIR`: a Timelapse export's frame labels into a store's
`observations`, as human media-level observations, so the dashboard counts them as verified
(pipeline.store.verdicts) like a review decision (docs/interop.md).

Files are matched to the store's frames as MegaDetector results are (`RelativePath/File`
relative to the survey's root, or any folder above it). Importing a CSV of the same name
again replaces its rows; other imports' observations are kept.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline.interop import store_tables as st
from pipeline.interop.common import EMPTY_LABEL, SNOW_LEOPARD
from pipeline.interop.megadetector import file_index, match_file
from pipeline.schema import OBSERVATIONS, conform
from pipeline.store.reviews import LEOPARD_LABEL
from pipeline.store.store import StorePaths, atomic_write_parquet, writer_lock
from pipeline.store.verdicts import human_observations

SOURCE_PREFIX = "timelapse:"
# Labels that are not animals, as Camtrap DP's observationType names them.
OBSERVATION_TYPES = {EMPTY_LABEL: "blank", "human": "human", "people": "human",
                     "person": "human", "vehicle": "vehicle"}  # fmt: skip


@dataclass(frozen=True)
class TimelapseStored:
    stored: int  # frames of the store that got a label
    not_in_store: tuple[str, ...]  # files the store does not have
    without_time: int  # frames of the store without a capture time (left out)
    replaced: int  # rows of an earlier import of the same CSV name, replaced


def _observation(
    file: str, label: str, image: dict[str, Any], source: str, now: datetime
) -> dict[str, Any]:
    offset = timedelta(minutes=image["utc_offset_minutes"] or 0)
    when = (image["captured_at"] - offset).replace(tzinfo=UTC)
    leopard = label == LEOPARD_LABEL
    digest = hashlib.sha256(f"{source}|{file}".encode()).hexdigest()[:16]
    return {
        "observationID": f"timelapse-{digest}",
        "deploymentID": image["deploymentID"],
        "mediaID": image["image_id"],
        "eventID": None,
        "eventStart": when,
        "eventEnd": when,
        "observationLevel": "media",
        "observationType": "animal" if leopard else OBSERVATION_TYPES.get(label, "animal"),
        "scientificName": SNOW_LEOPARD if leopard else None,
        "classificationMethod": "human",
        "classifiedBy": "Timelapse",
        "label": label,
        "source": source,
        "imported_at": now,
    }


def store_timelapse_labels(
    frame_labels: dict[str, str], data_dir: Path, csv_name: str
) -> TimelapseStored:
    """Write `frame_labels` (file -> label, as `import_timelapse` kept them) into the store in
    `data_dir` as human observations with source `timelapse:<csv_name>`. Raises StoreError
    without a store, or while another command writes to it."""
    data_dir = Path(data_dir)
    st.require_store(data_dir)
    index = file_index(data_dir)
    images = {i["image_id"]: i for i in st.rows(data_dir, "images")}
    source = f"{SOURCE_PREFIX}{csv_name}"
    now = datetime.now(UTC)
    rows, missing, without_time = [], [], 0
    for file, label in frame_labels.items():
        image_id = match_file(file, index)
        if image_id is None:
            missing.append(file)
        elif images[image_id]["captured_at"] is None:
            without_time += 1
        else:
            rows.append(_observation(file, label, images[image_id], source, now))
    with writer_lock(data_dir):
        # An older file without `imported_at` keeps its modification time as that.
        existing = human_observations(StorePaths(data_dir).table("observations")).to_pylist()
        kept = [r for r in existing if r["source"] != source]
        table = pa.Table.from_pylist(kept + rows, OBSERVATIONS)
        atomic_write_parquet(conform(table, OBSERVATIONS),
                             StorePaths(data_dir).table("observations"))  # fmt: skip
    return TimelapseStored(
        stored=len(rows),
        not_in_store=tuple(missing),
        without_time=without_time,
        replaced=len(existing) - len(kept),
    )
