"""Bursts and independent events: the votes that give the model more chances to spot a leopard.

Frames of one deployment no more than `burst_gap_seconds` apart form a burst; the burst score
aggregates its frames (max, mean or noisy-or). Leopard bursts (score >= threshold) separated by
at least `event_gap_minutes` are independent events. The SQL here runs in DuckDB over any
relation with the frame columns, so the same code serves Arrow tables and Parquet datasets.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa

from pipeline.errors import ConfigError
from pipeline.schema import BURSTS, BurstAggregation, conform

MAX_GAP_SECONDS = 366 * 24 * 3600  # a year: any gap longer is a typo (or inf, or nan)


@dataclass(frozen=True)
class BurstOptions:
    burst_gap_seconds: float = 60.0
    aggregation: BurstAggregation = BurstAggregation.MAX
    event_gap_minutes: float = 30.0

    def __post_init__(self) -> None:
        # `not 0 <= x <= limit` refuses nan as well; the gaps are written into SQL text.
        if not 0 <= self.burst_gap_seconds <= MAX_GAP_SECONDS:
            raise ConfigError(
                f"burst gap must be 0..{MAX_GAP_SECONDS:,} seconds, got {self.burst_gap_seconds}"
            )
        if not 0 <= self.event_gap_minutes <= MAX_GAP_SECONDS / 60:
            raise ConfigError(
                f"event gap must be 0..{MAX_GAP_SECONDS // 60:,} minutes, "
                f"got {self.event_gap_minutes}"
            )
        object.__setattr__(self, "aggregation", BurstAggregation(self.aggregation))


_AGGREGATE_SQL = {
    BurstAggregation.MAX: "max(score)",
    BurstAggregation.MEAN: "avg(score)",
    # 1 - prod(1 - p): the chance that at least one frame truly holds a leopard.
    BurstAggregation.NOISY_OR: "1 - exp(sum(ln(greatest(1 - score, 1e-12))))",
}


def burst_assignment_sql(frames: str, options: BurstOptions) -> str:
    """SQL giving (image_id, burst_id) for every row of relation `frames`.

    `frames` needs image_id, deploymentID and captured_at. A frame without a capture time is
    a burst of its own: it cannot be placed next to anything.
    """
    gap = float(options.burst_gap_seconds)
    return f"""
    WITH ordered AS (
      SELECT image_id, deploymentID, captured_at,
             CASE WHEN captured_at IS NULL
                    OR lag(captured_at) OVER w IS NULL
                    OR epoch(captured_at - lag(captured_at) OVER w) > {gap}
                  THEN 1 ELSE 0 END AS starts_burst
      FROM {frames}
      WINDOW w AS (PARTITION BY deploymentID ORDER BY captured_at NULLS LAST, image_id)
    ), numbered AS (
      SELECT *, sum(starts_burst) OVER (
               PARTITION BY deploymentID ORDER BY captured_at NULLS LAST, image_id
               ROWS UNBOUNDED PRECEDING) AS burst_seq
      FROM ordered
    )
    SELECT image_id,
           CASE WHEN captured_at IS NULL
                THEN deploymentID || '/untimed/' || left(image_id, 12)
                ELSE deploymentID || '/' || strftime(
                       min(captured_at) OVER (PARTITION BY deploymentID, burst_seq),
                       '%Y%m%dT%H%M%S')
           END AS burst_id
    FROM numbered
    """


def burst_summary_sql(scored: str, options: BurstOptions) -> str:
    """SQL summarising relation `scored` (frames with burst_id, locationID, score) per burst."""
    agg = _AGGREGATE_SQL[options.aggregation]
    return f"""
    SELECT burst_id, any_value(deploymentID) AS deploymentID,
           any_value(locationID) AS locationID,
           min(captured_at) AS start_time, max(captured_at) AS end_time,
           count(*)::INTEGER AS n_frames, ({agg})::FLOAT AS score,
           '{options.aggregation.value}' AS aggregation,
           arg_max(image_id, score) AS best_image_id
    FROM {scored}
    GROUP BY burst_id
    """


def independent_events_sql(bursts: str, event_gap_minutes: float) -> str:
    """SQL adding `starts_event` to relation `bursts` (already filtered to leopard bursts).

    A leopard burst starts a new independent event when it begins at least
    `event_gap_minutes` after the previous leopard burst of the same deployment ended.

    Bursts are ordered by start, then end time only: two bursts with the same start and end
    are interchangeable (the count of events is the same in either order), and leaving the
    string burst_id out of the sort keys makes this window about a third cheaper on large
    stores (bench/dashboard_bench.py).
    """
    gap_s = float(event_gap_minutes) * 60.0
    return f"""
    SELECT *,
           (prev_end IS NULL OR start_time IS NULL
            OR epoch(start_time - prev_end) >= {gap_s}) AS starts_event
    FROM (
      SELECT *, lag(end_time) OVER (
                  PARTITION BY deploymentID
                  ORDER BY start_time NULLS LAST, end_time NULLS LAST) AS prev_end
      FROM {bursts}
    )
    """


def assign_bursts(frames: pa.Table, options: BurstOptions) -> pa.Table:
    """Return `frames` with a `burst_id` column added (rows in the same order)."""
    con = duckdb.connect()
    con.register("frames_in", frames)
    con.execute(
        "CREATE TEMP TABLE numbered AS SELECT row_number() OVER () AS _row, * FROM frames_in"
    )
    assignment = burst_assignment_sql("numbered", options)
    ids = con.sql(
        f"SELECT n.*, b.burst_id FROM numbered n JOIN ({assignment}) b "
        "USING (image_id) ORDER BY n._row"
    ).to_arrow_table()
    return ids.drop(["_row"])


def summarize_bursts(scored: pa.Table, options: BurstOptions) -> pa.Table:
    """Return one BURSTS row per burst in `scored` (frames with burst_id, locationID, score)."""
    con = duckdb.connect()
    con.register("scored", scored)
    out = con.sql(burst_summary_sql("scored", options) + " ORDER BY burst_id").to_arrow_table()
    return conform(out, BURSTS)
