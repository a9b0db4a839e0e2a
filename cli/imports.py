"""`uncia import FORMAT …`: another tool's frames, boxes and labels into a store
(pipeline/interop; docs/interop.md).

    uncia import camtrap-dp PACKAGE --out DIR       deployments, media, observations
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pipeline.config import ZERO_SHOT_THRESHOLDS
from pipeline.interop.camtrap_import import import_camtrap_dp
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


def import_command(args: argparse.Namespace) -> int:
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
