"""View embeddings for `uncia train` and `uncia evaluate`: every labelled frame cut into the views
`uncia run` scores (pipeline/stages/views.py) and embedded, so a head learns and is measured on
what it will see. The whole view and the tiles depend on the file alone: they are cached by content
sha256, backbone, weights and view layout (grid, overlap, working side). Motion crops depend on
a frame's burst neighbours: they are cut and embedded on every call, never cached.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from pipeline.schema import VIEW_EMBEDDINGS, ViewKind, ViewMode
from pipeline.stages.decode import DecodedFrame, parse_exif_datetime
from pipeline.stages.embed import Backbone
from pipeline.stages.views import (
    Box,
    FrameViews,
    MotionCandidate,
    ViewOptions,
    cut_views,
    format_grids,
    motion_regions,
)
from pipeline.stages.views import motion_groups as find_motion_groups
from pipeline.store.embedding_cache import (
    COMPACT_AFTER_PARTS,
    EmbeddingCache,
    decode_batches,
    row_index,
    sha256_of,
)

ROWS_PER_PART = 512  # rows hold every view of a frame: parts stay a few tens of MB


# Bump when the pixels of a tile change (2: tiles cropped from one scaled frame per grid).
TILE_CUT_VERSION = 2


def view_layout(views: ViewOptions) -> str:
    """The part of a view cache's key that says how frames are cut: grids, overlap, working
    side and how tiles are cut (e.g. `views-4x3-o0.25-w960-c2`; c2: each grid scaled once, its
    tiles cropped). Motion settings are not in it: motion is not cached."""
    cut = f"-c{TILE_CUT_VERSION}"
    return f"views-{format_grids(views.grids)}-o{views.overlap:g}-w{views.working_side}{cut}"


class ViewEmbeddingCache(EmbeddingCache):
    """The cached whole-view and tile embeddings of one backbone and one view layout."""

    schema = VIEW_EMBEDDINGS

    def __init__(
        self,
        root: Path,
        backbone: Backbone,
        views: ViewOptions,
    ) -> None:
        super().__init__(
            root,
            backbone.name,
            backbone.weights_sha256,
            backbone.input_size,
            backbone.precision,
            backbone.runtime,
            view_layout(views),
        )


@dataclass(frozen=True, eq=False)
class EmbeddedViews:
    """The views of N files in input order, all views of all frames in one matrix.

    Rows of `features` (and `flipped`, the mirror image of each view) run frame by frame;
    `frame` says whose each row is. A file that failed has no row and a `failure`.
    """

    features: np.ndarray  # float32 (M, D)
    flipped: np.ndarray | None  # float32 (M, D), when asked
    frame: np.ndarray  # int64 (M,) index into the input files
    kinds: np.ndarray  # str (M,) ViewKind values
    boxes: np.ndarray  # float32 (M, 4) left, top, width, height: fractions of the frame
    content_sha256: list[str | None]
    failure: list[str | None]
    exif_datetime: list[str | None]
    hits: int  # files whose whole view and tiles all came from the cache
    decoded: int  # files decoded in this call
    # The bursts motion crops came from: file indices, in capture order (pipeline/stages/tracks.py)
    bursts: tuple[tuple[int, ...], ...] = ()
    # Per row: a motion region in which something moves now (views.motion_regions)
    moving: np.ndarray | None = None


def embed_in_batches(backbone: Backbone, pixels: np.ndarray, batch_size: int) -> np.ndarray:
    """`backbone.embed` over uint8 (N, S, S, 3) views in model batches of exactly `batch_size`
    (the last padded with blank views: OpenVINO and oneDNN keep kernels per batch shape)."""
    out = [np.empty((0, backbone.feature_dim), dtype=np.float32)]
    for start in range(0, len(pixels), batch_size):
        chunk = pixels[start : start + batch_size]
        real = len(chunk)
        if real < batch_size:
            blank = np.zeros((batch_size - real, *chunk.shape[1:]), dtype=chunk.dtype)
            chunk = np.concatenate([chunk, blank])
        out.append(backbone.embed(np.ascontiguousarray(chunk))[:real])
    return np.concatenate(out)


@dataclass
class _Views:
    """One frame's embedded views while they are being gathered."""

    features: dict[bool, np.ndarray]  # flip -> (V, D)
    boxes: np.ndarray  # (V, 4)
    moves: tuple[bool, ...] = ()  # motion crops: does something move in each now


