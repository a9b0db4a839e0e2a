"""Views stage: the parts of a frame the model looks at, so a small leopard is seen whole.

A far snow leopard fills 2-5% of a wide trail-camera frame and becomes a few pixels when the
whole frame is squeezed to the model's 224 px. So a frame is scored on several views: the whole
frame, overlapping tiles of a larger DCT-scaled decode (the "working" frame), and, within a
burst of frames from a still camera, crops of the regions where the frames differ from the
burst's median background (motion), and crops around the boxes another detector (MegaDetector)
found in the frame (detector). The frame's score is its best view's; that view's box is a
first, coarse localization (fractions of the upright frame, as in `localizations`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from PIL import Image
from scipy import ndimage

from pipeline.errors import ConfigError
from pipeline.schema import ViewKind, ViewMode

Box = tuple[float, float, float, float]  # left, top, right, bottom in working-frame pixels

# Defaults measured on real frames (docs/views.md): a 4x3 grid with 25% overlap cut from a
# decode whose long side is about 960 px (1/2 of a 1920x1080 frame, 1/4 of a 12 Mpx one).
DEFAULT_GRIDS: tuple[tuple[int, int], ...] = ((4, 3),)
DEFAULT_OVERLAP = 0.25
DEFAULT_WORKING_SIDE = 960
DEFAULT_MOTION_REGIONS = 2
# The zero-shot threshold of each view mode, chosen on real frames (docs/views.md): with tiles,
# 0.15 keeps 14 of the 18 development leopard frames (78%; 18 with tracks through the burst)
# and flags none of the 2 empty frames of that scene nor any of 104 non-cat camera-trap
# pictures. Whole-frame scoring keeps
# its old 0.5. A trained head (--model) brings its own threshold.
ZERO_SHOT_THRESHOLDS = {ViewMode.WHOLE: 0.5, ViewMode.TILES: 0.15, ViewMode.TILES_MOTION: 0.15}

# Motion: compared on a grey copy this many times smaller than the working frame.
_MOTION_SHRINK = 4
# Camera info bars (time, temperature, make) change from frame to frame: ignore the top and
# bottom strips where trail cameras print them.
_INFO_BAR_FRACTION = 0.06
# A region must differ from the background by at least this fraction of the frame's median
# brightness (after each frame is scaled to the same median: IR flashes vary frame to frame).
_MIN_RELATIVE_CHANGE = 0.15
_MIN_REGION_AREA = 0.001  # of the frame: smaller blobs are noise, insects, raindrops
# A region moves now when this share of its pixels changed against each neighbouring frame.
# Measured on the development visit: 7-24% where the hidden leopard moved, 0.0% in the rocks
# after it left (pipeline/stages/tracks.py only lifts frames through moving regions).
_MIN_MOVING_FRACTION = 0.02
_REGION_MARGIN = 1.4  # a crop is this much wider than its blob, so the animal is whole
_MIN_CROP_SIDE = 0.12  # of the frame's height: a tiny blob still gets context around it
# Frames without capture times join a burst only when their scenes agree this well (the
# median absolute difference of their grey thumbnails, relative to brightness).
_SAME_SCENE_DIFFERENCE = 0.08

_GRID = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*$")


@dataclass(frozen=True)
class ViewOptions:
    """How frames are cut into views; see docs/views.md.

    `mode` whole: the whole frame only (the model's classic input); tiles: the whole frame and
    the tiles of every grid in `grids` (columns x rows, neighbours overlapping by `overlap`),
    cut from a decode whose long side is at least `working_side` px; tiles+motion: those plus
    up to `motion_regions` crops of the regions that move within a burst.
    """

    mode: ViewMode = ViewMode.TILES_MOTION
    grids: tuple[tuple[int, int], ...] = DEFAULT_GRIDS
    overlap: float = DEFAULT_OVERLAP
    working_side: int = DEFAULT_WORKING_SIDE
    motion_regions: int = DEFAULT_MOTION_REGIONS

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "mode", ViewMode(self.mode))
        except ValueError:
            choices = ", ".join(m.value for m in ViewMode)
            raise ConfigError(f"views must be one of {choices}, got {self.mode!r}") from None
        if isinstance(self.grids, str):
            object.__setattr__(self, "grids", parse_grids(self.grids))
        for cols, rows in self.grids:
            if not (1 <= cols <= 12 and 1 <= rows <= 12):
                raise ConfigError(f"a tile grid has 1..12 columns and rows, got {cols}x{rows}")
        if not (isinstance(self.overlap, int | float) and 0.0 <= self.overlap <= 0.75):
            raise ConfigError(f"tile overlap must be within 0..0.75, got {self.overlap!r}")
        if not 224 <= self.working_side <= 8192:
            raise ConfigError(f"working side must be 224..8192 px, got {self.working_side}")
        if not 0 <= self.motion_regions <= 8:
            raise ConfigError(f"motion regions must be 0..8, got {self.motion_regions}")

    @property
    def tiled(self) -> bool:
        return self.mode != ViewMode.WHOLE

    @property
    def motion(self) -> bool:
        return self.mode == ViewMode.TILES_MOTION and self.motion_regions > 0

    def as_run_options(self) -> dict[str, object]:
        """These views as `uncia run` options (RunOptions fields): what a model card and an
        evaluation report record, so `uncia run --model` cuts frames the same way."""
        if not self.tiled:
            return {"views": ViewMode.WHOLE.value}
        out: dict[str, object] = {
            "views": self.mode.value,
            "tile_grid": format_grids(self.grids),
            "tile_overlap": self.overlap,
            "working_side": self.working_side,
        }
        if self.mode == ViewMode.TILES_MOTION:
            out["motion_regions"] = self.motion_regions
        return out

    def views_per_frame(self) -> int:
        """The most views one frame can get (whole + tiles + motion crops)."""
        if not self.tiled:
            return 1
        tiles = sum(cols * rows for cols, rows in self.grids)
        return 1 + tiles + (self.motion_regions if self.motion else 0)


def parse_grids(text: str) -> tuple[tuple[int, int], ...]:
    """Parse "4x3" or "3x2,4x3" into ((4, 3),) or ((3, 2), (4, 3)); raise ConfigError."""
    grids = []
    for part in str(text).split(","):
        match = _GRID.match(part)
        if match is None:
            raise ConfigError(f"tile grid must look like 4x3 or 3x2,4x3, got {text!r}")
        grids.append((int(match.group(1)), int(match.group(2))))
    return tuple(grids)


def format_grids(grids: Sequence[tuple[int, int]]) -> str:
    return ",".join(f"{cols}x{rows}" for cols, rows in grids)


def tile_boxes(
    width: int, height: int, grids: Sequence[tuple[int, int]], overlap: float
) -> list[Box]:
    """The tiles of every grid over a width x height frame, row by row, in pixels."""
    boxes: list[Box] = []
    for cols, rows in grids:
        tile_w = width / (cols - (cols - 1) * overlap)
        tile_h = height / (rows - (rows - 1) * overlap)
        for r in range(rows):
            for c in range(cols):
                left, top = c * tile_w * (1 - overlap), r * tile_h * (1 - overlap)
                boxes.append((left, top, min(width, left + tile_w), min(height, top + tile_h)))
    return boxes


def motion_boxes(working: Sequence[np.ndarray], max_regions: int) -> list[list[Box]]:
    """For each frame of one burst (same-size working frames), the boxes of up to
    `max_regions` regions where it differs most from the burst's background, in pixels.

    The background is the per-pixel median of the burst (three frames or more), or the other
    frame (two). A burst of one frame has no background: every list is empty.
    """
    return motion_regions(working, max_regions)[0]


def motion_regions(
    working: Sequence[np.ndarray], max_regions: int
) -> tuple[list[list[Box]], list[list[bool]]]:
    """`motion_boxes`, and for each region whether something moves in it now: at least
    `_MIN_MOVING_FRACTION` of its pixels differ by `_MIN_RELATIVE_CHANGE` from each
    neighbouring frame (the one neighbour at a burst's ends). A region that differs from the
    background but not from its neighbours is a scene that stays changed, such as the rocks
    after the animal has left: tracks (pipeline/stages/tracks.py) lift no frame through it.
    """
    if len(working) < 2 or max_regions <= 0:
        return [[] for _ in working], [[] for _ in working]
    greys = np.stack([_normalized_grey(frame) for frame in working])
    background = np.median(greys, axis=0) if len(working) >= 3 else None
    height, width = greys.shape[1:]
    keep_rows = np.zeros(height, dtype=bool)
    keep_rows[int(_INFO_BAR_FRACTION * height) : int((1 - _INFO_BAR_FRACTION) * height)] = True
    scale = working[0].shape[0] / height
    boxes, moves = [], []
    for i, grey in enumerate(greys):
        reference = background if background is not None else greys[1 - i]
        change = ndimage.uniform_filter(np.abs(grey - reference), size=3)
        change[~keep_rows] = 0.0
        regions = _changed_regions(change, max_regions)
        boxes.append(
            [_crop_box(r, scale, working[i].shape[1], working[i].shape[0]) for r in regions]
        )
        neighbours = [greys[n] for n in (i - 1, i + 1) if 0 <= n < len(greys)]
        moves.append(
            [
                min(
                    float((np.abs(grey[r] - other[r]) > _MIN_RELATIVE_CHANGE).mean())
                    for other in neighbours
                )
                >= _MIN_MOVING_FRACTION
                for r in regions
            ]
        )
    return boxes, moves


def _normalized_grey(frame: np.ndarray) -> np.ndarray:
    """A grey copy _MOTION_SHRINK times smaller, scaled to median brightness 1."""
    # Pillow's grey conversion and box reduction run in C: a few ms for a 12 Mpx frame's
    # working copy, where the same in numpy float32 took ~20 ms.
    small = Image.fromarray(frame).convert("L").reduce(_MOTION_SHRINK)
    grey = np.asarray(small, dtype=np.float32)
    return grey / max(float(np.median(grey)), 1.0)


def _changed_regions(change: np.ndarray, max_regions: int) -> list[tuple[slice, slice]]:
    """The bounding slices of the strongest connected regions of change, strongest first."""
    median = float(np.median(change))
    spread = float(np.median(np.abs(change - median))) + 1e-6
    mask = change > max(_MIN_RELATIVE_CHANGE, median + 8 * spread)
    mask = ndimage.binary_dilation(ndimage.binary_opening(mask), iterations=2)
    labels, count = ndimage.label(mask)
    if count == 0:
        return []
    index = np.arange(1, count + 1)
    areas = ndimage.sum_labels(mask, labels, index)
    strength = ndimage.sum_labels(change, labels, index)
    slices = ndimage.find_objects(labels)
    keep = [
        (float(strength[k]), slices[k])
        for k in range(count)
        if areas[k] >= _MIN_REGION_AREA * change.size and slices[k] is not None
    ]
    keep.sort(key=lambda item: -item[0])
    return [region for _, region in keep[:max_regions]]


def _crop_box(region: tuple[slice, slice], scale: float, width: int, height: int) -> Box:
    """A square-ish crop around a region of the shrunk grey frame, in working pixels."""
    top, bottom = region[0].start * scale, region[0].stop * scale
    left, right = region[1].start * scale, region[1].stop * scale
    side = max(right - left, bottom - top) * _REGION_MARGIN
    side = min(max(side, _MIN_CROP_SIDE * height), width, height)
    cx = min(max((left + right) / 2, side / 2), width - side / 2)
    cy = min(max((top + bottom) / 2, side / 2), height - side / 2)
    return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def detector_crop(
    box: tuple[float, float, float, float], width: int, height: int
) -> tuple[Box, tuple[float, float, float, float]] | None:
    """The square-ish crop around another detector's box (left, top, width, height fractions
    of the upright frame) in a width x height working frame, and the box clipped to the frame;
    None for a box with no area inside the frame (zero-sized, outside, not finite).

    The crop is cut like a motion crop: `_REGION_MARGIN` wider than the box so the animal is
    whole with some context, at least `_MIN_CROP_SIDE` of the frame's height, kept inside."""
    x, y, w, h = (float(v) for v in box)
    if not all(np.isfinite((x, y, w, h))):
        return None
    left, top = min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0)
    right, bottom = min(max(x + w, 0.0), 1.0), min(max(y + h, 0.0), 1.0)
    if right - left <= 0.0 or bottom - top <= 0.0:
        return None
    pixels = (left * width, top * height, right * width, bottom * height)
    side = max(pixels[2] - pixels[0], pixels[3] - pixels[1]) * _REGION_MARGIN
    side = min(max(side, _MIN_CROP_SIDE * height), width, height)
    cx = min(max((pixels[0] + pixels[2]) / 2, side / 2), width - side / 2)
    cy = min(max((pixels[1] + pixels[3]) / 2, side / 2), height - side / 2)
    crop = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
    return crop, (left, top, right - left, bottom - top)


