"""`uncia localize` and `uncia identify` end to end on a small store made by `uncia run`."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline.store.matches import record_match_review
from tests.helpers import deployment, uncia, write_deployments
from tests.localize_fixtures import coat_jpeg

pytestmark = pytest.mark.model
T0 = datetime(2024, 3, 1, 6, 0, 0)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three frames: two of one generated individual (one mirrored), one of another."""
    base = tmp_path_factory.mktemp("identify")
    folder = base / "images" / "CAM-A"
    folder.mkdir(parents=True)
    for i, (who, seed, mirror) in enumerate([(1, 11, False), (1, 12, True), (2, 13, False)]):
        (folder / f"IMG_{i:04d}.JPG").write_bytes(coat_jpeg(who, seed, mirror))
    csv = write_deployments(base / "deployments.csv", [deployment("CAM-A")])
    out = base / "out"
    uncia(
        "run", base / "images", "--deployments", csv, "--out", out,
        "--backbone", "efficientnet_lite0", "--no-progress",
    )  # fmt: skip
    return out


def test_localize_then_identify_writes_boxes_crops_matches_and_individuals(store: Path) -> None:
    result = uncia(
        "localize", "--data", store, "--method", "gradcam", "--threshold", "0",
        "--target-class", "288",
    )  # fmt: skip
    assert "localized 3 frame(s)" in result.stdout
    rows = pq.read_table(store / "parquet" / "localizations.parquet").to_pylist()
    assert len(rows) == 3 and {r["method"] for r in rows} == {"gradcam"}
    for row in rows:
        assert row["failure"] is None and row["target"] == "imagenet:288"
        assert 0 <= row["box_x"] < row["box_x"] + row["box_width"] <= 1.0001
        assert 0 <= row["box_y"] < row["box_y"] + row["box_height"] <= 1.0001
        with Image.open(store / row["crop_path"]) as crop:
            assert crop.format == "JPEG" and min(crop.size) > 16
        with Image.open(store / row["heatmap_path"]) as heat:
            assert heat.format == "PNG"
    # A second run skips what is done; LIME adds its own rows beside Grad-CAM's.
    again = uncia("localize", "--data", store, "--method", "gradcam", "--threshold", "0",
                  "--target-class", "288")  # fmt: skip
    assert "localized 0 frame(s)" in again.stdout and "3 already done" in again.stdout
    lime = uncia("localize", "--data", store, "--threshold", "0", "--target-class", "288",
                 "--samples", "20", "--limit", "1")  # fmt: skip
    assert "localized 1 frame(s)" in lime.stdout
    both = pq.read_table(store / "parquet" / "localizations.parquet").to_pylist()
    assert len(both) == 4
    # Each row keeps pictures of its own box: LIME's do not overwrite Grad-CAM's.
    lime_row = next(r for r in both if r["method"] == "lime")
    gradcam_row = next(
        r for r in both if r["method"] == "gradcam" and r["image_id"] == lime_row["image_id"]
    )
    assert lime_row["crop_path"] != gradcam_row["crop_path"]
    assert gradcam_row == next(r for r in rows if r["image_id"] == lime_row["image_id"])
    for row in (lime_row, gradcam_row):
        assert (store / row["crop_path"]).is_file() and (store / row["heatmap_path"]).is_file()

    identify = uncia("identify", "--data", store)
    assert "matched 3 crop(s)" in identify.stdout
    matches = pq.read_table(store / "parquet" / "matches.parquet").to_pylist()
    assert {m["query_id"] for m in matches} <= {r["image_id"] for r in rows}
    individuals = pq.read_table(store / "parquet" / "individuals.parquet").to_pylist()
    assert len(individuals) == 3 and all(i["individualID"].startswith("ind-") for i in individuals)

    # A person's decision joins two crops for good, whatever the matcher proposed.
    ids = sorted(r["image_id"] for r in rows)
    record_match_review(store, ids[0], ids[2], "accept", "tester", T0 + timedelta(hours=1))
    uncia("identify", "--data", store, "--confirmed-only")
    after = {
        i["image_id"]: i
        for i in pq.read_table(store / "parquet" / "individuals.parquet").to_pylist()
    }
    assert after[ids[0]]["individualID"] == after[ids[2]]["individualID"]
    assert after[ids[0]]["status"] == "confirmed" and after[ids[0]]["sightings"] == 2
    assert after[ids[1]]["individualID"] != after[ids[0]]["individualID"]


def test_localize_on_a_folder_without_a_store_is_one_clear_line(tmp_path: Path) -> None:
    result = uncia("localize", "--data", tmp_path, check=False)
    assert result.returncode == 2
    assert "holds no detections" in result.stderr and "Traceback" not in result.stderr
    result = uncia("identify", "--data", tmp_path, check=False)
    assert result.returncode == 2 and "holds no crops" in result.stderr
