"""MegaDetector batch output in and out: a store's export passes the validator (ours, modelled
on MegaDetector's validate_batch_results) and re-imports to the same boxes; malformed files
get a one-line error; files are matched to frames however the other run named them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from pipeline.interop.megadetector_validate import validate_batch_results
from pipeline.interop.store_tables import rows
from pipeline.stages.discover import image_id_for
from tests.interop_fixtures import megadetector_store


def _boxes(data: dict[str, Any]) -> dict[str, list[tuple[float, list[float]]]]:
    return {
        im["file"]: [(d["conf"], d["bbox"]) for d in im["detections"] or []]
        for im in data["images"]
    }


def test_export_is_valid_batch_output_and_reimports_to_the_same_boxes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = megadetector_store(tmp_path)
    out = tmp_path / "md.json"
    assert main(["export", "megadetector", "--data", str(store), "--out", str(out)]) == 0
    assert "0 errors" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert validate_batch_results(data).error is None
    info = data["info"]
    assert info["format_version"] == "1.5"
    assert info["detector"] == "uncia-zeroshot-imagenet-289-efficientnet_lite0"
    assert info["detection_completion_time"] == "2024-02-01 01:00:00"
    assert info["detector_metadata"]["typical_detection_threshold"] == 0.5
    assert info["classifier_metadata"]["typical_classification_threshold"] == 0.5
    assert data["detection_categories"]["1"] == "animal"
    assert data["classification_categories"] == {"0": "snow leopard"}
    boxes = _boxes(data)
    assert boxes["D1/a1.jpg"] == [(0.9, [0.25, 0.5, 0.5, 0.25])]  # the best view, a tile
    assert boxes["D1/a2.jpg"] == [(0.7, [0.0, 0.0, 1.0, 1.0])]  # the whole frame
    assert boxes["D1/a3.jpg"] == [(0.8, [0.1, 0.2, 0.3, 0.4])]  # the localization wins
    assert boxes["D1/e1.jpg"] == []  # under --min-conf 0.05: no box
    assert boxes["D2/untimed.jpg"] == [(0.95, [0.0, 0.0, 1.0, 1.0])]
    by_file = {im["file"]: im for im in data["images"]}
    assert by_file["D2/broken.jpg"] == {
        "file": "D2/broken.jpg", "failure": "truncated JPEG", "detections": None
    }  # fmt: skip
    assert by_file["D1/a1.jpg"]["detections"][0]["classifications"] == [["0", 0.9]]

    assert main(["import", "megadetector", str(out), "--data", str(store)]) == 0
    said = capsys.readouterr().out
    assert "imported 5 box(es) of 7 file(s)" in said and "7 file(s) are frames" in said
    imported = rows(store, "detector_boxes")
    ids = {image_id_for(*f.split("/")): f for f in boxes}
    again: dict[str, list[tuple[float, list[float]]]] = {f: [] for f in boxes}
    for row in imported:
        assert row["results_file"] == "md.json" and row["image_id"] in ids
        if row["bbox_x"] is not None:
            again[ids[row["image_id"]]].append(
                (row["conf"], [row["bbox_x"], row["bbox_y"], row["bbox_width"],
                               row["bbox_height"]])
            )  # fmt: skip
    assert again == boxes
    empty = {ids[r["image_id"]] for r in imported if r["likely_empty"]}
    assert empty == {"D1/e1.jpg", "D2/e2.jpg"}  # under the file's typical threshold, 0.5
    assert {r["failure"] for r in imported if r["failure"]} == {"truncated JPEG"}

    # Importing the same file again replaces its rows; a lower threshold empties fewer files.
    assert main(["import", "megadetector", str(out), "--data", str(store),
                 "--threshold", "0.2"]) == 0  # fmt: skip
    again_rows = rows(store, "detector_boxes")
    assert len(again_rows) == len(imported)
    assert {ids[r["image_id"]] for r in again_rows if r["likely_empty"]} == {"D1/e1.jpg"}


VALID: dict[str, Any] = {
    "info": {"format_version": "1.5", "detector": "md_v5a.0.0.pt"},
    "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
    "classification_categories": {"0": "snow leopard", "1": "ibex"},
    "images": [
        {"file": "E:\\surveys\\tost\\D1\\a1.jpg", "detections": [
            {"category": "1", "conf": 0.93, "bbox": [0.0, 0.2762, 0.1539, 0.2825],
             "classifications": [["1", 0.8], ["0", 0.1]]},
            {"category": "2", "conf": 0.15, "bbox": [0.5, 0.5, 0.5, 0.5]}]},
        {"file": "tost/D1/a2.jpg", "detections": []},
        {"file": "a3.jpg", "detections": [], "failure": None},
        {"file": "elsewhere/zz.jpg", "failure": "Failure image access", "detections": None},
    ],
}  # fmt: skip


def test_a_megadetector_run_is_matched_to_the_frames_however_it_named_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = megadetector_store(tmp_path)
    results = tmp_path / "md_v5a.json"
    results.write_text(json.dumps(VALID))
    assert main(["import", "megadetector", str(results), "--data", str(store)]) == 0
    said = capsys.readouterr().out
    assert "3 file(s) are frames of the store, 2 likely empty (no box at or above 0.2)" in said
    assert "1 file(s) are not in the store: elsewhere/zz.jpg" in said
    imported = rows(store, "detector_boxes")
    a1 = [r for r in imported if r["image_id"] == image_id_for("D1", "a1.jpg")]
    assert sorted((r["category_name"], r["conf"]) for r in a1) == [
        ("animal", 0.93), ("person", 0.15)
    ]  # fmt: skip
    animal = next(r for r in a1 if r["category_name"] == "animal")
    assert (animal["classification"], animal["classification_conf"]) == ("ibex", 0.8)
    assert (animal["bbox_x"], animal["bbox_width"]) == (0.0, 0.1539)
    assert not animal["likely_empty"]
    by_file = {r["file"]: r for r in imported}
    assert by_file["tost/D1/a2.jpg"]["image_id"] == image_id_for("D1", "a2.jpg")
    assert by_file["a3.jpg"]["image_id"] == image_id_for("D1", "a3.jpg")  # a unique bare name
    assert by_file["elsewhere/zz.jpg"]["image_id"] is None


def _broken(change: Any) -> dict[str, Any]:
    data = copy.deepcopy(VALID)
    change(data)
    return data


def _det(data: dict[str, Any]) -> dict[str, Any]:
    return data["images"][0]["detections"][0]


MALFORMED = {
    "box outside the frame": (
        lambda d: _det(d).update(bbox=[0.6, 0.1, 0.5, 0.2]), "is not [x_min, y_min"),
    "box in pixels": (lambda d: _det(d).update(bbox=[120, 40, 300, 200]), "is not [x_min"),
    "box of three numbers": (lambda d: _det(d).update(bbox=[0.1, 0.1, 0.2]), "not four numbers"),
    "box with text": (lambda d: _det(d).update(bbox=["0.1", 0, 0.2, 0.2]), "not four numbers"),
    "no info": (lambda d: d.pop("info"), "no 'info' field"),
    "no images": (lambda d: d.pop("images"), "no 'images' field"),
    "no categories": (lambda d: d.pop("detection_categories"), "no 'detection_categories'"),
    "no version": (lambda d: d["info"].pop("format_version"), "no format_version"),
    "version 1.6": (lambda d: d["info"].update(format_version="1.6"), "'1.6' is not one of"),
    "version 1.0": (lambda d: d["info"].update(format_version="1.0"), "'1.0' is not one of"),
    "no conf": (lambda d: _det(d).pop("conf"), "a detection has no conf"),
    "conf above 1": (lambda d: _det(d).update(conf=93), "conf 93 is not a number in [0, 1]"),
    "unmapped category": (lambda d: _det(d).update(category="7"), "'7' is not mapped"),
    "category id not a number": (
        lambda d: d["detection_categories"].update(animal="1"), "not a string-formatted"),
    "classifications ascending": (
        lambda d: _det(d).update(classifications=[["0", 0.1], ["1", 0.8]]), "descending"),
    "failure with detections": (
        lambda d: d["images"][1].update(failure="oops"), "a failure and detections at once"),
    "no detections, no failure": (lambda d: d["images"][1].pop("detections"), "no detections"),
    "file twice": (lambda d: d["images"].append(dict(d["images"][1])), "appears twice"),
    "images not a list": (lambda d: d.update(images={"a": 1}), "'images' is not a list"),
}  # fmt: skip


def test_the_validator_accepts_the_spec_example_and_warns_of_extra_keys() -> None:
    assert validate_batch_results(VALID).valid
    extra = dict(VALID, mystery=1)
    assert validate_batch_results(extra).warnings == ["non-standard key 'mystery' at file level"]


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_file_gets_a_one_line_error(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    change, expected = MALFORMED[case]
    results = tmp_path / "bad.json"
    results.write_text(json.dumps(_broken(change)))
    # No store needed: the file is checked first.
    assert main(["import", "megadetector", str(results), "--data", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("uncia: error: ") and expected in err
    assert "not MegaDetector batch output" in err


def test_a_file_that_is_not_json_or_not_there_gets_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "half.json"
    results.write_text(json.dumps(VALID)[:50])
    for path in (results, tmp_path / "missing.json"):
        assert main(["import", "megadetector", str(path), "--data", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"cannot read {path}" in err
