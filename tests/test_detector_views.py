"""Imported MegaDetector boxes become views: after `uncia import megadetector`, the next
`uncia run` scores each frame with an animal box again, with a crop of each box as one more
view (docs/views.md); when that view wins, the detection's box is the detector's box."""

from __future__ import annotations

import io
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from cli.main import main
from pipeline.config import resolve_run_options
from pipeline.runs.runner import run_survey
from pipeline.schema import ViewKind
from pipeline.stages.embed import Backbone, load_backbone
from pipeline.stages.views import ViewOptions, cut_views, detector_crop
from tests.helpers import SHARED_PHOTOS, deployment, open_store, write_deployments

DEV = SHARED_PHOTOS.parent / "snow-leopard-dev" / "images" / "PANTHERA-16"


def test_a_detector_crop_is_square_around_the_box_and_inside_the_frame() -> None:
    crop, clipped = detector_crop((0.5, 0.4, 0.1, 0.2), 1000, 500)  # type: ignore[misc]
    left, top, right, bottom = crop
    assert math.isclose(right - left, bottom - top)  # square
    assert math.isclose(right - left, 0.2 * 500 * 1.4)  # 40% wider than the box's long side
    assert left <= 500 and right >= 600 and top <= 200 and bottom >= 300  # the box is inside
    assert clipped == pytest.approx((0.5, 0.4, 0.1, 0.2))
    # A box in a corner: the crop slides inside the frame; a box over the edge is clipped.
    crop, clipped = detector_crop((0.95, 0.9, 0.1, 0.2), 1000, 500)  # type: ignore[misc]
    assert crop[2] == pytest.approx(1000) and crop[3] == pytest.approx(500)
    assert clipped == pytest.approx((0.95, 0.9, 0.05, 0.1))
    # A one-pixel box still gets context: at least 12% of the frame's height.
    crop, _ = detector_crop((0.5, 0.5, 0.0001, 0.0001), 1000, 500)  # type: ignore[misc]
    assert crop[2] - crop[0] == pytest.approx(60)


@pytest.mark.parametrize(
    "box",
    [
        (0.2, 0.2, 0.0, 0.3),  # zero width
        (0.2, 0.2, 0.3, -0.1),  # negative height
        (1.2, 0.2, 0.3, 0.3),  # right of the frame
        (-0.5, -0.5, 0.4, 0.4),  # above and left of it
        (float("nan"), 0.2, 0.3, 0.3),
        (0.1, float("inf"), 0.3, 0.3),
    ],
)
def test_a_box_with_no_area_in_the_frame_gives_no_view(box: tuple[float, ...]) -> None:
    assert detector_crop(box, 960, 540) is None  # type: ignore[arg-type]
    working = np.full((540, 960, 3), 90, dtype=np.uint8)
    views = cut_views(working, ViewOptions(mode="tiles"), 224, detector=[box])  # type: ignore[list-item]
    assert ViewKind.DETECTOR not in views.kinds and len(views.pixels) == 13


def test_cut_views_appends_one_detector_view_per_box_with_the_boxs_own_box() -> None:
    rng = np.random.default_rng(0)
    working = rng.integers(0, 255, (540, 960, 3), dtype=np.uint8)
    boxes = [(0.1, 0.2, 0.05, 0.1), (0.9, 0.8, 0.3, 0.3)]  # the second runs over the edge
    views = cut_views(working, ViewOptions(mode="tiles"), 224, detector=boxes)
    assert views.kinds[-2:] == (ViewKind.DETECTOR, ViewKind.DETECTOR)
    assert len(views.pixels) == 15 and views.pixels.shape[1:] == (224, 224, 3)
    assert views.boxes[-2] == pytest.approx(boxes[0])
    assert views.boxes[-1] == pytest.approx((0.9, 0.8, 0.1, 0.2))
    # The view's pixels are the crop's: the frame's pixels around the box, scaled up.
    crop, _ = detector_crop(boxes[0], 960, 540)  # type: ignore[misc]
    expected = Image.fromarray(working).resize((224, 224), Image.Resampling.BILINEAR, box=crop)
    assert np.array_equal(views.pixels[-2], np.asarray(expected))


# --- a real run, a real model, a real snow leopard ---------------------------------------

LEOPARD = (720, 400, 1260, 1050)  # where the animal is in IMG_0036 (1920 x 1080), by eye
FRAME = (4000, 2000)
PASTED_AT = (2600, 1100)


@pytest.fixture(scope="module")
def backbone() -> Backbone:
    return load_backbone("efficientnet_lite0", None, "auto")


