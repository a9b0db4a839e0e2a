"""`uncia infobar ROOT --out CSV`: read the capture time each frame's camera printed in its
info bar (Tesseract), beside its EXIF time, and flag where they disagree (docs/interop.md).

    uncia infobar /surveys/tost-2025 --out times.csv --preset reconyx
"""

from __future__ import annotations

import argparse
import csv
import io
from collections import Counter
from pathlib import Path
from typing import Any

from pipeline.errors import InputError
from pipeline.schema import csv_cell
from pipeline.stages.discover import IMAGE_SUFFIXES
from pipeline.stages.infobar import PRESETS, TimeComparison, compare_with_exif
from pipeline.store.store import atomic_write_text

BATCH = 200  # frames per Tesseract process: bounded temporary files and memory
COLUMNS = ["file", "exif_time", "infobar_time", "infobar_resolution_s", "infobar_flag",
           "agreement", "difference_s", "infobar_text"]  # fmt: skip


def add_infobar_command(sub: Any) -> None:
    command = sub.add_parser(
        "infobar", help="read capture times from the cameras' info bars; compare with EXIF"
    )
    command.add_argument("root", type=Path, metavar="ROOT", help="a folder of frames (recursive)")
    command.add_argument("--out", type=Path, required=True, metavar="CSV", help="the CSV to write")
    command.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="reconyx",
        help="where the bar is and its date order (default reconyx: top, year-month-day)",
    )
    command.add_argument(
        "--tolerance",
        type=float,
        default=1.0,
        metavar="S",
        help="info bar and EXIF within S seconds agree (default 1)",
    )


def _frames(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise InputError(f"{root} is neither a folder nor a file")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _row(root: Path, c: TimeComparison) -> list[str]:
    name = c.file.relative_to(root).as_posix() if c.file != root else c.file.name
    return [
        csv_cell(name),
        c.exif_time.isoformat() if c.exif_time else "",
        c.infobar.time.isoformat() if c.infobar.time else "",
        str(c.infobar.resolution_seconds) if c.infobar.time else "",
        c.infobar.flag.value,
        c.agreement.value,
        f"{c.difference_seconds:g}" if c.difference_seconds is not None else "",
        csv_cell(c.infobar.text),  # OCR text and file names: never a formula in a spreadsheet
    ]


def infobar_command(args: argparse.Namespace) -> int:
    frames = _frames(args.root)
    if not frames:
        raise InputError(f"no frames ({', '.join(sorted(IMAGE_SUFFIXES))}) under {args.root}")
    preset = PRESETS[args.preset]
    results: list[TimeComparison] = []
    for start in range(0, len(frames), BATCH):
        results.extend(compare_with_exif(frames[start : start + BATCH], preset, args.tolerance))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(_row(args.root, c) for c in results)
    atomic_write_text(out.getvalue(), args.out)
    flags = Counter(c.infobar.flag.value for c in results)
    agreement = Counter(c.agreement.value for c in results)
    print(
        f"read {len(results)} frame(s) with the {preset.name} preset: "
        + ", ".join(f"{n} {k}" for k, n in sorted(flags.items()))
        + "; against EXIF: "
        + ", ".join(f"{n} {k}" for k, n in sorted(agreement.items()))
        + f"; written to {args.out}"
    )
    for c in results:
        if c.agreement.value == "disagree":
            print(f"disagree: {c.file} info bar {c.infobar.time} EXIF {c.exif_time}")
    return 0
