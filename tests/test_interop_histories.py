"""Occupancy detection histories and SECR capture histories equal matrices worked out by hand
on a small survey with a camera gap, a late and an early-collected camera."""

from __future__ import annotations

import argparse
import shutil
from datetime import date, datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pyproj
import pytest

from cli.main import build_parser, main
from dashboard.data.analysis import camera_gaps
from pipeline.errors import ConfigError, StoreError
from pipeline.interop.effort import operating_days
from pipeline.interop.occupancy import (
    HistoryOptions,
    capture_history,
    detection_history,
    utm_crs,
)
from pipeline.stages.discover import image_id_for
from pipeline.store.reviews import record_review
from pipeline.store.store import StorePaths
from tests.interop_fixtures import build_store, frame


def _at(day: int, hour: int = 12) -> datetime:
    return datetime(2024, 1, day, hour)


@pytest.fixture(scope="module")
def survey(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three stations, 1-20 January 2024, occasions of 5 days from 1 January:
    A: frames 1-3 and 14-20 (down 4-13: ten days without a frame), leopards 2 and 18 Jan;
    B: out 6-15 Jan only, a frame a day, a leopard on 8 Jan;
    C: a frame a day 1-20 Jan, no leopard, but one frame at 0.4 (under the threshold 0.5).
    Individuals: A 2 Jan and B 8 Jan are ind-1, A 18 Jan is ind-2."""
    frames = []
    leopards = {("A", 2): "ind-1", ("A", 18): "ind-2", ("B", 8): "ind-1"}
    days = {"A": [1, 2, 3, *range(14, 21)], "B": range(6, 16), "C": range(1, 21)}
    for station, station_days in days.items():
        for d in station_days:
            score = 0.9 if (station, d) in leopards else (0.4 if (station, d) == ("C", 9) else 0.1)
            frames.append(frame(station, _at(d), score, f"{station}-{d:02d}.jpg"))
    spans = {"A": (1, 20), "B": (6, 15), "C": (1, 20)}
    deployments = [
        {"deploymentID": s, "locationID": s, "latitude": 43.0 + 0.01 * i, "longitude": 100.5,
         "deploymentStart": _at(a, 9), "deploymentEnd": _at(b, 15)}
        for i, (s, (a, b)) in enumerate(spans.items())
    ]  # fmt: skip
    individuals = {image_id_for(s, f"{s}-{d:02d}.jpg"): ind for (s, d), ind in leopards.items()}
    return build_store(tmp_path_factory.mktemp("hist") / "store", deployments, frames,
                       individuals=individuals)  # fmt: skip


def test_operating_days_have_the_dashboards_camera_gaps(survey: Path) -> None:
    working = operating_days(survey, gap_days=7)
    assert sorted(working["A"]) == [date(2024, 1, d) for d in [1, 2, 3, *range(14, 21)]]
    assert len(working["B"]) == 10 and len(working["C"]) == 20
    paths = StorePaths(survey)
    with duckdb.connect() as con:
        for name in ("images", "deployments"):
            con.register(name, pq.read_table(paths.table(name)))
        gaps = camera_gaps(con, 7).to_pylist()
    assert gaps == [
        {"deploymentID": "A", "gap_first": date(2024, 1, 4), "gap_last": date(2024, 1, 13),
         "days": 10}
    ]  # fmt: skip


def test_detection_history_from_the_surveys_first_day(survey: Path) -> None:
    history = detection_history(survey, HistoryOptions(occasion_days=5, day1="survey", gap_days=7))
    assert history.stations == ("A", "B", "C")
    NA = None
    assert history.detections == (
        (1, NA, 0, 1),  # A: detected 2 Jan; down all of 6-10; worked 14-15; detected 18 Jan
        (NA, 1, 0, NA),  # B: out 6-15 only
        (0, 0, 0, 0),  # C: 0.4 on 9 Jan is under the threshold
    )
    assert history.effort == ((3, 0, 2, 5), (0, 5, 5, 0), (5, 5, 5, 5))
    assert history.csv().splitlines() == [
        "station,o1,o2,o3,o4", "A,1,NA,0,1", "B,NA,1,0,NA", "C,0,0,0,0",
    ]  # fmt: skip


def test_detection_history_from_each_stations_first_day(survey: Path) -> None:
    """camtrapR's default day1 = "station": B's occasion 1 starts on 6 January."""
    history = detection_history(survey, HistoryOptions(occasion_days=5, gap_days=7))
    assert history.detections == ((1, None, 0, 1), (1, 0, None, None), (0, 0, 0, 0))
    assert history.effort == ((3, 0, 2, 5), (5, 5, 0, 0), (5, 5, 5, 5))
    assert history.first_days[1] == date(2024, 1, 6)


def test_reviews_change_the_detections(tmp_path: Path, survey: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(survey, store)
    record_review(store, burst_id="A/20240102T120000", image_id="x", decision="reject",
                  reviewer="r")  # fmt: skip
    record_review(store, burst_id="C/20240109T120000", image_id="y", decision="confirm",
                  reviewer="r")  # fmt: skip
    history = detection_history(store, HistoryOptions(occasion_days=5, day1="survey", gap_days=7))
    assert history.detections[0] == (0, None, 0, 1)
    assert history.detections[2] == (0, 1, 0, 0)


def test_capture_history_for_secr(survey: Path) -> None:
    history = capture_history(survey, HistoryOptions(occasion_days=5, gap_days=7), session="tost")
    assert history.captures == (
        ("tost", "ind-1", 1, "A"), ("tost", "ind-1", 2, "B"), ("tost", "ind-2", 4, "A"),
    )  # fmt: skip
    assert history.crs == "EPSG:32647"  # UTM 47N holds 100.5 E
    usage = {d: u for d, _, _, u in history.traps}
    assert usage == {"A": "1011", "B": "0110", "C": "1111"}
    xy = {d: (x, y) for d, x, y, _ in history.traps}
    # Metres: the traps lie 0.01 degrees of latitude apart along one meridian.
    _, _, metres = pyproj.Geod(ellps="WGS84").inv(100.5, 43.0, 100.5, 43.01)
    distance = ((xy["B"][0] - xy["A"][0]) ** 2 + (xy["B"][1] - xy["A"][1]) ** 2) ** 0.5
    assert distance == pytest.approx(metres, rel=1e-3)
    assert history.captures_text().splitlines()[1] == "tost ind-1 1 A"
    assert history.traps_text().splitlines()[1].endswith(" 1011")


def test_capture_history_needs_individuals_and_a_projected_crs(
    survey: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="not a projected CRS"):
        capture_history(survey, crs="EPSG:4326")
    bare = build_store(
        tmp_path / "bare",
        [{"deploymentID": "A", "locationID": "A", "latitude": 43.0, "longitude": 100.5,
          "deploymentStart": _at(1), "deploymentEnd": _at(5)}],
        [frame("A", _at(2), 0.9, "a.jpg")],
    )  # fmt: skip
    with pytest.raises(StoreError, match="uncia identify"):
        capture_history(bare)
    assert utm_crs(-33.9, 18.4) == "EPSG:32734"
    assert detection_history(bare, HistoryOptions(occasion_days=2)).detections == ((1, 0, 0),)


def test_silence_is_not_a_gap_unless_asked_and_reported_outages_are_not_worked(
    survey: Path, tmp_path: Path
) -> None:
    """By default (as the dashboard) A's ten silent days are worked; the field team's outages
    file takes out the days it reports: A 4-13 Jan, C from 16 Jan to its end (no end given),
    and an outage of a deployment the store lacks changes nothing."""
    quiet = detection_history(survey, HistoryOptions(occasion_days=5, day1="survey"))
    assert quiet.effort[0] == (5, 5, 5, 5) and quiet.detections[0] == (1, 0, 0, 1)
    outages = tmp_path / "outages.csv"
    outages.write_text(
        "deploymentID,outageStart,outageEnd,reason\n"
        "A,2024-01-04,2024-01-13,card full\n"
        "C,2024-01-16T08:00:00,,snow over the lens\n"
        "Z,2024-01-01,2024-01-31,not in this store\n"
    )
    options = HistoryOptions(occasion_days=5, day1="survey", outages_file=outages)
    history = detection_history(survey, options)
    NA = None
    assert history.effort == ((3, 0, 2, 5), (0, 5, 5, 0), (5, 5, 5, 0))
    assert history.detections == ((1, NA, 0, 1), (NA, 1, 0, NA), (0, 0, 0, NA))
    traps = capture_history(survey, options).traps
    assert {d: u for d, _, _, u in traps} == {"A": "1011", "B": "0110", "C": "1110"}
    # DATA/outages.csv is read without being named, as `uncia serve` reads it.
    store = tmp_path / "store"
    shutil.copytree(survey, store)
    shutil.copy(outages, store / "outages.csv")
    out = tmp_path / "cli"
    assert main(["export", "occupancy", "--data", str(store), "--out", str(out),
                 "--occasion-days", "5", "--day1", "survey"]) == 0  # fmt: skip
    assert (out / "effort.csv").read_text().splitlines()[1:] == [
        "A,3,0,2,5", "B,0,5,5,0", "C,5,5,5,0",
    ]  # fmt: skip
    bad = tmp_path / "bad.csv"
    bad.write_text("deploymentID,outageStart,outageEnd\nA,2024-01-10,2024-01-04\n")
    with pytest.raises(ConfigError, match="row 2: outageEnd is before outageStart"):
        detection_history(survey, HistoryOptions(outages_file=bad))
    with pytest.raises(ConfigError, match="cannot read the outages file"):
        detection_history(survey, HistoryOptions(outages_file=tmp_path / "absent.csv"))


def test_uncia_export_occupancy_and_secr_write_the_files(survey: Path, tmp_path: Path) -> None:
    out = tmp_path / "occupancy"
    args = ["--data", str(survey), "--out", str(out), "--occasion-days", "5", "--gap-days", "7"]
    assert main(["export", "occupancy", *args, "--day1", "survey"]) == 0
    assert (out / "detection_history.csv").read_text().splitlines()[1] == "A,1,NA,0,1"
    assert (out / "effort.csv").read_text().splitlines()[1] == "A,3,0,2,5"
    out = tmp_path / "secr"
    assert main(["export", "secr", "--data", str(survey), "--out", str(out),
                 "--occasion-days", "5", "--gap-days", "7"]) == 0  # fmt: skip
    assert (out / "captures.txt").read_text().splitlines()[1:] == [
        "1 ind-1 1 A", "1 ind-1 2 B", "1 ind-2 4 A"
    ]  # fmt: skip
    assert len((out / "traps.txt").read_text().splitlines()) == 4


def _format_parsers() -> dict[str, argparse.ArgumentParser]:
    found = {}
    for command in ("import", "export"):
        parser = _subparsers(build_parser())[command]
        for name, sub in _subparsers(parser).items():
            found[f"{command} {name}"] = sub
    return found


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


@pytest.mark.parametrize("command", sorted(_format_parsers()))
def test_every_format_and_its_options_are_documented(command: str) -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    assert f"### `uncia {command}" in text, f"uncia {command} undocumented"
    section = text.split(f"### `uncia {command}")[1].split("\n#")[0]
    for action in _format_parsers()[command]._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        names = action.option_strings or [action.metavar or action.dest]
        assert any(f"`{n}" in section for n in names), f"uncia {command} {names} undocumented"
