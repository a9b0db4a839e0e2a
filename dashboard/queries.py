"""Every question the dashboard asks the store, as parameterized DuckDB SQL.

`StoreReader` reopens DIR/uncia.duckdb whenever a pipeline checkpoint replaces it, so a running
survey shows up without a restart. Aggregations group bursts by deployment first and only then
by hexagon, so they stay fast on stores with millions of frames.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from dashboard.filters import Filters
from pipeline.errors import StoreError
from pipeline.schema import RunKind
from pipeline.store import StorePaths, first_row

DEFAULT_EVENT_GAP_MINUTES = 30.0
_ALIAS = "survey"
log = logging.getLogger(__name__)


class StoreReader:
    """Read-only access to one output folder's DuckDB file, reopened when the file is replaced.

    Each snapshot is a fresh in-memory DuckDB with the file attached read-only: DuckDB caches
    database instances by path, so connecting to the same path again would keep serving the
    replaced file. Cursors on an old snapshot keep working until they are closed.
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = StorePaths(Path(data_dir)).duckdb
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._version: str | None = None

    def version(self) -> str | None:
        """Return a cheap signature of the store file (inode, mtime, size), None when absent."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return f"{st.st_ino}-{st.st_mtime_ns}-{st.st_size}"

    def connect(self) -> duckdb.DuckDBPyConnection:
        """Return a new cursor on the newest snapshot (close it after use).

        Raises StoreError when the folder holds no store yet or the file cannot be read.
        """
        with self._lock:
            current = self.version()
            if current is None:
                raise StoreError("no Uncia store in the data folder yet")
            if self._con is None or current != self._version:
                self._con = self._attach()
                self._version = current
            cursor = self._con.cursor()
        cursor.execute(f"USE {_ALIAS}")
        return cursor

    def _attach(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect()
        quoted = str(self.path).replace("'", "''")
        try:
            con.execute(f"ATTACH '{quoted}' AS {_ALIAS} (READ_ONLY)")
        except duckdb.Error as exc:
            con.close()
            raise StoreError(f"cannot read the store: {exc}") from exc
        return con


@dataclass(frozen=True)
class Overview:
    """What the header and the controls need: date bounds, the latest run, demo or not."""

    first_day: date | None
    last_day: date | None
    is_demo: bool
    model_name: str | None
    backbone: str | None
    leopard_threshold: float | None
    run_status: str | None
    event_gap_minutes: float | None
    n_deployments: int


def survey_overview(con: duckdb.DuckDBPyConnection) -> Overview:
    """Summarise the store: first/last deployment day, latest run's model and threshold."""
    first, last, n_dep = first_row(  # type: ignore[misc]
        con,
        'SELECT min("deploymentStart")::DATE, max("deploymentEnd")::DATE, count(*) '
        "FROM deployments",
    )
    (is_demo,) = first_row(  # type: ignore[misc]
        con,
        "SELECT count(*) FILTER (WHERE kind = $demo) > 0 FROM runs",
        {"demo": RunKind.DEMO.value},
    )
    latest = first_row(
        con,
        "SELECT model_name, backbone, leopard_threshold, status, options_json FROM runs "
        "ORDER BY started_at DESC, run_id DESC LIMIT 1",
    )
    model = backbone = status = None
    threshold = gap = None
    if latest:
        model, backbone, threshold, status, options_json = latest
        gap = _event_gap_from_options(options_json)
    return Overview(
        first_day=first,
        last_day=last,
        is_demo=bool(is_demo),
        model_name=model,
        backbone=backbone,
        leopard_threshold=None if threshold is None else round(float(threshold), 4),
        run_status=status,
        event_gap_minutes=gap,
        n_deployments=int(n_dep),
    )


def _event_gap_from_options(options_json: str | None) -> float | None:
    try:
        value = json.loads(options_json or "{}").get("event_gap_minutes")
        return None if value is None else float(value)
    except (ValueError, TypeError, AttributeError):
        return None


def _window(ts: str) -> str:
    """SQL keeping timestamps `ts` inside the date range and the season's months."""
    return (
        f"({ts})::DATE BETWEEN coalesce($start::DATE, DATE '0001-01-01') "
        f"AND coalesce($end::DATE, DATE '9999-12-31') "
        f"AND list_contains($months::INTEGER[], month({ts})::INTEGER)"
    )


def _params(filters: Filters, **extra: Any) -> dict[str, Any]:
    return {
        "start": filters.start,
        "end": filters.end,
        "months": list(filters.months),
        "threshold": filters.threshold,
        **extra,
    }


