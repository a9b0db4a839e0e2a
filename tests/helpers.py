"""Fixtures made in code: JPEGs with EXIF written by Pillow, PNGs and scenes, deployments tables,
stores; running `uncia` and the dashboard in a subprocess; calling its callbacks."""

from __future__ import annotations

import base64
import csv
import io
import re
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import h3
import numpy as np
from dash import no_update
from PIL import Image, ImageDraw, ImageFont

from dashboard.serving.auth import REQUIRED_ROLE_ATTR
from pipeline.errors import StoreError
from pipeline.store.store import StorePaths

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


# Serving the dashboard in a subprocess, and signing in to it.

PASSWORDS = {"alice": "correct horse battery", "bob": "viewer password 1"}


def basic_auth(name: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{name}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def process_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0].lower()
    except (OSError, IndexError):
        return "gone"


def announced_port(proc: subprocess.Popen[str], then: str = "") -> int:
    """The loopback port in the first line `uncia serve` prints, checked against `then`."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+)/ .*" + then, line)
    assert match, line
    return int(match.group(1))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening_addresses(port: int) -> set[str]:
    """Local addresses LISTENing on `port`, from /proc/net/tcp (Linux)."""
    found = set()
    deadline = time.monotonic() + 5
    while not found and time.monotonic() < deadline:
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, hex_port = local.split(":")
            if int(hex_port, 16) == port and state == "0A":
                found.add(socket.inet_ntoa(bytes.fromhex(addr)[::-1]))
    return found


# Posting to Dash callbacks the way a browser does.


def dash_payload(dependency: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The body the browser posts to /_dash-update-component for one callback.

    `dependency` is an entry of /_dash-dependencies; `values` maps "id.property" to a value
    (missing ones are None).
    """
    output = dependency["output"]
    parts = output[2:-2].split("...") if output.startswith("..") else [output]
    outputs = [dict(zip(("id", "property"), p.rsplit(".", 1), strict=True)) for p in parts]
    inputs = [
        {**i, "value": values.get(f"{i['id']}.{i['property']}")} for i in dependency["inputs"]
    ]
    state = [{**i, "value": values.get(f"{i['id']}.{i['property']}")} for i in dependency["state"]]
    return {
        "output": output,
        "outputs": outputs if output.startswith("..") else outputs[0],
        "inputs": inputs,
        "state": state,
        "changedPropIds": [f"{inputs[0]['id']}.{inputs[0]['property']}"] if inputs else [],
    }


def read_callbacks(app: Any) -> list[dict[str, Any]]:
    """Server-side callbacks with plain ids that change nothing (no require_role)."""
    client = app.server.test_client()
    deps = client.get("/_dash-dependencies").get_json()
    found = []
    for dep in deps:
        entry = app.callback_map.get(dep["output"], {})
        ids = [i["id"] for i in dep["inputs"] + dep["state"]]
        if (
            dep.get("clientside_function")
            or "@" in dep["output"]
            or any(not isinstance(i, str) or i.startswith("{") for i in ids)
            or getattr(entry.get("callback"), REQUIRED_ROLE_ATTR, None) is not None
        ):
            continue
        found.append(dep)
    return found


# Calling the dashboard's callbacks as plain functions, and reading what they return.

# The page's controls at their opening values for the demo survey.
CONTROLS: dict[str, Any] = {
    "resolution": 6,
    "start_date": None,
    "end_date": None,
    "season": "all",
    "month_start": 11,
    "month_end": 3,
    "threshold": 0.5,
}


def texts(component: Any) -> str:
    """All text inside a Dash component tree, for assertions on what the page shows."""
    if component is None or component is no_update:
        return ""
    if isinstance(component, str | int | float):
        return str(component)
    if isinstance(component, list | tuple):
        return " ".join(texts(c) for c in component)
    return texts(getattr(component, "children", None))


# Images made in code.


def png_with_claimed_size(width: int, height: int) -> bytes:
    """A real 1x1 PNG whose IHDR is patched (with a valid CRC) to claim width x height."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    ihdr_start = 8 + 4  # signature, then the chunk's 4-byte length
    body = bytes(data[ihdr_start : ihdr_start + 4 + 13])  # b"IHDR" + 13 bytes of header
    body = body[:4] + struct.pack(">II", width, height) + body[12:]
    data[ihdr_start : ihdr_start + 17] = body
    data[ihdr_start + 17 : ihdr_start + 21] = struct.pack(">I", zlib.crc32(body))
    return bytes(data)


def scene(width: int = 960, height: int = 540, seed: int = 3) -> np.ndarray:
    """A still, textured scene: rocks and grass as smoothed noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(40, 200, (height // 12 + 1, width // 12 + 1, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BILINEAR))


def with_animal(frame: np.ndarray, left: int, top: int, size: int = 60) -> np.ndarray:
    out = frame.copy()
    out[top : top + size, left : left + int(size * 1.6)] = (235, 230, 215)  # a pale animal
    return out


def drawn_frame(
    path: Path,
    bar_text: str | None,
    when: datetime | None,
    bar: str = "top",
    size: tuple[int, int] = (1280, 720),
) -> Path:
    """A textured frame with a black info bar of white text (as trail cameras print it)."""
    width, height = size
    image = Image.effect_noise((width, height), 40).convert("RGB")
    if bar_text is not None:
        draw = ImageDraw.Draw(image)
        bar_height = max(height // 24, 10)
        top = 0 if bar == "top" else height - bar_height
        draw.rectangle((0, top, width, top + bar_height), fill="black")
        font = ImageFont.load_default(size=int(bar_height * 0.8))
        draw.text((8, top + bar_height * 0.08), bar_text, fill="white", font=font)
    exif = Image.Exif()
    if when is not None:
        exif.get_ifd(0x8769)[36867] = when.strftime("%Y:%m:%d %H:%M:%S")
    image.save(path, "JPEG", quality=92, exif=exif)
    return path
