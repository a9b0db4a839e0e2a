"""Labelled frames for `uncia train` and `uncia evaluate`: a CSV of `file,label[,deployment]` or
a folder-per-class tree, read into one Arrow table that says each frame's deployment.

Bursts come from EXIF capture times (see `assign_label_bursts`), exactly as in `uncia run`.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from pipeline.errors import InputError
from pipeline.schema import TS, FrameSource, csv_uncell
from pipeline.stages.bursts import BurstOptions, assign_bursts
from pipeline.stages.decode import parse_exif_datetime
from pipeline.stages.discover import IMAGE_SUFFIXES

NO_DEPLOYMENT = "(none)"  # frames whose deployment cannot be told from their path

LABELLED = pa.schema(
    [
        pa.field("file_path", pa.string(), nullable=False),
        pa.field("relative_path", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        pa.field("deployment", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
    ]
)


def read_labelled_frames(
    images_root: str | os.PathLike[str], labels: str | os.PathLike[str] | None = None
) -> pa.Table:
    """Read the labelled survey frames; return a LABELLED table in file order.

    `labels` is a CSV with columns `file` (path under `images_root`) and `label`, and optionally
    `deployment` (default: the first folder of `file`); or a folder-per-class tree
    `<label>/[<deployment>/]**/*.jpg` (`labels` a folder, or None for `images_root` itself).
    Raises InputError for a missing root or CSV, missing columns, empty values, repeated files.
    """
    root = Path(images_root)
    if not root.is_dir():
        raise InputError(f"images root {root} is not a folder")
    if labels is None or Path(labels).is_dir():
        return _read_tree(Path(labels) if labels is not None else root)
    return _read_csv(root, Path(labels))


def read_extra_frames(
    folders: Iterable[str | os.PathLike[str]], label: str, source: FrameSource
) -> pa.Table:
    """Every image under each folder of `folders`, labelled `label`; return a LABELLED table.

    Extra frames come from outside the survey: each is its own deployment, and they are only
    ever trained on. Raises InputError for a folder that does not exist or holds no image.
    """
    rows: list[dict[str, str]] = []
    for folder in folders:
        path = Path(folder)
        if not path.is_dir():
            raise InputError(f"extra folder {path} is not a folder")
        found = _images_under(path)
        if not found:
            raise InputError(f"extra folder {path} holds no .jpg/.jpeg/.png image")
        for file in found:
            rel = file.relative_to(path).as_posix()
            rows.append(
                {
                    "file_path": str(file.absolute()),
                    "relative_path": rel,
                    "label": label,
                    "deployment": f"{source.value}:{path.name}/{rel}",
                    "source": source.value,
                }
            )
    return pa.Table.from_pylist(rows, schema=LABELLED) if rows else LABELLED.empty_table()


def _images_under(folder: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        found += [
            Path(dirpath) / n for n in sorted(filenames) if Path(n).suffix.lower() in IMAGE_SUFFIXES
        ]
    return found


def _read_tree(tree: Path) -> pa.Table:
    if not tree.is_dir():
        raise InputError(f"labels folder {tree} is not a folder")
    rows = []
    for class_dir in sorted(p for p in tree.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for file in _images_under(class_dir):
            inner = file.relative_to(class_dir).parts
            rows.append(
                {
                    "file_path": str(file.absolute()),
                    "relative_path": file.relative_to(tree).as_posix(),
                    "label": class_dir.name,
                    "deployment": inner[0] if len(inner) > 1 else NO_DEPLOYMENT,
                    "source": FrameSource.SURVEY.value,
                }
            )
    if not rows:
        raise InputError(f"{tree}: no <label>/**/*.jpg images found (folder-per-class tree)")
    return pa.Table.from_pylist(rows, schema=LABELLED)


def _read_csv(root: Path, path: Path) -> pa.Table:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            lines = list(reader)
    except OSError as exc:
        raise InputError(f"cannot read labels {path}: {exc.strerror}") from exc
    missing = [c for c in ("file", "label") if c not in header]
    if missing:
        raise InputError(f"{path.name}: missing column(s) {', '.join(missing)} (need file, label)")
    rows, seen = [], set()
    for number, line in enumerate(lines, start=2):
        file = csv_uncell((line.get("file") or "").strip())  # as csv_cell wrote it
        label = csv_uncell((line.get("label") or "").strip())
        if not file or not label:
            raise InputError(f"{path.name} line {number}: empty file or label")
        if file in seen:
            raise InputError(f"{path.name} line {number}: {file!r} is listed twice")
        seen.add(file)
        relative = Path(file)
        deployment = (line.get("deployment") or "").strip()
        if not deployment:
            deployment = relative.parts[0] if len(relative.parts) > 1 else NO_DEPLOYMENT
        rows.append(
            {
                "file_path": str((root / relative).absolute()),
                "relative_path": relative.as_posix(),
                "label": label,
                "deployment": deployment,
                "source": FrameSource.SURVEY.value,
            }
        )
    if not rows:
        raise InputError(f"{path.name}: no labelled frames")
    return pa.Table.from_pylist(rows, schema=LABELLED)


def assign_label_bursts(
    deployments: list[str], exif_datetimes: list[str | None], burst_gap_seconds: float
) -> tuple[list[datetime | None], list[str]]:
    """Group frames into bursts by EXIF time within each deployment, as `uncia run` does.

    Returns (capture times, burst ids), one each per frame in order. A frame without a readable
    capture time is a burst of its own.
    """
    times = [parse_exif_datetime(raw, None)[0] for raw in exif_datetimes]
    ids = [f"{i:010d}" for i in range(len(deployments))]
    frames = pa.table(
        {
            "image_id": pa.array(ids, pa.string()),
            "deploymentID": pa.array(deployments, pa.string()),
            "captured_at": pa.array(times, TS),
        }
    )
    if not frames.num_rows:
        return [], []
    with_bursts = assign_bursts(frames, BurstOptions(burst_gap_seconds=burst_gap_seconds))
    return times, with_bursts.column("burst_id").to_pylist()


def visit_ids(
    deployments: Sequence[str], captured_at: Sequence[datetime | None], burst_ids: Sequence[str]
) -> list[str]:
    """The visit of each frame: its burst when it has a capture time, else its deployment
    (frames re-saved without EXIF time cannot be told apart in time: a labelled deployment of
    such frames is taken as one visit)."""
    return [
        burst if when is not None else f"{dep}/(no time)"
        for dep, when, burst in zip(deployments, captured_at, burst_ids, strict=True)
    ]


def positive_mask(labels: list[str] | np.ndarray, positives: Iterable[str]) -> np.ndarray:
    """True where a label is one of `positives` (labels compare exactly, case and all)."""
    wanted = set(positives)
    return np.array([label in wanted for label in labels], dtype=bool)
