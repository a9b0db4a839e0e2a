"""The store: per-batch Parquet parts while a run works, then Parquet tables and a DuckDB file.

Layout of an output folder DIR:

    DIR/uncia.duckdb                 every table, rebuilt atomically at each checkpoint
    DIR/parquet/<table>.parquet      the same tables as Parquet (schema.RUN_TABLES)
    DIR/work/frames/<run>/part-*.parquet   classified frames, one file per batch (resume source)
    DIR/work/deployments/<run>.parquet     the deployments table each run used
    DIR/work/runs/<run>.json               one record per run
    DIR/work/dashboard/gaps-*.parquet      camera gaps the dashboard shares between processes

Every file is written to a temporary name and renamed, so a reader (the dashboard) never sees
a partial file and a killed run loses at most the batch in flight. A re-run skips frames done.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import secrets
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import StoreError
from pipeline.schema import (
    BURSTS,
    DEPLOYMENTS,
    DETECTIONS,
    FRAME_RESULTS,
    H3_COLUMNS,
    IMAGES,
    RUN_TABLES,
    RUNS,
    ImageStatus,
    conform,
    duckdb_ddl,
)
from pipeline.stages.bursts import BurstOptions, burst_assignment_sql, burst_summary_sql

DUCKDB_NAME = "uncia.duckdb"


LOCALIZATIONS_DIR = "localizations"  # DIR/localizations/: heat maps and crops of `uncia localize`


@dataclass(frozen=True)
class StorePaths:
    """Where everything lives inside one output folder."""

    root: Path

    @property
    def duckdb(self) -> Path:
        return self.root / DUCKDB_NAME

    @property
    def parquet(self) -> Path:
        return self.root / "parquet"

    @property
    def frames(self) -> Path:
        return self.root / "work" / "frames"

    @property
    def deployments(self) -> Path:
        return self.root / "work" / "deployments"

    @property
    def runs(self) -> Path:
        return self.root / "work" / "runs"

    @property
    def dashboard_cache(self) -> Path:
        """What a dashboard process works out once per store version for the others."""
        return self.root / "work" / "dashboard"

    def table(self, name: str) -> Path:
        return self.parquet / f"{name}.parquet"


def new_run_id(now: datetime | None = None) -> str:
    """Return a sortable, unique run id such as 20261127T023000Z-3f9a1c."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@functools.cache
