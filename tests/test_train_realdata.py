"""The trained head against the zero-shot baseline on real camera-trap photographs: cats against
everything else, tested on stations and sources the head never saw (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.cats_vs_rest import CATS, picture_rows, write_labels
from pipeline.stages.embed import load_backbone
from pipeline.training.evaluate import EvaluateOptions, evaluate
from pipeline.training.splits import grouped_holdout
from pipeline.training.train import TrainOptions, train_model
from tests.helpers import SHARED_PHOTOS

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.model,
    pytest.mark.skipif(not SHARED_PHOTOS.exists(), reason="../shared/data/camera-traps is absent"),
]


def test_trained_head_beats_zero_shot_on_unseen_stations(tmp_path: Path) -> None:
    rows = picture_rows(SHARED_PHOTOS)
    groups = [r["deployment"] for r in rows]
    truth = np.array([r["label"] in CATS for r in rows])
    test = grouped_holdout(groups, truth.astype(int), 0.3, seed=0)
    assert not {g for g, t in zip(groups, test, strict=True) if t} & {
        g for g, t in zip(groups, test, strict=True) if not t
    }
    train_csv = write_labels(
        tmp_path / "train.csv", [r for r, t in zip(rows, test, strict=True) if not t]
    )
    test_csv = write_labels(
        tmp_path / "test.csv", [r for r, t in zip(rows, test, strict=True) if t]
    )
    lite0 = load_backbone("efficientnet_lite0", device="cpu")
    common = {"images_root": SHARED_PHOTOS, "positive": CATS, "progress": False}
    train_model(
        TrainOptions(
            labels=train_csv,
            out_dir=tmp_path / "model",
            backbone="efficientnet_lite0",
            flip=False,
            **common,
        ),
        backbone=lite0,
    )
    reports = {
        name: evaluate(
            EvaluateOptions(labels=test_csv, out_dir=tmp_path / name, **extra, **common),
            backbone=lite0,
        ).report
        for name, extra in (
            ("zero_shot", {"zero_shot": True, "backbone": "efficientnet_lite0"}),
            ("trained", {"model_dir": tmp_path / "model"}),
        )
    }
    zero, trained = reports["zero_shot"], reports["trained"]
    assert trained["data"]["seen_in_training"] == 0  # no picture on both sides
    assert trained["frame"]["positives"] >= 10
    assert trained["frame"]["average_precision"] > zero["frame"]["average_precision"]
    assert trained["frame"]["recall"] > zero["frame"]["recall"]  # ImageNet 289 is no cat detector
    assert trained["burst"]["max"]["recall"] >= 0.8
