"""Embedding cache: a frame's pooled backbone features (and its mirror image's), computed once and
kept in Parquet, keyed by the file's content sha256, the backbone name and its weights sha256.

`embed_files` reads through it: a second `uncia train` over the same frames hashes the files
and decodes none of them. Layout: `CACHE/<backbone>-<weights sha256[:16]>-<size>px/part-*.parquet`.
"""

from __future__ import annotations

import hashlib
import secrets
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from tqdm import tqdm

from pipeline.schema import EMBEDDINGS
from pipeline.stages.decode import DecodedFrame, decode_frame
from pipeline.stages.embed import FEATURE_VERSION, Backbone
from pipeline.store.store import atomic_write_parquet

ROWS_PER_PART = 4096  # a killed run keeps every part written so far
COMPACT_AFTER_PARTS = 32  # more parts than this are merged into one when a run finishes


@dataclass(frozen=True)
class Embedded:
    """Features of N files in input order; rows of failed files are NaN and `failure` says why."""

    features: np.ndarray  # float32 (N, D)
    flipped: np.ndarray | None  # float32 (N, D) features of the mirror images, when asked
    content_sha256: list[str | None]
    failure: list[str | None]
    exif_datetime: list[str | None]
    hits: int  # files whose embeddings all came from the cache
    decoded: int  # files decoded (and embedded) in this call

    @property
    def failed(self) -> int:
        return sum(f is not None for f in self.failure)


class EmbeddingCache:
    """The cached embeddings of one backbone (name + weights sha256) at one input size.

    `schema` is EMBEDDINGS (whole frames); pipeline/store/view_cache.py keeps the views of frames
    (VIEW_EMBEDDINGS) in a cache of the same kind, one folder per view `layout`.
    """

    schema: pa.Schema = EMBEDDINGS

    def __init__(
        self,
        root: Path,
        backbone: str,
        weights_sha256: str,
        input_size: int,
        precision: str = "fp32",
        runtime: str = "torch",
        layout: str = "",
    ) -> None:
        self.backbone = backbone
        self.weights_sha256 = weights_sha256
        self.input_size = input_size
        self.layout = layout
        # bf16 and fp32 features differ, and so do features of another embedding code version
        # or runtime (OpenVINO's kernels round differently): each gets a folder of its own
        # rather than mixing in one cache.
        self.folder = Path(root) / (
            f"{backbone}-{weights_sha256[:16]}-{input_size}px-{precision}-v{FEATURE_VERSION}"
            + ("" if runtime == "torch" else f"-{runtime}")
            + (f"-{layout}" if layout else "")
        )

    def parts(self) -> list[Path]:
        return sorted(self.folder.glob("part-*.parquet")) if self.folder.is_dir() else []

    def lookup(self, content_sha256: Sequence[str]) -> pa.Table:
        """Return the cached rows (`schema`) of these contents (both flips), one per key."""
        parts = self.parts()
        if not parts or not content_sha256:
            return self.schema.empty_table()
        dataset = ds.dataset([str(p) for p in parts], format="parquet", schema=self.schema)
        # The filter is applied while reading: rows of other contents are never held in memory.
        wanted = ds.field("content_sha256").isin(sorted(set(content_sha256))) & (
            ds.field("weights_sha256") == self.weights_sha256
        )
        return _first_per_key(dataset.to_table(filter=wanted))

    def add(self, rows: pa.Table) -> None:
        """Append rows (`schema`) as one new part file (atomically)."""
        if rows.num_rows:
            name = f"part-{secrets.token_hex(8)}.parquet"
            atomic_write_parquet(rows.cast(self.schema), self.folder / name)

    def compact(self) -> None:
        """Merge the part files into one when there are many (reads stay fast)."""
        parts = self.parts()
        if len(parts) <= COMPACT_AFTER_PARTS:
            return
        merged = _first_per_key(ds.dataset([str(p) for p in parts], schema=self.schema).to_table())
        self.add(merged)
        for part in parts:  # a reader that lists both copies keeps the first of each key
            part.unlink(missing_ok=True)


def _first_per_key(table: pa.Table) -> pa.Table:
    """Drop repeated (content, flip) keys, keeping the first (parts written concurrently, or
    a reader that lists a part and its merged copy, can repeat a key)."""
    if not table.num_rows:
        return table
    keys = pc.binary_join_element_wise(
        table.column("content_sha256"), pc.cast(table.column("flip"), pa.string()), "/"
    ).to_numpy(zero_copy_only=False)
    _, first = np.unique(keys, return_index=True)
    if first.size == table.num_rows:
        return table
    return table.take(pa.array(np.sort(first)))


