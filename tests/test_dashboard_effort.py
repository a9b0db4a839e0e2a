"""Camera operation from what is known: deployment dates and reported outages, with gaps
guessed from silence only when asked for. Trap-nights counted on a calendar by hand.

The hand-made survey of test_dashboard_queries: A-2023 out 1 Jan – 31 Dec 2023 (365 nights),
C-2023 1–10 Mar 2023 (10), both in hexagon A; B-2023 1 Nov 2023 – 31 Mar 2024 (30 + 31 + 31 +
29 + 31 = 152) in hexagon B. Frames exist only at burst times, so a silence rule would call
most of A's year down.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from dashboard import Settings
from dashboard.context import build_context
from dashboard.data import analysis
from dashboard.data.store import Store
from dashboard.filters import Filters, Season
from dashboard.views.insights import default_years, effort_rule, year_options
from pipeline.errors import ConfigError
from pipeline.interop.outages import read_outages
from tests.dashboard_fixtures import A_CELL_R7, deployments_table, write_survey

GAP = 30.0
B_CELL_R7 = next(r["h3_r7"] for r in deployments_table().to_pylist() if r["locationID"] == "B")

OUTAGES = (
    "deploymentID,outageStart,outageEnd,reason\n"
    # 1 Mar – 10 Apr once the two overlapping reports merge: 31 + 10 = 41 days down
    "A-2023,2023-03-01,2023-03-31,card full\n"
    "A-2023,2023-03-20T08:00:00,2023-04-10,snow on the lens\n"
    # begins before the deployment: only 1 and 2 Mar count, 2 days down
    "C-2023,2023-02-25,2023-03-02,battery\n"
    # never came back before retrieval: all of March 2024, 31 days down
    "B-2023,2024-03-01,,stolen\n"
    # a deployment the store does not know changes nothing
    "Z-2023,2023-05-01,2023-05-02,\n"
)


@pytest.fixture
def survey(tmp_path: Path) -> Path:
    return write_survey(tmp_path / "survey")


def nights(store: Store, gap_days: int | None, filters: Filters | None = None) -> dict[str, Any]:
    with store.connect() as con:
        store.prepare(con, gap_days)
        table = analysis.layer_summary(con, filters or Filters(resolution=7), GAP)
    return {r["hexagon"]: r["trap_nights"] for r in table.to_pylist()}


def test_by_default_every_deployed_day_is_a_trap_night(survey: Path) -> None:
    settings = Settings(data_dir=survey)
    assert settings.gap_days is None  # silence is not taken for a camera down
    got = nights(Store(survey), settings.gap_days)
    assert got == {A_CELL_R7: 365 + 10, B_CELL_R7: 152}


def test_reported_outages_are_taken_out_clipped_and_merged(survey: Path) -> None:
    (survey / "outages.csv").write_text(OUTAGES)  # found in the data folder
    got = nights(Store(survey), None)
    assert got == {A_CELL_R7: (365 - 41) + (10 - 2), B_CELL_R7: 152 - 31}
    # in a window: March 2023 alone, A down all month, C down 2 of its 10 days
    march = Filters(resolution=7, start=date(2023, 3, 1), end=date(2023, 3, 31))
    assert nights(Store(survey), None, march) == {A_CELL_R7: 0 + 8}


def test_an_outages_file_named_in_the_settings_wins(survey: Path, tmp_path: Path) -> None:
    (survey / "outages.csv").write_text("deploymentID,outageStart,outageEnd\n")
    named = tmp_path / "field-notes.csv"
    named.write_text("deploymentID,outageStart,outageEnd\nB-2023,2023-11-01,2023-11-30\n")
    got = nights(Store(survey, outages_file=named), None)
    assert got[B_CELL_R7] == 152 - 30


def test_guessing_from_silence_is_opt_in_and_adds_to_the_outages(survey: Path) -> None:
    (survey / "outages.csv").write_text(OUTAGES)
    # Silences over 7 days: A worked 1 Jan, 10 Feb, 15 and 16 Jul, 31 Dec (5 nights, the
    # outages fall inside its silences); C's silences are 3 and 4 days, so only its 2 outage
    # days go; B worked 1 Nov, 20 Dec, 5 Jan, 10 Mar and 31 Mar, less March 2024's outage: 3.
    got = nights(Store(survey), 7)
    assert got == {A_CELL_R7: 5 + 8, B_CELL_R7: 3}


def test_the_rule_in_use_is_said_in_words(survey: Path) -> None:
    plain = build_context(Settings(data_dir=survey, tiles="none"))
    assert effort_rule(plain) == "each day from deployment start to end"
    (survey / "outages.csv").write_text(OUTAGES)
    guessing = build_context(Settings(data_dir=survey, tiles="none", gap_days=7))
    text = effort_rule(guessing)
    assert "less the reported outages" in text
    assert "more than 7 days without a frame (guessed down from silence)" in text


def test_outages_show_as_down_on_the_operation_timeline(survey: Path) -> None:
    (survey / "outages.csv").write_text(OUTAGES)
    store = Store(survey)
    with store.connect() as con:
        store.prepare(con, None)
        rows = analysis.operation_timeline(con, Filters(resolution=7)).to_pylist()
    a = [(r["kind"], str(r["start"]), str(r["end"])) for r in rows if r["deploymentID"] == "A-2023"]
    assert a == [
        ("working", "2023-01-01", "2023-02-28"),
        ("down", "2023-03-01", "2023-04-10"),
        ("working", "2023-04-11", "2023-12-31"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("deploymentID,start,end\n", "lacks the column(s) outageStart, outageEnd"),
        ("deploymentID,outageStart,outageEnd\nA,1 March,\n", "row 2: outageStart must be an ISO"),
        ("deploymentID,outageStart,outageEnd\nA,2023-03-05,2023-03-01\n", "row 2: outageEnd is"),
        ("deploymentID,outageStart,outageEnd\n,2023-03-05,\n", "row 2: deploymentID is empty"),
    ],
)
def test_a_bad_outages_file_is_refused_with_a_one_line_reason(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "outages.csv"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        read_outages(path)
    assert message in str(caught.value) and str(tmp_path) not in str(caught.value)


def test_year_over_year_starts_with_two_years_that_have_data(survey: Path) -> None:
    # 2023: A 365 + C 10 + B 61 (Nov–Dec) = 436 camera-days; 2024: B's 91 (Jan–Mar), partial
    with Store(survey).connect() as con:
        days = analysis.camera_days_per_year(con)
    assert days == {2023: 436, 2024: 91}
    assert default_years(days) == (2023, 2024)  # no two full years: the last two at all
    assert default_years({2021: 300, 2022: 290, 2023: 3}) == (2021, 2022)
    options = year_options(build_context(Settings(data_dir=survey, tiles="none")), None)
    assert [o["label"] for o in options["options_a"]] == ["2023", "2024 (partial)"]


def test_camera_operation_lists_every_camera_clipped_to_the_window_and_season() -> None:
    """75 cameras (the chart once stopped at 60), each deployed 2023-01-01..2023-12-31 and
    camera 0 down 2023-02-10..2023-02-20: a Jan–Mar window in the winter season (Nov–Mar)
    gives every camera, stretches inside the window only, the down days counted by hand."""
    con = duckdb.connect()
    con.execute(
        """CREATE TABLE deployments AS
        SELECT 'D' || i AS deploymentID, 'L' || lpad(i::VARCHAR, 2, '0') AS locationID,
               'station ' || lpad(i::VARCHAR, 2, '0') AS locationName,
               TIMESTAMP '2023-01-01' AS "deploymentStart",
               TIMESTAMP '2023-12-31' AS "deploymentEnd", 'cell' AS h3_r7
        FROM range(75) t(i)"""
    )
    # Every camera sent frames (a deployment no run read is no station: docs/dashboard.md),
    # and one deployment of the table no run read is left out.
    con.execute("CREATE TABLE images AS SELECT deploymentID FROM deployments")
    con.execute(
        """INSERT INTO deployments VALUES ('unread', 'L99', 'never read',
           TIMESTAMP '2023-01-01', TIMESTAMP '2023-12-31', 'cell')"""
    )
    gaps = pa.table(
        {
            "deploymentID": ["D0"],
            "gap_first": [date(2023, 2, 10)],
            "gap_last": [date(2023, 2, 20)],
            "days": [11],
        }
    )
    analysis.attach(con, gaps, None)
    window = Filters(
        resolution=7, start=date(2023, 1, 15), end=date(2023, 3, 31), season=Season.WINTER
    )
    rows = analysis.operation_timeline(con, window).to_pylist()
    assert len({r["locationID"] for r in rows}) == 75
    assert all(date(2023, 1, 15) <= r["start"] <= r["end"] <= date(2023, 3, 31) for r in rows)
    camera0 = [(r["kind"], r["start"], r["end"]) for r in rows if r["deploymentID"] == "D0"]
    assert camera0 == [
        ("working", date(2023, 1, 15), date(2023, 2, 9)),
        ("down", date(2023, 2, 10), date(2023, 2, 20)),
        ("working", date(2023, 2, 21), date(2023, 3, 31)),
    ]
    # Summer only (Jun–Aug): nothing of the Jan–Mar window is in season, so no stretch at all.
    summer = Filters(
        resolution=7, start=date(2023, 1, 15), end=date(2023, 3, 31), season=Season.SUMMER
    )
    assert analysis.operation_timeline(con, summer).num_rows == 0
    # The whole year in winter: each camera's Jan–Mar stretch and its Nov–Dec one, apart.
    winter = analysis.operation_timeline(con, Filters(resolution=7, season=Season.WINTER))
    camera5 = [(r["start"], r["end"]) for r in winter.to_pylist() if r["deploymentID"] == "D5"]
    assert camera5 == [
        (date(2023, 1, 1), date(2023, 3, 31)),
        (date(2023, 11, 1), date(2023, 12, 31)),
    ]