def hexagon_detections(
    con: duckdb.DuckDBPyConnection, filters: Filters, hexagon: str, limit: int
) -> pa.Table:
    """Frames in `hexagon` scoring at least the threshold in the window, highest score first.

    Columns: image_id, captured_at, locationID, locationName, cameraID, score, top5_labels,
    top5_scores. At most `limit` rows.
    """
    sql = f"""
SELECT x.image_id, x.captured_at, x.locationID, d.locationName, d.cameraID, x.score,
       x.top5_labels, x.top5_scores
FROM detections x JOIN deployments d USING (deploymentID)
WHERE d."{filters.h3_column}" = $hexagon AND x.score >= $threshold::FLOAT
  AND x.captured_at IS NOT NULL AND {_window("x.captured_at")}
ORDER BY x.score DESC, x.captured_at, x.image_id
LIMIT $limit
"""
    return con.sql(sql, params=_params(filters, hexagon=hexagon, limit=int(limit))).to_arrow_table()


@dataclass(frozen=True)
class ImageSource:
    """Where a frame's file is, and whether it belongs to the simulated demo."""

    file_path: str
    simulated: bool


def image_source(con: duckdb.DuckDBPyConnection, image_id: str) -> ImageSource | None:
    """Look `image_id` up in the images table; None when the store has no such frame."""
    row = first_row(
        con,
        "SELECT i.file_path, coalesce(r.kind = $demo, false) FROM images i "
        "LEFT JOIN runs r USING (run_id) WHERE i.image_id = $image_id LIMIT 1",
        {"image_id": image_id, "demo": RunKind.DEMO.value},
    )
    if row is None:
        return None
    return ImageSource(file_path=row[0], simulated=bool(row[1]))


@dataclass(frozen=True)
class FrameBox:
    """Where `uncia localize` boxed the animal in a frame: `x`, `y`, `width`, `height` are
    fractions of the upright frame (EXIF orientation applied) with a top-left origin, the
    MegaDetector convention; `method` is lime or gradcam, `target_score` the explained class's
    probability (None when not stored)."""

    x: float
    y: float
    width: float
    height: float
    method: str
    target: str
    target_score: float | None


def latest_boxes(
    con: duckdb.DuckDBPyConnection, data_dir: Path, image_ids: Sequence[str]
) -> dict[str, FrameBox]:
    """The latest box of each of `image_ids` that has one, from DIR/parquet/localizations.

    The latest run wins, whatever its method; failed localizations (no box) are skipped, so an
    older box still shows. Empty when `uncia localize` never ran or the file cannot be read: the
    frames are then shown without boxes, as before localization existed.
    """
    path = StorePaths(Path(data_dir)).table("localizations")
    if not image_ids or not path.exists():
        return {}
    sql = """
SELECT image_id, box_x, box_y, box_width, box_height, method, target, target_score
FROM read_parquet($path)
WHERE image_id IN (SELECT unnest($ids::VARCHAR[]))
  AND box_x IS NOT NULL AND box_y IS NOT NULL AND box_width IS NOT NULL
  AND box_height IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY image_id ORDER BY run_id DESC) = 1
"""
    try:
        rows = con.execute(sql, {"path": str(path), "ids": list(image_ids)}).fetchall()
    except duckdb.Error:  # e.g. replaced half-way by a running `uncia localize`
        log.warning("localizations unreadable; frames shown without boxes", exc_info=True)
        return {}
    return {
        image_id: FrameBox(
            x=float(x),
            y=float(y),
            width=float(w),
            height=float(h),
            method=method,
            target=target,
            target_score=None if score is None else float(score),
        )
        for image_id, x, y, w, h, method, target, score in rows
    }


def individuals_in_view(
    con: duckdb.DuckDBPyConnection, individuals: Path, filters: Filters
) -> pa.Table:
    """Distinct individuals (minimum known alive) per hexagon among the view's sightings.

    `individuals` is `uncia identify`'s DIR/parquet/individuals.parquet (it must exist). A
    sighting is an identified frame whose capture time lies in the date range and the season
    and whose score is at least the threshold; frames without a capture time are never counted.
    Columns: hexagon, individuals, sightings, individual_ids (sorted); most individuals first.
    """
    sql = f"""
SELECT d."{filters.h3_column}" AS hexagon,
       count(DISTINCT i.individualID)::BIGINT AS individuals,
       count(*)::BIGINT AS sightings,
       list_sort(list(DISTINCT i.individualID)) AS individual_ids
FROM read_parquet($individuals) i
JOIN detections x ON x.image_id = i.image_id
JOIN deployments d ON d.deploymentID = x.deploymentID
WHERE x.score >= $threshold::FLOAT AND x.captured_at IS NOT NULL
  AND {_window("x.captured_at")} AND d."{filters.h3_column}" IS NOT NULL
GROUP BY hexagon
ORDER BY individuals DESC, sightings DESC, hexagon
"""
    params = _params(filters, individuals=str(individuals))
    return con.sql(sql, params=params).to_arrow_table()