@dataclass(frozen=True)
class FrameViews:
    """The views of one frame: uint8 (V, S, S, 3) pixels, their boxes as fractions of the frame
    (left, top, width, height), and what each view is (`ViewKind`)."""

    pixels: np.ndarray
    boxes: np.ndarray  # float32 (V, 4)
    kinds: tuple[ViewKind, ...]


def cut_views(
    working: np.ndarray,
    options: ViewOptions,
    size: int,
    motion: Sequence[Box] = (),
    whole: np.ndarray | None = None,
    detector: Sequence[tuple[float, float, float, float]] = (),
) -> FrameViews:
    """Cut the views of one upright working frame (uint8 H x W x 3): the whole frame first,
    then the tiles, then the motion crops given in working pixels, then a crop around each
    of another detector's boxes (`detector`: left, top, width, height fractions; a box with no
    area in the frame is skipped). A detector view's box is the detector's box (clipped to the
    frame), not the wider crop: where the animal is, as the detector saw it.

    `whole`, when given, is the whole frame already squeezed to (size, size) (the decoder
    makes it from the same working frame, `DecodedFrame.pixels`): it is not made again.
    """
    height, width = working.shape[:2]
    image = Image.fromarray(working)
    boxes: list[Box] = [(0.0, 0.0, float(width), float(height))]
    kinds: list[ViewKind] = [ViewKind.WHOLE]
    if whole is None:
        whole = np.asarray(image.resize((size, size), Image.Resampling.BILINEAR))
    pixels: list[np.ndarray] = [whole]
    if options.tiled:
        for grid in options.grids:
            boxes += tile_boxes(width, height, [grid], options.overlap)
            pixels += _grid_tiles(image, grid, options.overlap, size)
            kinds += [ViewKind.TILE] * (grid[0] * grid[1])
    boxes += list(motion)
    kinds += [ViewKind.MOTION] * len(motion)
    # resize(box=...) crops and scales in one pass, with Pillow's antialiasing filter support.
    pixels += [
        np.asarray(image.resize((size, size), Image.Resampling.BILINEAR, box=b)) for b in motion
    ]
    fractions = [
        (b[0] / width, b[1] / height, (b[2] - b[0]) / width, (b[3] - b[1]) / height) for b in boxes
    ]
    for found in detector:
        cut = detector_crop(found, width, height)
        if cut is None:
            continue
        crop, clipped = cut
        pixels.append(np.asarray(image.resize((size, size), Image.Resampling.BILINEAR, box=crop)))
        fractions.append(clipped)
        kinds.append(ViewKind.DETECTOR)
    return FrameViews(np.stack(pixels), np.array(fractions, dtype=np.float32), tuple(kinds))


