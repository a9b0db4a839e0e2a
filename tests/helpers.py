"""Fixtures made in code: JPEGs with EXIF written by Pillow, deployments tables, stores."""

from __future__ import annotations

import contextlib
import csv
import io
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import h3
import numpy as np
from PIL import Image

from cli.main import main
from pipeline.errors import StoreError
from pipeline.store.store import StorePaths

SHARED_PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "camera-traps"

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
        sys.executable, "-m", "cli.main", "run", str(root), "--deployments", str(csv),
        "--out", str(out), "--backbone", "efficientnet_lite0", "--no-progress", *extra,
    ]  # fmt: skip


def open_store(out_dir: Path) -> duckdb.DuckDBPyConnection:
    """Open `out_dir`'s DuckDB file read-only; raise StoreError if there is none.

    The connection is a snapshot: the store is replaced atomically at each checkpoint, and
    an open connection keeps reading the file it opened. Open again to see newer output.
    """
    path = StorePaths(Path(out_dir)).duckdb
    if not path.exists():
        raise StoreError(f"no Uncia store at {out_dir} (expected {path}); run `uncia run` first")
    # ATTACH in a fresh in-memory database, not duckdb.connect(path): connect() shares one
    # cached instance per path within a process, which would keep serving the replaced file.
    con = duckdb.connect()
    con.execute("ATTACH ? AS store (READ_ONLY)", [str(path)])
    con.execute("USE store")
    return con


def cell_center(cell: str) -> tuple[float, float]:
    """Return (lat, lng) of the centre of `cell`."""
    lat, lng = h3.cell_to_latlng(cell)
    return lat, lng


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def uncia(*args: str | Path, check: bool = True) -> Result:
    """Run the `uncia` command line in this process (the model loads without a fresh torch)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    result = Result(code, out.getvalue(), err.getvalue())
    if check and code != 0:
        raise AssertionError(f"uncia {args} failed:\n{result.stdout}\n{result.stderr}")
    return result
