"""The dashboard's queries on a real DuckDB store holding a hand-made survey with known answers
(tests/dashboard_fixtures.py says what it holds).

The hotspot, series and camera queries are the page's own (`dashboard.data.analysis`), run with no
camera gaps so that trap-nights are the deployment days counted by hand; how gaps come out of
the effort is tested in test_dashboard_analysis.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from dashboard.components import run_info
from dashboard.data import analysis
from dashboard.data.analysis import active_cameras, layer_series, layer_summary
from dashboard.data.queries import hexagon_detections, image_source, survey_overview
from dashboard.data.store import Store
from dashboard.filters import Filters, Period, Season
from pipeline.errors import StoreError
from tests.dashboard_fixtures import BURST_ROWS, RUNS_ROWS, burst, cell, run_row, write_survey

GAP = 30.0


@pytest.fixture
def reader(tmp_path: Path) -> Store:
    return Store(write_survey(tmp_path / "survey"))


@contextmanager
def connect(reader: Store) -> Iterator[Any]:
    """A cursor on the store for `analysis` queries, every deployment day counted as worked."""
    with reader.connect() as con:
        analysis.attach(con, analysis.GAPS.empty_table(), None)
        yield con


def by_cell(table: pa.Table) -> dict[str, dict[str, Any]]:
    return {row["hexagon"]: row for row in table.to_pylist()}


def test_fixture_places_a_and_c_in_one_r7_hexagon_and_b_elsewhere() -> None:
    assert cell("A") == cell("C") != cell("B")


def test_events_per_hexagon_follow_threshold_and_independence(reader: Store) -> None:
    with connect(reader) as con:
        at_half = by_cell(layer_summary(con, Filters(resolution=7, threshold=0.5), GAP))
        at_075 = by_cell(layer_summary(con, Filters(resolution=7, threshold=0.75), GAP))
    # A: 06:00+06:20 is one event, 06:51 (30 min after 06:21) another, July a third; C adds one.
    assert at_half[cell("A")]["events"] == 4
    assert at_half[cell("B")]["events"] == 2
    # At 0.75 the 06:51 and July bursts drop out, and so does B's 0.55 burst.
    assert at_075[cell("A")]["events"] == 2
    assert at_075[cell("B")]["events"] == 1


def test_hexagon_rows_count_cameras_trap_nights_and_rate(reader: Store) -> None:
    with connect(reader) as con:
        rows = by_cell(layer_summary(con, Filters(resolution=7, threshold=0.5), GAP))
    a = rows[cell("A")]
    assert a["cameras"] == 2
    assert a["trap_nights"] == 365 + 10  # every day of 2023, and 1–10 March
    assert a["events_per_100_trap_nights"] == pytest.approx(100 * 4 / 375)
    assert rows[cell("B")]["trap_nights"] == 30 + 31 + 31 + 29 + 31  # Nov 2023 – Mar 2024


def test_hexagons_with_cameras_but_no_events_are_kept(reader: Store) -> None:
    with connect(reader) as con:
        rows = by_cell(layer_summary(con, Filters(resolution=7, threshold=0.999), GAP))
    assert set(rows) == {cell("A"), cell("B")}
    assert all(r["events"] == 0 for r in rows.values())


def test_rows_are_sorted_by_events(reader: Store) -> None:
    with connect(reader) as con:
        events = layer_summary(con, Filters(resolution=7), GAP).column("events").to_pylist()
    assert events == sorted(events, reverse=True)


def test_winter_season_wraps_across_the_new_year(reader: Store) -> None:
    with connect(reader) as con:
        rows = by_cell(layer_summary(con, Filters(resolution=7, season=Season.WINTER), GAP))
    assert rows[cell("B")]["events"] == 2  # 20 Dec and 5 Jan
    assert rows[cell("B")]["trap_nights"] == 152  # all of B's days are in Nov–Mar
    assert rows[cell("A")]["events"] == 3  # February (2) and C's March event, not July
    assert rows[cell("A")]["trap_nights"] == (31 + 28 + 31) + (30 + 31) + 10


def test_custom_months_wrap_like_presets(reader: Store) -> None:
    custom = Filters(resolution=7, season=Season.CUSTOM, month_start=12, month_end=1)
    with connect(reader) as con:
        rows = by_cell(layer_summary(con, custom, GAP))
    assert rows[cell("B")]["events"] == 2
    assert rows[cell("B")]["trap_nights"] == 31 + 31
    assert rows[cell("A")]["events"] == 0  # A's events are in Feb, Mar and Jul


def test_summer_drops_hexagons_without_working_cameras(reader: Store) -> None:
    with connect(reader) as con:
        rows = by_cell(layer_summary(con, Filters(resolution=7, season=Season.SUMMER), GAP))
    assert set(rows) == {cell("A")}
    assert rows[cell("A")]["events"] == 1
    assert rows[cell("A")]["trap_nights"] == 30 + 31 + 31


def test_date_range_is_inclusive_and_clips_trap_nights(reader: Store) -> None:
    window = Filters(resolution=7, start=date(2023, 6, 1), end=date(2023, 12, 20))
    with connect(reader) as con:
        rows = by_cell(layer_summary(con, window, GAP))
    assert rows[cell("A")]["events"] == 1  # July
    assert rows[cell("A")]["trap_nights"] == 203  # 1 June – 20 December
    assert rows[cell("B")]["events"] == 1  # 20 December 22:00 is inside an end date of the 20th
    assert rows[cell("B")]["trap_nights"] == 30 + 20


def test_coarser_resolution_merges_hexagons(reader: Store) -> None:
    with connect(reader) as con:
        r5 = layer_summary(con, Filters(resolution=5), GAP)
        r9 = layer_summary(con, Filters(resolution=9), GAP)
    assert sum(r5.column("events").to_pylist()) == sum(r9.column("events").to_pylist()) == 6
    assert r9.num_rows == 3  # each camera its own r9 cell


def test_event_series_counts_per_month_and_keeps_months_with_effort(reader: Store) -> None:
    with connect(reader) as con:
        series = layer_series(con, Filters(period=Period.MONTH), GAP).to_pylist()
    months = {r["period"]: r["events"] for r in series}
    assert months[date(2023, 2, 1)] == 2
    assert months[date(2023, 3, 1)] == 1
    assert months[date(2023, 7, 1)] == 1
    assert months[date(2024, 1, 1)] == 1
    assert months[date(2023, 5, 1)] == 0  # cameras out, no leopard
    assert len(months) == 15  # Jan 2023 – Mar 2024
    assert sum(months.values()) == 6


def test_event_series_by_week_and_season(reader: Store) -> None:
    with connect(reader) as con:
        weekly = layer_series(con, Filters(period=Period.WEEK), GAP).to_pylist()
        winter = layer_series(
            con, Filters(period=Period.MONTH, season=Season.WINTER), GAP
        ).to_pylist()
    week_of_feb_10 = {r["period"]: r["events"] for r in weekly}[date(2023, 2, 6)]
    assert week_of_feb_10 == 2
    assert {r["period"].month for r in winter} == {11, 12, 1, 2, 3}


def test_detections_of_a_hexagon_highest_score_first(reader: Store) -> None:
    with connect(reader) as con:
        rows = hexagon_detections(con, Filters(resolution=7, threshold=0.5), cell("A"), 10)
        top2 = hexagon_detections(con, Filters(resolution=7, threshold=0.5), cell("A"), 2)
    assert [round(r["score"], 2) for r in rows.to_pylist()] == [0.99, 0.9, 0.8, 0.7, 0.6]
    assert {r["locationID"] for r in rows.to_pylist()} == {"A", "C"}
    assert top2.num_rows == 2
    assert rows.column("cameraID")[0].as_py() == "CAM-C"


def test_active_cameras_follow_the_window(reader: Store) -> None:
    with connect(reader) as con:
        summer = active_cameras(con, Filters(resolution=7, season=Season.SUMMER))
        year = active_cameras(con, Filters(resolution=7))
    assert summer.column("locationID").to_pylist() == ["A"]
    assert sorted(year.column("locationID").to_pylist()) == ["A", "B", "C"]


def test_overview_reports_latest_run_and_date_bounds(reader: Store) -> None:
    with connect(reader) as con:
        overview = survey_overview(con)
    assert overview.model_name == "head-v2"
    assert overview.leopard_threshold == pytest.approx(0.65)
    assert not overview.is_demo
    assert (overview.first_day, overview.last_day) == (date(2023, 1, 1), date(2024, 3, 31))
    assert overview.views is None  # a run recorded before views existed


def test_header_names_the_latest_runs_views_and_threshold(tmp_path: Path) -> None:
    run = run_row(
        "run-3", datetime(2024, 7, 1, tzinfo=UTC), "pipeline", "zeroshot-imagenet-289", 0.15
    )
    run["options_json"] = '{"views": "tiles+motion", "event_gap_minutes": 30.0}'
    with connect(Store(write_survey(tmp_path, runs=[*RUNS_ROWS, run]))) as con:
        overview = survey_overview(con)
    assert overview.views == "tiles+motion" and overview.event_gap_minutes == 30.0
    assert "views tiles+motion · threshold 0.15" in run_info(overview)


def test_demo_runs_are_flagged(tmp_path: Path) -> None:
    runs = [run_row("demo-seed7", datetime(2024, 1, 1, tzinfo=UTC), "demo", "simulated", 0.5)]
    reader = Store(write_survey(tmp_path, runs=runs))
    with connect(reader) as con:
        assert survey_overview(con).is_demo


def test_image_source_only_knows_images_in_the_store(reader: Store) -> None:
    with connect(reader) as con:
        known = image_source(con, "img-C-2023-20230305T040000")
        unknown = image_source(con, "../../etc/passwd")
    assert known is not None and known.file_path.endswith("img-C-2023-20230305T040000.jpg")
    assert not known.simulated
    assert unknown is None


def test_rewritten_store_is_seen_by_the_next_query(tmp_path: Path) -> None:
    out = write_survey(tmp_path)
    reader = Store(out)
    with connect(reader) as con:
        before = by_cell(layer_summary(con, Filters(resolution=7), GAP))[cell("B")]["events"]
    old_version = reader.version()
    write_survey(out, [*BURST_ROWS, burst("B-2023", datetime(2024, 2, 1, 5, 0), 0.97)])
    assert reader.version() != old_version
    with connect(reader) as con:
        after = by_cell(layer_summary(con, Filters(resolution=7), GAP))[cell("B")]["events"]
    assert (before, after) == (2, 3)


def test_cursor_open_during_a_rewrite_keeps_its_snapshot(tmp_path: Path) -> None:
    out = write_survey(tmp_path)
    reader = Store(out)
    con = reader.connect()
    analysis.attach(con, analysis.GAPS.empty_table(), None)
    write_survey(out, [*BURST_ROWS, burst("B-2023", datetime(2024, 2, 1, 5, 0), 0.97)])
    rows = by_cell(layer_summary(con, Filters(resolution=7), GAP))
    con.close()
    assert rows[cell("B")]["events"] == 2


def test_missing_store_raises_store_error(tmp_path: Path) -> None:
    reader = Store(tmp_path / "nothing-here")
    assert reader.version() is None
    with pytest.raises(StoreError):
        reader.connect()
