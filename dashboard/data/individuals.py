"""What `uncia localize` and `uncia identify` wrote, read for the individuals section: distinct
individuals per hexagon and the queue of proposed matches with their latest decision. Each is
empty when those commands have not run."""

from __future__ import annotations

from typing import Any

import duckdb

from dashboard.data.store import Store
from pipeline.schema import H3_RESOLUTIONS
from pipeline.store.matches import latest_decisions

DEFAULT_RESOLUTION = 7


def individuals_per_hexagon(store: Store, resolution: int = DEFAULT_RESOLUTION) -> list[dict]:
    """Distinct individuals (and their sightings) per H3 cell, most individuals first.

    Empty when `uncia identify` has not run. A distinct-individual count is a minimum: two
    individuals never matched count as two, one never photographed counts as none.
    """
    if resolution not in H3_RESOLUTIONS:
        raise ValueError(f"resolution must be one of {H3_RESOLUTIONS}")
    individuals, detections = store.table("individuals"), store.table("detections")
    if individuals is None or detections is None:
        return []
    column = f"h3_r{resolution}"
    rows = (
        duckdb.connect()
        .execute(
            f"""
            SELECT d.{column} AS cell, count(DISTINCT i.individualID) AS individuals,
                   count(*) AS sightings
            FROM read_parquet(?) i JOIN read_parquet(?) d USING (image_id)
            WHERE d.{column} IS NOT NULL
            GROUP BY cell ORDER BY individuals DESC, sightings DESC, cell
            """,
            [str(individuals), str(detections)],
        )
        .fetchall()
    )
    return [{"cell": c, "individuals": n, "sightings": s} for c, n, s in rows]


def review_queue(store: Store) -> list[dict[str, Any]]:
    """Proposed matches, one per unordered pair, best score first, with the latest decision."""
    matches, localizations = store.table("matches"), store.table("localizations")
    if matches is None or localizations is None:
        return []
    rows = (
        duckdb.connect()
        .execute(
            """
            WITH crops AS (
                SELECT image_id, crop_path, heatmap_path FROM read_parquet(?)
                WHERE crop_path IS NOT NULL
                QUALIFY row_number() OVER (PARTITION BY image_id ORDER BY run_id DESC) = 1
            ), pairs AS (
                SELECT least(query_id, candidate_id) AS a, greatest(query_id, candidate_id) AS b,
                       max(score) AS score, bool_or(mirrored) AS mirrored
                FROM read_parquet(?) WHERE proposed GROUP BY a, b
            )
            SELECT p.a, p.b, p.score, p.mirrored, ca.crop_path, cb.crop_path,
                   ca.heatmap_path, cb.heatmap_path
            FROM pairs p JOIN crops ca ON ca.image_id = p.a JOIN crops cb ON cb.image_id = p.b
            ORDER BY p.score DESC, p.a, p.b
            """,
            [str(localizations), str(matches)],
        )
        .fetchall()
    )
    decisions = latest_decisions(store.data_dir)
    return [
        {
            "query_id": a,
            "candidate_id": b,
            "score": round(float(score), 2),
            "mirrored": bool(mirrored),
            "query_crop": crop_a,
            "candidate_crop": crop_b,
            "query_heatmap": heat_a,
            "candidate_heatmap": heat_b,
            "decision": decisions.get(frozenset((a, b))),
        }
        for a, b, score, mirrored, crop_a, crop_b, heat_a, heat_b in rows
    ]
