"""The Spark engine in local mode writes the same rows as the local engine."""

from __future__ import annotations

import io
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from pipeline.config import resolve_run_options
from pipeline.runs.runner import run_survey
from pipeline.runs.spark_engine import spark_session
from tests.helpers import deployment, jpeg_bytes, open_store, write_deployments

pytest.importorskip("pyspark", reason="the spark extra is not installed")
pytestmark = [
    pytest.mark.spark,
    pytest.mark.model,
    pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java 17"),
]
T0 = datetime(2024, 1, 20, 18, 0)


def run(root: Path, csv: Path, out: Path, **extra: str) -> str:
    """Run the pipeline in this process, so one Spark session serves every run of the test."""
    options = resolve_run_options(
        {
            "images_root": root,
            "deployments": csv,
            "out_dir": out,
            "backbone": "efficientnet_lite0",
            "batch_size": 8,
            "progress": False,
            **extra,
        },
        env={},
    )
    return "\n".join(run_survey(options, log=io.StringIO()).lines())


def test_spark_local2_matches_the_local_engine(tmp_path: Path) -> None:
    root = tmp_path / "images"
    for d, dep in enumerate(["A", "B", "C"]):
        (root / dep).mkdir(parents=True)
        for i in range(14):
            when = T0 + timedelta(seconds=i * 40 + d)
            (root / dep / f"{i:03d}.jpg").write_bytes(jpeg_bytes(480, 360, when=when, seed=i + d))
    (root / "B" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    csv = write_deployments(tmp_path / "d.csv", [deployment(d) for d in "ABC"])

    # Tiles without motion crops: motion views come from bursts found within a batch, and the
    # engines cut batches differently (docs/views.md), so only these must agree exactly.
    run(root, csv, tmp_path / "local", views="tiles")
    out = run(root, csv, tmp_path / "spark", engine="spark", spark_master="local[2]", views="tiles")
    assert "42 classified, 1 failed" in out

    local, spark = open_store(tmp_path / "local"), open_store(tmp_path / "spark")
    query = (
        "SELECT image_id, burst_id, score, top5_labels, h3_r8, captured_at "
        "FROM detections ORDER BY image_id"
    )
    a, b = local.execute(query).fetchall(), spark.execute(query).fetchall()
    assert len(a) == len(b) == 42
    for row_a, row_b in zip(a, b, strict=True):
        assert row_a[:2] == row_b[:2] and row_a[3:] == row_b[3:]
        assert row_a[2] == pytest.approx(row_b[2], abs=1e-4)
    failures = "SELECT image_id, failure FROM images WHERE status = 'failed'"
    assert local.execute(failures).fetchall() == spark.execute(failures).fetchall()

    again = run(root, csv, tmp_path / "spark", engine="spark", views="tiles")
    assert "42 already done, 0 classified, 1 failed" in again  # resume works the same way


def test_a_run_gets_the_master_it_asks_for_not_the_session_before() -> None:
    """getOrCreate hands back any active session: a second run in the same process asking for
    another master would have run on the first one's task slots and reused workers."""
    first = spark_session("local[2]", 8)
    assert first.sparkContext.master == "local[2]"
    second = spark_session("local[1]", 8)
    assert second.sparkContext.master == "local[1]"
    assert second.sparkContext.defaultParallelism == 1
    assert spark_session("local[1]", 8) is second  # the same master: the session is reused
