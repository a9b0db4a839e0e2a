"""Tracks stage: a leopard seen in 2 of 5 frames of a burst is still one leopard.

Within a burst from a still camera, the motion regions of consecutive frames (pipeline/stages/
views.py) that overlap are linked into tracks: one moving thing, frame after frame. A track is
as much a leopard as its best-scored view says, so a frame where the same animal shows only
its back, its tail or its head behind a rock keeps the evidence of the frame where it was seen
whole. A frame is lifted only through a region of its own that is linked, frame by frame, to
that view and in which something moves now (it differs from the neighbouring frames:
views.motion_regions): the rocks where the animal was, after it left, may differ from the
burst's background but do not move, and a burst in which no view scores has nothing to carry.
Carried evidence never makes a visit that was not already found; it finds the frames of that
visit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.schema import ViewKind

# Motion regions of neighbouring frames are one moving thing when their boxes overlap at
# least this much (intersection over union). Motion crops are squares around the moving
# blob with a margin (views._REGION_MARGIN), so an animal walking one body length between
# frames still overlaps; a far animal whose blob shrinks to its head and tail inside the
# previous crop still overlaps by ~0.1.
TRACK_MIN_IOU = 0.1


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box of `a` (R, 4) with every box of `b` (S, 4), as
    left, top, width, height: an (R, S) matrix."""
    left = np.maximum(a[:, None, 0], b[None, :, 0])
    top = np.maximum(a[:, None, 1], b[None, :, 1])
    right = np.minimum(a[:, None, 0] + a[:, None, 2], b[None, :, 0] + b[None, :, 2])
    bottom = np.minimum(a[:, None, 1] + a[:, None, 3], b[None, :, 1] + b[None, :, 3])
    width, height = right - left, bottom - top
    inter = np.clip(width, 0, None) * np.clip(height, 0, None)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def best_view_per_frame(values: np.ndarray, bag: np.ndarray, n: int) -> np.ndarray:
    """For each of `n` frames, the row (index into `values`) of its highest value; -1 for a
    frame without rows. Ties go to the earlier row (the whole view comes first)."""
    best = np.full(n, -1, dtype=np.int64)
    if len(values):
        order = np.lexsort((np.arange(len(values)), -values, bag))  # by frame, value down
        first = np.ones(len(order), dtype=bool)
        first[1:] = bag[order][1:] != bag[order][:-1]
        best[bag[order][first]] = order[first]
    return best


def link_tracks(boxes: Sequence[np.ndarray], min_iou: float = TRACK_MIN_IOU) -> list[np.ndarray]:
    """Track ids of the motion regions of one burst's frames, in frame order.

    `boxes[t]` holds frame t's regions (R_t, 4: left, top, width, height). Regions of
    consecutive frames are matched one to one, best overlap first, when they overlap at least
    `min_iou`; a matched region continues its neighbour's track, any other starts one. One to
    one, so a second moving thing inside the first's crop (a tuft in the wind beside the
    animal) does not join the animal's track.
    """
    tracks: list[np.ndarray] = []
    next_id = 0
    previous = np.empty((0, 4), dtype=np.float32)
    for frame_boxes in boxes:
        current = np.asarray(frame_boxes, dtype=np.float64).reshape(-1, 4)
        ids = np.full(len(current), -1, dtype=np.int64)
        if len(previous) and len(current):
            iou = box_iou(previous, current)
            for flat in np.argsort(-iou, axis=None, kind="stable"):
                p, c = np.unravel_index(flat, iou.shape)
                if iou[p, c] < min_iou:
                    break
                if ids[c] == -1 and tracks[-1][p] not in ids:
                    ids[c] = tracks[-1][p]
        for c in np.flatnonzero(ids == -1):
            ids[c] = next_id
            next_id += 1
        tracks.append(ids)
        previous = current
    return tracks


@dataclass(frozen=True, eq=False)
class FrameEvidence:
    """Which view each frame keeps: `score_row` gives its score (and what the model saw), and
    `box_row` its box; they differ when the score was `carried` along a track from another
    frame of the burst (then the box is the frame's own region on that track). -1: no view."""

    score_row: np.ndarray  # int64 (N,)
    box_row: np.ndarray  # int64 (N,)
    carried: np.ndarray  # bool (N,)


def frame_evidence(
    scores: np.ndarray,
    frame: np.ndarray,
    kinds: Sequence[str],
    boxes: np.ndarray,
    n_frames: int,
    bursts: Sequence[Sequence[int]] = (),
    moving: np.ndarray | None = None,
) -> FrameEvidence:
    """Each frame's best evidence from its views, and along the tracks of its bursts.

    `scores` (M,), `frame` (M,), `kinds` (M,) and `boxes` (M, 4) describe every view;
    `bursts` lists the frames of each burst in capture order (frames in no burst keep their
    own best view). `moving` (M,) says which motion regions move now (views.motion_regions):
    only through those is a frame lifted (None: all). Ties keep the earlier view (the whole
    frame comes first).
    """
    scores = np.asarray(scores, dtype=np.float64)
    frame = np.asarray(frame, dtype=np.int64)
    best = best_view_per_frame(scores, frame, n_frames)
    score_row, box_row = best.copy(), best.copy()
    carried = np.zeros(n_frames, dtype=bool)
    motion = np.asarray([k == ViewKind.MOTION.value for k in kinds], dtype=bool)
    receives = motion if moving is None else motion & np.asarray(moving, dtype=bool)
    for burst in bursts:
        if len(burst) < 2:
            continue
        rows = [np.flatnonzero((frame == f) & motion) for f in burst]
        ids = link_tracks([boxes[r] for r in rows])
        top: dict[int, int] = {}  # track id -> its best-scored view
        for r, track in zip(rows, ids, strict=True):
            for row, t in zip(r, track, strict=True):
                if t not in top or scores[row] > scores[top[t]]:
                    top[int(t)] = int(row)
        for f, r, track in zip(burst, rows, ids, strict=True):
            for row, t in zip(r, track, strict=True):
                source = top[int(t)]
                own = score_row[f]
                if not receives[row] or source == row:
                    continue
                if own < 0 or scores[source] > scores[own]:
                    score_row[f], box_row[f], carried[f] = source, row, True
    return FrameEvidence(score_row, box_row, carried)
