"""Imported human labels count as verified, exactly like review decisions: a real store, a
Timelapse CSV imported into it with `uncia import timelapse --data`, dashboard reviews before
and after the import; the dashboard's "Human-verified only" counts, the occupancy histories
(CLI and dashboard download) and a Camtrap DP store never classified, against hand counts."""

from __future__ import annotations

import csv
import io
import shutil
import zipfile
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from cli.main import main
from dashboard import Settings
from dashboard.context import build_context
from dashboard.data import analysis
from dashboard.data.store import Store
from dashboard.filters import Filters
from dashboard.species import Layer
from dashboard.views import downloads, hotspots
from pipeline.errors import ConfigError, StoreError
from pipeline.interop import store_tables as st
from pipeline.interop.camtrap_export import CamtrapExportOptions, export_camtrap_dp
from pipeline.interop.camtrap_import import import_camtrap_dp
from pipeline.interop.occupancy import HistoryOptions, detection_history
from pipeline.interop.timelapse import import_timelapse
from pipeline.interop.timelapse_store import store_timelapse_labels
from pipeline.schema import INDIVIDUALS, conform
from pipeline.store.reviews import record_review
from pipeline.store.store import StorePaths, atomic_write_parquet
from pipeline.store.verdicts import store_verdicts
from tests.helpers import CONTROLS, texts
from tests.interop_fixtures import build_store, frame
from tests.verified_fixtures import (
    EARLY,
    MACHINE_HISTORY,
    STATIONS,
    VERIFIED_EVENTS,
    VERIFIED_HISTORY,
    build_verified_survey,
    burst_of,
    image,
    write_timelapse_csv,
)

pytestmark = pytest.mark.filterwarnings("ignore:(?s).*DataTable will be removed:DeprecationWarning")


