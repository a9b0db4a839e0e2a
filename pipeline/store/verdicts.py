"""A person's word on each burst: the latest review decision made in the dashboard or the human
labels imported from another tool (Camtrap DP observations, Timelapse), whichever is newer.

An imported label counts exactly like a dashboard decision: a frame a person labelled snow
leopard makes its burst a confirmed leopard, any other label (another species, blank) makes it
a relabel to that label. A burst whose frames carry several imported labels is a leopard when
one of them is; else it takes the first other label in alphabetical order, `empty` only when
nothing else was seen. An imported frame that is in no burst (an imported store was never
classified) is a verdict of its own, `frame:<image_id>`. Precedence (docs/interop.md): the
newer of the burst's latest review (`reviewed_at`) and its newest imported label (the time it
was imported, `observations.imported_at`) wins; on a tie the review wins.

`VERDICTS_SQL` runs on any DuckDB connection holding `detections`, `bursts`, `images` and
`deployments` with `verdict_reviews` (REVIEWS) and `verdict_observations` (OBSERVATIONS)
registered: the dashboard runs it on its snapshot, `store_verdicts` on a store's Parquet files.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from pipeline.schema import OBSERVATIONS, REVIEWS, TABLES, ReviewDecision, conform
from pipeline.store.reviews import LEOPARD_LABEL, read_reviews
from pipeline.store.store import StorePaths

EMPTY_LABEL = "empty"


class VerdictOrigin:
    REVIEW = "review"  # a decision made in the dashboard's review gallery
    IMPORT = "import"  # a human label imported from another tool


# The REVIEWS columns (reviewer: the person, or "imported from <tool> (<source>)"), then where
# the verdict came from and where and when its burst (or frame) was.
VERDICTS = pa.schema(
    [
        *REVIEWS,
        pa.field("origin", pa.string(), nullable=False),
        pa.field("deploymentID", pa.string()),
        pa.field("locationID", pa.string()),
        pa.field("start_time", pa.timestamp("us")),
        pa.field("end_time", pa.timestamp("us")),
    ]
)

# Human observations -> (frame, label): media-level ones name their frame; an event-level one
# covers the frames of its deployment taken in its window (UTC), unless a media-level human
# label names the frame already.
VERDICTS_SQL = f"""
WITH human AS (
  SELECT * FROM verdict_observations WHERE classificationMethod = 'human'
),
media_labels AS (
  SELECT h.mediaID AS image_id, h.label, h.source, h.imported_at
  FROM human h WHERE h.observationLevel = 'media' AND h.mediaID IS NOT NULL
),
event_labels AS (
  SELECT i.image_id, h.label, h.source, h.imported_at
  FROM human h JOIN images i ON i.deploymentID = h.deploymentID
  WHERE h.observationLevel = 'event' AND i.captured_at IS NOT NULL
    AND i.utc_offset_minutes IS NOT NULL
    AND i.captured_at - to_minutes(i.utc_offset_minutes::BIGINT)
        BETWEEN timezone('UTC', h.eventStart) AND timezone('UTC', h.eventEnd)
    AND i.image_id NOT IN (SELECT image_id FROM media_labels)
),
labelled AS (
  SELECT * FROM media_labels UNION ALL SELECT * FROM event_labels
),
framed AS (
  SELECT coalesce(b.burst_id, 'frame:' || i.image_id) AS burst_id, l.image_id, l.label,
         CASE WHEN l.source LIKE 'camtrap-dp:%' THEN 'Camtrap DP ('
                   || substr(l.source, 12) || ')'
              WHEN l.source LIKE 'timelapse:%' THEN 'Timelapse (' || substr(l.source, 11) || ')'
              ELSE l.source END AS tool,
         l.imported_at,
         coalesce(b.deploymentID, i.deploymentID) AS deploymentID,
         coalesce(b.locationID, d.locationID) AS locationID,
         CASE WHEN b.burst_id IS NULL THEN i.captured_at ELSE b.start_time END AS start_time,
         CASE WHEN b.burst_id IS NULL THEN i.captured_at ELSE b.end_time END AS end_time,
         b.score, x.model_name
  FROM labelled l JOIN images i USING (image_id)
  LEFT JOIN deployments d ON d.deploymentID = i.deploymentID
  LEFT JOIN detections x ON x.image_id = l.image_id
  LEFT JOIN bursts b ON b.burst_id = x.burst_id
),
imported AS (
  SELECT burst_id,
         coalesce(min(image_id) FILTER (WHERE label = $leopard), min(image_id)) AS image_id,
         bool_or(label = $leopard) AS leopard,
         min(label) FILTER (WHERE label NOT IN ($leopard, $empty)) AS other,
         'imported from ' || string_agg(DISTINCT tool, ', ' ORDER BY tool) AS reviewer,
         max(imported_at) AS reviewed_at,
         any_value(deploymentID) AS deploymentID, any_value(locationID) AS locationID,
         any_value(start_time) AS start_time, any_value(end_time) AS end_time,
         any_value(score) AS score, any_value(model_name) AS model_name
  FROM framed GROUP BY burst_id
),
candidates AS (
  SELECT 'import:' || burst_id AS review_id, burst_id, image_id,
         CASE WHEN leopard THEN '{ReviewDecision.CONFIRM.value}'
              ELSE '{ReviewDecision.RELABEL.value}' END AS decision,
         CASE WHEN leopard THEN $leopard ELSE coalesce(other, $empty) END AS label,
         reviewer, reviewed_at, score, model_name, 'import' AS origin,
         deploymentID, locationID, start_time, end_time, 1 AS rank
  FROM imported
  UNION ALL
  SELECT r.review_id, r.burst_id, r.image_id, r.decision, r.label, r.reviewer, r.reviewed_at,
         r.score, r.model_name, 'review' AS origin,
         b.deploymentID, b.locationID, b.start_time, b.end_time, 0 AS rank
  FROM verdict_reviews r LEFT JOIN bursts b USING (burst_id)
)
SELECT * EXCLUDE (rank) FROM candidates
QUALIFY row_number() OVER (PARTITION BY burst_id ORDER BY reviewed_at DESC, rank) = 1
ORDER BY burst_id
"""


def human_observations(path: Path | None) -> pa.Table:
    """The store's imported observations (OBSERVATIONS), from `path` (DIR/parquet/
    observations.parquet) or empty. A file written before `imported_at` existed takes its
    modification time as the import time."""
    if path is None or not Path(path).exists():
        return OBSERVATIONS.empty_table()
    with duckdb.connect() as con:
        table = con.sql("SELECT * FROM read_parquet(?)", params=[str(path)]).to_arrow_table()
    if "imported_at" not in table.column_names:
        when = datetime.fromtimestamp(os.stat(path).st_mtime, UTC)
        table = table.append_column(
            "imported_at", pa.array([when] * table.num_rows, pa.timestamp("us", tz="UTC"))
        )
    return conform(table, OBSERVATIONS)


def verdicts(
    con: duckdb.DuckDBPyConnection, reviews: pa.Table, observations: pa.Table
) -> pa.Table:
    """The verdict of every burst (or unbursted imported frame) a person judged (VERDICTS), run
    on `con`, which must hold `detections`, `bursts`, `images` and `deployments`.

    `reviews`: the latest dashboard decision per burst (REVIEWS); `observations`: the imported
    observations (OBSERVATIONS), of which the human ones count.
    """
    con.register("verdict_reviews", conform(reviews, REVIEWS))
    con.register("verdict_observations", conform(observations, OBSERVATIONS))
    params = {"leopard": LEOPARD_LABEL, "empty": EMPTY_LABEL}
    table = con.sql(VERDICTS_SQL, params=params).to_arrow_table()
    return conform(table, VERDICTS)


def store_verdicts(data_dir: Path) -> pa.Table:
    """`verdicts` of the store in `data_dir`, read from its Parquet files (a table a store does
    not have reads as empty)."""
    paths = StorePaths(Path(data_dir))
    with duckdb.connect() as con:
        for name in ("detections", "bursts", "images", "deployments"):
            path = paths.table(name)
            if path.exists():
                con.read_parquet(str(path)).create_view(name)
            else:
                con.register(name, TABLES[name].empty_table())
        observations = human_observations(paths.table("observations"))
        return verdicts(con, read_reviews(Path(data_dir)), observations)
