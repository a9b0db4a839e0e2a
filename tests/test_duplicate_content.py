"""Bad input: the same frame (identical bytes) in two deployments, through the real `uncia run`.

Nothing is lost (a frame's identity is its path, so both copies are rows and detections), the
run goes on, its summary names the duplicate content, and `--strict` makes it exit 3.
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.helpers import deployment, jpeg_bytes, open_store, uncia_run_command, write_deployments

pytestmark = pytest.mark.model
T0 = datetime(2024, 5, 1, 5, 0)


def uncia_run(root: Path, csv: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = uncia_run_command(root, csv, out, "--batch-size", "4", *extra)
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_the_same_frame_in_two_deployments_is_kept_and_reported(tmp_path: Path) -> None:
    root = tmp_path / "images"
    for d, dep in enumerate(["P1", "P2"]):
        (root / dep).mkdir(parents=True)
        for i in range(3):
            when = T0 + timedelta(minutes=10 * i, seconds=d)
            (root / dep / f"{i:03d}.jpg").write_bytes(
                jpeg_bytes(320, 240, when=when, seed=10 * d + i)
            )
    # A card copied into the wrong folder: P1's first frame, byte for byte, under P2 as well.
    (root / "P2" / "from-card-2").mkdir()
    shutil.copyfile(root / "P1" / "000.jpg", root / "P2" / "from-card-2" / "IMG_0001.JPG")
    csv = write_deployments(tmp_path / "d.csv", [deployment("P1"), deployment("P2", lat=43.3)])

    out = tmp_path / "out"
    first = uncia_run(root, csv, out)
    assert first.returncode == 0, first.stderr  # the run goes on
    assert "7 frames found" in first.stdout and "7 classified, 0 failed" in first.stdout
    warning = (
        "warning: duplicate content in 2 deployments (P1, P2): 1 frame(s) are the same file in "
        "more than one deployment, e.g. P1/000.jpg = P2/from-card-2/IMG_0001.JPG"
    )
    assert warning in first.stdout

    con = open_store(out)
    sha = con.execute(
        "SELECT content_sha256 FROM images WHERE deploymentID = 'P1' AND relative_path = '000.jpg'"
    ).fetchall()[0][0]
    copies = con.execute(
        "SELECT deploymentID, relative_path, status FROM images WHERE content_sha256 = ? "
        "ORDER BY deploymentID",
        [sha],
    ).fetchall()
    assert copies == [("P1", "000.jpg", "ok"), ("P2", "from-card-2/IMG_0001.JPG", "ok")]
    detected = con.execute(
        "SELECT d.deploymentID, d.score FROM detections d JOIN images i USING (image_id) "
        "WHERE i.content_sha256 = ? ORDER BY 1",
        [sha],
    ).fetchall()
    assert [d[0] for d in detected] == ["P1", "P2"]  # a detection at both locations
    assert detected[0][1] == pytest.approx(detected[1][1], rel=1e-3)  # (batches differ in bits)
    assert con.execute("SELECT count(*) FROM detections").fetchall() == [(7,)]
    con.close()

    # The store keeps both copies, so every later run into it says so; --strict refuses it.
    strict = uncia_run(root, csv, out, "--strict")
    assert strict.returncode == 3, strict.stdout + strict.stderr
    assert "7 already done" in strict.stdout and warning in strict.stdout
    assert "--strict: 1 problem(s) above" in strict.stderr
    assert "Traceback" not in strict.stderr

    # Without the copy there is nothing to report: a clean survey passes --strict.
    (root / "P2" / "from-card-2" / "IMG_0001.JPG").unlink()
    clean = uncia_run(root, csv, tmp_path / "clean", "--strict")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "duplicate content" not in clean.stdout
