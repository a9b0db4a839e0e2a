"""A run killed with SIGKILL at random points, then resumed, ends with the same store."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from pipeline.errors import StoreError
from pipeline.store import store
from tests.helpers import deployment, jpeg_bytes, open_store, uncia_run_command, write_deployments

pytestmark = pytest.mark.model
T0 = datetime(2024, 3, 3, 4, 0)
DETECTIONS = "SELECT image_id, burst_id, score, h3_r7 FROM detections ORDER BY image_id"
IMAGES = "SELECT image_id, status, failure, captured_at FROM images ORDER BY image_id"


def command(root: Path, csv: Path, out: Path) -> list[str]:
    return uncia_run_command(root, csv, out, "--batch-size", "2", "--checkpoint-seconds", "0.5")


@pytest.fixture(scope="module")
def survey(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("crash")
    root = base / "images"
    for d, dep in enumerate(["N1", "N2"]):
        (root / dep).mkdir(parents=True)
        for i in range(24):
            when = T0 + timedelta(seconds=25 * i + d)
            (root / dep / f"{i:03d}.jpg").write_bytes(jpeg_bytes(640, 480, when=when, seed=i))
    (root / "N1" / "cut.jpg").write_bytes(jpeg_bytes(800, 600, when=T0)[:900])
    csv = write_deployments(base / "d.csv", [deployment("N1"), deployment("N2", lat=43.3)])
    return root, csv


def test_killed_runs_resume_to_the_same_store(survey: tuple[Path, Path], tmp_path: Path) -> None:
    root, csv = survey
    reference = tmp_path / "reference"
    subprocess.run(command(root, csv, reference), check=True, capture_output=True, timeout=600)

    out = tmp_path / "killed"
    rng = random.Random(20261127)
    kills = mid_run_kills = 0
    for attempt in range(8):
        parts_before = len(list(out.glob("work/frames/*/part-*.parquet")))
        proc = subprocess.Popen(
            command(root, csv, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if attempt % 3 == 0:
            time.sleep(rng.uniform(0.2, 3.0))  # during start-up or model loading
        else:  # mid-run: once this run has written a batch, at a random moment after it
            deadline = time.monotonic() + 120
            while (
                len(list(out.glob("work/frames/*/part-*.parquet"))) == parts_before
                and proc.poll() is None
                and time.monotonic() < deadline
            ):
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is not None:
            break  # it finished before the kill
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
        mid_run_kills += attempt % 3 != 0
    assert kills >= 5 and mid_run_kills >= 3
    subprocess.run(command(root, csv, out), check=True, capture_output=True, timeout=600)

    want, got = open_store(reference), open_store(out)
    a, b = want.execute(DETECTIONS).fetchall(), got.execute(DETECTIONS).fetchall()
    assert [r[0] for r in a] == [r[0] for r in b]  # the same frames, no duplicates, none lost
    for x, y in zip(a, b, strict=True):
        assert x[1] == y[1] and x[3] == y[3] and x[2] == pytest.approx(y[2], abs=1e-4)
    assert want.execute(IMAGES).fetchall() == got.execute(IMAGES).fetchall()
    # Runs killed before their first write leave no record; the others say "running".
    statuses = [r[0] for r in got.execute("SELECT status FROM runs ORDER BY run_id").fetchall()]
    assert statuses[-1] == "finished" and statuses.count("running") >= 2
    leftovers = [p for p in out.rglob("*.tmp")]
    assert leftovers == []


def test_a_second_writer_is_refused_while_one_runs(tmp_path: Path) -> None:
    with (
        store.writer_lock(tmp_path),
        pytest.raises(StoreError, match="another run"),
        store.writer_lock(tmp_path),
    ):
        pass
    with store.writer_lock(tmp_path):  # released: usable again
        pass
