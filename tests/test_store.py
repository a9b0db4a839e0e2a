"""The store: atomic parts, resume bookkeeping, tables rebuilt into a real DuckDB file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from pipeline.errors import StoreError
from pipeline.schema import FRAME_RESULTS, RUN_TABLES, duckdb_ddl, validate_table
from pipeline.stages.bursts import BurstOptions
from pipeline.stages.discover import read_deployments
from pipeline.store import store
from tests.helpers import deployment, open_store, write_deployments

T0 = datetime(2024, 3, 1, 5, 0)


def frame_rows(run_id: str, specs: list[tuple[str, str, int, float | None]]) -> pa.Table:
    """(image_id, deploymentID, seconds after T0, score or None for a failure) → parts."""
    rows = []
    for image_id, dep, sec, score in specs:
        ok = score is not None
        rows.append(
            {
                "image_id": image_id,
                "run_id": run_id,
                "deploymentID": dep,
                "file_path": f"/survey/{dep}/{image_id}.jpg",
                "relative_path": f"{image_id}.jpg",
                "file_size": 1000,
                "content_sha256": "ab" * 32,
                "width": 64,
                "height": 48,
                "exif_datetime": None,
                "captured_at": T0 + timedelta(seconds=sec),
                "utc_offset_minutes": None,
                "time_flag": "ok",
                "status": "ok" if ok else "failed",
                "failure": None if ok else "truncated image",
                "score": score,
                "top5_labels": ["snow leopard"] if ok else None,
                "top5_scores": [score] if ok else None,
                "model_name": "m" if ok else None,
                "backbone": "efficientnet_lite0" if ok else None,
                "weights_sha256": "cd" * 32 if ok else None,
            }
        )
    return pa.Table.from_pylist(rows, schema=FRAME_RESULTS)


def run_record(run_id: str) -> dict:
    return {
        "run_id": run_id,
        "kind": "pipeline",
        "status": "finished",
        "started_at": datetime.now(UTC).isoformat(),
        "finished_at": None,
        "images_root": "/s",
        "model_name": "m",
        "backbone": "efficientnet_lite0",
        "weights_sha256": "cd" * 32,
        "leopard_threshold": 0.5,
        "options_json": "{}",
        "frames_done": 0,
        "frames_failed": 0,
        "frames_skipped": 0,
        "uncia_version": "test",
    }


@pytest.fixture
def out(tmp_path: Path) -> Path:
    deployments = read_deployments(
        write_deployments(tmp_path / "d.csv", [deployment("A"), deployment("B", lat=43.2)])
    )
    out = tmp_path / "out"
    store.write_run_deployments(out, "run1", deployments)
    store.write_run_record(out, run_record("run1"))
    return out


def test_finalize_builds_every_table_into_duckdb(out: Path) -> None:
    store.write_frame_part(
        out,
        "run1",
        frame_rows(
            "run1",
            [
                ("a1", "A", 0, 0.9),
                ("a2", "A", 10, 0.4),
                ("a3", "A", 4000, 0.1),
                ("b1", "B", 0, 0.2),
                ("bad", "A", 20, None),
            ],
        ),
    )
    counts = store.finalize(out, BurstOptions())
    assert counts == {"deployments": 2, "images": 5, "detections": 4, "bursts": 3, "runs": 1}
    con = open_store(out)
    (failure,) = con.execute("SELECT failure FROM images WHERE status = 'failed'").fetchall()[0]
    assert failure == "truncated image"  # nothing is lost: the bad frame is a row
    det = con.execute(
        "SELECT burst_id, latitude, h3_r7, weights_sha256 FROM detections WHERE image_id='a2'"
    ).fetchall()[0]
    assert det[0] == "A/20240301T050000" and det[1] == 43.1 and det[2] and det[3] == "cd" * 32
    for name, schema in RUN_TABLES.items():
        table = con.sql(f'SELECT * FROM "{name}"').to_arrow_table()
        assert validate_table(table, schema) == [], name
    assert (out / "parquet" / "detections.parquet").exists()


def test_resume_skips_done_frames_and_latest_attempt_wins(out: Path) -> None:
    store.write_frame_part(
        out, "run1", frame_rows("run1", [("a1", "A", 0, 0.9), ("a2", "A", 5, None)])
    )
    assert store.completed_image_ids(out) == {"a1"}  # the failed frame is tried again
    store.write_run_record(out, run_record("run2"))
    store.write_frame_part(out, "run2", frame_rows("run2", [("a2", "A", 5, 0.3)]))
    store.finalize(out, BurstOptions())
    con = open_store(out)
    rows = con.execute("SELECT image_id, status, run_id FROM images ORDER BY 1").fetchall()
    assert rows == [("a1", "ok", "run1"), ("a2", "ok", "run2")]
    assert con.execute("SELECT count(*) FROM runs").fetchall()[0] == (2,)


def test_parts_are_written_atomically(out: Path) -> None:
    path = store.write_frame_part(out, "run1", frame_rows("run1", [("a1", "A", 0, 0.5)]))
    leftovers = [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert path.name == "part-000000.parquet" and leftovers == []
    with pytest.raises(StoreError, match="missing column"):
        store.write_frame_part(out, "run1", pa.table({"image_id": ["x"]}))
    assert sorted(p.name for p in path.parent.iterdir()) == ["part-000000.parquet"]


def test_reader_keeps_a_consistent_snapshot_while_the_store_is_rebuilt(out: Path) -> None:
    store.write_frame_part(out, "run1", frame_rows("run1", [("a1", "A", 0, 0.9)]))
    store.finalize(out, BurstOptions())
    reader = open_store(out)
    store.write_frame_part(out, "run1", frame_rows("run1", [("a2", "A", 500, 0.8)]))
    store.finalize(out, BurstOptions())
    assert reader.execute("SELECT count(*) FROM detections").fetchall()[0] == (1,)
    assert open_store(out).execute("SELECT count(*) FROM detections").fetchall()[0] == (2,)


def test_ddl_matches_schema() -> None:
    con = duckdb.connect()
    for name in RUN_TABLES:
        con.execute(duckdb_ddl(name))
        cols = [r[0] for r in con.execute(f"DESCRIBE {name}").fetchall()]
        assert cols == RUN_TABLES[name].names


def test_open_store_without_a_store_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="uncia run"):
        open_store(tmp_path)


def test_store_files_are_readable_by_other_users(out: Path) -> None:
    part = store.write_frame_part(out, "run1", frame_rows("run1", [("a1", "A", 0, 0.5)]))
    store.finalize(out, BurstOptions())
    for path in (part, out / "uncia.duckdb", out / "parquet" / "detections.parquet"):
        assert path.stat().st_mode & 0o044 == 0o044, path


def test_first_row_leaves_the_connection_free_for_the_next_query() -> None:
    """A one-row read must not hold the connection: DuckDB 2.0 refuses the next sql() or
    register() while a result is half-read (what crashed `uncia localize`)."""
    con = duckdb.connect()
    assert store.first_row(con, "SELECT * FROM range(?) ORDER BY 1 DESC", [3]) == (2,)
    assert store.first_row(con, "SELECT 1 WHERE false") is None
    con.register("t", pa.table({"a": [1, 2]}))
    assert con.sql("SELECT sum(a) FROM t").fetchall() == [(3,)]


def test_no_module_reads_a_result_in_part() -> None:
    """One-row reads go through store.first_row, never fetchone() / fetchmany()."""
    root = Path(__file__).resolve().parents[1]
    partial = [
        f"{path.relative_to(root)}:{n}"
        for folder in ("pipeline", "dashboard", "bench")
        for path in (root / folder).rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if ".fetchone(" in line or ".fetchmany(" in line
    ]
    assert not partial, partial