def _process_umask() -> int:
    """The process umask, read once (reading it means setting it, so not on every write)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


@contextmanager
def writing_to(folder: Path) -> Iterator[None]:
    """Turn an operating-system failure to write under `folder` (not a folder, read-only, disk
    full, no permission) into one StoreError naming the folder and the reason."""
    try:
        yield
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise StoreError(f"cannot write to {folder}: {exc.strerror or exc}{where}") from exc
    # DuckDB's own file writes: a full disk mid-checkpoint is an IOException or, when it hits
    # the checkpoint itself, a FatalException (that database file is given up either way).
    except (duckdb.IOException, duckdb.FatalException) as exc:
        raise StoreError(f"cannot write to {folder}: {str(exc).splitlines()[0]}") from exc


@contextmanager
def _atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds.

    Raises StoreError when the folder cannot be written (see `writing_to`)."""
    with writing_to(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            yield tmp
            # mkstemp makes the file private (0600); give it the permissions of any new file,
            # so a dashboard running as another user can read the store.
            os.chmod(tmp, 0o666 & ~_process_umask())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


@contextmanager
def writer_lock(out_dir: Path) -> Iterator[None]:
    """Hold `out_dir`'s writer lock for a run; raise StoreError if another run holds it.

    The lock dies with its process (even on SIGKILL), so a killed run never blocks the next.
    On entry, temporary files a killed writer left behind are removed.
    """
    paths = StorePaths(Path(out_dir))
    lock_path = paths.root / "work" / ".writer.lock"
    with writing_to(paths.root):
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = lock_path.open("a+")
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise StoreError(
                f"another run is writing to {out_dir} (`uncia run`, `localize`, `identify` or "
                "`demo`); wait for it to finish"
            ) from exc
        remove_stale_temporaries(paths.root)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class DuplicateContent:
    """One file content (sha256) found as a readable frame in several deployments."""

    content_sha256: str
    files: tuple[str, ...]  # `deploymentID/relative_path`, sorted

    @property
    def deployments(self) -> tuple[str, ...]:
        return tuple(sorted({f.split("/", 1)[0] for f in self.files}))


def duplicate_content(out_dir: Path) -> list[DuplicateContent]:
    """Frames of the store whose bytes are identical although they lie in different deployments.

    Both rows stay in the store (an image's identity is its path); the same photograph in two
    deployments is a copy error, and its detections count at both locations. Only frames read
    successfully count. Sorted by the first file; empty when the store has no images table.
    """
    images = StorePaths(Path(out_dir)).table("images")
    if not images.exists():
        return []
    with duckdb.connect() as con:
        rows = con.execute(
            """SELECT content_sha256, list(deploymentID || '/' || relative_path ORDER BY
                      deploymentID, relative_path)
               FROM read_parquet(?) WHERE status = ? AND content_sha256 IS NOT NULL
               GROUP BY content_sha256 HAVING count(DISTINCT deploymentID) > 1""",
            [str(images), ImageStatus.OK.value],
        ).fetchall()
    found = [DuplicateContent(sha, tuple(files)) for sha, files in rows]
    return sorted(found, key=lambda d: d.files)


def remove_stale_temporaries(out_dir: Path) -> int:
    """Delete `.*.tmp` files (and DuckDB's `.*.tmp.wal` beside them) a killed writer or a full
    disk left in `out_dir`; return how many.

    Folders of append-only decisions (those holding a `DECISIONS_LOCK`) are left alone: the
    dashboard may be writing a decision there right now, and `decision_lock` cleans them.
    """
    removed = 0
    for pattern in (".*.tmp", ".*.tmp.wal"):
        for tmp in Path(out_dir).rglob(pattern):
            if (tmp.parent / DECISIONS_LOCK).exists():
                continue
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


DECISIONS_LOCK = ".decisions.lock"


def decision_tag(*key: str) -> str:
    """8 hex digits naming what a decision file is about (a burst, a pair), so a writer finds
    the latest decision on it by listing file names instead of reading every file."""
    return hashlib.sha256("\0".join(sorted(key)).encode()).hexdigest()[:8]


@contextmanager
def decision_lock(folder: Path) -> Iterator[None]:
    """Hold the lock of a folder of append-only decision files (blocking) while in the block.

    Every writer of the folder takes it, so on entry no write is in flight there, and the
    `.*.tmp` files a writer killed mid-write (SIGKILL) left behind are removed. The lock (an
    `flock` on `folder/.decisions.lock`) dies with its process, so a killed writer never blocks.
    """
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / DECISIONS_LOCK, os.O_RDONLY | os.O_CREAT, 0o666)  # umask applies
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        for tmp in folder.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)
        yield
    finally:
        os.close(fd)  # releases the lock


def atomic_write_parquet(table: pa.Table, path: Path) -> None:
    """Write `table` to `path` so that readers see the old file or the whole new one."""
    with _atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def atomic_write_text(text: str, path: Path) -> None:
    with _atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(data: bytes, path: Path) -> None:
    """Write `data` (a picture, an array file) to `path` atomically."""
    with _atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_frame_part(out_dir: Path, run_id: str, frames: pa.Table) -> Path:
    """Persist one batch of classified frames (FRAME_RESULTS) for `run_id`; return its path."""
    paths = StorePaths(Path(out_dir))
    run_dir = paths.frames / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    index = sum(1 for p in run_dir.glob("part-*.parquet"))
    target = run_dir / f"part-{index:06d}.parquet"
    atomic_write_parquet(conform(frames, FRAME_RESULTS), target)
    return target


def write_run_deployments(out_dir: Path, run_id: str, deployments: pa.Table) -> None:
    paths = StorePaths(Path(out_dir))
    atomic_write_parquet(conform(deployments, DEPLOYMENTS), paths.deployments / f"{run_id}.parquet")


