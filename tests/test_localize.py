"""Localization: LIME and Grad-CAM boxes land on the object that drives the score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from pipeline.errors import ConfigError
from pipeline.runs.localize_run import LocalizeWorkerConfig, localize_partition
from pipeline.stages.embed import Backbone, load_backbone
from pipeline.stages.localize import (
    GradCamOptions,
    ImageNetTarget,
    LimeOptions,
    box_from_heatmap,
    box_iou,
    gradcam_explain,
    lime_explain,
    score_function,
)
from tests.localize_fixtures import PING_PONG_BALL, disk_frame, grass


@pytest.fixture(scope="module")
def lite0() -> Backbone:
    return load_backbone("efficientnet_lite0", device="cpu", precision="fp32")


def test_box_from_heatmap_takes_the_hottest_blob_in_normalized_coordinates() -> None:
    heat = np.zeros((100, 200), np.float32)
    heat[10:30, 20:60] = 1.0  # the hot blob: x 20..60 of 200, y 10..30 of 100
    heat[70:72, 150:152] = 0.9  # a small warm speck elsewhere
    assert box_from_heatmap(heat, 0.5) == pytest.approx((0.1, 0.1, 0.2, 0.2))
    assert box_from_heatmap(np.zeros((10, 10))) == (0.0, 0.0, 1.0, 1.0)


def test_box_iou() -> None:
    assert box_iou((0, 0, 0.5, 0.5), (0, 0, 0.5, 0.5)) == pytest.approx(1.0)
    assert box_iou((0, 0, 0.5, 0.5), (0.5, 0.5, 0.5, 0.5)) == 0.0
    assert box_iou((0, 0, 0.5, 0.5), (0.25, 0, 0.5, 0.5)) == pytest.approx(1 / 3)


def test_lime_finds_the_region_a_known_score_depends_on() -> None:
    """A score that is the visible fraction of a red square: LIME must box the square."""
    frame = grass()
    frame[40:110, 120:190] = (220, 30, 30)
    truth = (120 / 224, 40 / 224, 70 / 224, 70 / 224)

    def red_visible(batch: np.ndarray) -> np.ndarray:
        red = (batch[:, 40:110, 120:190, 0] > 200) & (batch[:, 40:110, 120:190, 1] < 60)
        return red.mean(axis=(1, 2))

    explanation = lime_explain(frame, red_visible, LimeOptions(samples=120))
    assert explanation.score == pytest.approx(1.0)
    assert box_iou(explanation.box, truth) >= 0.5
    assert explanation.heatmap.shape == (224, 224) and explanation.heatmap.max() == 1.0


def test_lime_options_refuse_nonsense() -> None:
    with pytest.raises(ConfigError):
        LimeOptions(samples=2)
    with pytest.raises(ConfigError):
        GradCamOptions(box_fraction=1.5)


@pytest.mark.model
def test_real_model_boxes_land_on_the_one_obvious_object(lite0: Backbone) -> None:
    frame, truth = disk_frame()
    target = ImageNetTarget(lite0, PING_PONG_BALL)
    (cam,) = gradcam_explain(frame[None], lite0, target)
    lime = lime_explain(frame, score_function(lite0, target), LimeOptions(samples=64))
    assert cam.score > 0.3 and lime.score == pytest.approx(cam.score, abs=0.05)
    assert box_iou(lime.box, truth) >= 0.5
    # Grad-CAM's 7x7 map is coarse: its box must cover the disk and stay well short of the frame.
    x, y, w, h = cam.box
    assert x <= truth[0] + 0.05 and y <= truth[1] + 0.05
    assert x + w >= truth[0] + truth[2] - 0.05 and y + h >= truth[1] + truth[3] - 0.05
    assert w * h < 0.4
    # Moving the object moves the box.
    moved, moved_truth = disk_frame(centre=(160, 60))
    (moved_cam,) = gradcam_explain(moved[None], lite0, target)
    assert box_iou(moved_cam.box, moved_truth) > box_iou(moved_cam.box, truth)


@pytest.mark.model
def test_engine_partition_function_boxes_each_frame_and_keeps_bad_files_as_rows(
    tmp_path: Path,
) -> None:
    """`localize_partition` is what Spark's mapInArrow would run: batches in, boxes out."""
    frame, truth = disk_frame()
    good = tmp_path / "disk.png"
    Image.fromarray(frame).save(good)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a picture")
    batch = pa.RecordBatch.from_pylist(
        [{"image_id": "good", "file_path": str(good)}, {"image_id": "bad", "file_path": str(bad)}]
    )
    cfg = LocalizeWorkerConfig(
        backbone="efficientnet_lite0", weights=None, device="cpu", method="gradcam",
        target_classes=(PING_PONG_BALL,),
    )  # fmt: skip
    rows = {r["image_id"]: r for b in localize_partition([batch], cfg) for r in b.to_pylist()}
    assert rows["bad"]["failure"] and rows["bad"]["box_x"] is None
    box = (rows["good"]["box_x"], rows["good"]["box_y"], rows["good"]["box_width"],
           rows["good"]["box_height"])  # fmt: skip
    assert rows["good"]["failure"] is None and box_iou(box, truth) > 0.3
