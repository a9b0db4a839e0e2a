"""`uncia export FORMAT --data DIR …`: a store in the formats other tools read
(pipeline/interop; docs/interop.md).

    uncia export camtrap-dp --data DIR --out PACKAGE --contributor NAME
    uncia export occupancy --data DIR --out FOLDER      detection history and effort (CSV)
    uncia export secr --data DIR --out FOLDER           captures and traps for R's secr
    uncia export megadetector --data DIR --out FILE.json  batch output 1.5 (Timelapse opens it)
    uncia export coco --data DIR --out FILE.json    COCO Camera Traps (LILA's format)
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.interop.camtrap_export import CamtrapExportOptions, export_camtrap_dp
from pipeline.interop.coco import export_coco
from pipeline.interop.common import parse_utc_offset
from pipeline.interop.megadetector import MegadetectorExportOptions, export_megadetector
from pipeline.interop.occupancy import (
    ALL_MONTHS,
    DAY1_CHOICES,
    HistoryOptions,
    capture_history,
    detection_history,
)
from pipeline.store.store import atomic_write_text

EXIT_INVALID = 3  # the package was written but does not validate


def _offset(text: str) -> int:
    try:
        return parse_utc_offset(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_export_command(sub: Any) -> None:
    """Register `export` and its formats on the `uncia` subparsers."""
    parser = sub.add_parser("export", help="write a store in a format other tools read")
    formats = parser.add_subparsers(dest="format", required=True, metavar="FORMAT")

    defaults = CamtrapExportOptions()
    camtrap = formats.add_parser("camtrap-dp", help="a Camtrap DP 1.0.2 package, validated offline")
    camtrap.add_argument("--data", type=Path, required=True, metavar="DIR", help="a store")
    camtrap.add_argument(
        "--out", type=Path, required=True, metavar="PACKAGE", help="folder to write it in"
    )
    camtrap.add_argument(
        "--contributor",
        action="append",
        default=[],
        metavar="NAME",
        help="a person or organisation behind the data; the first is the contact (repeatable; "
        "an imported package's contributors otherwise)",
    )
    camtrap.add_argument("--title", metavar="TEXT", help="the package's title")
    camtrap.add_argument(
        "--utc-offset",
        type=_offset,
        metavar="+HH:MM",
        help="UTC offset of the station clocks, for deployments whose frames carry none",
    )
    camtrap.add_argument(
        "--threshold",
        type=float,
        metavar="T",
        help="frames scoring at least T are snow-leopard observations (default: the run's)",
    )
    camtrap.add_argument(
        "--event-gap",
        type=float,
        default=defaults.event_gap_minutes,
        metavar="MIN",
        help=f"leopard bursts MIN minutes apart are independent events "
        f"(default {defaults.event_gap_minutes:g})",
    )
    camtrap.add_argument(
        "--license-data",
        default=defaults.data_license,
        metavar="ID",
        help=f"licence of the data (default {defaults.data_license})",
    )
    camtrap.add_argument(
        "--license-media",
        default=defaults.media_license,
        metavar="ID",
        help=f"licence of the pictures (default {defaults.media_license})",
    )
    camtrap.add_argument(
        "--metadata",
        type=Path,
        metavar="JSON",
        help="datapackage.json properties to merge in (project, bibliographicCitation, …)",
    )
    _add_history_commands(formats)
    _add_megadetector_command(formats)
    coco = formats.add_parser("coco", help="COCO Camera Traps JSON: frames, sequences, labels")
    coco.add_argument("--data", type=Path, required=True, metavar="DIR", help="a store")
    coco.add_argument("--out", type=Path, required=True, metavar="FILE", help="the .json to write")
    coco.add_argument(
        "--threshold",
        type=float,
        metavar="T",
        help="frames scoring at least T are labelled snow leopard (default: the run's)",
    )


def _add_megadetector_command(formats: Any) -> None:
    defaults = MegadetectorExportOptions()
    md = formats.add_parser(
        "megadetector", help="MegaDetector batch output 1.5: boxes and scores Timelapse opens"
    )
    md.add_argument("--data", type=Path, required=True, metavar="DIR", help="a store")
    md.add_argument("--out", type=Path, required=True, metavar="FILE", help="the .json to write")
    md.add_argument(
        "--threshold",
        type=float,
        metavar="T",
        help="the typical threshold the file recommends to Timelapse (default: the run's)",
    )
    md.add_argument(
        "--min-conf",
        type=float,
        default=defaults.min_conf,
        metavar="C",
        help=f"frames scoring below C get no box (default {defaults.min_conf:g})",
    )


def _add_history_options(parser: argparse.ArgumentParser, day1: bool) -> None:
    defaults = HistoryOptions()
    parser.add_argument("--data", type=Path, required=True, metavar="DIR", help="a store")
    parser.add_argument(
        "--out", type=Path, required=True, metavar="FOLDER", help="folder the files go to"
    )
    parser.add_argument(
        "--occasion-days",
        type=int,
        default=defaults.occasion_days,
        metavar="N",
        help=f"days per sampling occasion (default {defaults.occasion_days})",
    )
    if day1:
        parser.add_argument(
            "--day1",
            choices=DAY1_CHOICES,
            default=defaults.day1,
            help="occasion 1 starts on each station's first day (station, camtrapR's default) "
            "or on the survey's (survey)",
        )
    parser.add_argument(
        "--threshold",
        type=float,
        metavar="T",
        help="bursts scoring at least T are leopard detections (default: the run's)",
    )
    parser.add_argument(
        "--gap-days",
        type=int,
        default=0,
        metavar="N",
        help="opt-in: more than N days without a frame counts the camera as down (default "
        "0: off, as the dashboard; a quiet station is not a broken one)",
    )
    parser.add_argument(
        "--outages",
        type=Path,
        metavar="CSV",
        help="camera outages: deploymentID,outageStart,outageEnd; their days are not worked "
        "(default DIR/outages.csv when it exists, as the dashboard)",
    )
    parser.add_argument(
        "--start", type=_day, metavar="YYYY-MM-DD", help="count only days from this date on"
    )
    parser.add_argument("--end", type=_day, metavar="YYYY-MM-DD", help="…and up to this date")
    parser.add_argument(
        "--months",
        type=_months,
        metavar="M,M,…",
        help="count only days in these months (1-12), the dashboard's season, e.g. 11,12,1,2",
    )
    parser.add_argument(
        "--verified-only",
        action="store_true",
        help="detections are only bursts a person said are snow leopards (a review decision or "
        "an imported human label), the dashboard's Human-verified only",
    )


def _add_history_commands(formats: Any) -> None:
    occupancy = formats.add_parser(
        "occupancy", help="leopard detection history, station x occasion, and its effort"
    )
    _add_history_options(occupancy, day1=True)
    secr = formats.add_parser(
        "secr", help="capture histories of identified individuals for the R package secr"
    )
    _add_history_options(secr, day1=False)
    secr.add_argument("--session", default="1", metavar="NAME", help="session name (default 1)")
    secr.add_argument(
        "--crs",
        metavar="EPSG:N",
        help="projected CRS of the trap coordinates (default: the survey's UTM zone)",
    )


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a date looks like 2024-01-31, not {text!r}") from None


def _months(text: str) -> tuple[int, ...]:
    try:
        months = tuple(int(m) for m in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"months are numbers 1-12, not {text!r}") from None
    if not months or any(not 1 <= m <= 12 for m in months):
        raise argparse.ArgumentTypeError(f"months are numbers 1-12, not {text!r}")
    return months


def _history_options(args: argparse.Namespace) -> HistoryOptions:
    return HistoryOptions(
        occasion_days=args.occasion_days,
        day1=getattr(args, "day1", "survey"),
        threshold=args.threshold,
        gap_days=args.gap_days or None,
        outages_file=args.outages,
        start=args.start,
        end=args.end,
        months=args.months or ALL_MONTHS,
        verified_only=args.verified_only,
    )


def _export_histories(args: argparse.Namespace) -> int:
    out: Path = args.out
    if args.format == "occupancy":
        history = detection_history(args.data, _history_options(args))
        atomic_write_text(history.csv("detections"), out / "detection_history.csv")
        atomic_write_text(history.csv("effort"), out / "effort.csv")
        print(
            f"wrote the detection history of {len(history.stations)} station(s) x "
            f"{len(history.effort[0])} occasion(s) of {args.occasion_days} day(s) to "
            f"{out / 'detection_history.csv'} and the days worked to {out / 'effort.csv'}"
        )
        return 0
    captures = capture_history(args.data, _history_options(args), args.session, args.crs)
    atomic_write_text(captures.captures_text(), out / "captures.txt")
    atomic_write_text(captures.traps_text(), out / "traps.txt")
    print(
        f"wrote {len(captures.captures)} capture(s) of "
        f"{len({c[1] for c in captures.captures})} individual(s) at {len(captures.traps)} "
        f"trap(s) over {captures.occasions.count} occasion(s) to {out} ({captures.crs})"
    )
    return 0


def _metadata(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read --metadata {path}: {exc}") from exc
    if not isinstance(value, dict):
        raise ConfigError(f"--metadata {path}: expected a JSON object")
    return value


def _check_scores(args: argparse.Namespace, *names: str) -> None:
    """Refuse a score option outside [0, 1] in one line."""
    for name in names:
        value = getattr(args, name)
        if value is not None and not 0 <= value <= 1:
            raise ConfigError(f"--{name.replace('_', '-')} {value:g}: a score is within [0, 1]")


def _report(
    left_out: dict[str, int], problems: Sequence[str], valid: str, invalid: str | None = None
) -> int:
    """Print what an export left out and its validation (the first 20 problems, then
    `invalid`): exit 0 when valid, else EXIT_INVALID."""
    for reason, n in left_out.items():
        print(f"left out: {n} {reason}")
    for problem in problems[:20]:
        print(f"invalid: {problem}")
    if problems:
        if invalid is not None:
            print(invalid)
        return EXIT_INVALID
    print(valid)
    return 0


def _export_megadetector(args: argparse.Namespace) -> int:
    _check_scores(args, "threshold", "min_conf")
    options = MegadetectorExportOptions(threshold=args.threshold, min_conf=args.min_conf)
    result = export_megadetector(args.data, args.out, options)
    print(
        f"wrote {result.images} frame(s), {result.detections} box(es) and {result.failures} "
        f"unreadable frame(s) to {args.out} (MegaDetector batch output 1.5)"
    )
    problems = [result.validation.error] if result.validation.error else []
    return _report(
        result.left_out,
        problems,
        "valid MegaDetector batch output (Uncia's validate_batch_results): 0 errors",
    )


def _export_coco(args: argparse.Namespace) -> int:
    _check_scores(args, "threshold")
    result = export_coco(args.data, args.out, args.threshold)
    kinds = ", ".join(f"{n} {k}" for k, n in result.annotations.items() if n) or "none"
    print(
        f"wrote {result.images} image(s), {sum(result.annotations.values())} annotation(s) "
        f"({kinds}) in {result.categories} categories to {args.out} (COCO Camera Traps)"
    )
    return _report(result.left_out, result.problems, "valid COCO Camera Traps structure: 0 errors")


def export_command(args: argparse.Namespace) -> int:
    if args.format == "coco":
        return _export_coco(args)
    if args.format in ("occupancy", "secr"):
        return _export_histories(args)
    if args.format == "megadetector":
        return _export_megadetector(args)
    if args.format == "camtrap-dp":
        options = CamtrapExportOptions(
            title=args.title,
            contributors=tuple(args.contributor),
            data_license=args.license_data,
            media_license=args.license_media,
            utc_offset_minutes=args.utc_offset,
            threshold=args.threshold,
            event_gap_minutes=args.event_gap,
            metadata=_metadata(args.metadata),
        )
        result = export_camtrap_dp(args.data, args.out, options)
        kinds = ", ".join(f"{n} {k}" for k, n in result.observations.items() if n)
        print(
            f"wrote {result.deployments} deployment(s), {result.media} media and "
            f"{sum(result.observations.values())} observation(s) ({kinds or 'none'}) to {args.out}"
        )
        return _report(
            result.left_out,
            result.problems,
            "valid Camtrap DP 1.0.2 (profile and table schemas, checked offline): 0 errors",
            f"the package does not validate: {len(result.problems)} problem(s)",
        )
    return 0