def embed_views(
    paths: Sequence[str],
    deployments: Sequence[str],
    backbone: Backbone,
    cache: ViewEmbeddingCache | None,
    views: ViewOptions,
    flips: bool = False,
    burst_gap_seconds: float = 60.0,
    batch_size: int = 32,
    workers: int = 2,
    progress: bool = False,
    log: TextIO = sys.stderr,
) -> EmbeddedViews:
    """Return every view of every file in `paths` (whole view, tiles, and with
    `views.mode` tiles+motion the motion crops), embedded, with their mirror images' with
    `flips`.

    Frames are taken in (deployment, path) order, `batch_size` at a time, and motion crops come
    from the bursts within a batch, exactly as `uncia run` finds them (pipeline/runs/runner.py).
    Whole views and tiles already in `cache` are not embedded again; without motion, their
    files are not even decoded. A file that cannot be read or decoded has no views and a
    failure reason (cached too). Model batches hold `batch_size` views.
    """
    paths = list(paths)
    wanted_flips = (False, True) if flips else (False,)
    tiles_only = ViewOptions(
        mode=ViewMode.TILES,
        grids=views.grids,
        overlap=views.overlap,
        working_side=views.working_side,
    )
    whole_only = ViewOptions(mode=ViewMode.WHOLE, working_side=views.working_side)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        hashes = list(pool.map(sha256_of, paths, chunksize=64))
    cached = (
        cache.lookup([h for h in hashes if h is not None])
        if cache is not None
        else VIEW_EMBEDDINGS.empty_table()
    )
    cached_keys = set(
        zip(
            cached.column("content_sha256").to_pylist(),
            cached.column("flip").to_pylist(),
            strict=True,
        )
    )
    cached_failures = {
        sha
        for sha, failure in zip(
            cached.column("content_sha256").to_pylist(),
            cached.column("failure").to_pylist(),
            strict=True,
        )
        if failure is not None
    }

    def needs_tiles(sha: str) -> bool:
        return any((sha, f) not in cached_keys for f in wanted_flips)

    hits = sum(1 for sha in hashes if sha is not None and not needs_tiles(sha))
    order = sorted(range(len(paths)), key=lambda i: (deployments[i], paths[i]))
    if views.motion:  # every readable frame, in order: its neighbours make its motion crops
        to_decode = [i for i in order if hashes[i] is not None and hashes[i] not in cached_failures]
    else:  # one file per content whose tiles are missing
        first: dict[str, int] = {}
        for i in order:
            sha = hashes[i]
            if sha is not None and needs_tiles(sha):
                first.setdefault(sha, i)
        to_decode = list(first.values())

    new_rows: list[dict[str, object]] = []
    written: list[pa.Table] = []
    tiled: dict[str, _Views] = {}  # content sha256 -> whole view and tiles embedded now
    moving: dict[int, _Views] = {}  # file index -> motion crops
    bursts: list[tuple[int, ...]] = []  # file indices of each burst of two frames or more
    moves: dict[int, list[bool]] = {}  # file index -> does each motion region move now

    def flush() -> None:
        if new_rows:
            table = pa.Table.from_pylist(new_rows, schema=VIEW_EMBEDDINGS)
            written.append(table)
            if cache is not None:
                cache.add(table)
            new_rows.clear()

    size = backbone.input_size
    layout = view_layout(views)
    bar = tqdm(total=len(to_decode), unit="frame", disable=not progress, file=log)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool, bar:
        batches = decode_batches(
            [paths[i] for i in to_decode], size, batch_size, pool, views.working_side
        )
        for start, decoded in zip(range(0, len(to_decode), batch_size), batches, strict=True):
            indices = to_decode[start : start + batch_size]
            working = {k: f.working for k, f in enumerate(decoded) if f.working is not None}
            motion: dict[int, list[Box]] = {}
            if views.motion:
                motion, flags, groups = _motion_boxes(
                    decoded, working, [deployments[i] for i in indices], views, burst_gap_seconds
                )
                bursts += [tuple(indices[k] for k in g) for g in groups if len(g) > 1]
                moves.update({indices[k]: f for k, f in flags.items()})
            cuts: list[tuple[int, bool, FrameViews]] = []  # (file index, motion?, its views)
            for k, frame in working.items():
                i, sha = indices[k], hashes[indices[k]]
                assert sha is not None  # only files that could be read are decoded
                if needs_tiles(sha) and sha not in tiled:
                    cut = cut_views(frame, tiles_only, size)
                    tiled[sha] = _Views({}, cut.boxes)
                    cuts.append((i, False, cut))
                if motion.get(k):
                    cut = cut_views(frame, whole_only, size, motion[k])
                    crops = FrameViews(cut.pixels[1:], cut.boxes[1:], cut.kinds[1:])
                    cuts.append((i, True, crops))  # the crops, not the whole view again
            for (i, is_motion, cut), features in zip(
                cuts,
                _embed_cuts(backbone, [c for _, _, c in cuts], flips, batch_size),
                strict=True,
            ):
                if is_motion:
                    moving[i] = _Views(features, cut.boxes, tuple(moves[i]))
                else:
                    tiled[hashes[i]].features.update(features)  # type: ignore[index]
            for k, frame_decoded in enumerate(decoded):
                sha = hashes[indices[k]]
                if sha is not None and needs_tiles(sha):  # once per content
                    new_rows += _rows(backbone, layout, frame_decoded, wanted_flips, tiled.get(sha))
                    cached_keys.update((sha, f) for f in wanted_flips)
            if len(new_rows) >= ROWS_PER_PART:
                flush()
            bar.update(len(decoded))
    flush()
    if cache is not None and len(cache.parts()) > COMPACT_AFTER_PARTS:
        cache.compact()
    table = pa.concat_tables([cached, *written]) if written else cached
    embedded = _assemble(
        paths, hashes, table, wanted_flips, backbone.feature_dim, moving, hits, len(to_decode)
    )
    return replace(embedded, bursts=tuple(bursts))