def _grid_tiles(
    image: Image.Image, grid: tuple[int, int], overlap: float, size: int
) -> list[np.ndarray]:
    """The tiles of one grid as (size, size) arrays, row by row, as `tile_boxes` lays them out.

    Every tile of a grid is scaled by the same factors, so the frame is scaled once, to the
    size at which a tile is `size` px, and the tiles are plain crops of it: a third of the CPU
    time of scaling each tile on its own, with the same pixels up to rounding at tile edges.
    """
    cols, rows = grid
    scaled_w = round(size * (cols - (cols - 1) * overlap))
    scaled_h = round(size * (rows - (rows - 1) * overlap))
    scaled = np.asarray(image.resize((scaled_w, scaled_h), Image.Resampling.BILINEAR))
    step = size * (1 - overlap)
    tiles = []
    for r in range(rows):
        top = min(round(r * step), scaled_h - size)
        for c in range(cols):
            left = min(round(c * step), scaled_w - size)
            tiles.append(scaled[top : top + size, left : left + size])
    return tiles


@dataclass(frozen=True)
class MotionCandidate:
    """What grouping frames into bursts for motion needs to know of one decoded frame."""

    deployment: str
    captured_at: datetime | None
    working: np.ndarray | None


def motion_groups(frames: Sequence[MotionCandidate], burst_gap_seconds: float) -> list[list[int]]:
    """Split consecutive frames into bursts for the motion views: indices, in order.

    Neighbours join one burst when they come from one deployment, have working frames of one
    size, and either both capture times lie at most `burst_gap_seconds` apart or, when a time
    is missing (frames re-saved without EXIF), their scenes agree (a still camera's burst).
    Frames without a working frame are bursts of their own.
    """
    groups: list[list[int]] = []
    previous: MotionCandidate | None = None
    for i, frame in enumerate(frames):
        if previous is not None and groups and _same_burst(previous, frame, burst_gap_seconds):
            groups[-1].append(i)
        else:
            groups.append([i])
        previous = frame
    return groups


def _same_burst(a: MotionCandidate, b: MotionCandidate, gap: float) -> bool:
    if a.working is None or b.working is None or a.deployment != b.deployment:
        return False
    if a.working.shape != b.working.shape:
        return False
    if a.captured_at is not None and b.captured_at is not None:
        return abs((b.captured_at - a.captured_at).total_seconds()) <= gap
    difference = np.abs(_normalized_grey(a.working) - _normalized_grey(b.working))
    return float(np.median(difference)) <= _SAME_SCENE_DIFFERENCE
