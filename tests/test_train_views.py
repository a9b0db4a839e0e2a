"""Training and evaluating on views: a head learnt by multiple-instance learning on tiles finds
a leopard that fills 1% of the frame better than a head on whole frames; the view embeddings
are cached by content and layout; `uncia evaluate --compare-views` reports whole frame, tiles
and tiles+motion side by side. Generated JPEGs, the real offline efficientnet_lite0."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline.errors import ConfigError
from pipeline.stages.embed import Backbone, load_backbone
from pipeline.stages.tracks import best_view_per_frame
from pipeline.stages.views import ViewOptions
from pipeline.store.view_cache import ViewEmbeddingCache, embed_views
from pipeline.training.head import model_run_defaults
from pipeline.training.labels import visit_ids
from pipeline.training.metrics import recall_at_false_positive_rate
from pipeline.training.train import TrainOptions
from tests.helpers import scene, with_animal
from tests.train_fixtures import Survey, make_patch_survey
from tests.train_fixtures import uncia_in_process as uncia


def test_recall_at_one_percent_false_positives() -> None:
    negatives = np.linspace(0.0, 0.5, 200)  # 1% of 200: the two highest may be flagged
    positives = np.array([0.9, 0.499, 0.495, 0.3])
    truth = np.r_[np.zeros(200, bool), np.ones(4, bool)]
    scores = np.r_[negatives, positives]
    # The third-highest negative is 0.4925: 0.9, 0.499 and 0.495 lie above it.
    assert recall_at_false_positive_rate(truth, scores, 0.01) == pytest.approx(3 / 4)
    assert recall_at_false_positive_rate(truth[:100], scores[:100], 0.01) is None
    few = np.array([False, False, True, True])  # two negatives: 1% of them is none
    assert recall_at_false_positive_rate(few, np.array([0.2, 0.6, 0.6, 0.7]), 0.01) == 0.5


def test_visits_are_bursts_or_the_deployment_of_frames_without_time() -> None:
    when = datetime(2024, 1, 1)
    visits = visit_ids(["A", "A", "B", "B"], [when, None, None, None], ["A/1", "A/2", "B/3", "B/4"])
    assert visits[0] == "A/1"
    assert visits[2] == visits[3] != visits[1]


def test_best_view_per_frame_takes_the_highest_and_the_earliest_of_ties() -> None:
    values = np.array([0.1, 0.7, 0.7, 0.2, 0.9, 0.3])
    bag = np.array([0, 0, 0, 2, 2, 2])
    assert best_view_per_frame(values, bag, 4).tolist() == [1, -1, 4, -1]


def test_views_with_multiclass_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--multiclass needs --views whole"):
        TrainOptions(images_root=tmp_path, out_dir=tmp_path, multiclass=True, views="tiles")
    with pytest.raises(ConfigError, match="tile grid"):
        TrainOptions(images_root=tmp_path, out_dir=tmp_path, views="tiles", tile_grid="4")


@pytest.fixture(scope="module")
def lite0() -> Backbone:
    return load_backbone("efficientnet_lite0", device="cpu")


def _burst(folder: Path) -> list[str]:
    """Three frames 2 s apart of a still scene with an animal walking across."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, left in enumerate((100, 400, 700)):
        exif = Image.Exif()
        exif.get_ifd(0x8769)[36867] = (datetime(2024, 5, 1, 6) + timedelta(seconds=2 * i)).strftime(
            "%Y:%m:%d %H:%M:%S"
        )
        buffer = io.BytesIO()
        Image.fromarray(with_animal(scene(1920, 1080), left, 500, 90)).save(
            buffer, "JPEG", quality=90, exif=exif
        )
        paths.append(folder / f"IMG_{i}.JPG")
        paths[-1].write_bytes(buffer.getvalue())
    return [str(p) for p in paths]


@pytest.mark.model
def test_view_cache_is_keyed_by_content_and_layout(lite0: Backbone, tmp_path: Path) -> None:
    paths = _burst(tmp_path / "frames")
    deployments = ["CAM"] * 3
    tiles = ViewOptions(mode="tiles")
    cache = ViewEmbeddingCache(tmp_path / "cache", lite0, tiles)
    first = embed_views(paths, deployments, lite0, cache, tiles, flips=True)
    assert (first.decoded, first.hits) == (3, 0)
    assert first.features.shape == (3 * 13, 1280) and first.flipped is not None
    assert first.kinds.tolist() == (["whole"] + ["tile"] * 12) * 3
    second = embed_views(paths, deployments, lite0, cache, tiles, flips=True)
    assert (second.decoded, second.hits) == (0, 3)
    np.testing.assert_array_equal(first.features, second.features)
    np.testing.assert_array_equal(first.boxes, second.boxes)
    # Another layout is another key: cut again.
    coarse = ViewOptions(mode="tiles", grids="3x2")
    other = embed_views(
        paths, deployments, lite0, ViewEmbeddingCache(tmp_path / "cache", lite0, coarse), coarse
    )
    assert other.decoded == 3 and other.features.shape == (3 * 7, 1280)
    # Motion crops depend on the burst: the frames are decoded again, the tiles are not re-cut.
    motion = ViewOptions(mode="tiles+motion")
    moving = embed_views(paths, deployments, lite0, cache, motion, flips=True)
    assert moving.hits == 3 and moving.decoded == 3
    kinds = moving.kinds.tolist()
    assert kinds.count("motion") >= 3 and kinds.count("tile") == 36
    for i in range(3):  # each frame's motion crop holds its own animal
        boxes = moving.boxes[(moving.frame == i) & (moving.kinds == "motion")]
        left = (100, 400, 700)[i] / 1920
        assert any(b[0] <= left + 0.02 and left + 0.06 <= b[0] + b[2] for b in boxes)


