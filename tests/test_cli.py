"""`uncia run` end to end: real JPEG decoding, the real offline ImageNet model, a real store."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.helpers import (
    SHARED_PHOTOS,
    deployment,
    jpeg_bytes,
    open_store,
    uncia,
    write_deployments,
)

pytestmark = pytest.mark.model
T0 = datetime(2024, 2, 10, 6, 0, 0)


@pytest.fixture(scope="module")
def survey(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two deployments of generated frames, bursts by EXIF time, and some bad files."""
    base = tmp_path_factory.mktemp("survey")
    root = base / "images"
    for dep, seconds in {"CAM-A": [0, 2, 4, 3600], "CAM-B": [0, 30]}.items():
        folder = root / dep / "DCIM" / "100RECNX"
        folder.mkdir(parents=True)
        for i, s in enumerate(seconds):
            (folder / f"IMG_{i:04d}.JPG").write_bytes(
                jpeg_bytes(640, 480, when=T0 + timedelta(seconds=s), seed=i)
            )
    good = jpeg_bytes(640, 480, when=T0)
    (root / "CAM-A" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (root / "CAM-A" / "notes.jpg").write_text("this is not a picture")
    (root / "CAM-B" / "no-exif.jpg").write_bytes(jpeg_bytes(320, 240))
    (root / "CAM-X").mkdir()
    (root / "CAM-X" / "stray.jpg").write_bytes(jpeg_bytes(320, 240, when=T0))
    csv = write_deployments(
        base / "deployments.csv",
        [deployment("CAM-A", 43.15, 100.6), deployment("CAM-B", 43.2, 100.9)],
    )
    return root, csv


def test_run_writes_detections_with_locations_and_survives_bad_files(
    survey: tuple[Path, Path], tmp_path: Path
) -> None:
    root, csv = survey
    out = tmp_path / "out"
    first = uncia(
        "run",
        root,
        "--deployments",
        csv,
        "--out",
        out,
        "--backbone",
        "efficientnet_lite0",
        "--batch-size",
        "4",
        "--no-progress",
    )
    assert "failed: 1 × truncated image" in first.stdout
    assert "failed: 1 × not an image" in first.stdout
    assert "'CAM-X' is not in the deployments table" in first.stdout

    con = open_store(out)
    rows = con.execute(
        "SELECT deploymentID, latitude, h3_r5, h3_r9, score, top5_labels, backbone, "
        "weights_sha256, burst_id FROM detections ORDER BY deploymentID, captured_at"
    ).fetchall()
    assert len(rows) == 7  # 6 timed frames + 1 without EXIF time
    for dep, lat, r5, r9, score, top5, backbone, sha, _ in rows:
        assert lat == {"CAM-A": 43.15, "CAM-B": 43.2}[dep]
        assert r5.startswith("85") and r9.startswith("89")
        assert 0.0 <= score <= 1.0 and len(top5) == 5
        assert backbone == "efficientnet_lite0" and len(sha) == 64
    bursts = con.execute(
        "SELECT deploymentID, n_frames FROM bursts ORDER BY deploymentID, start_time NULLS LAST"
    ).fetchall()
    assert bursts == [("CAM-A", 3), ("CAM-A", 1), ("CAM-B", 2), ("CAM-B", 1)]
    failures = con.execute(
        "SELECT relative_path, failure FROM images WHERE status = 'failed' ORDER BY 1"
    ).fetchall()
    assert [f[0] for f in failures] == ["notes.jpg", "stray.jpg", "truncated.jpg"]
    flags = dict(con.execute("SELECT relative_path, time_flag FROM images").fetchall())
    assert flags["no-exif.jpg"] == "missing"
    (run,) = con.execute("SELECT status, frames_done, frames_failed FROM runs").fetchall()
    assert run == ("finished", 7, 3)

    again = uncia(
        "run",
        root,
        "--deployments",
        csv,
        "--out",
        out,
        "--backbone",
        "efficientnet_lite0",
        "--no-progress",
    )
    assert "7 already done, 0 classified, 3 failed" in again.stdout  # failures are retried
    con = open_store(out)
    assert con.execute("SELECT count(*) FROM detections").fetchall() == [(7,)]
    assert con.execute("SELECT count(*) FROM images").fetchall() == [(10,)]


def test_strict_turns_problems_into_a_non_zero_exit(
    survey: tuple[Path, Path], tmp_path: Path
) -> None:
    root, csv = survey
    result = uncia(
        "run",
        root,
        "--deployments",
        csv,
        "--out",
        tmp_path / "o",
        "--backbone",
        "efficientnet_lite0",
        "--strict",
        "--no-progress",
        check=False,
    )
    assert result.returncode == 3 and "--strict" in result.stderr


def test_missing_resnet50_weights_is_one_clear_line(
    survey: tuple[Path, Path], tmp_path: Path
) -> None:
    root, csv = survey
    result = uncia(
        "run",
        root,
        "--deployments",
        csv,
        "--out",
        tmp_path / "o",
        "--weights",
        tmp_path / "missing.pth",
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("uncia: error:")


def test_bad_deployments_table_is_one_clear_line(survey: tuple[Path, Path], tmp_path: Path) -> None:
    root, _ = survey
    bad = write_deployments(tmp_path / "d.csv", [deployment("CAM-A", lat=243.0)])
    result = uncia("run", root, "--deployments", bad, "--out", tmp_path / "o", check=False)
    assert result.returncode == 2
    assert "line 2" in result.stderr and "out of range" in result.stderr


@pytest.mark.realdata
@pytest.mark.skipif(not SHARED_PHOTOS.exists(), reason="../shared/data/camera-traps is absent")
def test_run_on_real_camtrapr_stations(tmp_path: Path) -> None:
    root = SHARED_PHOTOS / "jniedballa-camtrapR" / "inst" / "pictures" / "sample_images_species_tag"
    # Station coordinates are invented for the test; dates cover the 2009 frames.
    rows = [
        deployment(
            f"Station{s}",
            5.5 + i * 0.01,
            117.0 + i * 0.01,
            deploymentStart="2009-04-01",
            deploymentEnd="2009-06-30",
        )
        for i, s in enumerate("ABC")
    ]
    csv = write_deployments(tmp_path / "d.csv", rows)
    out = tmp_path / "out"
    uncia(
        "run",
        root,
        "--deployments",
        csv,
        "--out",
        out,
        "--backbone",
        "efficientnet_lite0",
        "--no-progress",
    )
    con = open_store(out)
    n_files = sum(1 for p in root.rglob("*") if p.suffix.lower() == ".jpg")
    assert con.execute("SELECT count(*) FROM images").fetchall() == [(n_files,)]
    (n_ok, n_timed, n_bursts) = con.execute(
        "SELECT count(*), count(captured_at), count(DISTINCT burst_id) FROM detections"
    ).fetchall()[0]
    assert n_ok == n_files and n_timed >= n_files - 2  # EXIF times read from real frames
    assert n_bursts < n_ok  # the "(1)", "(2)" frames of one trigger share a burst
    (months,) = con.execute(
        "SELECT list(DISTINCT month(captured_at) ORDER BY 1) FROM detections"
    ).fetchall()[0]
    assert set(months) <= {4, 5, 6}
