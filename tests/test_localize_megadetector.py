"""`uncia localize --method megadetector`: an imported MegaDetector run's boxes become
localizations (crops `uncia identify` matches) without LIME or Grad-CAM; frames without a
usable box get a failure row that says why (docs/identification.md)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from cli.main import main
from pipeline.schema import DETECTOR_BOXES, conform
from pipeline.stages.discover import image_id_for
from pipeline.store.store import StorePaths, atomic_write_parquet
from tests.interop_fixtures import T0, build_store, frame
from tests.localize_fixtures import coat_jpeg

DEP = "CAM-A"
# coat_jpeg puts the coat at pixels (120, 40)-(520, 440) of a 640 x 480 frame.
COAT = (120 / 640, 40 / 480, 400 / 640, 400 / 480)


def _jpeg(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _survey(tmp: Path) -> tuple[Path, dict[str, str]]:
    """A store of real JPEGs on disk (the store written through its own functions, so the
    leopard scores are exact): name -> image_id. Threshold 0.5: `low.jpg` is out of scope."""
    folder = tmp / "images" / DEP
    folder.mkdir(parents=True)
    plan = {  # name: (leopard score, individual, seed, mirrored)
        "one.jpg": (0.9, 1, 11, False),
        "one-again.jpg": (0.8, 1, 12, True),
        "weak.jpg": (0.7, 2, 13, False),
        "person.jpg": (0.6, 2, 14, False),
        "outside.jpg": (0.65, 2, 15, False),
        "nothing.jpg": (0.55, 2, 16, False),
        "unlisted.jpg": (0.75, 2, 17, False),
        "low.jpg": (0.1, 2, 18, False),
    }
    frames = []
    for i, (name, (score, who, seed, mirror)) in enumerate(plan.items()):
        path = _jpeg(folder / name, coat_jpeg(who, seed, mirror))
        row = frame(DEP, T0 + timedelta(hours=i), score, name)
        row.update(file_path=str(path), width=640, height=480)
        frames.append(row)
    deployments = [
        {"deploymentID": DEP, "locationID": "L1", "latitude": 43.0, "longitude": 100.5,
         "deploymentStart": T0 - timedelta(days=1), "deploymentEnd": T0 + timedelta(days=9)}
    ]  # fmt: skip
    store = build_store(tmp / "store", deployments, frames, threshold=0.5)
    return store, {name: image_id_for(DEP, name) for name in plan}


def _results(path: Path, images: list[dict[str, Any]], threshold: float = 0.2) -> Path:
    path.write_text(json.dumps({
        "info": {"format_version": "1.5", "detector": "md_v5a.0.0.pt",
                 "detector_metadata": {"typical_detection_threshold": threshold}},
        "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
        "images": images,
    }))  # fmt: skip
    return path


def _box(category: str, conf: float, bbox: tuple[float, ...]) -> dict[str, Any]:
    return {"category": category, "conf": conf, "bbox": list(bbox)}


MD_IMAGES = [
    {"file": f"{DEP}/one.jpg", "detections": [
        _box("1", 0.93, COAT),
        _box("2", 0.97, (0.0, 0.0, 0.3, 0.5)),  # a person, more confident: not a leopard's box
        _box("1", 0.1, (0.0, 0.5, 0.2, 0.5))]},
    # Two animal boxes: the most confident is taken, not the first listed.
    {"file": f"{DEP}/one-again.jpg", "detections": [
        _box("1", 0.3, (0.0, 0.0, 0.1, 0.1)),
        _box("1", 0.6, (0.1, 0.05, 0.75, 0.9))]},
    {"file": f"{DEP}/weak.jpg", "detections": [_box("1", 0.12, (0.2, 0.2, 0.3, 0.3))]},
    {"file": f"{DEP}/person.jpg", "detections": [_box("2", 0.9, (0.2, 0.2, 0.3, 0.3))]},
    {"file": f"{DEP}/nothing.jpg", "detections": []},
    {"file": f"{DEP}/low.jpg", "detections": [_box("1", 0.9, COAT)]},
    {"file": f"{DEP}/not-in-the-store.jpg", "detections": [_box("1", 0.9, COAT)]},
]  # fmt: skip


def _rows(store: Path) -> list[dict[str, Any]]:
    return pq.read_table(store / "parquet" / "localizations.parquet").to_pylist()


def _expected_crop(path: Path, left: int, top: int, right: int, bottom: int) -> np.ndarray:
    with Image.open(path) as opened:
        return np.asarray(opened.convert("RGB").crop((left, top, right, bottom)), dtype=np.int16)


def _cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> str:
    """`uncia ARGS` in this process (the CLI's own entry point; no torch start-up per call)."""
    assert main([str(a) for a in args]) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def test_megadetector_boxes_become_crops_that_identify_matches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, ids = _survey(tmp_path)
    md = _results(tmp_path / "md.json", MD_IMAGES)
    imported = _cli(capsys, "import", "megadetector", md, "--data", store)
    assert "not-in-the-store.jpg" in imported

    result = _cli(capsys, "localize", "--data", store, "--method", "megadetector")
    assert "localized 2 frame(s) at score >= 0.5 (5 failed, 0 already done)" in result
    rows = {r["image_id"]: r for r in _rows(store)}
    # Every frame in scope has a row; the frame under the threshold has none, a file the store
    # lacks makes none.
    assert set(rows) == {ids[n] for n in ids if n != "low.jpg"}
    assert {r["method"] for r in rows.values()} == {"megadetector"}
    assert {r["target"] for r in rows.values()} == {"megadetector:animal"}

    one = rows[ids["one.jpg"]]
    assert one["failure"] is None and one["heatmap_path"] is None
    assert one["score"] == pytest.approx(0.9)  # the frame's leopard score
    assert one["target_score"] == pytest.approx(0.93)  # the detector's conf for the box
    assert (one["box_x"], one["box_y"], one["box_width"], one["box_height"]) == pytest.approx(
        COAT, abs=1e-6
    )
    # The crop is the box plus the 5% margin every method's crop has: 20 px each side of the
    # 400 x 400 coat, (100, 20)-(540, 460) of the full-resolution frame.
    with Image.open(store / one["crop_path"]) as opened:
        assert opened.format == "JPEG"
        crop = np.asarray(opened.convert("RGB"), dtype=np.int16)
    expected = _expected_crop(tmp_path / "images" / DEP / "one.jpg", 100, 20, 540, 460)
    assert crop.shape == expected.shape == (440, 440, 3)
    assert np.abs(crop - expected).mean() < 2.5  # JPEG re-encoding only
    shifted = _expected_crop(tmp_path / "images" / DEP / "one.jpg", 60, 20, 500, 460)
    assert np.abs(crop - shifted).mean() > 10  # a crop 40 px off is visibly another picture

    again = rows[ids["one-again.jpg"]]
    assert again["failure"] is None and again["target_score"] == pytest.approx(0.6)
    assert again["box_x"] == pytest.approx(0.1) and again["box_width"] == pytest.approx(0.75)
    # The box plus 5% of its size each side: 0.0625 .. 0.8875 of 640 px (40 .. 568),
    # 0.005 .. 0.995 of 480 px (2.4 .. 477.6, so 2 .. 478).
    with Image.open(store / again["crop_path"]) as opened:
        assert opened.size == (528, 476)

    names = ("weak.jpg", "person.jpg", "nothing.jpg", "unlisted.jpg", "outside.jpg")
    failures = {name: rows[ids[name]]["failure"] for name in names}
    assert "below the import threshold 0.2 (best conf 0.12)" in failures["weak.jpg"]
    assert "no animal, only person box(es)" in failures["person.jpg"]
    assert failures["nothing.jpg"] == "MegaDetector found no box in this frame"
    assert failures["unlisted.jpg"] == "no imported MegaDetector result lists this frame"
    assert failures["outside.jpg"] == failures["unlisted.jpg"]
    for name in failures:
        row = rows[ids[name]]
        assert row["crop_path"] is None and row["box_x"] is None and row["target_score"] is None
    assert "2 failed: no imported MegaDetector result lists this frame" in result

    assert "matched 2 crop(s)" in _cli(capsys, "identify", "--data", store)
    matches = pq.read_table(store / "parquet" / "matches.parquet").to_pylist()
    assert {m["query_id"] for m in matches} == {ids["one.jpg"], ids["one-again.jpg"]}
    individuals = pq.read_table(store / "parquet" / "individuals.parquet").to_pylist()
    assert {i["image_id"] for i in individuals} == {ids["one.jpg"], ids["one-again.jpg"]}

    # A re-run skips the two localized frames and tries the failed ones again: a second
    # results file with a box for the weak frame gives it one; the others fail as before.
    later = _results(tmp_path / "md-later.json", [
        {"file": f"{DEP}/weak.jpg", "detections": [_box("1", 0.7, COAT)]},
    ])  # fmt: skip
    _cli(capsys, "import", "megadetector", later, "--data", store)
    rerun = _cli(capsys, "localize", "--data", store, "--method", "megadetector")
    assert "localized 1 frame(s) at score >= 0.5 (4 failed, 2 already done)" in rerun
    after = {r["image_id"]: r for r in _rows(store)}
    assert after[ids["one.jpg"]] == one  # untouched, with its crop
    assert after[ids["weak.jpg"]]["failure"] is None
    assert after[ids["weak.jpg"]]["target_score"] == pytest.approx(0.7)
    assert (store / after[ids["weak.jpg"]]["crop_path"]).is_file()


@pytest.mark.model
def test_a_gradcam_run_beside_megadetector_keeps_both_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, ids = _survey(tmp_path)
    md = _results(tmp_path / "md.json", MD_IMAGES)
    _cli(capsys, "import", "megadetector", md, "--data", store)
    _cli(capsys, "localize", "--data", store, "--method", "megadetector")
    md_rows = {r["image_id"]: r for r in _rows(store)}
    # Grad-CAM on the same frames (efficientnet_lite0, the identify tests' backbone): its own
    # rows, with heat maps, beside the detector's.
    gradcam = _cli(capsys, "localize", "--data", store, "--method", "gradcam",
                   "--target-class", "288")  # fmt: skip
    assert "localized 7 frame(s)" in gradcam
    rows = _rows(store)
    assert len(rows) == 14
    for image_id, md_row in md_rows.items():
        assert md_row in rows  # the megadetector rows are as they were
        grad = next(r for r in rows if r["image_id"] == image_id and r["method"] == "gradcam")
        assert grad["failure"] is None and grad["heatmap_path"] is not None
        assert grad["crop_path"] != md_row["crop_path"]
    # A megadetector re-run leaves Grad-CAM's rows alone and skips its own done frames.
    assert "2 already done" in _cli(capsys, "localize", "--data", store, "--method",
                                    "megadetector")  # fmt: skip
    after = _rows(store)
    assert [r for r in after if r["method"] == "gradcam"] == [
        r for r in rows if r["method"] == "gradcam"
    ]
    # identify takes each frame's latest crop: Grad-CAM's, the later run, for all seven.
    assert "matched 7 crop(s)" in _cli(capsys, "identify", "--data", store)


def test_megadetector_method_refuses_what_it_cannot_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, _ = _survey(tmp_path)
    # No import yet: one line saying what to run first, no table written.
    assert main(["localize", "--data", str(store), "--method", "megadetector"]) == 2
    err = capsys.readouterr().err
    assert "holds no MegaDetector boxes (run `uncia import megadetector` first)" in err
    assert not (store / "parquet" / "localizations.parquet").exists()
    # Model options mean nothing for the detector's boxes: refused, not ignored.
    for extra in (["--target-class", "288"], ["--box-fraction", "0.4"], ["--engine", "spark"]):
        assert main(["localize", "--data", str(store), "--method", "megadetector", *extra]) == 2
        assert "not for --method megadetector" in capsys.readouterr().err
    # A NaN confidence never reaches the store: the import refuses the file.
    nan = tmp_path / "nan.json"
    _results(nan, [{"file": f"{DEP}/one.jpg", "detections": [_box("1", 0.9, COAT)]}])
    nan.write_text(nan.read_text().replace("0.9,", "NaN,"))
    assert "NaN" in nan.read_text()
    assert main(["import", "megadetector", str(nan), "--data", str(store)]) == 2
    err = capsys.readouterr().err
    assert "not MegaDetector batch output" in err and "\n" not in err.strip()
    assert not (store / "parquet" / "detector_boxes.parquet").exists()


def test_a_box_outside_the_frame_is_refused_at_import_and_never_cropped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, ids = _survey(tmp_path)
    outside = _results(tmp_path / "outside.json", [
        {"file": f"{DEP}/outside.jpg", "detections": [_box("1", 0.8, (0.9, 0.1, 0.5, 0.3))]},
    ])  # fmt: skip
    assert main(["import", "megadetector", str(outside), "--data", str(store)]) == 2
    assert "inside the frame" in capsys.readouterr().err
    # A table that holds such boxes anyway (written before the import checked them): the
    # frame's boxes with no area in the frame are passed over, never cropped.
    row = {"results_file": "old.json", "file": f"{DEP}/outside.jpg", "detector": "md",
           "category": "1", "category_name": "animal", "likely_empty": False,
           "threshold": 0.2, "imported_at": datetime(2024, 1, 1, tzinfo=UTC)}  # fmt: skip
    boxes = [
        {**row, "image_id": ids["outside.jpg"], "conf": 0.9, "bbox_x": 1.2, "bbox_y": 0.1,
         "bbox_width": 0.3, "bbox_height": 0.3},
        {**row, "image_id": ids["outside.jpg"], "conf": 0.8, "bbox_x": float("nan"),
         "bbox_y": 0.1, "bbox_width": 0.3, "bbox_height": 0.3},
        # Over the edge: the part inside the frame is the box.
        {**row, "image_id": ids["one.jpg"], "conf": 0.7, "bbox_x": 0.75, "bbox_y": 0.5,
         "bbox_width": 0.5, "bbox_height": 0.25},
    ]  # fmt: skip
    table = conform(pa.Table.from_pylist(boxes, DETECTOR_BOXES), DETECTOR_BOXES)
    atomic_write_parquet(table, StorePaths(store).table("detector_boxes"))
    assert main(["localize", "--data", str(store), "--method", "megadetector"]) == 0
    rows = {r["image_id"]: r for r in _rows(store)}
    assert rows[ids["outside.jpg"]]["failure"] == (
        "MegaDetector's 2 animal box(es) at or above the import threshold lie outside the frame"
    )
    clipped = rows[ids["one.jpg"]]
    assert (clipped["box_x"], clipped["box_y"], clipped["box_width"], clipped["box_height"]) == (
        pytest.approx((0.75, 0.5, 0.25, 0.25))
    )


def test_a_rotated_frame_is_cropped_upright_as_megadetector_boxes_it(tmp_path: Path) -> None:
    """MegaDetector boxes the upright picture (EXIF orientation applied); so does the crop."""
    store, ids = _survey(tmp_path)
    path = tmp_path / "images" / DEP / "one.jpg"
    upright = Image.open(path).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 90 degrees counter-clockwise of upright
    buffer = io.BytesIO()
    upright.rotate(90, expand=True).save(buffer, "JPEG", quality=95, exif=exif)
    path.write_bytes(buffer.getvalue())
    with Image.open(path) as stored:
        assert stored.size == (480, 640)  # stored sideways
    box = (0.5, 0.25, 0.25, 0.5)  # of the upright 640 x 480 picture: (320, 120)-(480, 360)
    md = _results(tmp_path / "md.json", [
        {"file": f"{DEP}/one.jpg", "detections": [_box("1", 0.9, box)]},
    ])  # fmt: skip
    assert main(["import", "megadetector", str(md), "--data", str(store)]) == 0
    assert main(["localize", "--data", str(store), "--method", "megadetector"]) == 0
    row = next(r for r in _rows(store) if r["image_id"] == ids["one.jpg"])
    with Image.open(store / row["crop_path"]) as opened:
        crop = np.asarray(opened.convert("RGB"), dtype=np.int16)
    # 5% of 160 x 240 px each side: (312, 108)-(488, 372) of the upright picture.
    expected = np.asarray(upright.crop((312, 108, 488, 372)), dtype=np.int16)
    assert crop.shape == expected.shape
    assert np.abs(crop - expected).mean() < 3
