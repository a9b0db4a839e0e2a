"""Fixtures made in code: JPEGs with EXIF written by Pillow, deployments tables, stores."""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image

SHARED_PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "camera-traps"
UNCIA = Path(sys.executable).parent / "uncia"  # the console script `pip install` made

DEPLOYMENT_COLUMNS = [
    "deploymentID",
    "locationID",
    "locationName",
    "latitude",
    "longitude",
    "deploymentStart",
    "deploymentEnd",
    "cameraID",
    "clockOffsetSeconds",
]


def jpeg_bytes(
    width: int = 320,
    height: int = 240,
    when: datetime | None = None,
    offset: str | None = None,
    seed: int = 0,
    orientation: int | None = None,
) -> bytes:
    """A textured JPEG with EXIF DateTimeOriginal (and OffsetTimeOriginal) when given."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    image = Image.fromarray(base).resize((width, height), Image.Resampling.BILINEAR)
    exif = Image.Exif()
    if when is not None:
        ifd = exif.get_ifd(0x8769)
        ifd[36867] = when.strftime("%Y:%m:%d %H:%M:%S")
        if offset:
            ifd[36881] = offset
    if orientation:
        exif[274] = orientation
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=85, exif=exif)
    return buf.getvalue()


def write_deployments(path: Path, rows: Sequence[dict[str, object]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=DEPLOYMENT_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in DEPLOYMENT_COLUMNS})
    return path


def deployment(dep_id: str, lat: float = 43.1, lng: float = 100.7, **extra: object) -> dict:
    row: dict[str, object] = {
        "deploymentID": dep_id,
        "locationID": f"loc-{dep_id}",
        "locationName": f"Station {dep_id}",
        "latitude": lat,
        "longitude": lng,
        "deploymentStart": "2024-01-01T00:00:00",
        "deploymentEnd": "2024-12-31T00:00:00",
        "cameraID": f"cam-{dep_id}",
    }
    row.update(extra)
    return row


def uncia_run_command(root: Path, csv: Path, out: Path, *extra: str) -> list[str]:
    """`uncia run` on the offline efficientnet_lite0 backbone, as a subprocess argument list."""
    return [
        sys.executable, "-m", "pipeline.cli", "run", str(root), "--deployments", str(csv),
        "--out", str(out), "--backbone", "efficientnet_lite0", "--no-progress", *extra,
    ]  # fmt: skip


def uncia(
    *args: str | Path,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the installed `uncia` command (the console script beside this Python) in a new
    process and session: no terminal, a fresh torch, the environment `env` (default: ours)."""
    result = subprocess.run(
        [str(UNCIA), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        input=stdin,
        start_new_session=True,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"uncia {args} failed:\n{result.stdout}\n{result.stderr}")
    return result


def announced_port(proc: subprocess.Popen[str], then: str = "") -> int:
    """The loopback port in the first line `uncia serve` prints, checked against `then`."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+)/ .*" + then, line)
    assert match, line
    return int(match.group(1))
