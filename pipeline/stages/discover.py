"""Discover a survey: the deployments table (Camtrap DP) and the frames under ROOT/<deploymentID>/.

`read_deployments` validates `deployments.csv` and adds H3 cells; `discover_frames` walks the
images root and returns one row per image file, each keyed by a stable `image_id`.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
import stat
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pyarrow as pa

from pipeline.errors import InputError
from pipeline.hexgrid import add_cell_columns
from pipeline.schema import DEPLOYMENTS, conform
from pipeline.stages.clock import MAX_CLOCK_OFFSET_SECONDS

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
REQUIRED_COLUMNS = (
    "deploymentID",
    "locationID",
    "latitude",
    "longitude",
    "deploymentStart",
    "deploymentEnd",
)
OPTIONAL_COLUMNS = ("locationName", "cameraID", "clockOffsetSeconds")

FRAMES = pa.schema(
    [
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("deploymentID", pa.string(), nullable=False),
        pa.field("file_path", pa.string(), nullable=False),
        pa.field("relative_path", pa.string(), nullable=False),
        pa.field("file_size", pa.int64()),
        pa.field("file_mtime_ns", pa.int64()),
        pa.field("known_deployment", pa.bool_(), nullable=False),
    ]
)


def parse_timestamp(text: str, what: str) -> datetime:
    """Parse an ISO 8601 date or date-time into naive local wall-clock time.

    An explicit offset ("+08:00", "Z") is dropped, keeping the station's wall clock, which is
    what EXIF times are written in.
    """
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise InputError(f"{what}: {text!r} is not an ISO 8601 date or date-time") from exc
    return value.replace(tzinfo=None)


def read_deployments(
    csv_path: str | os.PathLike[str], problems: list[str] | None = None
) -> pa.Table:
    """Read and validate a Camtrap DP `deployments.csv`; return a DEPLOYMENTS table.

    A table that cannot be used at all (unreadable, missing columns, no usable row) raises
    InputError. A bad row (coordinates out of range or swapped, a bad date, a duplicate id)
    raises InputError naming its line too, unless `problems` is given: then the row is left
    out, the reason appended to `problems`, and its frames become failure rows in a run.
    """
    path = Path(csv_path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [nfc(h.strip()) for h in reader.fieldnames or []]
            reader.fieldnames = header
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read deployments table {path}: {exc}") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        hint = ""
        if len(header) == 1 and any(sep in header[0] for sep in ";\t|"):
            hint = " (the header is one column: separate columns by commas, not ; or tabs)"
        raise InputError(f"{path.name}: missing column(s) {', '.join(missing)}{hint}")
    twice = sorted({h for h in header if h and header.count(h) > 1})
    if twice:
        raise InputError(f"{path.name}: column(s) {', '.join(twice)} appear more than once")

    records: list[dict[str, object]] = []
    rejected: list[str] = []
    seen: set[str] = set()
    for line, row in enumerate(rows, start=2):
        where = f"{path.name} line {line}"
        try:
            record = _parse_deployment_row(row, where)
            if record["deploymentID"] in seen:
                raise InputError(f"{where}: deploymentID {record['deploymentID']!r} appears twice")
        except InputError as exc:
            if problems is None:
                raise
            rejected.append(str(exc))
            continue
        seen.add(str(record["deploymentID"]))
        records.append(record)
    if not records:
        raise InputError(f"{path.name}: no usable deployments. " + "; ".join(rejected))
    if problems is not None:
        problems.extend(f"{reason}; deployment left out" for reason in rejected)
    table = add_cell_columns(pa.Table.from_pylist(records))
    return conform(table, DEPLOYMENTS)


def _parse_deployment_row(row: dict[str, str | None], where: str) -> dict[str, object]:
    """Parse one deployments.csv row; raise InputError naming `where` and the problem."""
    if None in row:  # csv puts the cells past the header's last column under the key None
        raise InputError(f"{where}: more cells than the header has columns")
    dep_id = nfc((row["deploymentID"] or "").strip())
    if not dep_id:
        raise InputError(f"{where}: empty deploymentID")
    if not _is_folder_name(dep_id):
        raise InputError(
            f"{where}: deploymentID {dep_id!r} cannot be a folder name (no /, \\, . or .., "
            "no control characters)"
        )
    lat = _number(row["latitude"], f"{where} latitude")
    lng = _number(row["longitude"], f"{where} longitude")
    if not -90 <= lat <= 90 or not -180 <= lng <= 180:
        swapped = " (latitude and longitude look swapped)" if -90 <= lng <= 90 else ""
        raise InputError(f"{where}: coordinates {lat}, {lng} out of range{swapped}")
    start = parse_timestamp(row["deploymentStart"] or "", f"{where} deploymentStart")
    end = parse_timestamp(row["deploymentEnd"] or "", f"{where} deploymentEnd")
    if end < start:
        raise InputError(f"{where}: deploymentEnd {end} is before deploymentStart {start}")
    offset_text = (row.get("clockOffsetSeconds") or "").strip()
    offset = _clock_offset(offset_text, where) if offset_text else 0
    return {
        "deploymentID": dep_id,
        "locationID": nfc((row["locationID"] or "").strip()) or dep_id,
        "locationName": nfc((row.get("locationName") or "").strip()) or None,
        "latitude": lat,
        "longitude": lng,
        "deploymentStart": start,
        "deploymentEnd": end,
        "cameraID": (row.get("cameraID") or "").strip() or None,
        "clockOffsetSeconds": offset,
    }


def _number(text: str | None, what: str) -> float:
    try:
        value = float((text or "").strip())
    except ValueError as exc:
        raise InputError(f"{what}: {text!r} is not a number") from exc
    if not math.isfinite(value):
        raise InputError(f"{what}: {text!r} is not a finite number")
    return value


def _clock_offset(text: str, where: str) -> int:
    """A whole number of seconds within +-MAX_CLOCK_OFFSET_SECONDS (about a century)."""
    value = _number(text, f"{where} clockOffsetSeconds")
    if not value.is_integer():
        raise InputError(f"{where} clockOffsetSeconds: {text!r} is not a whole number of seconds")
    if abs(value) > MAX_CLOCK_OFFSET_SECONDS:
        raise InputError(
            f"{where} clockOffsetSeconds: {text!r} is more than a century "
            f"({MAX_CLOCK_OFFSET_SECONDS:,} s)"
        )
    return int(value)


def nfc(text: str) -> str:
    """`text` in Unicode NFC: a folder copied from macOS spells "é" as e + a combining accent,
    a table typed elsewhere as one character; both must name the same deployment."""
    return unicodedata.normalize("NFC", text)


def _is_folder_name(name: str) -> bool:
    """Whether `name` can be one folder level under the images root."""
    if name in {".", ".."} or "/" in name or "\\" in name:
        return False
    return all(unicodedata.category(ch) != "Cc" for ch in name)


def image_id_for(deployment_id: str, relative_path: str) -> str:
    """Return the stable id of a frame: a hash of its deployment and path under it."""
    key = nfc(f"{deployment_id}/{relative_path}").encode()
    return hashlib.sha256(key).hexdigest()[:32]


@dataclass(frozen=True)
class Discovery:
    """What was found under an images root."""

    frames: pa.Table  # FRAMES schema, sorted by deploymentID then relative_path
    warnings: list[str] = field(default_factory=list)


def discover_frames(root: str | os.PathLike[str], deployment_ids: set[str]) -> Discovery:
    """List every .jpg/.jpeg/.png file under `root`/<deploymentID>/ at any depth.

    Folders that are not in `deployment_ids` are still listed (known_deployment=False) so the
    run can record them as failures instead of losing them; a warning names each one, and each
    deployment without a folder. Symbolic links to folders are not followed (no loops);
    unreadable folders are warned about. Only regular files (or links to them) are frames: a
    FIFO or device named .jpg is skipped with a warning, as reading it could block forever.
    Folder and file names are compared and hashed in Unicode NFC (`nfc`).
    """
    root_path = Path(root)
    if not root_path.is_dir():
        raise InputError(f"images root {root_path} is not a folder")
    warnings: list[str] = []
    rows: list[dict[str, object]] = []

    def on_error(exc: OSError) -> None:
        warnings.append(f"cannot list {exc.filename}: {exc.strerror}")

    folders: set[str] = set()

    for top in sorted(root_path.iterdir(), key=lambda p: p.name):
        if not top.is_dir() or top.is_symlink():
            if top.is_file() and top.suffix.lower() in IMAGE_SUFFIXES:
                warnings.append(
                    f"{top.name}: image directly under the root, not in a "
                    "deployment folder; skipped"
                )
            continue
        dep_id = nfc(top.name)
        folders.add(dep_id)
        known = dep_id in deployment_ids
        count = 0
        for dirpath, dirnames, filenames in os.walk(top, onerror=on_error):
            dirnames.sort()
            for name in sorted(filenames):
                if Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                full = Path(dirpath) / name
                rel = nfc(full.relative_to(top).as_posix())
                try:
                    info = full.stat()
                except OSError:
                    info = None  # a dangling link: decode records why
                if info is not None and not stat.S_ISREG(info.st_mode):
                    warnings.append(f"{dep_id}/{rel}: not a regular file; skipped")
                    continue
                size = info.st_size if info is not None else None
                rows.append(
                    {
                        "image_id": image_id_for(dep_id, rel),
                        "deploymentID": dep_id,
                        "file_path": str(full.absolute()),
                        "relative_path": rel,
                        "file_size": size,
                        "file_mtime_ns": info.st_mtime_ns if info is not None else None,
                        "known_deployment": known,
                    }
                )
                count += 1
        if not known and count:
            warnings.append(
                f"folder {dep_id!r} is not in the deployments table: its {count} frame(s) "
                "are recorded as failures"
            )
    for dep_id in sorted(deployment_ids - folders):
        warnings.append(f"deployment {dep_id!r} has no folder under {root_path}: no frames")
    rows.sort(key=lambda r: (r["deploymentID"], r["relative_path"]))
    frames = pa.Table.from_pylist(rows, schema=FRAMES) if rows else FRAMES.empty_table()
    return Discovery(frames=frames, warnings=warnings)
