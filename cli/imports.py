"""`uncia import FORMAT …`: another tool's frames, boxes and labels into a store
(pipeline/interop; docs/interop.md).

    uncia import camtrap-dp PACKAGE --out DIR       deployments, media, observations
    uncia import megadetector RESULTS.json --data DIR   another detector's boxes per frame
    uncia import timelapse EXPORT.csv --out DIR [--data STORE]   human labels for `uncia train`
                                                    (and, with --data, verified in the dashboard)
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pipeline.config import ZERO_SHOT_THRESHOLDS
from pipeline.errors import ConfigError
from pipeline.interop.camtrap_import import import_camtrap_dp
from pipeline.interop.megadetector import DEFAULT_IMPORT_THRESHOLD, import_megadetector
from pipeline.interop.store_tables import require_store
from pipeline.interop.timelapse import TimelapseMapping, import_timelapse, parse_pairs
from pipeline.interop.timelapse_store import store_timelapse_labels
from pipeline.schema import ViewMode


def add_import_command(sub: Any) -> None:
    """Register `import` and its formats on the `uncia` subparsers."""
    parser = sub.add_parser("import", help="read another tool's survey data into a store")
    formats = parser.add_subparsers(dest="format", required=True, metavar="FORMAT")

    camtrap = formats.add_parser(
        "camtrap-dp", help="a Camtrap DP 1.0 package: deployments, media, observations"
    )
    camtrap.add_argument("package", type=Path, metavar="PACKAGE", help="folder of datapackage.json")
    camtrap.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="a new store folder"
    )
    md = formats.add_parser(
        "megadetector", help="MegaDetector batch output (1.3-1.5): boxes into a store"
    )
    md.add_argument("results", type=Path, metavar="RESULTS", help="the batch output .json")
    md.add_argument(
        "--data", type=Path, required=True, metavar="DIR", help="the store of those frames"
    )
    md.add_argument(
        "--threshold",
        type=float,
        metavar="T",
        help="files with no box scoring at least T are likely empty (default: the file's "
        f"typical_detection_threshold, else {DEFAULT_IMPORT_THRESHOLD:g})",
    )

    _add_timelapse_command(formats)


def _add_timelapse_command(formats: Any) -> None:
    defaults = TimelapseMapping()
    tl = formats.add_parser(
        "timelapse", help="a Timelapse 2/3 CSV export: human labels for `uncia train`"
    )
    tl.add_argument("csv", type=Path, metavar="CSV", help="the CSV Timelapse exported")
    tl.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="folder for labels.csv and a report"
    )
    tl.add_argument(
        "--data",
        type=Path,
        metavar="STORE",
        help="also write the labels into this store's observations: the dashboard shows their "
        "bursts as human-verified",
    )
    tl.add_argument(
        "--species-column",
        metavar="NAME",
        help=f"the template's column holding the species (default {defaults.species_column})",
    )
    tl.add_argument(
        "--count-column",
        metavar="NAME",
        help=f"its count; 0 means the species is not there (default {defaults.count_column}, "
        "when the CSV has it)",
    )
    tl.add_argument(
        "--counter",
        action="append",
        default=[],
        metavar="COLUMN=LABEL",
        help="a counter column: a count above 0 labels the frame LABEL (repeatable)",
    )
    tl.add_argument(
        "--flag",
        action="append",
        default=[],
        metavar="COLUMN=LABEL",
        help="a flag column: checked labels the frame LABEL (repeatable)",
    )
    tl.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="VALUE=LABEL",
        help="a species value and the label it stands for, e.g. 'Irbis=snow_leopard' (repeatable)",
    )


def _import_timelapse(args: argparse.Namespace) -> int:
    defaults = TimelapseMapping()
    mapping = TimelapseMapping(
        species_column=args.species_column or defaults.species_column,
        count_column=args.count_column or defaults.count_column,
        named=tuple(c for c in (args.species_column, args.count_column) if c),
        counters=parse_pairs(args.counter, "--counter"),
        flags=parse_pairs(args.flag, "--flag"),
        value_map=dict(parse_pairs(args.map, "--map")),
    )
    if args.data is not None:
        require_store(args.data)  # before anything is written
    result = import_timelapse(args.csv, args.out, mapping)
    labels = ", ".join(f"{n} {label}" for label, n in result.labels.items()) or "none"
    print(
        f"read {result.rows} row(s); wrote {sum(result.labels.values())} frame label(s) "
        f"({labels}) to {result.labels_csv}; every row and why any was left out: "
        f"{result.report_csv}"
    )
    for reason, n in sorted(result.left_out.items()):
        print(f"left out: {n} row(s): {reason}")
    if args.data is not None:
        stored = store_timelapse_labels(result.frame_labels, args.data, args.csv.name)
        print(
            f"stored {stored.stored} frame label(s) in {args.data} (observations, source "
            f"timelapse:{args.csv.name}; {stored.replaced} row(s) of an earlier import of it "
            "replaced): the dashboard counts them as human-verified"
        )
        if stored.without_time:
            print(f"left out: {stored.without_time} frame(s) of the store without a capture time")
        if stored.not_in_store:
            shown = ", ".join(stored.not_in_store[:5])
            more = len(stored.not_in_store) - 5
            print(
                f"warning: {len(stored.not_in_store)} file(s) are not in the store: {shown}"
                + (f" and {more} more" if more > 0 else "")
            )
    return 0


def _import_megadetector(args: argparse.Namespace) -> int:
    if args.threshold is not None and not 0 <= args.threshold <= 1:
        raise ConfigError(f"--threshold {args.threshold:g}: a confidence is within [0, 1]")
    result = import_megadetector(args.results, args.data, args.threshold)
    print(
        f"imported {result.boxes} box(es) of {result.files} file(s) into {args.data} "
        f"(detector_boxes): {result.matched} file(s) are frames of the store, "
        f"{result.likely_empty} likely empty (no box at or above {result.threshold:g}), "
        f"{result.failures} the detector could not read"
    )
    if result.unmatched:
        shown = ", ".join(result.unmatched[:5])
        more = f" and {len(result.unmatched) - 5} more" if len(result.unmatched) > 5 else ""
        print(f"warning: {len(result.unmatched)} file(s) are not in the store: {shown}{more}")
    if result.files and not result.matched:
        print(
            "warning: none of the files is a frame of this store: results of another images "
            "root? (files are matched by their path under the survey's root)"
        )
    if result.frames_with_views:
        print(
            f"{result.frames_with_views} frame(s) have animal boxes at or above "
            f"{result.threshold:g}: the next `uncia run` over the same images scores them again, "
            "with a crop of each box as a view (docs/views.md)"
        )
    for warning in result.warnings[:10]:
        print(f"warning: {warning}")
    return 0


def import_command(args: argparse.Namespace) -> int:
    if args.format == "megadetector":
        return _import_megadetector(args)
    if args.format == "timelapse":
        return _import_timelapse(args)
    if args.format == "camtrap-dp":
        result = import_camtrap_dp(
            args.package, args.out, leopard_threshold=ZERO_SHOT_THRESHOLDS[ViewMode.TILES]
        )
        print(
            f"imported {result.deployments} deployment(s), {result.media} media "
            f"({result.media_local} of them files in the package) and "
            f"{result.observations} observation(s) into {args.out}; {result.labels} frame "
            f"label(s) a person gave in {result.labels_csv}"
        )
        for problem in result.problems:
            print(f"warning: {problem}")
    return 0
