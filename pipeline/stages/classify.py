"""Classification stage: pooled features in, a per-frame snow-leopard probability out.

`ZeroShotImageNet` needs no training: it reads the backbone's own ImageNet head and reports the
probability of class 289 ("snow leopard"). A trained head plugs into the same `Classifier` slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from pipeline.stages.embed import Backbone
from pipeline.stages.imagenet import SNOW_LEOPARD_CLASS, imagenet_class_names

TOP_K = 5


@dataclass(frozen=True)
class FrameScores:
    """Scores for N frames: `score` is the probability that the frame holds a snow leopard;
    `top5_labels`/`top5_scores` are what the classifier saw instead, best first."""

    score: np.ndarray  # float32 (N,)
    top5_labels: list[list[str]]
    top5_scores: np.ndarray  # float32 (N, 5)


class Classifier(Protocol):
    """Anything that turns a backbone's pooled features into per-frame scores."""

    name: str

    def score(self, features: np.ndarray) -> FrameScores: ...


class ZeroShotImageNet:
    """The zero-shot probability of ImageNet class 289 and the top-5 ImageNet labels."""

    name = "zeroshot-imagenet-289"

    def __init__(self, backbone: Backbone) -> None:
        self.backbone = backbone
        self.class_names = imagenet_class_names()

    def score(self, features: np.ndarray) -> FrameScores:
        """Return FrameScores for float32 (N, feature_dim) features from `backbone.embed`.

        The probabilities are a softmax over all 1000 ImageNet classes. Raises ValueError when
        the features do not have the backbone's width.
        """
        logits = self.backbone.imagenet_logits(features).astype(np.float64)
        # Softmax in float64 with the max subtracted: no overflow, and probabilities that sum
        # to 1 even when one class dominates.
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        top = np.argsort(-probabilities, axis=1, kind="stable")[:, :TOP_K]
        return FrameScores(
            score=probabilities[:, SNOW_LEOPARD_CLASS].astype(np.float32),
            top5_labels=[[self.class_names[i] for i in row] for row in top],
            top5_scores=np.take_along_axis(probabilities, top, axis=1).astype(np.float32),
        )
