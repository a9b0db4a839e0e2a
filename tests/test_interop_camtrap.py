"""Camtrap DP in and out: the official example package round-trips whole and valid, offline;
a survey store becomes a valid package with the model's and the reviewers' observations."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.errors import ConfigError
from pipeline.interop.camtrap_export import CamtrapExportOptions, export_camtrap_dp
from pipeline.interop.camtrap_import import import_camtrap_dp
from pipeline.interop.camtrap_validate import validate_package
from pipeline.store.reviews import record_review
from pipeline.store.store import StorePaths
from tests.helpers import jpeg_bytes
from tests.interop_fixtures import build_store, frame

EXAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "camtrap-dp" / "example"
needs_example = pytest.mark.skipif(not EXAMPLE.exists(), reason="no ../shared/data/camtrap-dp")
T0 = datetime(2024, 3, 1, 6, 0, 0)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _per_species_and_deployment(path: Path) -> Counter[tuple[str, str, str]]:
    return Counter(
        (o["deploymentID"], o["scientificName"] or o["observationType"], o["observationLevel"])
        for o in _rows(path / "observations.csv")
    )


@needs_example
def test_the_example_package_is_valid_offline_as_shipped() -> None:
    assert validate_package(EXAMPLE) == []


@needs_example
def test_import_then_export_of_the_example_keeps_every_observation_and_validates(
    tmp_path: Path,
) -> None:
    store, package = tmp_path / "store", tmp_path / "package"
    imported = import_camtrap_dp(EXAMPLE, store, leopard_threshold=0.15)
    assert (imported.deployments, imported.media, imported.observations) == (4, 423, 549)
    assert imported.media_local == 10  # the others are remote URLs

    exported = export_camtrap_dp(store, package)
    assert exported.problems == ()
    assert validate_package(package) == []
    assert _per_species_and_deployment(package) == _per_species_and_deployment(EXAMPLE)
    # Not only the counts: every row of the three tables comes back as it was.
    for table in ("deployments", "media", "observations"):
        ours = sorted(map(sorted, (r.items() for r in _rows(package / f"{table}.csv"))))
        theirs = sorted(map(sorted, (r.items() for r in _rows(EXAMPLE / f"{table}.csv"))))
        assert ours == theirs, table
    descriptor = json.loads((package / "datapackage.json").read_text())
    original = json.loads((EXAMPLE / "datapackage.json").read_text())
    assert descriptor["contributors"] == original["contributors"]
    assert descriptor["licenses"] == original["licenses"]
    assert descriptor["temporal"] == original["temporal"]
    assert descriptor["spatial"] == original["spatial"]
    assert [t["scientificName"] for t in descriptor["taxonomic"]] == [
        t["scientificName"] for t in original["taxonomic"]
    ]


@needs_example
def test_import_takes_times_from_media_csv_and_resolves_files_in_the_package(
    tmp_path: Path,
) -> None:
    import_camtrap_dp(EXAMPLE, tmp_path / "store", leopard_threshold=0.15)
    images = pq.read_table(StorePaths(tmp_path / "store").table("images")).to_pylist()
    by_id = {i["image_id"]: i for i in images}
    local = by_id["7ab33b3a"]  # media/20210531082538-RCNX0031.JPG, 2021-04-11T20:43:09+01:00
    assert local["captured_at"] == datetime(2021, 4, 11, 20, 43, 9)
    assert local["utc_offset_minutes"] == 60
    assert local["status"] == "ok" and Path(local["file_path"]).is_file()
    remote = by_id["07840dcc"]
    assert remote["status"] == "failed" and remote["file_path"].startswith("https://")


def test_the_validator_finds_broken_packages(tmp_path: Path) -> None:
    store = build_store(
        tmp_path / "store",
        [{"deploymentID": "D1", "locationID": "L1", "latitude": 43.0, "longitude": 100.0,
          "deploymentStart": T0, "deploymentEnd": T0 + timedelta(days=9)}],
        [frame("D1", T0 + timedelta(hours=1), 0.9, "a.jpg")],
    )  # fmt: skip
    package = tmp_path / "package"
    result = export_camtrap_dp(
        store, package, CamtrapExportOptions(contributors=("A. Ranger",), utc_offset_minutes=420)
    )
    assert result.problems == ()
    broken = tmp_path / "broken"
    shutil.copytree(package, broken)
    media = (broken / "media.csv").read_text().replace("+07:00", "")  # a time without offset
    (broken / "media.csv").write_text(media)
    observations = (broken / "observations.csv").read_text().replace(",D1,", ",D9,", 1)
    (broken / "observations.csv").write_text(observations)
    descriptor = json.loads((broken / "datapackage.json").read_text())
    del descriptor["taxonomic"]
    (broken / "datapackage.json").write_text(json.dumps(descriptor))
    problems = "\n".join(validate_package(broken))
    assert "'taxonomic' is a required property" in problems
    assert "media row 2: type-error" in problems
    assert "foreign-key" in problems and "D9" in problems


def _survey(tmp_path: Path) -> Path:
    """Two deployments: a leopard visit of 3 frames (two bursts 10 minutes apart, one
    independent event), a leopard burst an hour later, empty frames, a frame without time."""
    frames = [
        frame("D1", T0, 0.9, "a1.jpg", box=(0.25, 0.5, 0.5, 0.25)),
        frame("D1", T0 + timedelta(seconds=2), 0.7, "a2.jpg"),
        frame("D1", T0 + timedelta(minutes=10), 0.8, "a3.jpg"),
        frame("D1", T0 + timedelta(hours=1, minutes=10), 0.6, "a4.jpg"),
        frame("D1", T0 + timedelta(days=1), 0.1, "e1.jpg"),
        frame("D2", T0 + timedelta(days=2), 0.2, "e2.jpg"),
        frame("D2", None, 0.95, "untimed.jpg"),
    ]
    deployments = [
        {"deploymentID": d, "locationID": f"L{d}", "latitude": lat, "longitude": 100.5,
         "deploymentStart": T0 - timedelta(days=1), "deploymentEnd": T0 + timedelta(days=9)}
        for d, lat in (("D1", 43.0), ("D2", 43.1))
    ]  # fmt: skip
    return build_store(tmp_path / "store", deployments, frames)


def test_a_survey_store_exports_machine_human_and_event_observations(tmp_path: Path) -> None:
    store = _survey(tmp_path)
    record_review(store, burst_id="D1/20240301T060000", image_id="x", decision="confirm",
                  reviewer="Tenzin")  # fmt: skip
    record_review(store, burst_id="D1/20240301T071000", image_id="y", decision="reject",
                  reviewer="Tenzin")  # fmt: skip
    with pytest.raises(ConfigError, match="--utc-offset"):
        export_camtrap_dp(store, tmp_path / "nope", CamtrapExportOptions(contributors=("A",)))
    with pytest.raises(ConfigError, match="--contributor"):
        export_camtrap_dp(store, tmp_path / "nope", CamtrapExportOptions(utc_offset_minutes=0))

    package = tmp_path / "package"
    result = export_camtrap_dp(
        store, package, CamtrapExportOptions(contributors=("A. Ranger",), utc_offset_minutes=420)
    )
    assert result.problems == ()
    assert result.media == 6 and result.left_out == {"frames without a capture time": 1}
    assert result.observations == {
        "machine-media": 6, "machine-event": 2, "human": 2, "imported": 0
    }  # fmt: skip
    observations = _rows(package / "observations.csv")
    by_id = {o["observationID"]: o for o in observations}
    media = {m["fileName"]: m for m in _rows(package / "media.csv")}
    first = by_id[f"{media['a1.jpg']['mediaID']}-uncia"]
    assert first["observationType"] == "animal" and first["scientificName"] == "Panthera uncia"
    assert first["classificationMethod"] == "machine"
    assert first["classificationProbability"] == "0.9"
    assert first["classifiedBy"].startswith("zeroshot-imagenet-289 (efficientnet_lite0")
    assert (first["bboxX"], first["bboxY"], first["bboxWidth"], first["bboxHeight"]) == (
        "0.25",
        "0.5",
        "0.5",
        "0.25",
    )
    assert first["eventID"] == "D1/event/20240301T060000"
    assert by_id[f"{media['a2.jpg']['mediaID']}-uncia"]["bboxX"] == ""  # a whole-frame view
    assert by_id[f"{media['e1.jpg']['mediaID']}-uncia"]["observationType"] == "unclassified"
    assert media["a1.jpg"]["timestamp"] == "2024-03-01T06:00:00+07:00"
    assert media["a1.jpg"]["filePath"] == "D1/a1.jpg"

    events = sorted(
        (o["eventStart"], o["eventEnd"])
        for o in observations
        if o["observationLevel"] == "event" and o["classificationMethod"] == "machine"
    )
    assert events == [
        ("2024-03-01T06:00:00+07:00", "2024-03-01T06:10:00+07:00"),
        ("2024-03-01T07:10:00+07:00", "2024-03-01T07:10:00+07:00"),
    ]
    human = sorted(
        (o["eventID"], o["observationType"], o["classifiedBy"])
        for o in observations
        if o["classificationMethod"] == "human"
    )
    assert human == [
        ("D1/event/20240301T060000", "animal", "Tenzin"),
        ("D1/event/20240301T071000", "unknown", "Tenzin"),
    ]
    descriptor = json.loads((package / "datapackage.json").read_text())
    assert descriptor["contributors"] == [{"title": "A. Ranger", "role": "contact"}]
    assert descriptor["temporal"] == {"start": "2024-02-29", "end": "2024-03-10"}
    assert descriptor["taxonomic"][0]["scientificName"] == "Panthera uncia"


def test_human_media_observations_become_training_labels(tmp_path: Path) -> None:
    package = tmp_path / "package"
    (package / "media").mkdir(parents=True)
    for i in range(3):  # EXIF says 2019: the import must take media.csv's time instead
        (package / "media" / f"f{i}.jpg").write_bytes(jpeg_bytes(when=datetime(2019, 1, 1)))
    store = build_store(
        tmp_path / "seed",
        [{"deploymentID": "D1", "locationID": "L1", "latitude": 43.0, "longitude": 100.0,
          "deploymentStart": T0, "deploymentEnd": T0 + timedelta(days=9)}],
        [frame("D1", T0 + timedelta(hours=1), 0.9, "a.jpg")],
    )  # fmt: skip
    export_camtrap_dp(
        store, package, CamtrapExportOptions(contributors=("A",), utc_offset_minutes=360)
    )
    media_header = "mediaID,deploymentID,timestamp,filePath,filePublic,fileMediatype\n"
    (package / "media.csv").write_text(
        media_header
        + "".join(
            f"m{i},D1,2024-03-01T0{7 + i}:00:00+06:00,media/f{i}.jpg,false,image/jpeg\n"
            for i in range(3)
        )
    )
    obs_header = (
        "observationID,deploymentID,mediaID,eventStart,eventEnd,observationLevel,"
        "observationType,scientificName,classificationMethod\n"
    )
    rows = [
        "o0,D1,m0,2024-03-01T01:00:00Z,2024-03-01T01:00:00Z,media,animal,Panthera uncia,human",
        "o1,D1,m1,2024-03-01T02:00:00Z,2024-03-01T02:00:00Z,media,blank,,human",
        "o2,D1,m2,2024-03-01T03:00:00Z,2024-03-01T03:00:00Z,media,animal,Capra sibirica,machine",
    ]
    (package / "observations.csv").write_text(obs_header + "\n".join(rows) + "\n")

    result = import_camtrap_dp(package, tmp_path / "imported", leopard_threshold=0.15)
    assert result.labels == 2  # the machine's guess is not a label
    assert _rows(result.labels_csv) == [
        {"file": "media/f0.jpg", "label": "snow_leopard"},
        {"file": "media/f1.jpg", "label": "empty"},
    ]
    images = pq.read_table(StorePaths(tmp_path / "imported").table("images")).to_pylist()
    assert sorted(i["captured_at"] for i in images) == [
        datetime(2024, 3, 1, 7 + i) for i in range(3)
    ]
    observations = pq.read_table(StorePaths(tmp_path / "imported").table("observations"))
    assert observations.column("label").to_pylist() == ["snow_leopard", "empty", "Capra sibirica"]
