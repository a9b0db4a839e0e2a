"""Tracks through a burst: which moving regions are one animal, and which frames keep whose
evidence. Boxes and scores are written out by hand; the real frames are in
tests/test_views_realdata.py."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.stages.tracks import box_iou, frame_evidence, link_tracks


def test_box_iou_by_hand() -> None:
    a = np.array([[0.0, 0.0, 0.2, 0.2]])
    b = np.array([[0.1, 0.1, 0.2, 0.2], [0.5, 0.5, 0.1, 0.1], [0.0, 0.0, 0.2, 0.2]])
    # overlap 0.1 x 0.1 = 0.01; union 0.04 + 0.04 - 0.01 = 0.07
    np.testing.assert_allclose(box_iou(a, b), [[0.01 / 0.07, 0.0, 1.0]])


def test_regions_that_overlap_frame_to_frame_are_one_track() -> None:
    walking = [
        [[0.10, 0.10, 0.30, 0.30]],
        [[0.20, 0.10, 0.30, 0.30]],  # moved a third of its width
        [[0.30, 0.12, 0.30, 0.30]],
    ]
    ids = link_tracks([np.array(b) for b in walking])
    assert [t.tolist() for t in ids] == [[0], [0], [0]]


def test_a_jump_across_the_frame_starts_a_new_track() -> None:
    ids = link_tracks([np.array([[0.0, 0.0, 0.2, 0.2]]), np.array([[0.7, 0.7, 0.2, 0.2]])])
    assert [t.tolist() for t in ids] == [[0], [1]]


def test_one_to_one_a_second_thing_inside_the_animals_crop_stays_apart() -> None:
    # Frame 1's big crop holds the animal and, inside it, a tuft moving in the wind. In frame
    # 2 both move: the animal keeps the track, the tuft starts its own.
    ids = link_tracks(
        [
            np.array([[0.1, 0.1, 0.5, 0.8]]),
            np.array([[0.35, 0.6, 0.08, 0.12], [0.05, 0.0, 0.47, 0.84]]),
        ]
    )
    assert ids[1].tolist() == [1, 0]


def test_a_frame_without_regions_breaks_the_track() -> None:
    boxes = [np.array([[0.1, 0.1, 0.3, 0.3]]), np.empty((0, 4)), np.array([[0.1, 0.1, 0.3, 0.3]])]
    ids = link_tracks(boxes)
    assert [t.tolist() for t in ids] == [[0], [], [1]]


def _views(frames: list[list[tuple[str, float, tuple[float, float, float, float]]]]):  # type: ignore[no-untyped-def]
    """Flatten per-frame (kind, score, box) lists into frame_evidence's arrays."""
    kinds, scores, boxes, frame = [], [], [], []
    for f, views in enumerate(frames):
        for kind, score, box in views:
            kinds.append(kind)
            scores.append(score)
            boxes.append(box)
            frame.append(f)
    return np.array(scores), np.array(frame), kinds, np.array(boxes, dtype=np.float32)


WHOLE = (0.0, 0.0, 1.0, 1.0)
TILE = (0.0, 0.0, 0.5, 0.5)


def test_a_frame_keeps_the_track_s_best_view_through_its_own_region() -> None:
    scores, frame, kinds, boxes = _views(
        [
            [("whole", 0.01, WHOLE), ("tile", 0.40, TILE), ("motion", 0.90, (0.1, 0.1, 0.3, 0.3))],
            [("whole", 0.01, WHOLE), ("tile", 0.02, TILE), ("motion", 0.03, (0.2, 0.1, 0.3, 0.3))],
            # the animal has left: only a tuft moves, elsewhere
            [("whole", 0.01, WHOLE), ("tile", 0.02, TILE), ("motion", 0.01, (0.7, 0.7, 0.1, 0.1))],
        ]
    )
    evidence = frame_evidence(scores, frame, kinds, boxes, 3, [[0, 1, 2]])
    assert evidence.score_row.tolist() == [2, 2, 7]  # frame 1 keeps frame 0's motion view
    assert evidence.box_row.tolist() == [2, 5, 7]  # ...with its own region's box
    assert evidence.carried.tolist() == [False, True, False]


def test_a_region_where_nothing_moves_now_is_not_lifted() -> None:
    # Frame 2 differs from the background where the animal was (the scene stays changed
    # after it left), linked to its track, but nothing moves there now.
    scores, frame, kinds, boxes = _views(
        [
            [("whole", 0.01, WHOLE), ("motion", 0.90, (0.1, 0.1, 0.3, 0.3))],
            [("whole", 0.01, WHOLE), ("motion", 0.03, (0.2, 0.1, 0.3, 0.3))],
            [("whole", 0.01, WHOLE), ("motion", 0.01, (0.22, 0.12, 0.1, 0.1))],
        ]
    )
    moving = np.array([False, True, False, True, False, False])
    evidence = frame_evidence(scores, frame, kinds, boxes, 3, [[0, 1, 2]], moving)
    assert evidence.carried.tolist() == [False, True, False]
    assert evidence.score_row.tolist() == [1, 1, 4]
    # without the flags every linked region is lifted
    assert frame_evidence(scores, frame, kinds, boxes, 3, [[0, 1, 2]]).carried.tolist() == [
        False,
        True,
        True,
    ]


def test_without_a_burst_every_frame_keeps_its_own_best_view() -> None:
    scores, frame, kinds, boxes = _views(
        [
            [("whole", 0.01, WHOLE), ("motion", 0.90, (0.1, 0.1, 0.3, 0.3))],
            [("whole", 0.05, WHOLE), ("motion", 0.03, (0.2, 0.1, 0.3, 0.3))],
        ]
    )
    evidence = frame_evidence(scores, frame, kinds, boxes, 2)
    assert evidence.score_row.tolist() == [1, 2]
    assert not evidence.carried.any()
    # a burst of one frame is no burst
    assert not frame_evidence(scores, frame, kinds, boxes, 2, [[0], [1]]).carried.any()


def test_tiles_do_not_carry_only_moving_regions_do() -> None:
    # A tile scoring high in frame 0 at the place frame 1 moves does not lift frame 1: only a
    # moving region's own view starts a track.
    scores, frame, kinds, boxes = _views(
        [
            [("tile", 0.9, (0.1, 0.1, 0.3, 0.3))],
            [("tile", 0.02, (0.1, 0.1, 0.3, 0.3)), ("motion", 0.01, (0.1, 0.1, 0.3, 0.3))],
        ]
    )
    evidence = frame_evidence(scores, frame, kinds, boxes, 2, [[0, 1]])
    assert evidence.score_row.tolist() == [0, 1]
    assert not evidence.carried.any()


def test_ties_keep_the_earlier_view_and_frames_without_views_get_none() -> None:
    scores, frame, kinds, boxes = _views([[("whole", 0.5, WHOLE), ("tile", 0.5, TILE)], []])
    evidence = frame_evidence(scores, frame, kinds, boxes, 2, [[0, 1]])
    assert evidence.score_row.tolist() == [0, -1]


@pytest.mark.parametrize("min_iou", [0.0, 0.1, 0.5])
def test_link_tracks_gives_each_region_one_id(min_iou: float) -> None:
    rng = np.random.default_rng(7)
    boxes = [np.c_[rng.random((4, 2)) * 0.7, rng.random((4, 2)) * 0.3 + 0.05] for _ in range(6)]
    ids = link_tracks(boxes, min_iou)
    for frame_ids in ids:
        assert len(set(frame_ids.tolist())) == len(frame_ids)  # one region per track a frame