def sha256_of(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None


def _features_matrix(column: pa.ChunkedArray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(matrix of the non-null rows, row -> matrix row index, -1 for null rows)."""
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    values = pc.list_flatten(column)
    matrix = np.asarray(values, dtype=np.float32).reshape(-1, dim)
    position = np.where(valid, np.cumsum(valid) - 1, -1)
    return matrix, position


def _rows(
    backbone: Backbone, frame: DecodedFrame, flips: Sequence[bool], features: dict[bool, np.ndarray]
) -> list[dict[str, object]]:
    return [
        {
            "content_sha256": frame.content_sha256,
            "flip": flip,
            "backbone": backbone.name,
            "weights_sha256": backbone.weights_sha256,
            "input_size": backbone.input_size,
            "features": features[flip].tolist() if flip in features else None,
            "failure": frame.failure,
            "width": frame.width,
            "height": frame.height,
            "exif_datetime": frame.exif_datetime,
            "exif_offset": frame.exif_offset,
        }
        for flip in flips
    ]


def decode_batches(
    paths: Sequence[str],
    size: int,
    batch_size: int,
    pool: ThreadPoolExecutor,
    working_side: int | None = None,
) -> Iterator[list[DecodedFrame]]:
    """Yield decoded batches in order, decoding the next batch while the current is embedded
    (with `working_side`, each frame also keeps its working frame: pipeline/stages/decode.py)."""
    starts = list(range(0, len(paths), batch_size))
    pending = None
    for start in starts:
        futures = [
            pool.submit(decode_frame, p, size, working_side=working_side)
            for p in paths[start : start + batch_size]
        ]
        if pending is not None:
            yield [f.result() for f in pending]
        pending = futures
    if pending is not None:
        yield [f.result() for f in pending]


def embed_files(
    paths: Sequence[str],
    backbone: Backbone,
    cache: EmbeddingCache | None,
    flips: bool = False,
    batch_size: int = 32,
    workers: int = 2,
    progress: bool = False,
    log: TextIO = sys.stderr,
) -> Embedded:
    """Return the features of every file in `paths` (and of its mirror image with `flips`).

    Files are hashed first; contents already in `cache` are not decoded. New embeddings (and
    decoding failures, which are facts about the content) are added to the cache as they are
    made. A file that cannot be read or decoded gives a NaN row and a failure reason.
    """
    paths = list(paths)
    wanted_flips = (False, True) if flips else (False,)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        hashes = list(pool.map(sha256_of, paths, chunksize=64))
    known = [h for h in hashes if h is not None]
    cached = cache.lookup(known) if cache is not None else EMBEDDINGS.empty_table()
    found: dict[tuple[str, bool], int] = {
        (sha, flip): i
        for i, (sha, flip) in enumerate(
            zip(
                cached.column("content_sha256").to_pylist(),
                cached.column("flip").to_pylist(),
                strict=True,
            )
        )
    }
    to_decode: dict[str, str] = {}  # content sha256 -> one path with that content
    for path, sha in zip(paths, hashes, strict=True):
        if sha is not None and any((sha, f) not in found for f in wanted_flips):
            to_decode.setdefault(sha, path)

    new_rows: list[dict[str, object]] = []
    written: list[pa.Table] = []

    def flush() -> None:
        if new_rows:
            table = pa.Table.from_pylist(new_rows, schema=EMBEDDINGS)
            written.append(table)
            if cache is not None:
                cache.add(table)
            new_rows.clear()

    decode_paths = list(to_decode.values())
    bar = tqdm(total=len(decode_paths), unit="frame", disable=not progress, file=log)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool, bar:
        for decoded in decode_batches(decode_paths, backbone.input_size, batch_size, pool):
            ok = [d for d in decoded if d.pixels is not None]
            features: list[dict[bool, np.ndarray]] = [{} for _ in ok]
            if ok:
                pixels = np.stack([d.pixels for d in ok])  # type: ignore[misc]
                batch = pixels if not flips else np.concatenate([pixels, pixels[:, :, ::-1]])
                embedded = backbone.embed(np.ascontiguousarray(batch))
                for j in range(len(ok)):
                    features[j][False] = embedded[j]
                    if flips:
                        features[j][True] = embedded[len(ok) + j]
            feature_of = {id(d): f for d, f in zip(ok, features, strict=True)}
            for frame in decoded:
                if frame.content_sha256 is not None:
                    new_rows += _rows(backbone, frame, wanted_flips, feature_of.get(id(frame), {}))
            if len(new_rows) >= ROWS_PER_PART:
                flush()
            bar.update(len(decoded))
    flush()
    if cache is not None and written:
        cache.compact()

    table = pa.concat_tables([cached, *written]) if written else cached
    hits = sum(1 for sha in hashes if sha is not None and sha not in to_decode)
    return _assemble(
        paths, hashes, table, wanted_flips, backbone.feature_dim, hits, len(decode_paths)
    )


def row_index(table: pa.Table) -> dict[tuple[str, bool], int]:
    """Row number of each (content sha256, flip) key of a cache table."""
    keys = zip(
        table.column("content_sha256").to_pylist(), table.column("flip").to_pylist(), strict=True
    )
    return {key: row for row, key in enumerate(keys)}


def _assemble(
    paths: list[str],
    hashes: list[str | None],
    table: pa.Table,
    wanted_flips: tuple[bool, ...],
    dim: int,
    hits: int,
    decoded: int,
) -> Embedded:
    """Lay the embedding rows out in the order of `paths`."""
    index = row_index(table)
    n = len(paths)
    out = {f: np.full((n, dim), np.nan, dtype=np.float32) for f in wanted_flips}
    failure: list[str | None] = [None] * n
    exif: list[str | None] = [None] * n
    failures = table.column("failure").to_pylist()
    exifs = table.column("exif_datetime").to_pylist()
    matrix, position = _features_matrix(table.column("features"), dim)
    for flip in wanted_flips:
        rows = [index.get((sha, flip)) if sha else None for sha in hashes]
        found = np.array([-1 if r is None else position[r] for r in rows], dtype=np.int64)
        take = np.flatnonzero(found >= 0)
        out[flip][take] = matrix[found[take]]
        for i, r in enumerate(rows):
            if r is None:
                failure[i] = failure[i] or f"unreadable: cannot read {paths[i]}"
            else:
                failure[i] = failure[i] or failures[r]
                exif[i] = exifs[r]
    return Embedded(
        features=out[False],
        flipped=out.get(True),
        content_sha256=list(hashes),
        failure=failure,
        exif_datetime=exif,
        hits=hits,
        decoded=decoded,
    )