def _survey(tmp: Path) -> tuple[Path, Path, tuple[float, float, float, float]]:
    """A wide 4000 x 2000 frame of the empty scene with the leopard of a development frame
    pasted at half size (270 x 325 px: 2% of the frame), and the empty scene alone."""
    leopard = Image.open(DEV / "IMG_0036.JPG").convert("RGB").crop(LEOPARD)
    small = leopard.resize((leopard.width // 2, leopard.height // 2))
    scene = Image.open(DEV / "IMG_0049.JPG").convert("RGB").crop((0, 60, 1920, 1020))
    background = scene.resize(FRAME, Image.Resampling.BICUBIC)
    root = tmp / "images" / "CAM"
    root.mkdir(parents=True)
    pasted = background.copy()
    pasted.paste(small, PASTED_AT)
    pasted.save(root / "pasted.jpg", quality=90)
    background.save(root / "empty.jpg", quality=90)
    box = (PASTED_AT[0] / FRAME[0], PASTED_AT[1] / FRAME[1],
           small.width / FRAME[0], small.height / FRAME[1])  # fmt: skip
    return tmp / "images", write_deployments(tmp / "d.csv", [deployment("CAM")]), box


def _run(images: Path, csv: Path, out: Path, backbone: Backbone, **extra: str) -> str:
    options = resolve_run_options(
        {"images_root": images, "deployments": csv, "out_dir": out, "views": "tiles",
         "backbone": "efficientnet_lite0", "batch_size": 8, "progress": False, **extra},
        env={},
    )  # fmt: skip
    log = io.StringIO()
    summary = run_survey(options, log=log, backbone=backbone)
    return log.getvalue() + "\n".join(summary.lines())


def _detections(out: Path) -> dict[str, dict[str, Any]]:
    con = open_store(out)
    rows = con.sql(
        "SELECT file_path, score, view, view_box_x, view_box_y, view_box_width, view_box_height "
        "FROM detections"
    ).fetchall()
    return {Path(r[0]).name: {"score": r[1], "view": r[2], "box": r[3:]} for r in rows}


def _results(path: Path, images: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({
        "info": {"format_version": "1.5", "detector": "md_v5a.0.0.pt"},
        "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
        "images": images,
    }))  # fmt: skip
    return path


@pytest.mark.model
@pytest.mark.skipif(not DEV.is_dir(), reason="../shared/data/snow-leopard-dev absent")
def test_a_megadetector_box_around_a_small_leopard_lifts_its_frame(
    tmp_path: Path, backbone: Backbone, capsys: pytest.CaptureFixture[str]
) -> None:
    images, csv, box = _survey(tmp_path)
    out = tmp_path / "store"
    _run(images, csv, out, backbone)
    tiles = _detections(out)
    assert tiles["pasted.jpg"]["view"] == "tile"

    # Another root's results match nothing: a warning, and nothing is scored again.
    other = _results(tmp_path / "other.json", [
        {"file": "elsewhere/CAM/x.jpg", "detections": [
            {"category": "1", "conf": 0.9, "bbox": [0.1, 0.1, 0.2, 0.2]}]},
    ])  # fmt: skip
    assert main(["import", "megadetector", str(other), "--data", str(out)]) == 0
    assert "none of the files is a frame of this store" in capsys.readouterr().out
    assert "0 classified" in _run(images, csv, out, backbone)

    # The leopard's box (and a person, a weak box, a box for a file the run lacks); the empty
    # frame's only box is under the threshold: likely empty, not scored again.
    md = _results(tmp_path / "md.json", [
        {"file": "CAM/pasted.jpg", "detections": [
            {"category": "1", "conf": 0.93, "bbox": list(box)},
            {"category": "2", "conf": 0.9, "bbox": [0.0, 0.0, 0.3, 0.5]},
            {"category": "1", "conf": 0.1, "bbox": [0.0, 0.5, 0.2, 0.5]}]},
        {"file": "CAM/empty.jpg", "detections": [
            {"category": "1", "conf": 0.05, "bbox": [0.1, 0.1, 0.2, 0.2]}]},
        {"file": "CAM/not-in-the-run.jpg", "detections": [
            {"category": "1", "conf": 0.9, "bbox": [0.1, 0.1, 0.2, 0.2]}]},
    ])  # fmt: skip
    assert main(["import", "megadetector", str(md), "--data", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1 frame(s) have animal boxes at or above 0.2" in printed
    assert "1 likely empty" in printed and "not-in-the-run.jpg" in printed

    log = _run(images, csv, out, backbone)
    assert "1 frame(s) to score again" in log and "1 classified" in log
    after = _detections(out)
    assert after["pasted.jpg"]["view"] == "detector"
    assert after["pasted.jpg"]["box"] == pytest.approx(box, abs=1e-6)  # the detector's box
    # Measured: 0.046 on tiles alone, 0.49 with the box's view.
    assert after["pasted.jpg"]["score"] > max(0.15, 5 * tiles["pasted.jpg"]["score"])
    assert after["empty.jpg"] == tiles["empty.jpg"]

    # Scored once: the next run over the same images has nothing to do.
    assert "0 classified" in _run(images, csv, out, backbone)


@pytest.mark.model
@pytest.mark.spark
@pytest.mark.skipif(not DEV.is_dir(), reason="../shared/data/snow-leopard-dev absent")
@pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java 17")
def test_the_spark_engine_scores_the_detector_view_too(tmp_path: Path, backbone: Backbone) -> None:
    """The boxes travel with their frames to the Spark workers (the same classify_batch)."""
    pytest.importorskip("pyspark", reason="the spark extra is not installed")
    images, csv, box = _survey(tmp_path)
    out = tmp_path / "store"
    _run(images, csv, out, backbone)
    md = _results(tmp_path / "md.json", [
        {"file": "CAM/pasted.jpg", "detections": [
            {"category": "1", "conf": 0.93, "bbox": list(box)}]},
    ])  # fmt: skip
    assert main(["import", "megadetector", str(md), "--data", str(out)]) == 0
    log = _run(images, csv, out, backbone, engine="spark", spark_master="local[1]")
    assert "1 frame(s) to score again" in log
    after = _detections(out)["pasted.jpg"]
    assert after["view"] == "detector" and after["score"] > 0.15
    assert after["box"] == pytest.approx(box, abs=1e-6)
