"""Effort-aware questions for the dashboard: camera gaps, events per 100 trap-nights per layer,
Gi* hotspots, change between two years, diel activity, operation timelines and review lists.

All SQL is parameterized DuckDB. Two small Arrow tables travel with each query, registered on
the cursor: `camera_gaps` (days a camera was down, from `camera_gaps`) and `review_latest` (a
person's verdict per burst: the latest review decision or a newer imported human label, from
`pipeline.store.verdicts`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.interop.outages import OUTAGES
from dashboard.filters import Filters
from dashboard.species import Layer, labels_of
from dashboard.stats import DEFAULT_ALPHA, Hotness, gi_star
from pipeline.schema import TRUSTED_TIME_FLAGS
from pipeline.stages.bursts import independent_events_sql
from pipeline.store.reviews import LEOPARD_LABEL
from pipeline.store.store import atomic_write_parquet, decision_lock
from pipeline.store.verdicts import VERDICTS

log = logging.getLogger(__name__)

GAPS = pa.schema(
    [
        pa.field("deploymentID", pa.string()),
        pa.field("gap_first", pa.date32()),
        pa.field("gap_last", pa.date32()),
        pa.field("days", pa.int64()),
    ]
)


def surveyed(alias: str = "d") -> str:
    """SQL condition: the deployment `alias` has at least one row in `images` (a frame, a
    failure or a missing file).

    A deployment of the table that no run ever read (no folder, or not processed yet) was not
    watched by anybody: its days are not trap-nights, its camera is not a station on the map.
    Counting them would dilute every rate with nights nobody looked at, and a deployments table
    of 364,000 such rows drew 364,000 stations (a 263 MB map answer, docs/security.md).
    """
    return f"{alias}.deploymentID IN (SELECT deploymentID FROM images)"


@dataclass(frozen=True)
class EffortRules:
    """When a camera counts as down, and how much effort a hexagon needs to be judged."""

    gap_days: int | None = None
    min_trap_nights: int = 30
    gi_rings: int = 1
    alpha: float = DEFAULT_ALPHA
    # Gi* is withheld below these, over the hexagons with enough effort: with one event in a
    # survey it otherwise marks hexagons "hot", some with no event at all.
    min_gi_events: int = 10
    min_gi_cameras: int = 10


def gi_withheld_reason(summary: pa.Table, rules: EffortRules) -> str | None:
    """Why Gi* is not computed for `summary` (a layer_summary), or None when it is: fewer
    than `rules.min_gi_events` events or `rules.min_gi_cameras` cameras in the hexagons with
    enough effort."""
    rows = [r for r in summary.to_pylist() if r["enough_effort"]]
    events = sum(r["events"] for r in rows)
    cameras = sum(r["cameras"] for r in rows)
    if events >= rules.min_gi_events and cameras >= rules.min_gi_cameras:
        return None
    return (
        f"Gi* not tested: {events} event(s) at {cameras} camera(s) with enough effort; "
        f"the test needs at least {rules.min_gi_events} events and {rules.min_gi_cameras} "
        "cameras"
    )


def camera_gaps(
    con: duckdb.DuckDBPyConnection, gap_days: int | None, outages: pa.Table | None = None
) -> pa.Table:
    """The days each deployment was down, as merged stretches (no two overlap or touch).

    Down is what is known: the `outages` (pipeline.interop.outages.OUTAGES rows, clipped to the deployment;
    an outage without an end lasts to the deployment's end). Only when `gap_days` is set are
    silences guessed to be down too: stretches of more than `gap_days` days without a
    trustworthy frame. Frames whose capture time is missing, unparseable or outside the
    deployment prove nothing, so only a trusted time_flag (ok, infobar) closes a silence, and the deployment's
    first and last days count as seen. Columns: deploymentID, gap_first, gap_last (dates,
    inclusive), days.
    """
    parts = []
    params: dict[str, Any] = {}
    if gap_days is not None:
        parts.append(_SILENCES)
        params = {"trusted": list(TRUSTED_TIME_FLAGS), "gap_days": int(gap_days)}
    if outages is not None and outages.num_rows:
        con.register("uncia_outages", outages.cast(OUTAGES))
        parts.append(_REPORTED)
    if not parts:
        return GAPS.empty_table()
    sql = f"""
WITH periods AS ({" UNION ALL ".join(parts)}),
reach AS (
  SELECT *, max(gap_last) OVER (PARTITION BY deploymentID ORDER BY gap_first, gap_last
                                ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS reached
  FROM periods WHERE gap_first <= gap_last
),
stretches AS (
  SELECT *, sum(CASE WHEN reached IS NULL OR gap_first > reached + 1 THEN 1 ELSE 0 END)
              OVER (PARTITION BY deploymentID ORDER BY gap_first, gap_last
                    ROWS UNBOUNDED PRECEDING) AS stretch
  FROM reach
)
SELECT deploymentID, min(gap_first) AS gap_first, max(gap_last) AS gap_last,
       (max(gap_last) - min(gap_first) + 1)::BIGINT AS days
FROM stretches GROUP BY deploymentID, stretch
ORDER BY deploymentID, gap_first
"""
    try:
        table = con.sql(sql, params=params).to_arrow_table()
    finally:
        if outages is not None and outages.num_rows:
            con.unregister("uncia_outages")
    return table.cast(GAPS)


# Guessed from silence (opt-in): more than $gap_days days without a trustworthy frame.
_SILENCES = """
SELECT deploymentID, day + 1 AS gap_first, next_day - 1 AS gap_last FROM (
  SELECT deploymentID, day, lead(day) OVER (PARTITION BY deploymentID ORDER BY day) AS next_day
  FROM (
    SELECT DISTINCT deploymentID, captured_at::DATE AS day FROM images
    WHERE list_contains($trusted::VARCHAR[], time_flag) AND captured_at IS NOT NULL
    UNION SELECT deploymentID, "deploymentStart"::DATE FROM deployments d WHERE {surveyed}
    UNION SELECT deploymentID, "deploymentEnd"::DATE FROM deployments d WHERE {surveyed}))
WHERE next_day - day - 1 > $gap_days
""".format(surveyed=surveyed())

# Reported outages, clipped to their deployment.
_REPORTED = """
SELECT o.deploymentID,
       greatest(o.outage_first, d."deploymentStart"::DATE) AS gap_first,
       least(coalesce(o.outage_last, d."deploymentEnd"::DATE), d."deploymentEnd"::DATE)
         AS gap_last
FROM uncia_outages o JOIN deployments d USING (deploymentID)
"""


def gap_rule(gap_days: int | None, outages_key: str = "") -> str:
    """A name (a SQL identifier part) for one rule of down days: "g0" (deployment dates only),
    "g7" (silences over 7 days guessed down), plus "_o<key>" with an outages file."""
    return f"g{gap_days or 0}" + (f"_o{outages_key}" if outages_key else "")


class GapCache:
    """Camera gaps per (store version, gap rule): they change only when the store or the
    outages file does.

    One caller computes a missing entry while the others wait for it: a page load posts
    several callbacks at once, and each computing the gaps of a new snapshot (0.7 s on the
    10-million-frame bench store) would multiply the first view's wait. With `shared_folder`
    (DIR/work/dashboard), the first process to need a snapshot's gaps also writes them there
    for the others: every `--workers` process and a restarted server then read them (a few
    milliseconds) instead of computing them again. A folder it cannot write only means each
    process computes its own.
    """

    KEEP_SHARED = 4  # gap files of the newest snapshots kept in `shared_folder`
    ENTRIES = 8  # (store version, gap rule) pairs kept in memory

    def __init__(self, entries: int = ENTRIES, shared_folder: Path | None = None) -> None:
        """`entries` 0 keeps nothing in memory: every call reads `shared_folder` or computes
        (in parallel, unlocked), as if there were no cache in this process."""
        self._lock = threading.Lock()
        self._computing = threading.Lock()
        self._entries = entries
        self._tables: OrderedDict[tuple[str | None, str], pa.Table] = OrderedDict()
        self.shared_folder = shared_folder

    def _cached(self, key: tuple[str | None, str]) -> pa.Table | None:
        with self._lock:
            if key in self._tables:
                self._tables.move_to_end(key)
                return self._tables[key]
        return None

    def get(
        self,
        con: duckdb.DuckDBPyConnection,
        version: str | None,
        gap_days: int | None,
        outages: pa.Table | None = None,
        outages_key: str = "",
    ) -> pa.Table:
        """The gaps of `version` under `gap_days` and `outages` (whose file `outages_key`
        names: a new key is a new entry)."""
        rule = gap_rule(gap_days, outages_key)
        if self._entries == 0:
            return self._shared(con, version, rule, lambda: camera_gaps(con, gap_days, outages))
        key = (version, rule)
        table = self._cached(key)
        if table is not None:
            return table
        with self._computing:
            table = self._cached(key)  # computed while this caller waited
            if table is not None:
                return table
            table = self._shared(con, version, rule, lambda: camera_gaps(con, gap_days, outages))
            with self._lock:
                self._tables[key] = table
                while len(self._tables) > self._entries:
                    self._tables.popitem(last=False)
        return table

    def _shared(
        self,
        con: duckdb.DuckDBPyConnection,
        version: str | None,
        rule: str,
        compute: Callable[[], pa.Table],
    ) -> pa.Table:
        """The gaps from `shared_folder`, computed and written there when absent."""
        if self.shared_folder is None or version is None:
            return compute()
        digest = hashlib.sha256(version.encode()).hexdigest()[:16]
        path = self.shared_folder / f"gaps-{digest}-{rule}.parquet"
        with contextlib.ExitStack() as held:
            try:
                # The folder lock of pipeline.store: the others wait here, then read the file.
                held.enter_context(decision_lock(self.shared_folder))
            except OSError as exc:
                log.info("camera gaps not shared (%s): computing them in this process", exc)
                return compute()
            if path.exists():
                try:
                    return pq.read_table(path).cast(GAPS)
                except (OSError, pa.ArrowException):
                    log.warning("unreadable shared camera gaps %s: computing them again", path)
            table = compute()
            try:
                atomic_write_parquet(table, path)
                files = sorted(
                    self.shared_folder.glob("gaps-*.parquet"), key=lambda p: p.stat().st_mtime
                )
                for old in files[: -self.KEEP_SHARED]:
                    old.unlink(missing_ok=True)
            except OSError as exc:
                log.info("camera gaps not shared (%s)", exc)
            return table


_MATERIALIZE_LOCK = threading.Lock()

# Every day each deployment worked (its span less its gaps), before any window or season;
# only deployments a run read (`surveyed`).
_OPERATING_NIGHTS = f"""
SELECT n.deploymentID, n.night, month(n.night)::INTEGER AS month FROM (
  SELECT deploymentID, unnest(range("deploymentStart"::DATE::TIMESTAMP,
           ("deploymentEnd"::DATE + 1)::TIMESTAMP, INTERVAL 1 DAY))::DATE AS night
  FROM deployments d WHERE {surveyed()}) n
ANTI JOIN camera_gaps g
  ON g.deploymentID = n.deploymentID AND n.night BETWEEN g.gap_first AND g.gap_last
"""


# Runs of consecutive operating nights of one deployment inside one calendar month: a few rows
# per deployment instead of one per night, so its trap-nights in any window and season are a
# sum of interval overlaps (exact, and about 30 times fewer rows to scan).
_OPERATING_SPANS = """
SELECT deploymentID, month, min(night) AS first_night, max(night) AS last_night FROM (
  SELECT deploymentID, night, month,
         night - (row_number() OVER (PARTITION BY deploymentID ORDER BY night))::INTEGER AS run
  FROM operating_nights)
GROUP BY deploymentID, run, year(night), month
"""


def attach(
    con: duckdb.DuckDBPyConnection,
    gaps: pa.Table,
    reviews: pa.Table | None,
    cache_key: str | None = None,
) -> None:
    """Register the gaps and the verdicts (`reviews`: VERDICTS rows) on `con`, and the views
    `operating_nights` and
    `operating_spans`.

    With `cache_key` (e.g. "g7" for gap_days 7) both are materialized once in
    the snapshot's in-memory database, shared by every cursor of that snapshot; a newer store
    is a new snapshot, so they never go stale. Without it they are computed in each query.
    """
    con.register("camera_gaps", gaps.cast(GAPS))
    con.register("review_latest", reviews if reviews is not None else VERDICTS.empty_table())
    if cache_key is None:
        con.execute(f"CREATE OR REPLACE TEMP VIEW operating_nights AS {_OPERATING_NIGHTS}")
        con.execute(f"CREATE OR REPLACE TEMP VIEW operating_spans AS {_OPERATING_SPANS}")
        return
    name = f"operating_nights_{cache_key}"
    spans = f"operating_spans_{cache_key}"
    # Callbacks run in parallel threads; two cursors creating the same table conflict, so
    # one creates it while the others wait, then find it.
    with _MATERIALIZE_LOCK:
        exists = con.execute(
            "SELECT count(*) FROM duckdb_tables() "
            "WHERE database_name = 'memory' AND schema_name = 'main' AND table_name = $name",
            {"name": name},
        ).fetchall()[0][0]
        if not exists:
            con.execute(f"CREATE TABLE memory.main.{name} AS {_OPERATING_NIGHTS}")
            con.execute(
                f"CREATE TABLE memory.main.{spans} AS "
                + _OPERATING_SPANS.replace("FROM operating_nights", f"FROM memory.main.{name}")
            )
    con.execute(f"CREATE OR REPLACE TEMP VIEW operating_nights AS SELECT * FROM memory.main.{name}")
    con.execute(f"CREATE OR REPLACE TEMP VIEW operating_spans AS SELECT * FROM memory.main.{spans}")


def _window(ts: str) -> str:
    return (
        f"({ts})::DATE BETWEEN coalesce($start::DATE, DATE '0001-01-01') "
        f"AND coalesce($end::DATE, DATE '9999-12-31') "
        f"AND list_contains($months::INTEGER[], month({ts})::INTEGER)"
    )


# Each day a deployment was out, clipped to the window and season, less the days it was down.
# Operating nights inside the date range and the season's months.
_NIGHTS = """
nights AS (
  SELECT deploymentID, night FROM operating_nights
  WHERE night BETWEEN coalesce($start::DATE, DATE '0001-01-01')
                  AND coalesce($end::DATE, DATE '9999-12-31')
    AND list_contains($months::INTEGER[], month)
)"""

# The same nights counted per deployment from `operating_spans` (overlap of each span with the
# date range, for spans in the season's months).
_NIGHTS_PER_DEPLOYMENT = """
nights_per_deployment AS (
  SELECT deploymentID,
         sum(date_diff('day', greatest(first_night, coalesce($start::DATE, first_night)),
                       least(last_night, coalesce($end::DATE, last_night))) + 1) AS trap_nights
  FROM operating_spans
  WHERE list_contains($months::INTEGER[], month)
    AND last_night >= coalesce($start::DATE, DATE '0001-01-01')
    AND first_night <= coalesce($end::DATE, DATE '9999-12-31')
  GROUP BY deploymentID
)"""


def _sightings(layer: Layer, verified: bool = False) -> str:
    """SQL relation `sightings` (burst_id, deploymentID, start_time, end_time) for `layer`.

    Leopards: bursts at or above the threshold, or, with verified_only, bursts whose verdict
    (`review_latest`: the latest review, or a newer imported human label; an imported frame in
    no burst is a sighting of its own) says snow leopard. Other layers: bursts holding a frame
    whose top-1 ImageNet label is in the layer's group (or, verified, bursts whose verdict
    relabelled them to the group).
    """
    if layer is Layer.LEOPARD and verified:
        return f"""
sightings AS (
  SELECT r.burst_id, r.deploymentID, r.start_time, r.end_time FROM review_latest r
  WHERE r.start_time IS NOT NULL AND {_window("r.start_time")} AND r.label = $leopard_label
)"""
    if layer is Layer.LEOPARD:
        return f"""
sightings AS (
  SELECT burst_id, deploymentID, start_time, end_time FROM bursts
  WHERE score >= $threshold::FLOAT AND start_time IS NOT NULL AND {_window("start_time")}
)"""
    if verified:
        return f"""
sightings AS (
  SELECT r.burst_id, r.deploymentID, r.start_time, r.end_time FROM review_latest r
  WHERE r.start_time IS NOT NULL AND {_window("r.start_time")}
    AND (list_contains($labels, r.label) OR r.label = $layer)
)"""
    return f"""
sightings AS (
  SELECT x.burst_id, any_value(x.deploymentID) AS deploymentID,
         min(x.captured_at) AS start_time, max(x.captured_at) AS end_time
  FROM detections x
  WHERE x.captured_at IS NOT NULL AND {_window("x.captured_at")}
    AND list_contains($labels, x.top5_labels[1])
  GROUP BY x.burst_id
)"""


def _params(filters: Filters, layer: Layer = Layer.LEOPARD, **extra: Any) -> dict[str, Any]:
    """Exactly the parameters the `_sightings(layer, verified)` variant names, plus `extra`."""
    params: dict[str, Any] = {
        "start": filters.start,
        "end": filters.end,
        "months": list(filters.months),
        **extra,
    }
    if layer is Layer.LEOPARD and filters.verified_only:
        params["leopard_label"] = LEOPARD_LABEL
    elif layer is Layer.LEOPARD:
        params["threshold"] = filters.threshold
    else:
        params["labels"] = labels_of(layer)
        if filters.verified_only:
            params["layer"] = layer.value
    return params


def _per_hexagon_sql(h3_column: str, events_sql: str) -> str:
    """The tail of a hotspot-summary query: per deployment, then per hexagon, most events first.

    Needs `_NIGHTS_PER_DEPLOYMENT` and `deployments`; `events_sql` is a relation with
    deploymentID and `starts_event`. Counting per deployment first, then summing per cell,
    keeps the grouping small on large stores. Cameras count only with a trap-night.
    """
    return f"""{_NIGHTS_PER_DEPLOYMENT},
events_per_deployment AS (
  SELECT deploymentID, count(*) FILTER (WHERE starts_event) AS events
  FROM ({events_sql}) GROUP BY deploymentID
),
per_deployment AS (
  SELECT d.locationID, coalesce(d.locationName, d.locationID) AS station,
         d."{h3_column}" AS hexagon,
         coalesce(n.trap_nights, 0) AS trap_nights, coalesce(e.events, 0) AS events
  FROM deployments d
  LEFT JOIN nights_per_deployment n USING (deploymentID)
  LEFT JOIN events_per_deployment e USING (deploymentID)
  WHERE n.trap_nights > 0 OR e.events > 0
)
SELECT hexagon,
       sum(events)::BIGINT AS events,
       count(DISTINCT locationID) FILTER (WHERE trap_nights > 0)::BIGINT AS cameras,
       sum(trap_nights)::BIGINT AS trap_nights,
       CASE WHEN sum(trap_nights) > 0
            THEN 100.0 * sum(events) / sum(trap_nights) END AS events_per_100_trap_nights,
       sum(trap_nights) >= $min_nights AS enough_effort,
       string_agg(DISTINCT station, ', ' ORDER BY station) AS stations
FROM per_deployment
GROUP BY hexagon
ORDER BY events DESC, events_per_100_trap_nights DESC NULLS LAST, hexagon
"""


def layer_summary(
    con: duckdb.DuckDBPyConnection,
    filters: Filters,
    event_gap_minutes: float,
    layer: Layer = Layer.LEOPARD,
    min_trap_nights: int = 0,
) -> pa.Table:
    """One row per hexagon with a working camera in the window (gaps removed), most events first.

    Columns: hexagon, events (independent events of `layer`), cameras, trap_nights,
    events_per_100_trap_nights (the relative abundance index; null without trap-nights),
    enough_effort (trap_nights >= `min_trap_nights`), stations (the names of the hexagon's
    stations in the window, "A12, A13, B02").
    """
    events_sql = independent_events_sql("sightings", event_gap_minutes)
    sql = f"""
WITH {_sightings(layer, filters.verified_only)},
{_per_hexagon_sql(filters.h3_column, events_sql)}"""
    params = _params(filters, layer, min_nights=int(min_trap_nights))
    return con.sql(sql, params=params).to_arrow_table()


def active_cameras(
    con: duckdb.DuckDBPyConnection,
    filters: Filters,
    hexagons: list[str] | None = None,
    limit: int | None = None,
) -> pa.Table:
    """Camera locations with at least one operating night in the window, with their hexagon;
    only those in `hexagons` when given, and at most `limit` (None: all).

    Columns: locationID, locationName, latitude, longitude, hexagon, trap_nights.
    """
    within = "" if hexagons is None else f'AND d."{filters.h3_column}" IN (SELECT unnest($cells))'
    sql = f"""
WITH {_NIGHTS_PER_DEPLOYMENT}
SELECT d.locationID, any_value(d.locationName) AS locationName,
       avg(d.latitude) AS latitude, avg(d.longitude) AS longitude,
       any_value(d."{filters.h3_column}") AS hexagon, sum(n.trap_nights)::BIGINT AS trap_nights
FROM nights_per_deployment n JOIN deployments d USING (deploymentID)
WHERE true {within}
GROUP BY d.locationID
ORDER BY d.locationID
LIMIT $limit
"""
    params: dict[str, Any] = {
        "start": filters.start,
        "end": filters.end,
        "months": list(filters.months),
        "limit": limit,
    }
    if hexagons is not None:
        params["cells"] = hexagons
    return con.sql(sql, params=params).to_arrow_table()


def with_significance(summary: pa.Table, rules: EffortRules) -> pa.Table:
    """Add Gi* of events per 100 trap-nights over hexagons with enough effort.

    New columns: gi_z, gi_p, gi_q (Benjamini–Hochberg), hotspot ("hot", "cold",
    "not significant", "too little effort" for hexagons left out of the test, or "not tested"
    for every other hexagon when `gi_withheld_reason` says the view is too small to test).
    """
    rows = summary.to_pylist()
    judged = [r for r in rows if r["enough_effort"] and r["events_per_100_trap_nights"] is not None]
    if gi_withheld_reason(summary, rules) is not None:
        untested = {r["hexagon"] for r in judged}
        classes = [
            (Hotness.NOT_TESTED if r["hexagon"] in untested else Hotness.TOO_LITTLE_EFFORT).value
            for r in rows
        ]
        nulls = pa.nulls(len(rows), pa.float64())
        return (
            summary.append_column("gi_z", nulls)
            .append_column("gi_p", nulls)
            .append_column("gi_q", nulls)
            .append_column("hotspot", pa.array(classes, pa.string()))
        )
    result = gi_star(
        [r["hexagon"] for r in judged],
        [r["events_per_100_trap_nights"] for r in judged],
        k=rules.gi_rings,
    )
    by_cell = {
        cell: (z, p, q, cls)
        for cell, z, p, q, cls in zip(
            result.cells, result.z, result.p, result.q, result.classes(rules.alpha), strict=True
        )
    }
    z_col, p_col, q_col, class_col = [], [], [], []
    for r in rows:
        z, p, q, cls = by_cell.get(r["hexagon"], (None, None, None, Hotness.TOO_LITTLE_EFFORT))
        z_col.append(z)
        p_col.append(p)
        q_col.append(q)
        class_col.append(cls.value)
    return (
        summary.append_column("gi_z", pa.array(z_col, pa.float64()))
        .append_column("gi_p", pa.array(p_col, pa.float64()))
        .append_column("gi_q", pa.array(q_col, pa.float64()))
        .append_column("hotspot", pa.array(class_col, pa.string()))
    )


class Change:
    APPEARED = "appeared"
    VANISHED = "vanished"
    STAYED = "stayed hot"
    NEITHER = "not a hotspot"
    TOO_LITTLE = "too little effort"
    NOT_TESTED = "not tested"  # Gi* withheld in either year (too few events or cameras)


def year_window(filters: Filters, year: int) -> Filters:
    """`filters` narrowed to calendar year `year` (the season's months still apply)."""
    return replace(filters, start=date(year, 1, 1), end=date(year, 12, 31))


def change_between(
    con: duckdb.DuckDBPyConnection,
    filters: Filters,
    event_gap_minutes: float,
    rules: EffortRules,
    year_a: int,
    year_b: int,
    layer: Layer = Layer.LEOPARD,
) -> pa.Table:
    """Hotspots (Gi* hot) that appeared or vanished from year `year_a` to year `year_b`.

    Columns: hexagon, rate_a, rate_b (events per 100 trap-nights), hotspot_a, hotspot_b,
    change (appeared, vanished, stayed hot, not a hotspot, too little effort).
    """
    tables = []
    for year in (year_a, year_b):
        summary = layer_summary(
            con, year_window(filters, year), event_gap_minutes, layer, rules.min_trap_nights
        )
        tables.append({r["hexagon"]: r for r in with_significance(summary, rules).to_pylist()})
    a, b = tables
    rows = []
    for cell in sorted(set(a) | set(b)):
        ra, rb = a.get(cell), b.get(cell)
        ha = ra["hotspot"] if ra else Hotness.TOO_LITTLE_EFFORT.value
        hb = rb["hotspot"] if rb else Hotness.TOO_LITTLE_EFFORT.value
        if Hotness.TOO_LITTLE_EFFORT.value in (ha, hb):
            change = Change.TOO_LITTLE
        elif Hotness.NOT_TESTED.value in (ha, hb):
            change = Change.NOT_TESTED
        elif ha == hb == Hotness.HOT.value:
            change = Change.STAYED
        elif hb == Hotness.HOT.value:
            change = Change.APPEARED
        elif ha == Hotness.HOT.value:
            change = Change.VANISHED
        else:
            change = Change.NEITHER
        rows.append(
            {
                "hexagon": cell,
                "rate_a": ra["events_per_100_trap_nights"] if ra else None,
                "rate_b": rb["events_per_100_trap_nights"] if rb else None,
                "hotspot_a": ha,
                "hotspot_b": hb,
                "change": change,
            }
        )
    schema = pa.schema(
        [
            ("hexagon", pa.string()),
            ("rate_a", pa.float64()),
            ("rate_b", pa.float64()),
            ("hotspot_a", pa.string()),
            ("hotspot_b", pa.string()),
            ("change", pa.string()),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)


def _hexagon_clause(filters: Filters, hexagon: str | None, alias: str = "d") -> str:
    return "" if hexagon is None else f' AND {alias}."{filters.h3_column}" = $hexagon'


def layer_series(
    con: duckdb.DuckDBPyConnection,
    filters: Filters,
    event_gap_minutes: float,
    layer: Layer = Layer.LEOPARD,
    hexagon: str | None = None,
) -> pa.Table:
    """Independent events and trap-nights per week or month, for one hexagon or all.

    Columns: period (first day), events, trap_nights. Periods without a working camera are
    left out.
    """
    events_sql = independent_events_sql("sightings", event_gap_minutes)
    where = _hexagon_clause(filters, hexagon)
    sql = f"""
WITH {_NIGHTS},
{_sightings(layer, filters.verified_only)},
effort AS (
  SELECT date_trunc($period, night)::DATE AS period, count(*) AS trap_nights
  FROM nights n JOIN deployments d USING (deploymentID) WHERE true {where} GROUP BY 1
),
events AS (
  SELECT date_trunc($period, e.start_time)::DATE AS period,
         count(*) FILTER (WHERE e.starts_event) AS events
  FROM ({events_sql}) e JOIN deployments d USING (deploymentID) WHERE true {where} GROUP BY 1
)
SELECT period, coalesce(ev.events, 0)::BIGINT AS events,
       coalesce(ef.trap_nights, 0)::BIGINT AS trap_nights
FROM effort ef LEFT JOIN events ev USING (period)
ORDER BY period
"""
    extra: dict[str, Any] = {"period": filters.period.value}
    if hexagon is not None:
        extra["hexagon"] = hexagon
    return con.sql(sql, params=_params(filters, layer, **extra)).to_arrow_table()


def diel_activity(
    con: duckdb.DuckDBPyConnection,
    filters: Filters,
    event_gap_minutes: float,
    layer: Layer = Layer.LEOPARD,
    hexagon: str | None = None,
) -> pa.Table:
    """Independent events by hour of day (0–23, local station time); every hour is a row."""
    events_sql = independent_events_sql("sightings", event_gap_minutes)
    where = _hexagon_clause(filters, hexagon)
    sql = f"""
WITH {_sightings(layer, filters.verified_only)},
events AS (
  SELECT hour(e.start_time)::INTEGER AS hour, count(*) AS events
  FROM ({events_sql}) e JOIN deployments d USING (deploymentID)
  WHERE e.starts_event {where} GROUP BY 1
)
SELECT h.hour::INTEGER AS hour, coalesce(e.events, 0)::BIGINT AS events
FROM range(24) h(hour) LEFT JOIN events e ON e.hour = h.hour
ORDER BY h.hour
"""
    extra = {"hexagon": hexagon} if hexagon is not None else {}
    return con.sql(sql, params=_params(filters, layer, **extra)).to_arrow_table()


def operation_timeline(
    con: duckdb.DuckDBPyConnection, filters: Filters, hexagon: str | None = None
) -> pa.Table:
    """Every camera's working and down stretches inside the date range and the season's months,
    for one hexagon or all (every deployment that overlaps the window, none left out).

    Columns: deploymentID, locationID, locationName, start, end (dates), kind ("working" or
    "down"). Days outside the season's months are in no row, so a winter view shows each winter
    as its own stretches; "down" is a deployed day that is no operating night (an outage, or a
    gap guessed from silence when that rule is on).
    """
    where = _hexagon_clause(filters, hexagon)
    sql = f"""
WITH chosen AS (
  SELECT d.deploymentID, d.locationID, d.locationName,
         greatest(d."deploymentStart"::DATE, coalesce($start::DATE, DATE '0001-01-01')) AS a,
         least(d."deploymentEnd"::DATE, coalesce($end::DATE, DATE '9999-12-31')) AS b
  FROM deployments d WHERE {surveyed()} {where}
),
days AS (
  SELECT deploymentID, unnest(range(a::TIMESTAMP, (b + 1)::TIMESTAMP, INTERVAL 1 DAY))::DATE
         AS night
  FROM chosen WHERE a <= b
),
flagged AS (
  SELECT x.deploymentID, x.night, o.night IS NOT NULL AS working
  FROM days x LEFT JOIN operating_nights o
    ON o.deploymentID = x.deploymentID AND o.night = x.night
  WHERE list_contains($months::INTEGER[], month(x.night)::INTEGER)
),
runs AS (
  SELECT deploymentID, working, night,
         night - (row_number() OVER (PARTITION BY deploymentID, working ORDER BY night))::INTEGER
           AS run
  FROM flagged
)
SELECT c.deploymentID, c.locationID, c.locationName, min(r.night) AS start,
       max(r.night) AS "end", CASE WHEN r.working THEN 'working' ELSE 'down' END AS kind
FROM runs r JOIN chosen c USING (deploymentID)
GROUP BY c.deploymentID, c.locationID, c.locationName, r.working, r.run
ORDER BY c.locationID, c.deploymentID, start
"""
    extra: dict[str, Any] = {
        "start": filters.start,
        "end": filters.end,
        "months": list(filters.months),
    }
    if hexagon is not None:
        extra["hexagon"] = hexagon
    return con.sql(sql, params=extra).to_arrow_table()


def review_candidates(
    con: duckdb.DuckDBPyConnection,
    filters: Filters,
    hexagon: str | None,
    limit: int,
    detector_boxes: Path | None = None,
) -> pa.Table:
    """Leopard bursts at or above the threshold in the window, highest score first; bursts
    another detector (MegaDetector, `uncia import megadetector`) called likely empty last.

    Columns: burst_id, best_image_id, score, start_time, n_frames, deploymentID, locationName,
    decision, label, reviewer, origin (the burst's verdict: the latest review, or a newer
    imported human label; null when none), detector_seen (frames of the burst in
    `detector_boxes`' results, failures left out), detector_empty (of them, those likely empty
    in every import) and likely_empty (the detector saw frames of the burst and called every
    one likely empty).
    """
    where = _hexagon_clause(filters, hexagon)
    extra: dict[str, Any] = {"limit": int(limit), "threshold": filters.threshold}
    seen = "SELECT NULL::VARCHAR AS burst_id, 0 AS seen, 0 AS empty WHERE false"
    if detector_boxes is not None:
        seen = """
SELECT x.burst_id, count(*) AS seen, count(*) FILTER (WHERE m.empty) AS empty
FROM detections x
JOIN (SELECT image_id, bool_and(likely_empty) AS empty FROM read_parquet($detector_boxes)
      WHERE image_id IS NOT NULL AND failure IS NULL GROUP BY image_id) m USING (image_id)
WHERE x.burst_id IS NOT NULL
GROUP BY x.burst_id"""
        extra["detector_boxes"] = str(detector_boxes)
    sql = f"""
WITH seen AS ({seen})
SELECT b.burst_id, b.best_image_id, b.score, b.start_time, b.n_frames, b.deploymentID,
       coalesce(d.locationName, d.locationID) AS locationName,
       r.decision, r.label, r.reviewer, r.origin,
       coalesce(s.seen, 0)::INTEGER AS detector_seen,
       coalesce(s.empty, 0)::INTEGER AS detector_empty,
       coalesce(s.seen > 0 AND s.empty = s.seen, false) AS likely_empty
FROM bursts b JOIN deployments d USING (deploymentID)
LEFT JOIN review_latest r ON r.burst_id = b.burst_id
LEFT JOIN seen s ON s.burst_id = b.burst_id
WHERE b.score >= $threshold::FLOAT AND b.start_time IS NOT NULL
  AND {_window("b.start_time")} {where}
ORDER BY likely_empty, b.score DESC, b.start_time, b.burst_id
LIMIT $limit
"""
    if hexagon is not None:
        extra["hexagon"] = hexagon
    params = {"start": filters.start, "end": filters.end, "months": list(filters.months), **extra}
    return con.sql(sql, params=params).to_arrow_table()


def camera_days_per_year(con: duckdb.DuckDBPyConnection) -> dict[int, int]:
    """Deployed camera-days in each calendar year any surveyed deployment covers (outages not
    taken out: this only tells full years from partial ones)."""
    rows = con.execute(
        f"""
SELECT y, sum(least(dep_end, make_date(y, 12, 31)) - greatest(dep_start, make_date(y, 1, 1))
              + 1)::BIGINT
FROM (SELECT unnest(range(year("deploymentStart"), year("deploymentEnd") + 1))::INTEGER AS y,
             "deploymentStart"::DATE AS dep_start, "deploymentEnd"::DATE AS dep_end
      FROM deployments d WHERE {surveyed()})
GROUP BY y ORDER BY y
"""
    ).fetchall()
    return {int(y): int(days) for y, days in rows}


def survey_years(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Calendar years any surveyed deployment covers, oldest first."""
    rows = con.execute(
        'SELECT DISTINCT unnest(range(year("deploymentStart"), year("deploymentEnd") + 1)) '
        f"AS y FROM deployments d WHERE {surveyed()} ORDER BY y"
    ).fetchall()
    return [int(r[0]) for r in rows]
