"""The zero-shot snow-leopard score from the real efficientnet_lite0's own ImageNet head."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.stages.classify import Classifier, FrameScores, ZeroShotImageNet
from pipeline.stages.decode import decode_frame
from pipeline.stages.embed import load_backbone
from pipeline.stages.imagenet import SNOW_LEOPARD_CLASS, imagenet_class_names

CAMERA_TRAPS = Path(__file__).resolve().parents[2] / "shared/data/camera-traps"
ELEPHANTS = CAMERA_TRAPS / "google-cameratrapai/test_data/african_elephants.jpg"
OCELOT = CAMERA_TRAPS / "google-cameratrapai/test_data/ocelot.jpg"
needs_realdata = pytest.mark.skipif(not CAMERA_TRAPS.is_dir(), reason=f"{CAMERA_TRAPS} absent")

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def classifier() -> ZeroShotImageNet:
    return ZeroShotImageNet(load_backbone("efficientnet_lite0", device="cpu"))


def score_frames(classifier: ZeroShotImageNet, frames: np.ndarray) -> FrameScores:
    return classifier.score(classifier.backbone.embed(frames))


def test_class_289_is_the_snow_leopard() -> None:
    names = imagenet_class_names()
    assert len(names) == 1000
    assert names[SNOW_LEOPARD_CLASS] == "snow leopard"


def test_synthetic_frames_get_probabilities(classifier: ZeroShotImageNet) -> None:
    rng = np.random.default_rng(11)
    frames = np.stack(
        [
            rng.integers(0, 256, (224, 224, 3), dtype=np.uint8),
            np.full((224, 224, 3), 255, dtype=np.uint8),  # an overexposed, all-white frame
            np.zeros((224, 224, 3), dtype=np.uint8),  # a night frame with no IR
        ]
    )
    scores = score_frames(classifier, frames)

    assert scores.score.dtype == np.float32 and scores.score.shape == (3,)
    assert np.isfinite(scores.score).all()
    assert ((scores.score >= 0) & (scores.score <= 1)).all()
    assert scores.top5_scores.dtype == np.float32 and scores.top5_scores.shape == (3, 5)
    assert all(len(labels) == 5 for labels in scores.top5_labels)
    # Best first, parts of one distribution: each row is sorted and sums to at most 1.
    assert (np.diff(scores.top5_scores, axis=1) <= 0).all()
    assert (scores.top5_scores.sum(axis=1) <= 1 + 1e-5).all()
    # The snow-leopard probability is one of the 1000: never above the top-1.
    assert (scores.score <= scores.top5_scores[:, 0] + 1e-7).all()
    for row, labels in enumerate(scores.top5_labels):
        if "snow leopard" in labels:
            assert scores.score[row] == scores.top5_scores[row, labels.index("snow leopard")]


def test_logits_softmax_sums_to_one(classifier: ZeroShotImageNet) -> None:
    frames = np.random.default_rng(5).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    logits = classifier.backbone.imagenet_logits(classifier.backbone.embed(frames))
    shifted = np.exp(logits.astype(np.float64) - logits.max(axis=1, keepdims=True))
    probabilities = shifted / shifted.sum(axis=1, keepdims=True)
    scores = score_frames(classifier, frames)
    np.testing.assert_allclose(scores.score, probabilities[:, SNOW_LEOPARD_CLASS], rtol=1e-5)
    np.testing.assert_allclose(
        scores.top5_scores, np.sort(probabilities, axis=1)[:, ::-1][:, :5], rtol=1e-5
    )


def test_a_batch_where_every_frame_failed_scores_nothing(classifier: ZeroShotImageNet) -> None:
    scores = classifier.score(np.empty((0, classifier.backbone.feature_dim), dtype=np.float32))
    assert scores.score.shape == (0,) and scores.top5_scores.shape == (0, 5)
    assert scores.top5_labels == []


def test_zero_shot_fits_the_classifier_slot(classifier: ZeroShotImageNet) -> None:
    slot: Classifier = classifier
    assert slot.name == "zeroshot-imagenet-289"
    with pytest.raises(ValueError):
        slot.score(np.zeros((1, 7), dtype=np.float32))


@pytest.mark.realdata
@needs_realdata
def test_real_elephant_frame_is_an_elephant_not_a_snow_leopard(
    classifier: ZeroShotImageNet,
) -> None:
    frame = decode_frame(ELEPHANTS)
    scores = score_frames(classifier, frame.pixels[None])
    elephants = {"tusker", "African elephant", "Indian elephant"}
    assert elephants & set(scores.top5_labels[0]), scores.top5_labels[0]
    assert scores.score[0] < 0.01


@pytest.mark.realdata
@needs_realdata
def test_real_spotted_cat_scores_above_an_elephant(classifier: ZeroShotImageNet) -> None:
    frames = np.stack([decode_frame(OCELOT).pixels, decode_frame(ELEPHANTS).pixels])
    scores = score_frames(classifier, frames)
    spotted_cats = {"leopard", "jaguar", "cheetah", "snow leopard"}
    assert spotted_cats & set(scores.top5_labels[0]), scores.top5_labels[0]
    assert scores.score[0] > 5 * scores.score[1]
