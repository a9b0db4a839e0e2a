"""Every question the dashboard asks the store, as parameterized DuckDB SQL.

They run on a cursor of `store.Store`, which reopens DIR/uncia.duckdb whenever a pipeline
checkpoint replaces it, so a running survey shows up without a restart. Aggregations group
bursts by deployment first and only then by hexagon, so they stay fast on stores with millions
of frames.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from dashboard.filters import Filters
from pipeline.schema import RunKind
from pipeline.store.reviews import LEOPARD_LABEL
from pipeline.store.store import StorePaths, first_row

DEFAULT_EVENT_GAP_MINUTES = 30.0
log = logging.getLogger(__name__)


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
    views: str | None = None  # what of each frame the latest run scored (docs/views.md)


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
    threshold = gap = views = None
    if latest:
        model, backbone, threshold, status, options_json = latest
        gap = _event_gap_from_options(options_json)
        views = _run_options(options_json).get("views")
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
        views=views if isinstance(views, str) else None,
    )


def _run_options(options_json: str | None) -> dict[str, Any]:
    try:
        options = json.loads(options_json or "{}")
    except ValueError:
        return {}
    return options if isinstance(options, dict) else {}


def _event_gap_from_options(options_json: str | None) -> float | None:
    try:
        value = _run_options(options_json).get("event_gap_minutes")
        return None if value is None else float(value)
    except (ValueError, TypeError):
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
    """Frames in `hexagon` scoring at least the threshold in the window, highest score first;
    with `filters.verified_only`, instead the frames of the bursts a person's verdict calls a
    snow leopard (`review_latest`, registered by analysis.attach: a review or an imported
    human label; a frame in no burst is judged alone), whatever their score: the frames the
    map counts.

    Columns: image_id, captured_at, locationID, locationName, cameraID, score, top5_labels,
    top5_scores, verdict (who said so; null in machine mode). At most `limit` rows.
    """
    if filters.verified_only:
        judged = """JOIN review_latest r
  ON r.burst_id = coalesce(x.burst_id, 'frame:' || x.image_id) AND r.label = $leopard_label"""
        verdict = """CASE WHEN r.origin = 'import' THEN 'verified: ' || r.reviewer
            ELSE 'verified in review by ' || r.reviewer END"""
        params = _params(filters, leopard_label=LEOPARD_LABEL)
        params.pop("threshold")
        kept = "TRUE"
    else:
        judged, verdict, params = "", "NULL::VARCHAR", _params(filters)
        kept = "x.score >= $threshold::FLOAT"
    sql = f"""
SELECT x.image_id, x.captured_at, x.locationID, d.locationName, d.cameraID, x.score,
       x.top5_labels, x.top5_scores, {verdict} AS verdict
FROM detections x JOIN deployments d USING (deploymentID) {judged}
WHERE d."{filters.h3_column}" = $hexagon AND {kept}
  AND x.captured_at IS NOT NULL AND {_window("x.captured_at")}
ORDER BY x.score DESC, x.captured_at, x.image_id
LIMIT $limit
"""
    params.update(hexagon=hexagon, limit=int(limit))
    return con.sql(sql, params=params).to_arrow_table()


def hexagon_stations(con: duckdb.DuckDBPyConnection, filters: Filters, hexagon: str) -> str:
    """The names of the stations deployed in `hexagon` during the date range, "A12, A13, B02"
    (as analysis.layer_summary's `stations` column); "" when none."""
    sql = f"""
SELECT coalesce(string_agg(DISTINCT coalesce(locationName, locationID), ', '
                           ORDER BY coalesce(locationName, locationID)), '')
FROM deployments
WHERE "{filters.h3_column}" = $hexagon
  AND "deploymentEnd"::DATE >= coalesce($start::DATE, DATE '0001-01-01')
  AND "deploymentStart"::DATE <= coalesce($end::DATE, DATE '9999-12-31')
"""
    params = {"hexagon": hexagon, "start": filters.start, "end": filters.end}
    return str(con.execute(sql, params).fetchall()[0][0])


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
    con: duckdb.DuckDBPyConnection, localizations: Path | None, image_ids: Sequence[str]
) -> dict[str, FrameBox]:
    """The latest box of each of `image_ids` that has one.

    A box from DIR/parquet/localizations (`uncia localize`) wins: the latest run's, whatever
    its method; failed localizations (no box) are skipped, so an older box still shows.
    Frames without one get the box of the view that gave them their score (a tile or a motion
    crop, method "view"; the whole frame is no box). Empty when neither exists or cannot be
    read: the frames are then shown without boxes.
    """
    if not image_ids:
        return {}
    boxes = _view_boxes(con, image_ids)
    path = localizations  # Store.table("localizations"): None before `uncia localize` ran
    if path is None:
        return boxes
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
        return boxes
    boxes.update(_frame_boxes(rows))
    return boxes


def _view_boxes(con: duckdb.DuckDBPyConnection, image_ids: Sequence[str]) -> dict[str, FrameBox]:
    sql = """
SELECT image_id, view_box_x, view_box_y, view_box_width, view_box_height, 'view', view, score
FROM detections
WHERE image_id IN (SELECT unnest($ids::VARCHAR[])) AND view IN ('tile', 'motion', 'track', 'detector')
  AND view_box_x IS NOT NULL AND view_box_y IS NOT NULL AND view_box_width IS NOT NULL
  AND view_box_height IS NOT NULL
"""
    try:
        rows = con.execute(sql, {"ids": list(image_ids)}).fetchall()
    except duckdb.Error:  # a store written before views existed has no view columns
        return {}
    return _frame_boxes(rows)


def _frame_boxes(rows: list[tuple[Any, ...]]) -> dict[str, FrameBox]:
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


def individuals_simulated(con: duckdb.DuckDBPyConnection, individuals: Path) -> bool:
    """Whether `individuals` holds the demo's simulated identifications (status "simulated")."""
    sql = "SELECT count(*) > 0 FROM read_parquet($p) WHERE status = 'simulated'"
    return bool(con.execute(sql, {"p": str(individuals)}).fetchall()[0][0])


def burst_for_review(con: duckdb.DuckDBPyConnection, burst_id: str) -> tuple[Any, ...] | None:
    """(best_image_id, score, model_name) of burst `burst_id`, what a review decision records
    with it; None when the store has no such burst."""
    return first_row(
        con,
        "SELECT b.best_image_id, b.score, d.model_name FROM bursts b "
        "LEFT JOIN detections d ON d.image_id = b.best_image_id WHERE b.burst_id = $burst",
        {"burst": burst_id},
    )


def image_paths(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Every frame's image_id, deploymentID and relative_path (for the training-labels CSV)."""
    return con.sql("SELECT image_id, deploymentID, relative_path FROM images").to_arrow_table()


def run_image_roots(con: duckdb.DuckDBPyConnection) -> tuple[Path, ...]:
    """The images roots of the store's runs: where thumbnails may come from by default."""
    rows = con.execute(
        "SELECT DISTINCT images_root FROM runs WHERE images_root IS NOT NULL"
    ).fetchall()
    return tuple(Path(root) for (root,) in rows if root)
