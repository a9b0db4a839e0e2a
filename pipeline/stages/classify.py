"""Classification stage: pooled features in, a per-frame snow-leopard probability out.

`score_views` scores every view of a frame (pipeline/stages/views.py) and keeps the best one,
or the best evidence of a moving region tracked through its burst (pipeline/stages/tracks.py).

`ZeroShotImageNet` needs no training: it reads the backbone's own ImageNet head and reports the
probability of class 289 ("snow leopard"). A trained head plugs into the same `Classifier` slot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from pipeline.schema import ViewKind
from pipeline.stages.embed import Backbone, embed_pixels
from pipeline.stages.imagenet import SNOW_LEOPARD_CLASS, imagenet_class_names
from pipeline.stages.tracks import frame_evidence
from pipeline.stages.views import FrameViews

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


@dataclass(frozen=True)
class BestView:
    """A frame's score from its best view: what the classifier saw there, and where it was."""

    score: float
    top5_labels: list[str]
    top5_scores: list[float]
    view: ViewKind
    box: tuple[float, float, float, float]  # left, top, width, height: fractions of the frame


def score_views(
    frames: Sequence[FrameViews],
    backbone: Backbone,
    classifier: Classifier,
    batch_size: int,
    tta_flip: bool = False,
    bursts: Sequence[Sequence[int]] = (),
    moving: Sequence[Sequence[bool]] = (),
) -> list[BestView]:
    """Score every view of every frame and keep each frame's best view.

    Views of all frames go through the model together in batches of exactly `batch_size`
    (the last one padded with blank views: oneDNN builds new kernels for every new shape).
    `bursts` (indices into `frames`, in capture order) link motion regions into tracks: a
    frame whose own region on a track scored lower than the track's best view keeps that
    view's score and labels, with its own region's box and view kind `track`, when that
    region moves now (`moving`: per frame, a flag for each of its motion views; none given,
    all move).
    """
    if not frames:
        return []
    pixels = np.concatenate([f.pixels for f in frames])
    scores = []
    for start in range(0, len(pixels), batch_size):
        chunk = pixels[start : start + batch_size]
        real = len(chunk)
        if real < batch_size:
            blank = np.zeros((batch_size - real, *chunk.shape[1:]), dtype=chunk.dtype)
            chunk = np.concatenate([chunk, blank])
        features = embed_pixels(backbone, chunk, tta_flip)
        scores.append(classifier.score(features[:real]))
    score = np.concatenate([s.score for s in scores])
    labels = [row for s in scores for row in s.top5_labels]
    top5 = np.concatenate([s.top5_scores for s in scores])
    kinds = [kind for f in frames for kind in f.kinds]
    boxes = np.concatenate([f.boxes for f in frames])
    frame_of = np.repeat(np.arange(len(frames)), [len(f.pixels) for f in frames])
    moves = None
    if moving:
        moves = np.zeros(len(kinds), dtype=bool)
        moves[[i for i, k in enumerate(kinds) if k == ViewKind.MOTION]] = [
            flag for flags in moving for flag in flags
        ]
    evidence = frame_evidence(
        score, frame_of, [k.value for k in kinds], boxes, len(frames), bursts, moves
    )
    best: list[BestView] = []
    for i, b, carried in zip(evidence.score_row, evidence.box_row, evidence.carried, strict=True):
        box = boxes[b]
        best.append(
            BestView(
                score=float(score[i]),
                top5_labels=list(labels[i]),
                top5_scores=[float(x) for x in top5[i]],
                view=ViewKind.TRACK if carried else kinds[i],
                box=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
            )
        )
    return best