def _embed_cuts(
    backbone: Backbone, cuts: list[FrameViews], flips: bool, batch_size: int
) -> list[dict[bool, np.ndarray]]:
    """The features of every view of `cuts` (and of its mirror image with `flips`), per cut."""
    if not cuts:
        return []
    pixels = np.concatenate([c.pixels for c in cuts])
    features = {False: embed_in_batches(backbone, pixels, batch_size)}
    if flips:
        mirrored = np.ascontiguousarray(pixels[:, :, ::-1])
        features[True] = embed_in_batches(backbone, mirrored, batch_size)
    out, at = [], 0
    for cut in cuts:
        out.append({f: block[at : at + len(cut.pixels)] for f, block in features.items()})
        at += len(cut.pixels)
    return out


def _motion_boxes(
    decoded: list[DecodedFrame],
    working: dict[int, np.ndarray],
    deployments: list[str],
    views: ViewOptions,
    burst_gap_seconds: float,
) -> tuple[dict[int, list[Box]], dict[int, list[bool]], list[list[int]]]:
    """Motion crop boxes (working pixels) of the decoded frames of one batch (by position
    in `decoded`), found within their bursts as `uncia run` finds them, whether each moves
    now, and those bursts (by position in `decoded`, in order)."""
    positions = list(working)
    candidates = [
        MotionCandidate(
            deployments[k],
            parse_exif_datetime(decoded[k].exif_datetime, decoded[k].exif_offset)[0],
            working[k],
        )
        for k in positions
    ]
    out: dict[int, list[Box]] = {}
    moves: dict[int, list[bool]] = {}
    groups = find_motion_groups(candidates, burst_gap_seconds)
    for group in groups:
        found, flags = motion_regions([working[positions[j]] for j in group], views.motion_regions)
        for j, boxes, moving in zip(group, found, flags, strict=True):
            out[positions[j]], moves[positions[j]] = boxes, moving
    return out, moves, [[positions[j] for j in group] for group in groups]


