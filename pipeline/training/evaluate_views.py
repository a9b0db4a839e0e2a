"""Labelled frames scored on their views, as `uncia run --views` scores them: the whole frame,
tiles, tiles and motion crops (pipeline/stages/views.py), each frame keeping its best view; and the
side-by-side comparison of those modes that `uncia evaluate --compare-views` reports, frame by
frame and visit by visit.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pyarrow as pa

from pipeline.schema import BurstAggregation, ViewKind, ViewMode
from pipeline.stages.classify import Classifier
from pipeline.stages.embed import Backbone
from pipeline.stages.tracks import best_view_per_frame, frame_evidence
from pipeline.stages.views import ViewOptions
from pipeline.training.labels import visit_ids
from pipeline.training.metrics import (
    average_precision,
    burst_table,
    float32_threshold,
    recall_at_false_positive_rate,
    summarize,
)
from pipeline.training.train import LabelledEmbeddings, embed_labelled

FALSE_POSITIVE_RATE = 0.01


@dataclass(frozen=True, eq=False)
class ModeScores:
    """Each frame's score on one view mode (NaN where it failed), what its best view was and
    the top classes the classifier saw there."""

    score: np.ndarray  # float64 (N,)
    view: list[str | None]  # ViewKind value of the best view
    top_labels: list[list[str] | None]


@dataclass(frozen=True, eq=False)
class ScoredFrames:
    """Labelled frames (with content hash, capture time, burst, failure) scored per mode."""

    frames: pa.Table
    modes: dict[ViewMode, ModeScores]
    hits: int
    decoded: int


def score_labelled(
    frames: pa.Table,
    backbone: Backbone,
    classifier: Classifier,
    modes: Sequence[ViewMode],
    views: ViewOptions,
    cache_dir: Path | None,
    tta_flip: bool = False,
    burst_gap_seconds: float = 60.0,
    batch_size: int = 32,
    workers: int = 2,
    progress: bool = False,
    log: TextIO = sys.stderr,
) -> ScoredFrames:
    """Score LABELLED `frames` on each of `modes`, cutting tiles as `views` says.

    Whole frames go through the whole-frame embedding cache; tiles and motion crops through
    the view cache (tiles+motion embeds its tiles once and serves tiles too). `tta_flip`
    averages each view's features with its mirror image's, as `uncia run --tta-flip` does.
    """
    embedded: dict[str, LabelledEmbeddings] = {}

    def embed(cut: ViewOptions | None) -> LabelledEmbeddings:
        return embed_labelled(
            frames,
            backbone,
            cache_dir,
            tta_flip,
            burst_gap_seconds,
            batch_size,
            workers,
            progress,
            log,
            views=cut,
        )

    if ViewMode.WHOLE in modes:
        embedded["whole"] = embed(None)
    tiled = [m for m in modes if m != ViewMode.WHOLE]
    if tiled:
        mode = ViewMode.TILES_MOTION if ViewMode.TILES_MOTION in tiled else ViewMode.TILES
        embedded["views"] = embed(replace(views, mode=mode))
    first = next(iter(embedded.values()))
    n = frames.num_rows
    out: dict[ViewMode, ModeScores] = {}
    for mode in modes:
        source = embedded["whole" if mode == ViewMode.WHOLE else "views"]
        rows = np.ones(len(source.features), dtype=bool)
        if mode == ViewMode.TILES and source.kinds is not None:
            rows = source.kinds != ViewKind.MOTION.value
        bursts = source.bursts if mode == ViewMode.TILES_MOTION else ()
        out[mode] = _best_views(source, rows, classifier, n, tta_flip, bursts)
    failures: list[str | None] = [None] * n  # a frame that failed in any mode failed
    for e in embedded.values():
        for i, failure in enumerate(e.frames.column("failure").to_pylist()):
            failures[i] = failures[i] or failure
    table = first.frames.set_column(
        first.frames.schema.get_field_index("failure"), "failure", pa.array(failures, pa.string())
    )
    hits = sum(e.hits for e in embedded.values())
    decoded = sum(e.decoded for e in embedded.values())
    return ScoredFrames(table, out, hits, decoded)


def _best_views(
    source: LabelledEmbeddings,
    rows: np.ndarray,
    classifier: Classifier,
    n: int,
    tta_flip: bool,
    bursts: Sequence[Sequence[int]] = (),
) -> ModeScores:
    """Each frame's score as `uncia run` gives it: its best view's, or with `bursts` the best
    view of a moving region tracked through the burst (pipeline/stages/tracks.py)."""
    bag = source.bags[rows]
    features = source.features[rows]
    if tta_flip and source.flipped is not None:
        features = (features + source.flipped[rows]) / 2.0
    ok = ~np.isnan(features).any(axis=1)  # whole frames that failed have NaN rows
    scored = classifier.score(features[ok]) if ok.any() else None
    values = np.full(len(features), -np.inf)
    if scored is not None:
        values[ok] = scored.score
    kinds = source.kinds[rows][ok] if source.kinds is not None else None
    carried = np.zeros(n, dtype=bool)
    if kinds is not None and source.boxes is not None:
        moving = source.moving[rows][ok] if source.moving is not None else None
        evidence = frame_evidence(
            values[ok], bag[ok], list(kinds), source.boxes[rows][ok], n, bursts, moving
        )
        best, carried = evidence.score_row, evidence.carried
    else:
        best = best_view_per_frame(values[ok], bag[ok], n)
    score = np.full(n, np.nan)
    view: list[str | None] = [None] * n
    top: list[list[str] | None] = [None] * n
    for i in np.flatnonzero(best >= 0):
        r = best[i]
        score[i] = values[ok][r]
        if carried[i]:
            view[i] = ViewKind.TRACK.value
        else:
            view[i] = str(kinds[r]) if kinds is not None else ViewKind.WHOLE.value
        top[i] = scored.top5_labels[r]  # type: ignore[union-attr]
    return ModeScores(score, view, top)


def view_block(truth: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    """AP, precision and recall at `threshold`, and recall at a 1% false-positive rate."""
    summary = summarize(truth, scores, float32_threshold(scores, threshold))
    return {
        "n": summary["n"],
        "positives": summary["positives"],
        "average_precision": average_precision(truth, scores),
        "precision": summary["precision"],
        "recall": summary["recall"],
        "recall_at_1pct_fp": recall_at_false_positive_rate(truth, scores, FALSE_POSITIVE_RATE),
        "flagged": summary["flagged"],
    }


def compare_views(
    frames: pa.Table,
    truth: np.ndarray,
    modes: dict[ViewMode, ModeScores],
    thresholds: dict[ViewMode, float],
) -> dict[str, Any]:
    """The side-by-side block of the report: per mode, frame and visit figures at that mode's
    threshold, and which kind of view gave each positive frame its score. Frames that failed
    in any mode are left out of every mode, so all are measured on the same frames."""
    keep = np.all([~np.isnan(m.score) for m in modes.values()], axis=0)
    deployments = frames.column("deployment").to_pylist()
    visits = visit_ids(
        deployments,
        frames.column("captured_at").to_pylist(),
        frames.column("burst_id").to_pylist(),
    )
    picked = np.flatnonzero(keep)
    out: dict[str, Any] = {}
    for mode, scores in modes.items():
        threshold = thresholds[mode]
        table = burst_table(
            [visits[i] for i in picked],
            [deployments[i] for i in picked],
            truth[keep],
            scores.score[keep],
            BurstAggregation.MAX,
        )
        best_of_positives: dict[str, int] = {}
        for i in picked[truth[keep]]:
            kind = scores.view[i] or "-"
            best_of_positives[kind] = best_of_positives.get(kind, 0) + 1
        out[mode.value] = {
            "threshold": threshold,
            "frame": view_block(truth[keep], scores.score[keep], threshold),
            "visit": view_block(
                table.column("positive").to_numpy(zero_copy_only=False),
                table.column("score").to_numpy(zero_copy_only=False),
                threshold,
            ),
            "best_view_of_positives": dict(sorted(best_of_positives.items())),
        }
    return out
