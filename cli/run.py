"""`uncia run ROOT --deployments CSV --out DIR`: classify a survey's frames into a store.

A thin wrapper over `pipeline.runs.runner.run_survey`, with options resolved by
`pipeline.config.resolve_run_options` (defaults < --config file < environment < command line).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pipeline.config import resolve_run_options

EXIT_STRICT = 3


def add_run_command(sub: Any) -> None:
    """Register `run` on the `uncia` subparsers."""
    run = sub.add_parser("run", help="classify a survey's frames and write the store")
    run.add_argument(
        "images_root",
        type=Path,
        metavar="ROOT",
        help="images root laid out ROOT/<deploymentID>/**/*.jpg",
    )
    run.add_argument(
        "--deployments",
        type=Path,
        required=True,
        metavar="CSV",
        help="Camtrap DP deployments table",
    )
    run.add_argument(
        "--out",
        dest="out_dir",
        type=Path,
        required=True,
        metavar="DIR",
        help="output folder (created; re-running resumes)",
    )
    run.add_argument(
        "--backbone",
        choices=("resnet50", "efficientnet_lite0"),
        help="ImageNet backbone (default resnet50)",
    )
    run.add_argument(
        "--weights",
        type=Path,
        metavar="FILE",
        help="backbone weights file (a torchvision state dict for resnet50)",
    )
    run.add_argument("--batch-size", type=int, help="frames per model batch (default 32)")
    run.add_argument("--workers", type=int, help="decoding threads (default 2)")
    run.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default auto")
    run.add_argument(
        "--precision",
        choices=("auto", "bf16", "fp32"),
        help="default auto: bf16 where the CPU or GPU supports it",
    )
    run.add_argument(
        "--runtime",
        choices=("auto", "torch", "openvino"),
        help="default auto: OpenVINO on a CPU where it is installed, else torch",
    )
    run.add_argument("--input-size", type=int, help="model input side in pixels (default 224)")
    run.add_argument(
        "--burst-gap",
        dest="burst_gap_seconds",
        type=float,
        metavar="SECONDS",
        help="frames of a deployment at most this far apart form a burst (60)",
    )
    run.add_argument(
        "--aggregation",
        choices=("max", "mean", "noisy_or"),
        help="how frame scores become the burst score (default max)",
    )
    run.add_argument(
        "--event-gap",
        dest="event_gap_minutes",
        type=float,
        metavar="MINUTES",
        help="leopard bursts this far apart are independent events (30)",
    )
    run.add_argument(
        "--threshold",
        type=float,
        help="leopard score threshold, the dashboard's default (0.15 with tiles, 0.5 whole)",
    )
    run.add_argument(
        "--views",
        choices=("tiles+motion", "tiles", "whole"),
        help="what of each frame is scored: tiles+motion (default), tiles, or the whole frame",
    )
    run.add_argument(
        "--tile-grid",
        metavar="CxR[,CxR]",
        help="tile grids, columns x rows (default 4x3)",
    )
    run.add_argument(
        "--tile-overlap", type=float, metavar="FRACTION", help="tile overlap (default 0.25)"
    )
    run.add_argument(
        "--working-side",
        type=int,
        metavar="PX",
        help="long side of the decode tiles are cut from (default 960)",
    )
    run.add_argument(
        "--motion-regions",
        type=int,
        metavar="N",
        help="most motion crops per frame of a burst (default 2)",
    )
    run.add_argument(
        "--infobar",
        metavar="PRESET",
        help="frames without EXIF time: read it from the camera's info bar with Tesseract "
        "(reconyx, bushnell, browning, top-dmy, bottom-dmy)",
    )
    run.add_argument(
        "--checkpoint-seconds", type=float, help="rebuild the tables this often while running (60)"
    )
    run.add_argument(
        "--model",
        dest="model_dir",
        type=Path,
        metavar="MODEL_DIR",
        help="score with a head from `uncia train` instead of the zero-shot ImageNet class",
    )
    run.add_argument(
        "--tta-flip",
        action="store_true",
        default=None,
        help="average each frame's features with its mirror image's (twice the model time)",
    )
    run.add_argument(
        "--engine", choices=("local", "spark"), help="local (default): this machine; spark: Spark"
    )
    run.add_argument(
        "--spark-master",
        metavar="URL",
        help="Spark master for --engine spark: local[2] (default), spark://host:7077, yarn",
    )
    run.add_argument(
        "--config", type=Path, metavar="FILE", help="TOML file with a [run] table of these options"
    )
    run.add_argument(
        "--strict",
        action="store_true",
        default=None,
        help="exit non-zero when any frame failed or was flagged",
    )
    run.add_argument(
        "--force",
        action="store_true",
        default=None,
        help="write into an --out whose frames another backbone, model, views or threshold "
        "scored (mixes two models in one map)",
    )
    run.add_argument(
        "--no-progress", dest="progress", action="store_false", default=None, help="no progress bar"
    )


def run_command(args: argparse.Namespace) -> int:
    # The runner loads torch: imported when a run starts, so that `uncia serve` never does.
    from pipeline.runs.runner import run_survey

    given = {k: v for k, v in vars(args).items() if k not in {"command", "config"}}
    options = resolve_run_options(given, config_file=args.config)
    summary = run_survey(options)
    for line in summary.lines():
        print(line)
    if options.strict and summary.problems:
        print(f"--strict: {summary.problems} problem(s) above", file=sys.stderr)
        return EXIT_STRICT
    return 0
