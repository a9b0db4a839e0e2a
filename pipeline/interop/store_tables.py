"""Read a store's tables for an export: every table that exists, as Python rows or Arrow.

Exports read the Parquet files (`DIR/parquet/<table>.parquet`) with DuckDB; a table that a
store does not have (no `uncia localize` yet, no import) reads as empty.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from pipeline.errors import StoreError
from pipeline.interop.common import is_url
from pipeline.schema import TABLES, RunKind
from pipeline.stages.bursts import independent_events_sql
from pipeline.store.reviews import read_reviews
from pipeline.store.store import StorePaths


def read_table(data_dir: Path, name: str) -> pa.Table:
    """Table `name` of the store in `data_dir` (empty with its schema when absent)."""
    path = StorePaths(Path(data_dir)).table(name)
    if not path.exists():
        return TABLES[name].empty_table()
    with duckdb.connect() as con:
        return con.sql("SELECT * FROM read_parquet(?)", params=[str(path)]).to_arrow_table()


def rows(data_dir: Path, name: str) -> list[dict[str, Any]]:
    return read_table(data_dir, name).to_pylist()


def require_store(data_dir: Path) -> None:
    """StoreError unless `data_dir` holds a store (its deployments and images tables)."""
    paths = StorePaths(Path(data_dir))
    if not (paths.table("deployments").exists() and paths.table("images").exists()):
        raise StoreError(f"no Uncia store at {data_dir}: run `uncia run` or `uncia import` first")


def latest_threshold(data_dir: Path) -> float | None:
    """The leopard threshold of the store's latest run, or None without runs."""
    runs = sorted(rows(data_dir, "runs"), key=lambda r: r["run_id"])
    return float(runs[-1]["leopard_threshold"]) if runs else None


def latest_reviews(data_dir: Path) -> list[dict[str, Any]]:
    return read_reviews(Path(data_dir)).to_pylist()


def leopard_events(
    data_dir: Path, threshold: float, event_gap_minutes: float
) -> list[dict[str, Any]]:
    """Leopard bursts (score >= threshold), each with `event_id`: the independent event it
    belongs to (`<deploymentID>/event/<first burst start>`), in the dashboard's rule."""
    bursts = read_table(data_dir, "bursts")
    with duckdb.connect() as con:
        con.register("all_bursts", bursts)
        con.execute(
            "CREATE TEMP TABLE sightings AS SELECT * FROM all_bursts "
            "WHERE score >= $t AND start_time IS NOT NULL",
            {"t": float(threshold)},
        )
        sql = f"""
        SELECT *, deploymentID || '/event/' || strftime(
                 first_value(start_time) OVER (PARTITION BY deploymentID, event_seq
                                               ORDER BY start_time, end_time),
                 '%Y%m%dT%H%M%S') AS event_id
        FROM (SELECT *, sum(starts_event::INTEGER) OVER (
                          PARTITION BY deploymentID ORDER BY start_time, end_time
                          ROWS UNBOUNDED PRECEDING) AS event_seq
              FROM ({independent_events_sql("sightings", event_gap_minutes)}))
        ORDER BY deploymentID, start_time"""
        return con.sql(sql).to_arrow_table().to_pylist()


def best_localization_boxes(data_dir: Path) -> dict[str, tuple[float, float, float, float]]:
    """The localization box (x, y, width, height fractions) of each frame that has one; of
    several (methods, targets), the highest target score wins."""
    boxes: dict[str, tuple[float, float, float, float]] = {}
    best: dict[str, float] = {}
    for loc in rows(data_dir, "localizations"):
        if loc["failure"] is not None or loc["box_width"] is None:
            continue
        score = loc["target_score"] or 0.0
        if loc["image_id"] not in best or score > best[loc["image_id"]]:
            best[loc["image_id"]] = score
            boxes[loc["image_id"]] = (
                loc["box_x"], loc["box_y"], loc["box_width"], loc["box_height"]
            )  # fmt: skip
    return boxes


def import_run_ids(data_dir: Path) -> set[str]:
    """The run ids of the store's imports (their frames' paths are relative to a package)."""
    return {r["run_id"] for r in rows(data_dir, "runs") if r["kind"] == RunKind.IMPORT}


def survey_file(image: dict[str, Any], imports: set[str]) -> str:
    """A frame's path as other tools name it: relative to the survey's images root
    (`<deploymentID>/<path>`, as `uncia run` reads it), to the package for an imported frame,
    or its URL."""
    if image["run_id"] in imports:
        return str(image["relative_path"])
    if is_url(image["file_path"]):
        return str(image["file_path"])
    return f"{image['deploymentID']}/{image['relative_path']}"


def most_common(values: list[Any]) -> Any:
    """The most common non-null value (None when there is none)."""
    counts = Counter(v for v in values if v is not None)
    return counts.most_common(1)[0][0] if counts else None
