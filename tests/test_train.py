"""Training pieces in process: grouped splits that never leak, the embedding cache, labels,
thresholds, the model folder, multi-class heads and extra folders (real efficientnet_lite0)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.errors import InputError, ModelError
from pipeline.schema import EMBEDDINGS, EVALUATED_FRAMES, TRAINING_FRAMES, VIEW_EMBEDDINGS
from pipeline.stages.decode import decode_frame
from pipeline.stages.embed import Backbone, load_backbone
from pipeline.store.embedding_cache import EmbeddingCache, embed_files
from pipeline.training.evaluate import EvaluateOptions, evaluate
from pipeline.training.head import HEAD_NPZ, TrainedHead, TrainedModel, load_model
from pipeline.training.labels import NO_DEPLOYMENT, read_labelled_frames
from pipeline.training.metrics import threshold_for_recall
from pipeline.training.splits import grouped_folds, grouped_holdout
from pipeline.training.train import TrainOptions, train_model
from tests.train_fixtures import make_survey, plain_jpeg, spotted_jpeg

TRAINING_DOC = Path(__file__).resolve().parents[1] / "docs" / "training.md"


@pytest.mark.parametrize("schema", [EMBEDDINGS, VIEW_EMBEDDINGS, TRAINING_FRAMES, EVALUATED_FRAMES])
def test_training_file_columns_are_documented(schema: pa.Schema) -> None:
    documented = set(re.findall(r"^\| `([^`]+)`", TRAINING_DOC.read_text(), flags=re.M))
    missing = [name for name in schema.names if name not in documented]
    assert not missing, f"undocumented in docs/training.md: {missing}"


@pytest.mark.parametrize("seed", range(40))
def test_grouped_splits_never_put_a_group_on_both_sides(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_groups = int(rng.integers(2, 30))
    sizes = rng.integers(1, 12, n_groups)
    groups = np.repeat([f"g{i}" for i in range(n_groups)], sizes)
    rng.shuffle(groups)
    classes = (rng.random(groups.size) < rng.uniform(0.05, 0.5)).astype(int)
    n_folds = int(rng.integers(2, 8))
    folds = grouped_folds(list(groups), list(classes), n_folds, seed)
    assert folds.shape == groups.shape
    assert set(folds.tolist()) == set(range(min(n_folds, n_groups)))  # no empty fold
    for g in set(groups.tolist()):
        assert len(set(folds[groups == g].tolist())) == 1
    held = grouped_holdout(list(groups), list(classes), float(rng.uniform(0.1, 0.5)), seed)
    assert held.any() and not held.all()
    assert not set(groups[held].tolist()) & set(groups[~held].tolist())


def test_one_group_cannot_be_split() -> None:
    with pytest.raises(InputError, match="at least two deployments"):
        grouped_folds(["a"] * 5, [0, 1, 0, 1, 0], 3)


@pytest.mark.parametrize("seed", range(20))
def test_threshold_reaches_the_target_recall_and_no_higher_one_does(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.random(200) < 0.1
    truth[0] = True
    scores = np.clip(rng.normal(0.3 + 0.3 * truth, 0.2), 0, 1)
    target = float(rng.uniform(0.5, 1.0))
    t = threshold_for_recall(truth, scores, target)
    assert np.mean(scores[truth] >= t) >= target
    higher = scores[truth][scores[truth] > t]
    if higher.size:
        assert np.mean(scores[truth] >= higher.min()) < target


def test_labels_from_a_folder_tree_and_csv_errors(tmp_path: Path) -> None:
    for label, dep in (("snow_leopard", "CAM-1"), ("ibex", "CAM-2"), ("ibex", None)):
        folder = tmp_path / "tree" / label / (dep or "")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{dep or 'loose'}.jpg").write_bytes(plain_jpeg(1))
    table = read_labelled_frames(tmp_path / "tree")
    rows = {r["relative_path"]: (r["label"], r["deployment"]) for r in table.to_pylist()}
    assert rows == {
        "ibex/CAM-2/CAM-2.jpg": ("ibex", "CAM-2"),
        "ibex/loose.jpg": ("ibex", NO_DEPLOYMENT),
        "snow_leopard/CAM-1/CAM-1.jpg": ("snow_leopard", "CAM-1"),
    }
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\na.jpg,ibex\n")
    with pytest.raises(InputError, match="missing column"):
        read_labelled_frames(tmp_path, bad)
    bad.write_text("file,label\na.jpg,ibex\na.jpg,ibex\n")
    with pytest.raises(InputError, match="line 3.*twice"):
        read_labelled_frames(tmp_path, bad)


@pytest.fixture(scope="module")
def lite0() -> Backbone:
    return load_backbone("efficientnet_lite0", device="cpu")


@pytest.mark.model
def test_embedding_cache_serves_second_call_and_keys_by_weights(
    lite0: Backbone, tmp_path: Path
) -> None:
    files = []
    for i in range(3):
        files.append(tmp_path / f"f{i}.jpg")
        files[-1].write_bytes(spotted_jpeg(i))
    (tmp_path / "copy.jpg").write_bytes(files[0].read_bytes())  # same content, other name
    good = spotted_jpeg(9)
    (tmp_path / "cut.jpg").write_bytes(good[: len(good) // 2])
    paths = [str(p) for p in [*files, tmp_path / "copy.jpg", tmp_path / "cut.jpg"]]
    cache = EmbeddingCache(tmp_path / "cache", lite0.name, lite0.weights_sha256, 224)
    first = embed_files(paths, lite0, cache, flips=True)
    assert (first.decoded, first.hits, first.failed) == (4, 0, 1)  # the copy is decoded once
    assert "truncated" in (first.failure[4] or "")
    np.testing.assert_array_equal(first.features[0], first.features[3])
    assert not np.allclose(first.features[0], first.flipped[0])  # a mirror image differs
    second = embed_files(paths, lite0, cache, flips=True)
    assert (second.decoded, second.hits, second.failed) == (0, 5, 1)  # failures are cached too
    np.testing.assert_array_equal(np.nan_to_num(first.features), np.nan_to_num(second.features))
    np.testing.assert_array_equal(np.nan_to_num(first.flipped), np.nan_to_num(second.flipped))
    other = EmbeddingCache(tmp_path / "cache", lite0.name, "0" * 64, 224)
    assert other.lookup([first.content_sha256[0]]).num_rows == 0  # other weights: no hit


@pytest.mark.model
def test_multiclass_head_with_extra_folders(lite0: Backbone, tmp_path: Path) -> None:
    survey = make_survey(tmp_path / "s", n_deployments=4, frames_per_burst=2, seed=3)
    rows = list(csv.DictReader(survey.labels.open()))
    for row in rows:  # the second empty burst of each camera becomes "ibex"
        if "/IMG_2" in row["file"]:
            row["label"] = "ibex"
    labels = tmp_path / "labels3.csv"
    with labels.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["file", "label"])
        writer.writeheader()
        writer.writerows(rows)
    extra_pos, extra_neg = tmp_path / "xp", tmp_path / "xn"
    for folder, maker in ((extra_pos, spotted_jpeg), (extra_neg, plain_jpeg)):
        folder.mkdir()
        for i in range(3):
            (folder / f"x{i}.jpg").write_bytes(maker(500 + i))
    options = TrainOptions(
        images_root=survey.root,
        labels=labels,
        out_dir=tmp_path / "model",
        backbone="efficientnet_lite0",
        multiclass=True,
        extra_positive=(extra_pos,),
        extra_negative=(extra_neg,),
        extra_weight=0.5,
        group_by="burst",
        folds=3,
        test_fraction=0.25,
        progress=False,
    )
    summary = train_model(options, backbone=lite0)
    model = load_model(tmp_path / "model")
    assert model.head.classes == ("empty", "ibex", "other", "snow_leopard")
    assert model.card["multiclass"] and "temperature" in model.card["calibration"]
    frames = pq.read_table(tmp_path / "model" / "training_frames.parquet").to_pylist()
    extras = [f for f in frames if f["source"] != "survey"]
    assert len(extras) == 6 and {f["split"] for f in extras} == {"train"}  # never tested on
    assert {f["label"] for f in extras} == {"snow_leopard", "other"}
    assert summary.name == model.name
    tested = {f["burst_id"] for f in frames if f["split"] == "test"}
    assert tested and not tested & {f["burst_id"] for f in frames if f["split"] == "train"}
    report = evaluate(
        EvaluateOptions(
            images_root=survey.root,
            labels=labels,
            out_dir=tmp_path / "report",
            model_dir=tmp_path / "model",
            progress=False,
        ),
        backbone=lite0,
    )
    assert report.decoded == 0  # train's cache sits beside the report folder too
    confusion = report.report["class_confusion"]
    assert confusion["classes"] == list(model.head.classes)
    assert sum(map(sum, confusion["matrix"])) == survey.n_frames
    assert "label × predicted class" in (tmp_path / "report" / "report.html").read_text()
    head = TrainedHead(model, lite0)
    pixels = np.stack(
        [decode_frame(f).pixels for f in (extra_pos / "x0.jpg", extra_neg / "x0.jpg")]
    )
    scores = head.score(lite0.embed(pixels))
    assert scores.score[0] > scores.score[1]
    assert scores.top5_labels[0][0] == "snow_leopard"
    np.testing.assert_allclose(scores.top5_scores.sum(axis=1), 1.0, atol=1e-5)  # 4 classes


@pytest.mark.model
def test_model_folder_refuses_other_weights_and_tampering(lite0: Backbone, tmp_path: Path) -> None:
    survey = make_survey(tmp_path / "s", n_deployments=3, frames_per_burst=2, seed=5)
    train_model(
        TrainOptions(
            images_root=survey.root,
            labels=survey.labels,
            out_dir=tmp_path / "m",
            backbone="efficientnet_lite0",
            flip=False,
            test_fraction=0.0,
            folds=3,
            progress=False,
        ),
        backbone=lite0,
    )
    model = load_model(tmp_path / "m")
    assert TrainedHead(model, lite0).name == model.name
    other = TrainedModel(model.head, {**model.card, "weights_sha256": "f" * 64})
    with pytest.raises(ModelError, match="trained on efficientnet_lite0"):
        TrainedHead(other, lite0)
    npz = tmp_path / "m" / HEAD_NPZ
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one changed coefficient byte
    npz.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match"):
        load_model(tmp_path / "m")
    with pytest.raises(ModelError, match="not a model folder"):
        load_model(tmp_path)
    card = json.loads((tmp_path / "m" / "model.json").read_text())
    assert card["metrics"]["test"] is None  # --test-fraction 0: nothing held out