def write_run_record(out_dir: Path, record: dict[str, Any]) -> None:
    """Write (or overwrite) the RUNS record of one run, as JSON."""
    missing = [n for n in RUNS.names if n not in record]
    if missing:
        raise StoreError(f"run record lacks {missing}")
    paths = StorePaths(Path(out_dir))
    text = json.dumps({k: record[k] for k in RUNS.names}, default=str, indent=2)
    atomic_write_text(text, paths.runs / f"{record['run_id']}.json")


def _frame_glob(paths: StorePaths) -> str:
    return str(paths.frames / "*" / "part-*.parquet")


def _has_parts(paths: StorePaths) -> bool:
    return paths.frames.exists() and any(paths.frames.glob("*/part-*.parquet"))


def latest_frames(out_dir: Path) -> pa.Table:
    """The latest row of every frame in `out_dir`: image_id, run_id, deploymentID,
    relative_path, file_path, file_size, file_mtime_ns and status (empty when nothing was
    classified yet). Resume compares them with what is on disk now (and run_id with imported
    detector boxes)."""
    paths = StorePaths(Path(out_dir))
    columns = ["image_id", "run_id", "deploymentID", "relative_path", "file_path", "file_size",
               "file_mtime_ns", "status"]  # fmt: skip
    schema = pa.schema([FRAME_RESULTS.field(c) for c in columns])
    if not _has_parts(paths):
        return schema.empty_table()
    con = _connect_frames(paths, DEPLOYMENTS.empty_table())
    found = {row[0] for row in con.execute("DESCRIBE frames").fetchall()}
    # Parts written before file_mtime_ns existed lack the column: null, compared by size only.
    select = ", ".join(c if c in found else f"NULL::BIGINT AS {c}" for c in columns)
    return con.sql(f"SELECT {select} FROM frames").to_arrow_table().cast(schema)


def writers(out_dir: Path) -> list[dict[str, Any]]:
    """The run records (work/runs/*.json) of the runs that wrote frames into `out_dir`, oldest
    first: what wrote the store (a demo or real runs, which backbone, model and views)."""
    paths = StorePaths(Path(out_dir))
    if not paths.runs.exists():
        return []
    found = []
    for record in _read_runs(paths).to_pylist():
        if any((paths.frames / record["run_id"]).glob("part-*.parquet")):
            found.append(record)
    return found


def completed_image_ids(out_dir: Path) -> set[str]:
    """Return ids of frames already classified in `out_dir` (failed frames are retried)."""
    paths = StorePaths(Path(out_dir))
    if not _has_parts(paths):
        return set()
    con = duckdb.connect()
    rows = con.execute(
        "SELECT DISTINCT image_id FROM read_parquet(?) WHERE status = ?",
        [_frame_glob(paths), ImageStatus.OK.value],
    ).fetchall()
    return {r[0] for r in rows}