def _rows(
    backbone: Backbone,
    layout: str,
    frame: DecodedFrame,
    flips: Sequence[bool],
    embedded: _Views | None,
) -> list[dict[str, object]]:
    """The cache rows of one content: its views' features, or its failure."""
    ok = embedded if frame.failure is None else None
    return [
        {
            "content_sha256": frame.content_sha256,
            "flip": flip,
            "backbone": backbone.name,
            "weights_sha256": backbone.weights_sha256,
            "input_size": backbone.input_size,
            "layout": layout,
            "views": len(ok.boxes) if ok else None,
            "features": ok.features[flip].ravel().tolist() if ok else None,
            "boxes": ok.boxes.ravel().tolist() if ok else None,
            "failure": frame.failure,
            "width": frame.width,
            "height": frame.height,
            "exif_datetime": frame.exif_datetime,
            "exif_offset": frame.exif_offset,
        }
        for flip in flips
    ]


def _assemble(
    paths: list[str],
    hashes: list[str | None],
    table: pa.Table,
    wanted_flips: tuple[bool, ...],
    dim: int,
    moving: dict[int, _Views],
    hits: int,
    decoded: int,
) -> EmbeddedViews:
    """Lay every frame's views out in the order of `paths`: whole view, tiles, motion crops."""
    index = row_index(table)
    failures = table.column("failure").to_pylist()
    exifs = table.column("exif_datetime").to_pylist()
    features = table.column("features").combine_chunks()
    offsets, values = features.offsets.to_numpy(), features.values.to_numpy(zero_copy_only=False)
    boxes_column = table.column("boxes").combine_chunks()
    box_offsets = boxes_column.offsets.to_numpy()
    box_values = boxes_column.values.to_numpy(zero_copy_only=False)

    blocks: dict[bool, list[np.ndarray]] = {f: [] for f in wanted_flips}
    frame_of: list[int] = []
    kinds: list[str] = []
    moves: list[bool] = []  # per row: a motion crop in which something moves now
    boxes: list[np.ndarray] = []
    failure: list[str | None] = [None] * len(paths)
    exif: list[str | None] = [None] * len(paths)
    for i, sha in enumerate(hashes):
        found = [index.get((sha, f)) for f in wanted_flips] if sha is not None else [None]
        rows = [r for r in found if r is not None]
        if len(rows) < len(found):
            failure[i] = f"unreadable: cannot read {paths[i]}"
            continue
        exif[i] = exifs[rows[0]]
        if failures[rows[0]] is not None:
            failure[i] = failures[rows[0]]
            continue
        for flip, r in zip(wanted_flips, rows, strict=True):
            blocks[flip].append(values[offsets[r] : offsets[r + 1]].reshape(-1, dim))
        frame_boxes = box_values[box_offsets[rows[0]] : box_offsets[rows[0] + 1]].reshape(-1, 4)
        kinds += [ViewKind.WHOLE.value] + [ViewKind.TILE.value] * (len(frame_boxes) - 1)
        moves += [False] * len(frame_boxes)
        boxes.append(frame_boxes)
        if i in moving:
            for flip in wanted_flips:
                blocks[flip].append(moving[i].features[flip])
            kinds += [ViewKind.MOTION.value] * len(moving[i].boxes)
            moves += moving[i].moves
            boxes.append(moving[i].boxes)
        frame_of += [i] * (len(kinds) - len(frame_of))
    matrices = {
        f: np.concatenate(b).astype(np.float32) if b else np.empty((0, dim), np.float32)
        for f, b in blocks.items()
    }
    return EmbeddedViews(
        features=matrices[False],
        flipped=matrices.get(True),
        frame=np.array(frame_of, dtype=np.int64),
        kinds=np.array(kinds, dtype=object),
        moving=np.array(moves, dtype=bool),
        boxes=np.concatenate(boxes).astype(np.float32) if boxes else np.empty((0, 4), np.float32),
        content_sha256=list(hashes),
        failure=failure,
        exif_datetime=exif,
        hits=hits,
        decoded=decoded,
    )
