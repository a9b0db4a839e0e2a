"""Detection metrics for leopard scores: confusion counts, precision/recall/F1, average
precision, PR curves, the threshold that reaches a target recall, and burst-level scores.

Pure functions over numpy arrays and Arrow tables; `uncia train` and `uncia evaluate` share them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from sklearn.metrics import average_precision_score, precision_recall_curve

from pipeline.schema import BurstAggregation
from pipeline.stages.bursts import BurstOptions, summarize_bursts


def confusion(truth: np.ndarray, flagged: np.ndarray) -> dict[str, int]:
    """Counts of true/false positives/negatives for boolean arrays of equal length."""
    truth, flagged = np.asarray(truth, bool), np.asarray(flagged, bool)
    return {
        "tp": int(np.sum(truth & flagged)),
        "fp": int(np.sum(~truth & flagged)),
        "fn": int(np.sum(truth & ~flagged)),
        "tn": int(np.sum(~truth & ~flagged)),
    }


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def average_precision(truth: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the precision-recall curve (step-wise); None without any positive."""
    truth = np.asarray(truth, bool)
    if not truth.any():
        return None
    return float(average_precision_score(truth, np.asarray(scores, np.float64)))


def summarize(truth: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    """Everything about one set of scores at one threshold (a frame is flagged at score >=
    threshold): counts, precision, recall, F1, average precision, and the share flagged."""
    truth = np.asarray(truth, bool)
    scores = np.asarray(scores, np.float64)
    counts = confusion(truth, scores >= threshold)
    precision = _ratio(counts["tp"], counts["tp"] + counts["fp"])
    recall = _ratio(counts["tp"], counts["tp"] + counts["fn"])
    f1 = (
        2 * precision * recall / (precision + recall)
        if precision is not None and recall is not None and precision + recall > 0
        else (0.0 if precision is not None and recall is not None else None)
    )
    flagged = counts["tp"] + counts["fp"]
    return {
        "n": int(truth.size),
        "positives": int(truth.sum()),
        "threshold": float(threshold),
        "confusion": counts,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "average_precision": average_precision(truth, scores),
        "flagged": flagged,
        "flagged_fraction": _ratio(flagged, int(truth.size)),
    }


def pr_curve(truth: np.ndarray, scores: np.ndarray) -> dict[str, list[float]]:
    """Precision and recall at every distinct score (empty lists without a positive)."""
    truth = np.asarray(truth, bool)
    if not truth.any() or truth.all():
        return {"precision": [], "recall": [], "thresholds": []}
    precision, recall, thresholds = precision_recall_curve(truth, np.asarray(scores, np.float64))
    return {
        "precision": [float(x) for x in precision],
        "recall": [float(x) for x in recall],
        "thresholds": [float(x) for x in thresholds],
    }


def threshold_for_recall(truth: np.ndarray, scores: np.ndarray, target_recall: float) -> float:
    """The highest threshold at which at least `target_recall` of the positives score >= it.

    With no positive at all there is nothing to reach: returns 0.5.
    """
    truth = np.asarray(truth, bool)
    positives = np.sort(np.asarray(scores, np.float64)[truth])[::-1]
    if positives.size == 0:
        return 0.5
    needed = int(np.ceil(target_recall * positives.size - 1e-9))
    needed = min(max(needed, 1), positives.size)
    return float(positives[needed - 1])


def recall_at_false_positive_rate(
    truth: np.ndarray, scores: np.ndarray, false_positive_rate: float = 0.01
) -> float | None:
    """The share of positives flagged by the lowest threshold that flags at most
    `false_positive_rate` of the negatives (with 50 negatives at 1%: none of them).

    A positive tied with the highest negative left out is not counted. None without a
    positive or without a negative.
    """
    truth = np.asarray(truth, bool)
    scores = np.asarray(scores, np.float64)
    negatives = np.sort(scores[~truth])[::-1]
    if not truth.any() or negatives.size == 0:
        return None
    allowed = int(np.floor(false_positive_rate * negatives.size + 1e-9))
    if allowed >= negatives.size:
        return 1.0
    return float(np.mean(scores[truth] > negatives[allowed]))


def float32_threshold(scores: np.ndarray, threshold: float) -> float:
    """The threshold to compare float32 `scores` with: rounded to float32 as they were, so a
    frame scoring exactly the threshold (threshold_for_recall picks a positive's score) is
    still flagged once its score is stored as float32 (burst scores are)."""
    if np.asarray(scores).dtype == np.float32:
        return float(np.float32(threshold))
    return float(threshold)


def burst_table(
    burst_ids: list[str],
    deployments: list[str],
    truth: np.ndarray,
    scores: np.ndarray,
    aggregation: BurstAggregation,
) -> pa.Table:
    """One row per burst: burst_id, deployment, n_frames, score (aggregated with
    pipeline.stages.bursts, as `uncia run` does) and positive (any frame of the burst positive)."""
    frames = pa.table(
        {
            "image_id": pa.array([f"{i:010d}" for i in range(len(burst_ids))]),
            "burst_id": pa.array(burst_ids, pa.string()),
            "deploymentID": pa.array(deployments, pa.string()),
            "locationID": pa.array(deployments, pa.string()),
            "captured_at": pa.nulls(len(burst_ids), pa.timestamp("us")),
            "score": pa.array(np.asarray(scores, np.float32)),
            "positive": pa.array(np.asarray(truth, bool)),
        }
    )
    summary = summarize_bursts(frames, BurstOptions(aggregation=aggregation))
    truth_per_burst = frames.group_by("burst_id").aggregate([("positive", "max")])
    joined = summary.join(truth_per_burst, "burst_id")
    return (
        joined.select(["burst_id", "deploymentID", "n_frames", "score", "positive_max"])
        .rename_columns(["burst_id", "deployment", "n_frames", "score", "positive"])
        .sort_by("burst_id")
    )


def burst_summary(bursts: pa.Table, threshold: float) -> dict[str, Any]:
    """`summarize` over bursts, plus the frames inside flagged bursts (what a person opens)."""
    truth = bursts.column("positive").to_numpy(zero_copy_only=False)
    scores = bursts.column("score").to_numpy(zero_copy_only=False)
    out = summarize(truth, scores, float32_threshold(scores, threshold))
    out["threshold"] = float(threshold)
    n_frames = bursts.column("n_frames").to_numpy(zero_copy_only=False)
    out["frames_in_flagged_bursts"] = int(n_frames[scores >= threshold].sum())
    return out