@pytest.fixture(scope="module")
def patch_survey(tmp_path_factory: pytest.TempPathFactory) -> Survey:
    return make_patch_survey(tmp_path_factory.mktemp("patch"))


@pytest.fixture(scope="module")
def view_models(patch_survey: Survey, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A head on whole frames and one on 4x3 tiles (trained twice), through the CLI."""
    models = tmp_path_factory.mktemp("view-models")
    common = [
        "train",
        "--images",
        patch_survey.root,
        "--labels",
        patch_survey.labels,
        "--backbone",
        "efficientnet_lite0",
        "--folds",
        "3",
        "--test-fraction",
        "0.34",
        "--no-flip",
        "--no-progress",
    ]
    out = {
        "whole": uncia(*common, "--out", models / "whole").stdout,
        "tiles": uncia(*common, "--out", models / "tiles", "--views", "tiles").stdout,
        "again": uncia(*common, "--out", models / "tiles", "--views", "tiles").stdout,
    }
    return {"dir": models, "stdout": out}


@pytest.mark.model
def test_views_head_finds_the_small_leopard_the_whole_frame_head_misses(
    view_models: dict, patch_survey: Survey
) -> None:
    models = view_models["dir"]
    cards = {v: json.loads((models / v / "model.json").read_text()) for v in ("whole", "tiles")}
    assert cards["whole"]["views"] == {"views": "whole"}
    assert cards["tiles"]["views"] == {
        "views": "tiles",
        "tile_grid": "4x3",
        "tile_overlap": 0.25,
        "working_side": 960,
    }
    # `uncia run --model` cuts frames as the head was trained.
    assert model_run_defaults(models / "tiles")["views"] == "tiles"
    assert model_run_defaults(models / "tiles")["tile_grid"] == "4x3"
    for split in ("validation", "test"):
        whole = cards["whole"]["metrics"][split]["frame"]["average_precision"]
        tiles = cards["tiles"]["metrics"][split]["frame"]["average_precision"]
        assert tiles >= 0.95 and tiles > whole + 0.05, (split, whole, tiles)
    n = patch_survey.n_frames
    assert f"0 from cache, {n} decoded" in view_models["stdout"]["tiles"]
    assert f"{n} from cache, 0 decoded" in view_models["stdout"]["again"]
    parts = list((models / ".uncia-cache").glob("efficientnet_lite0-*-views-4x3-o0.25-w960-c2/*"))
    assert parts
    frames = pq.read_table(models / "tiles" / "training_frames.parquet")
    assert frames.num_rows == n and set(frames.column("split").to_pylist()) == {"train", "test"}


@pytest.mark.model
def test_evaluate_compares_whole_frame_tiles_and_motion_side_by_side(
    view_models: dict, patch_survey: Survey, tmp_path: Path
) -> None:
    models = view_models["dir"]
    result = uncia(
        "evaluate",
        "--model",
        models / "tiles",
        "--images",
        patch_survey.root,
        "--labels",
        patch_survey.labels,
        "--out",
        tmp_path / "report",
        "--compare-views",
        "--cache",
        models / ".uncia-cache",
        "--no-progress",
    )
    assert "views tiles+motion:" in result.stdout
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["model"]["views"]["views"] == "tiles"  # the model's own views by default
    compare = report["compare_views"]
    assert set(compare) == {"whole", "tiles", "tiles+motion"}
    positives = len(patch_survey.leopard_files)
    for block in compare.values():
        assert block["threshold"] == pytest.approx(report["threshold"])
        assert block["frame"]["n"] == patch_survey.n_frames
        assert block["frame"]["positives"] == positives
        assert block["visit"]["n"] == patch_survey.n_frames  # an hour apart: one visit each
        assert sum(block["best_view_of_positives"].values()) == positives
    assert compare["whole"]["best_view_of_positives"] == {"whole": positives}
    # The primary figures are the tiles' (the model's views).
    assert report["frame"]["average_precision"] == pytest.approx(
        compare["tiles"]["frame"]["average_precision"]
    )
    assert (
        compare["tiles"]["frame"]["recall_at_1pct_fp"]
        > compare["whole"]["frame"]["recall_at_1pct_fp"]
    )
    assert "Views side by side" in (tmp_path / "report" / "report.html").read_text()
    frames = pq.read_table(tmp_path / "report" / "frames.parquet").to_pylist()
    assert {f["view"] for f in frames} <= {"whole", "tile"} and any(
        f["view"] == "tile" for f in frames
    )