def review(store: Path, station: str, d: int, decision: str, when: datetime | None) -> None:
    record_review(store, burst_id=burst_of(store, station, d), image_id=image(station, d),
                  decision=decision, reviewer="Bayara", now=when)  # fmt: skip


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The survey, a reject before the import, the import, a confirm after it; and what
    `uncia import timelapse` printed."""
    root = tmp_path_factory.mktemp("verified")
    store = build_verified_survey(root / "store")
    review(store, "B", 15, "reject", EARLY)
    csv_file = write_timelapse_csv(root / "tost.csv")
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("sys.stdout", out)
        assert main(["import", "timelapse", str(csv_file), "--out", str(root / "labels"),
                     "--data", str(store)]) == 0  # fmt: skip
    review(store, "B", 12, "confirm", None)  # now: after the import
    return store, out.getvalue()


def test_timelapse_import_writes_human_observations_into_the_store(labelled) -> None:
    store, printed = labelled
    assert "stored 6 frame label(s)" in printed
    assert "1 file(s) are not in the store: Z/Z-01.jpg" in printed
    observations = st.rows(store, "observations")
    assert {o["mediaID"]: o["label"] for o in observations} == {
        image("A", 5): "snow_leopard", image("A", 9): "empty", image("B", 3): "snow_leopard",
        image("B", 12): "empty", image("B", 15): "snow_leopard", image("C", 4): "Ibex",
    }  # fmt: skip
    assert {o["classificationMethod"] for o in observations} == {"human"}
    assert {o["source"] for o in observations} == {"timelapse:tost.csv"}


def test_the_newer_of_review_and_import_wins_and_says_where_it_came_from(labelled) -> None:
    store, _ = labelled
    by_burst = {v["burst_id"]: v for v in store_verdicts(store).to_pylist()}
    later_review = by_burst[burst_of(store, "B", 12)]
    assert (later_review["origin"], later_review["label"]) == ("review", "snow_leopard")
    assert later_review["reviewer"] == "Bayara"
    newer_import = by_burst[burst_of(store, "B", 15)]  # its reject dates from 2020
    assert (newer_import["origin"], newer_import["decision"]) == ("import", "confirm")
    assert newer_import["reviewer"] == "imported from Timelapse (tost.csv)"
    assert by_burst[burst_of(store, "A", 9)]["label"] == "empty"
    assert by_burst[burst_of(store, "C", 4)]["label"] == "Ibex"
    assert burst_of(store, "A", 8) not in by_burst  # nobody judged it


def test_verified_hotspot_counts_equal_the_hand_count(labelled) -> None:
    store, _ = labelled
    dashboard_store = Store(store)
    with dashboard_store.connect() as con:
        dashboard_store.prepare(con, None)
        verified = analysis.layer_summary(con, Filters(verified_only=True), 30.0).to_pylist()
        machine = analysis.layer_summary(con, Filters(threshold=0.5), 30.0).to_pylist()
    per_station = {r["stations"]: r["events"] for r in verified}
    assert per_station == VERIFIED_EVENTS
    assert {r["stations"]: r["events"] for r in machine} == {"A": 2, "B": 3, "C": 2}


def test_verified_only_histories_follow_the_verdicts(labelled) -> None:
    store, _ = labelled
    options = HistoryOptions(occasion_days=5, day1="survey", gap_days=None)
    verified = detection_history(store, HistoryOptions(**{**options.__dict__,
                                                           "verified_only": True}))  # fmt: skip
    assert dict(zip(verified.stations, verified.detections, strict=True)) == VERIFIED_HISTORY
    machine = detection_history(store, options)
    assert dict(zip(machine.stations, machine.detections, strict=True)) == MACHINE_HISTORY


def test_histories_keep_only_the_window_and_season(labelled, tmp_path: Path) -> None:
    store, _ = labelled
    window = HistoryOptions(occasion_days=5, day1="survey", gap_days=None, verified_only=True,
                            start=datetime(2024, 1, 6).date(), end=datetime(2024, 1, 15).date())
    history = detection_history(store, window)  # occasions 6-10 and 11-15
    assert dict(zip(history.stations, history.detections, strict=True)) == {
        "A": (0, 0), "B": (0, 1), "C": (0, 0)}  # fmt: skip
    assert history.effort == ((5, 5),) * 3
    with pytest.raises(StoreError, match="no deployment with a working day in the window"):
        detection_history(store, HistoryOptions(months=(2,)))
    with pytest.raises(ConfigError, match="months are 1-12"):
        HistoryOptions(months=(13,))
    # The CLI gives the same matrix for the same window.
    assert main(["export", "occupancy", "--data", str(store), "--out", str(tmp_path),
                 "--occasion-days", "5", "--day1", "survey", "--gap-days", "0",
                 "--start", "2024-01-06", "--end", "2024-01-15", "--months", "1",
                 "--verified-only"]) == 0  # fmt: skip
    assert (tmp_path / "detection_history.csv").read_text() == history.csv("detections")
    with pytest.raises(SystemExit):
        main(["export", "occupancy", "--data", str(store), "--out", str(tmp_path),
              "--months", "0,13"])  # fmt: skip


def test_the_dashboard_download_is_the_cli_export_of_the_same_view(
    labelled, tmp_path: Path
) -> None:
    store, _ = labelled
    ctx = build_context(Settings(data_dir=store, tiles="none"))
    view = {**CONTROLS, "verified": "verified", "start_date": "2024-01-01",
            "end_date": "2024-01-20", "season": "all"}  # fmt: skip
    content, name = downloads.build_export(ctx, "occupancy", False, occasion=5, **view)
    assert name.startswith("uncia-occupancy-") and name.endswith(".zip")
    archive = zipfile.ZipFile(io.BytesIO(content))
    provenance = archive.read("provenance.csv").decode()
    assert "view_counted_from,human-verified bursts" in provenance
    assert "occasion_days,5" in provenance and "simulated,no" in provenance
    cli = tmp_path / "cli"
    assert main(["export", "occupancy", "--data", str(store), "--out", str(cli),
                 "--occasion-days", "5", "--gap-days", "0", "--verified-only"]) == 0  # fmt: skip
    for member in ("detection_history.csv", "effort.csv"):
        assert archive.read(member).decode() == (cli / member).read_text()
    with pytest.raises(ConfigError, match="not offered in the public version"):
        downloads.build_export(ctx, "occupancy", True, occasion=5, **view)
    with pytest.raises(ConfigError, match="exact coordinates"):
        downloads.build_export(ctx, "secr", True, **view)
    with pytest.raises(ConfigError, match="no individuals"):  # no `uncia identify` yet
        downloads.build_export(ctx, "secr", False, **view)
    for bad in (0, 2.5, "seven", 366):
        with pytest.raises(ConfigError, match="occasion lasts"):
            downloads.build_export(ctx, "occupancy", False, occasion=bad, **view)


def test_a_camtrap_dp_store_shows_its_human_observations_as_verified(tmp_path: Path) -> None:
    """A store never classified (no bursts): each human-labelled frame is a sighting; an
    event-level observation covers the frames taken in its window."""
    t0 = datetime(2024, 3, 1, 6)
    seed = build_store(
        tmp_path / "seed",
        [{"deploymentID": "D1", "locationID": "L1", "latitude": 43.0, "longitude": 100.0,
          "deploymentStart": t0, "deploymentEnd": t0 + timedelta(days=9)}],
        [frame("D1", t0 + timedelta(hours=1), 0.9, "a.jpg")],
    )  # fmt: skip
    package = tmp_path / "package"
    export_camtrap_dp(seed, package, CamtrapExportOptions(contributors=("A",),
                                                          utc_offset_minutes=360))  # fmt: skip
    (package / "media.csv").write_text(
        "mediaID,deploymentID,timestamp,filePath,filePublic,fileMediatype\n"
        + "".join(f"m{i},D1,2024-03-0{1 + i}T07:00:00+06:00,media/f{i}.jpg,false,image/jpeg\n"
                  for i in range(4))  # fmt: skip
    )
    (package / "observations.csv").write_text(
        "observationID,deploymentID,mediaID,eventStart,eventEnd,observationLevel,"
        "observationType,scientificName,classificationMethod\n"
        "o0,D1,m0,2024-03-01T01:00:00Z,2024-03-01T01:00:00Z,media,animal,Panthera uncia,human\n"
        "o1,D1,m1,2024-03-02T01:00:00Z,2024-03-02T01:00:00Z,media,blank,,human\n"
        "o2,D1,,2024-03-03T00:30:00Z,2024-03-03T01:30:00Z,event,animal,Panthera uncia,human\n"
        "o3,D1,m3,2024-03-04T01:00:00Z,2024-03-04T01:00:00Z,media,animal,Panthera uncia,machine\n"
    )
    store = tmp_path / "imported"
    import_camtrap_dp(package, store, leopard_threshold=0.5)
    verdicts = {v["burst_id"]: v for v in store_verdicts(store).to_pylist()}
    assert {b: v["label"] for b, v in verdicts.items()} == {
        "frame:m0": "snow_leopard", "frame:m1": "empty", "frame:m2": "snow_leopard"}  # fmt: skip
    assert verdicts["frame:m0"]["reviewer"].startswith("imported from Camtrap DP (")
    dashboard_store = Store(store)
    with dashboard_store.connect() as con:
        dashboard_store.prepare(con, None)
        rows = analysis.layer_summary(con, Filters(verified_only=True), 30.0, Layer.LEOPARD)
    assert rows.column("events").to_pylist() == [2]  # m0 and m2; the machine's m3 is not
    history = detection_history(store, HistoryOptions(occasion_days=1, day1="survey",
                                                      gap_days=None, verified_only=True))
    assert history.detections == ((1, 0, 1, 0, 0, 0, 0, 0, 0, 0),)


def test_timelapse_data_needs_a_store_before_writing_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_file = write_timelapse_csv(tmp_path / "t.csv")
    code = main(["import", "timelapse", str(csv_file), "--out", str(tmp_path / "o"),
                 "--data", str(tmp_path / "nothing")])  # fmt: skip
    assert code != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no Uncia store" in err
    assert not (tmp_path / "o").exists()


def test_a_reimport_replaces_its_rows_and_the_package_keeps_them_valid(
    labelled, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    shutil.copytree(labelled[0], store)
    csv_file = write_timelapse_csv(tmp_path / "tost.csv")
    result = import_timelapse(csv_file, tmp_path / "labels")
    again = store_timelapse_labels(result.frame_labels, store, csv_file.name)
    assert (again.stored, again.replaced) == (6, 6)
    assert len(st.rows(store, "observations")) == 6
    # Imported again, the labels are newer than the B d12 review: the import wins now.
    verdict = {v["burst_id"]: v for v in store_verdicts(store).to_pylist()}
    assert verdict[burst_of(store, "B", 12)]["label"] == "empty"
    package = tmp_path / "package"
    exported = export_camtrap_dp(
        store, package, CamtrapExportOptions(contributors=("A",), utc_offset_minutes=360)
    )
    assert exported.problems == () and exported.observations["imported"] == 6
    with (package / "media.csv").open(newline="") as fh:
        media = {m["mediaID"]: m["timestamp"] for m in csv.DictReader(fh)}
    with (package / "observations.csv").open(newline="") as fh:
        imported = [o for o in csv.DictReader(fh) if o["classifiedBy"] == "Timelapse"]
    assert len(imported) == 6
    assert all(o["eventStart"] == media[o["mediaID"]] == o["eventEnd"] for o in imported)


def test_the_secr_download_and_a_windowed_occupancy_one_are_the_cli_exports(
    labelled, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    shutil.copytree(labelled[0], store)
    individuals = {image("A", 8): "ind-1", image("B", 3): "ind-1", image("B", 15): "ind-2"}
    rows = [{"image_id": i, "individualID": n, "sightings": 1, "status": "confirmed"}
            for i, n in individuals.items()]  # fmt: skip
    atomic_write_parquet(conform(pa.Table.from_pylist(rows, INDIVIDUALS), INDIVIDUALS),
                         StorePaths(store).table("individuals"))  # fmt: skip
    ctx = build_context(Settings(data_dir=store, tiles="none"))
    machine = {**CONTROLS, "threshold": 0.5, "start_date": "2024-01-06", "end_date": "2024-01-20",
               "season": "all"}  # fmt: skip
    content, name = downloads.build_export(ctx, "secr", False, occasion=7, **machine)
    archive = zipfile.ZipFile(io.BytesIO(content))
    cli = tmp_path / "cli"
    assert main(["export", "secr", "--data", str(store), "--out", str(cli), "--threshold", "0.5",
                 "--occasion-days", "7", "--gap-days", "0", "--start", "2024-01-06",
                 "--end", "2024-01-20"]) == 0  # fmt: skip
    for member in ("captures.txt", "traps.txt"):
        assert archive.read(member).decode() == (cli / member).read_text()
    # By hand: occasions of 7 days from 6 Jan; A d8 is ind-1 in o1, B d15 ind-2 in o2 (B d3
    # is before the window); three traps with exact metres.
    captures = archive.read("captures.txt").decode().splitlines()[1:]
    assert captures == ["1 ind-1 1 A", "1 ind-2 2 B"]
    traps = archive.read("traps.txt").decode().splitlines()[1:]
    assert [t.split()[0] for t in traps] == ["A", "B", "C"]
    assert all(float(t.split()[1]) > 1000 and float(t.split()[2]) > 1000 for t in traps)
    assert "same_as,uncia export secr --occasion-days 7 --threshold 0.5 --gap-days 0 --start " \
        "2024-01-06 --end 2024-01-20" in archive.read("provenance.csv").decode()


def test_verified_hexagon_frames_are_the_frames_the_map_counts(labelled) -> None:
    """In "Human-verified only" a hexagon's frames are those of the bursts people called a
    snow leopard, whatever their score (A d5 scored 0.2), never a rejected or relabelled
    one (A d9, 0.9, Timelapse said empty), each saying who verified it."""
    store, _ = labelled
    ctx = build_context(Settings(data_dir=store, tiles="none"))
    with ctx.store.connect() as con:
        ctx.store.prepare(con, None)
        summary = analysis.layer_summary(con, Filters(threshold=0.5), 30.0).to_pylist()
    hexagon = {r["stations"]: r["hexagon"] for r in summary}
    shown = {}
    for station in STATIONS:
        panel = hotspots.show_detections(ctx, hexagon[station], None,
                                         **{**CONTROLS, "verified": "verified"})  # fmt: skip
        shown[station] = [texts(card) for card in panel["cards"]]
        assert "verified as snow leopard" in panel["title"]
        assert ("no frame" in panel["title"]) == (not shown[station])
    assert [len(v) for v in shown.values()] == [1, 3, 0]  # VERIFIED_EVENTS: one frame a burst
    assert "2024-01-05" in shown["A"][0] and "imported from Timelapse (tost.csv)" in shown["A"][0]
    assert sum("verified in review by Bayara" in text for text in shown["B"]) == 1  # B d12
    machine = hotspots.show_detections(ctx, hexagon["A"], None, **CONTROLS)
    cards = [texts(card) for card in machine["cards"]]
    assert len(cards) == 2 and not any("verified" in t for t in cards)  # A d8 and d9, >= 0.5
