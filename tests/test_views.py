"""Views: tiles that cover the frame, motion crops that find what moves in a burst, burst
grouping for motion, and the working decode the tiles are cut from."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.errors import ConfigError
from pipeline.schema import ViewKind, ViewMode
from pipeline.stages.decode import decode_frame
from pipeline.stages.views import (
    MotionCandidate,
    ViewOptions,
    cut_views,
    motion_boxes,
    motion_groups,
    motion_regions,
    parse_grids,
    tile_boxes,
)
from tests.helpers import scene, with_animal


@pytest.mark.parametrize("grid", [(4, 3), (3, 2), (1, 1), (5, 4)])
@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5])
def test_tiles_cover_the_frame_and_overlap_as_asked(grid: tuple[int, int], overlap: float) -> None:
    cols, rows = grid
    boxes = tile_boxes(1000, 750, [grid], overlap)
    assert len(boxes) == cols * rows
    covered = np.zeros((750, 1000), dtype=bool)
    for left, top, right, bottom in boxes:
        assert 0 <= left < right <= 1000 and 0 <= top < bottom <= 750
        covered[round(top) : round(bottom), round(left) : round(right)] = True
    assert covered.all()
    if cols > 1:  # neighbours share `overlap` of a tile's width
        (l0, _, r0, _), (l1, _, _, _) = boxes[0], boxes[1]
        assert (r0 - l1) / (r0 - l0) == pytest.approx(overlap, abs=1e-6)


def test_grids_parse_and_bad_values_are_refused() -> None:
    assert parse_grids("4x3") == ((4, 3),)
    assert parse_grids(" 3x2 , 4X3".lower()) == ((3, 2), (4, 3))
    for bad in ("4", "4x", "x3", "4x3;2x2", "", "-1x2"):
        with pytest.raises(ConfigError):
            parse_grids(bad)
    for kwargs in (
        {"grids": ((0, 3),)},
        {"grids": ((13, 1),)},
        {"overlap": 0.9},
        {"overlap": float("nan")},
        {"working_side": 100},
        {"motion_regions": -1},
        {"mode": "everything"},
    ):
        with pytest.raises(ConfigError):
            ViewOptions(**kwargs)  # type: ignore[arg-type]


def test_views_are_the_whole_frame_then_tiles_then_motion_with_boxes_as_fractions() -> None:
    frame = scene()
    options = ViewOptions(mode=ViewMode.TILES_MOTION, grids=((4, 3),))
    views = cut_views(frame, options, 224, motion=[(480.0, 270.0, 600.0, 390.0)])
    assert views.pixels.shape == (1 + 12 + 1, 224, 224, 3) and views.pixels.dtype == np.uint8
    assert views.kinds == (ViewKind.WHOLE,) + (ViewKind.TILE,) * 12 + (ViewKind.MOTION,)
    assert views.boxes[0].tolist() == [0.0, 0.0, 1.0, 1.0]
    assert views.boxes[-1] == pytest.approx([0.5, 0.5, 0.125, 120 / 540])
    assert (views.boxes[:, :2] >= 0).all()
    assert (views.boxes[:, :2] + views.boxes[:, 2:] <= 1 + 1e-6).all()
    # The first tile shows the frame's top-left corner, scaled to the model's input.
    corner = np.asarray(Image.fromarray(frame).crop((0, 0, 295, 216)).resize((224, 224)))
    assert np.abs(views.pixels[1].astype(int) - corner.astype(int)).mean() < 6
    whole = cut_views(frame, ViewOptions(mode=ViewMode.WHOLE), 224)
    assert whole.pixels.shape == (1, 224, 224, 3) and whole.kinds == (ViewKind.WHOLE,)


@pytest.mark.parametrize(
    ("grids", "overlap", "shape"),
    [
        (((4, 3),), 0.25, (540, 960)),
        (((3, 2), (4, 3)), 0.1, (411, 731)),
        (((2, 2),), 0.5, (750, 1000)),
    ],
)
def test_tiles_cropped_from_one_scaled_frame_match_scaling_each_tile(
    grids: tuple[tuple[int, int], ...], overlap: float, shape: tuple[int, int]
) -> None:
    rng = np.random.default_rng(3)
    # Texture a few pixels across: rounding a tile to whole pixels moves it < 0.5 px.
    smooth = Image.fromarray(rng.integers(0, 255, (shape[0] // 20, shape[1] // 20, 3), np.uint8))
    frame = np.asarray(smooth.resize((shape[1], shape[0]), Image.Resampling.BICUBIC))
    views = cut_views(frame, ViewOptions(mode=ViewMode.TILES, grids=grids, overlap=overlap), 224)
    image = Image.fromarray(frame)
    boxes = tile_boxes(shape[1], shape[0], grids, overlap)
    assert len(views.pixels) == 1 + len(boxes)
    for tile, box in zip(views.pixels[1:], boxes, strict=True):
        alone = np.asarray(image.resize((224, 224), Image.Resampling.BILINEAR, box=box))
        assert np.abs(tile.astype(int) - alone.astype(int)).mean() < 2.5


def test_the_decoders_whole_view_is_used_as_given() -> None:
    frame = scene()
    given = np.full((224, 224, 3), 7, np.uint8)
    views = cut_views(frame, ViewOptions(mode=ViewMode.TILES), 224, whole=given)
    assert (views.pixels[0] == 7).all() and not (views.pixels[1] == 7).all()


def test_motion_finds_the_animal_that_moves_and_not_the_info_bar() -> None:
    background = scene()
    burst = []
    for k, left in enumerate((100, 300, 500, 700)):
        frame = with_animal(background, left, 200)
        frame[:20] = 0
        frame[5:15, 10 + 40 * k : 60 + 40 * k] = 255  # the time printed in the info bar
        frame = np.clip(frame.astype(int) + 12 * k, 0, 255).astype(np.uint8)  # IR exposure
        burst.append(frame)
    found = motion_boxes(burst, max_regions=2)
    for k, boxes in enumerate(found):
        assert boxes, f"frame {k}: no motion found"
        left, top, right, bottom = boxes[0]
        animal_x, animal_y = 100 + 200 * k + 48, 230
        assert left <= animal_x <= right and top <= animal_y <= bottom, (k, boxes[0])
        assert (right - left) < 400  # a crop around the animal, not the frame
        for box in boxes:
            assert box[3] > 30, "a box in the info bar"
    assert motion_boxes(burst[:1], 2) == [[]]  # one frame: no background, no motion
    assert motion_boxes([background, background, background], 2) == [[], [], []]


def test_a_scene_that_stays_changed_is_a_region_but_does_not_move() -> None:
    # An animal crosses in frames 0-3; from frame 4 on a stone it pushed lies elsewhere:
    # frames 4-6 differ from the burst's background there, but not from each other.
    background = scene()
    burst = [with_animal(background, left, 200) for left in (100, 300, 500, 700)]
    moved = background.copy()
    moved[400:460, 820:900] = (250, 250, 250)
    burst += [moved, moved.copy(), moved.copy()]
    boxes, moves = motion_regions(burst, max_regions=2)
    assert [len(b) for b in boxes[:4]] == [1, 1, 1, 1] and all(m == [True] for m in moves[:4])
    for k in (4, 5, 6):
        ((left, top, right, bottom),) = boxes[k]
        assert left <= 860 <= right and top <= 430 <= bottom  # the stone is a region...
        assert moves[k] == [False]  # ...that does not move now
    assert motion_boxes(burst, 2) == boxes


def test_motion_groups_follow_time_or_a_still_scene() -> None:
    t0 = datetime(2024, 3, 1, 4, 0, 0)
    a, b = scene(seed=1), scene(seed=2)
    frames = [
        MotionCandidate("cam1", t0, a),
        MotionCandidate("cam1", t0 + timedelta(seconds=2), a),
        MotionCandidate("cam1", t0 + timedelta(seconds=600), a),  # a new trigger
        MotionCandidate("cam2", t0 + timedelta(seconds=601), a),  # another camera
        MotionCandidate("cam2", None, a),  # no time, the same scene
        MotionCandidate("cam2", None, with_animal(a, 300, 200)),  # still the same scene
        MotionCandidate("cam2", None, b),  # no time, another scene
        MotionCandidate("cam2", None, None),  # failed to decode
        MotionCandidate("cam2", None, b[:270]),  # another size
    ]
    assert motion_groups(frames, burst_gap_seconds=60) == [[0, 1], [2], [3, 4, 5], [6], [7], [8]]


def _jpeg(path: Path, width: int, height: int) -> Path:
    path.write_bytes(_encoded(scene(width, height), "JPEG"))
    return path


def _encoded(pixels: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("size", "working"),
    [((1920, 1080), (960, 540)), ((4000, 3000), (1000, 750)), ((640, 480), (640, 480))],
)
def test_working_frame_is_the_smallest_dct_scale_at_least_the_working_side(
    tmp_path: Path, size: tuple[int, int], working: tuple[int, int]
) -> None:
    decoded = decode_frame(_jpeg(tmp_path / "f.jpg", *size), 224, working_side=960)
    assert decoded.failure is None and decoded.working is not None
    assert decoded.working.shape == (working[1], working[0], 3)
    assert decoded.pixels is not None and decoded.pixels.shape == (224, 224, 3)
    assert (decoded.width, decoded.height) == size
    plain = decode_frame(tmp_path / "f.jpg", 224)
    assert plain.working is None


def test_a_large_png_is_reduced_to_about_the_working_side(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(_encoded(scene(3000, 2000), "PNG"))
    decoded = decode_frame(path, 224, working_side=960)
    assert decoded.working is not None
    assert 960 <= max(decoded.working.shape[:2]) < 1920