def _read_runs(paths: StorePaths) -> pa.Table:
    records = []
    for f in sorted(paths.runs.glob("*.json")):
        try:
            records.append(json.loads(f.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as exc:
            raise StoreError(f"cannot read run record {f}: {exc}") from exc
    if not records:
        return RUNS.empty_table()
    for r in records:
        for key in ("started_at", "finished_at"):
            if r.get(key):
                r[key] = datetime.fromisoformat(r[key])
    return conform(pa.Table.from_pylist(records), RUNS)


def _connect_frames(paths: StorePaths, deployments: pa.Table) -> duckdb.DuckDBPyConnection:
    """Open an in-memory DuckDB with views `frames` (latest row per image) and `deployments`."""
    con = duckdb.connect()
    con.register("deployments_in", deployments)
    con.execute("CREATE TEMP TABLE deployments AS SELECT * FROM deployments_in")
    if _has_parts(paths):
        # Latest attempt wins: run ids sort by start time, parts by batch.
        con.execute(
            f"""CREATE TEMP VIEW frames AS
            SELECT * EXCLUDE (filename, _rank) FROM (
              SELECT *, row_number() OVER (
                PARTITION BY image_id ORDER BY filename DESC) AS _rank
              FROM read_parquet('{_frame_glob(paths)}', filename = true, union_by_name = true)
            ) WHERE _rank = 1"""
        )
    else:
        con.register("frames_empty", FRAME_RESULTS.empty_table())
        con.execute("CREATE TEMP VIEW frames AS SELECT * FROM frames_empty")
    return con


def merged_deployments(out_dir: Path) -> pa.Table:
    """Return the deployments of every run in `out_dir`, the latest run's row winning."""
    paths = StorePaths(Path(out_dir))
    files = sorted(paths.deployments.glob("*.parquet"))
    if not files:
        return DEPLOYMENTS.empty_table()
    con = duckdb.connect()
    table = con.sql(
        """SELECT * EXCLUDE (filename, _rank) FROM (
             SELECT *, row_number() OVER (PARTITION BY deploymentID ORDER BY filename DESC) AS _rank
             FROM read_parquet(?, filename = true)) WHERE _rank = 1 ORDER BY deploymentID""",
        params=[[str(f) for f in files]],
    ).to_arrow_table()
    return conform(table, DEPLOYMENTS)


def finalize(out_dir: Path, burst_options: BurstOptions) -> dict[str, int]:
    """Build every table from the run parts in `out_dir`; write Parquet and DuckDB atomically.

    Returns the row count of each table. Safe to call at any time (checkpoints, end of run).
    """
    paths = StorePaths(Path(out_dir))
    deployments = merged_deployments(paths.root)
    con = _connect_frames(paths, deployments)
    image_cols = ", ".join(f'f."{c}"' for c in IMAGES.names)
    images = con.sql(f"SELECT {image_cols} FROM frames f ORDER BY image_id").to_arrow_table()

    con.execute(
        f"""CREATE TEMP TABLE scored AS
        SELECT f.*, d.locationID, d.latitude, d.longitude, {", ".join(f"d.{c}" for c in H3_COLUMNS)}
        FROM frames f JOIN deployments d USING (deploymentID)
        WHERE f.status = '{ImageStatus.OK.value}'"""
    )
    con.execute(f"CREATE TEMP TABLE assigned AS {burst_assignment_sql('scored', burst_options)}")
    con.execute(
        "CREATE TEMP TABLE scored_bursts AS SELECT s.*, a.burst_id FROM scored s "
        "JOIN assigned a USING (image_id)"
    )
    bursts = con.sql(
        burst_summary_sql("scored_bursts", burst_options) + " ORDER BY burst_id"
    ).to_arrow_table()
    det_cols = ", ".join(f'"{c}"' for c in DETECTIONS.names)
    detections = con.sql(
        f"SELECT {det_cols} FROM scored_bursts ORDER BY deploymentID, captured_at, image_id"
    ).to_arrow_table()

    tables = {
        "deployments": deployments,
        "images": conform(images, IMAGES),
        "detections": conform(detections, DETECTIONS),
        "bursts": conform(bursts, BURSTS),
        "runs": _read_runs(paths),
    }
    write_tables(paths.root, tables)
    return {name: t.num_rows for name, t in tables.items()}


def write_tables(out_dir: Path, tables: dict[str, pa.Table]) -> None:
    """Write each table as Parquet and all of them into a fresh DuckDB file, atomically."""
    paths = StorePaths(Path(out_dir))
    for name, table in tables.items():
        atomic_write_parquet(conform(table, RUN_TABLES[name]), paths.table(name))
    with _atomic_path(paths.duckdb) as tmp:
        tmp.unlink()  # DuckDB refuses to open an empty non-database file
        wal = Path(str(tmp) + ".wal")
        try:
            con = duckdb.connect(str(tmp))
            try:
                for name in RUN_TABLES:
                    con.execute(duckdb_ddl(name))
                    if name in tables:
                        con.register("incoming", conform(tables[name], RUN_TABLES[name]))
                        con.execute(f'INSERT INTO "{name}" SELECT * FROM incoming')
                        con.unregister("incoming")
                con.execute("CHECKPOINT")
            finally:
                con.close()
        finally:
            wal.unlink(missing_ok=True)  # also when a full disk stopped the checkpoint


def first_row(
    con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | dict[str, Any] | None = None
) -> tuple[Any, ...] | None:
    """Run `sql` and return its first row, None when it has none.

    It fetches every row: since DuckDB 2.0 a result read only in part (`fetchone()`) blocks
    the connection's next `sql()` or `register()` (ResourceInUseException), so a one-row
    read finishes its result."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0] if rows else None
