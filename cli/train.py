"""The `uncia train` and `uncia evaluate` subcommands: argument parsing and thin handlers over
`pipeline.training.train.train_model` and `pipeline.training.evaluate.evaluate`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

# pipeline.stages.embed.BACKBONES and RUNTIMES, pipeline.schema.ViewMode, without importing torch
BACKBONES = ("resnet50", "efficientnet_lite0")
RUNTIMES = ("auto", "torch", "openvino")
VIEW_MODES = ("whole", "tiles", "tiles+motion")


def _add_model_io_options(parser: argparse.ArgumentParser) -> None:
    """Options `train` and `evaluate` share: images, labels, backbone, cache, compute."""
    parser.add_argument(
        "--images", type=Path, required=True, metavar="ROOT", help="images root the labels name"
    )
    parser.add_argument(
        "--labels",
        type=Path,
        metavar="LABELS",
        help="CSV with columns file,label[,deployment], or a folder-per-class tree "
        "<label>/[<deployment>/]*.jpg (default: ROOT is the tree)",
    )
    parser.add_argument("--backbone", choices=BACKBONES, help="ImageNet backbone")
    parser.add_argument("--weights", type=Path, metavar="FILE", help="backbone weights file")
    parser.add_argument(
        "--cache",
        type=Path,
        metavar="DIR",
        help="embedding cache folder (default: .uncia-cache beside the --out folder)",
    )
    parser.add_argument(
        "--positive",
        action="append",
        metavar="LABEL",
        help="a label that counts as leopard; repeat for several (default snow_leopard, leopard)",
    )
    parser.add_argument(
        "--burst-gap",
        dest="burst_gap_seconds",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="frames of a deployment at most this far apart form a burst (60)",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="frames per model batch (32)")
    parser.add_argument("--workers", type=int, default=2, help="decoding threads (2)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto")
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default="auto",
        help="backbone runtime: auto (OpenVINO on a CPU), torch, openvino",
    )
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bar"
    )


def _add_view_options(parser: argparse.ArgumentParser, default: str | None) -> None:
    """--views and the tile settings, as `uncia run` names them (pipeline/stages/views.py)."""
    parser.add_argument(
        "--views",
        choices=VIEW_MODES,
        default=default,
        help="what of each frame is looked at: whole, tiles, tiles+motion"
        + (f" ({default})" if default else " (default: the model's; whole zero-shot)"),
    )
    parser.add_argument(
        "--tile-grid", metavar="CxR[,CxR]", help="tile grids, columns x rows (default 4x3)"
    )
    parser.add_argument(
        "--tile-overlap", type=float, metavar="FRACTION", help="tile overlap (default 0.25)"
    )
    parser.add_argument(
        "--working-side",
        type=int,
        metavar="PX",
        help="long side of the decode tiles are cut from (default 960)",
    )
    parser.add_argument(
        "--motion-regions",
        type=int,
        metavar="N",
        help="most motion crops per frame of a burst (default 2)",
    )


def _view_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The view options given on the command line (the others keep their defaults)."""
    names = ("views", "tile_grid", "tile_overlap", "working_side", "motion_regions")
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


def add_train_commands(sub: Any) -> None:
    """Add the `train` and `evaluate` subparsers to `uncia`'s subparsers action `sub`."""
    train = sub.add_parser("train", help="train a leopard head on labelled frames")
    _add_model_io_options(train)
    train.add_argument(
        "--out",
        dest="out_dir",
        type=Path,
        required=True,
        metavar="MODEL_DIR",
        help="model folder to write",
    )
    train.add_argument(
        "--multiclass", action="store_true", help="one class per label instead of leopard/other"
    )
    train.add_argument(
        "--no-flip",
        dest="flip",
        action="store_false",
        help="do not add mirror images of the training frames",
    )
    train.add_argument(
        "--extra-positive",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="folder of extra leopard images from outside the survey (training only); repeatable",
    )
    train.add_argument(
        "--extra-negative",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="folder of extra non-leopard images (training only); repeatable",
    )
    train.add_argument(
        "--extra-weight",
        type=float,
        default=1.0,
        metavar="W",
        help="sample weight of extra images relative to survey frames (1.0)",
    )
    train.add_argument(
        "--target-recall",
        type=float,
        default=0.95,
        help="the threshold is the highest that keeps this frame recall on validation (0.95)",
    )
    train.add_argument(
        "--group-by",
        choices=("deployment", "burst"),
        default="deployment",
        help="what a split never cuts through (deployment)",
    )
    train.add_argument(
        "--test-fraction",
        type=float,
        default=0.2,
        help="share of deployments held out for the test metrics, 0..0.5 (0.2)",
    )
    train.add_argument("--folds", type=int, default=5, help="grouped cross-validation folds (5)")
    train.add_argument(
        "--c", type=float, default=0.1, help="inverse L2 strength of the logistic regression (0.1)"
    )
    train.add_argument("--seed", type=int, default=0, help="random seed of the splits (0)")
    _add_view_options(train, default="whole")

    evaluate = sub.add_parser("evaluate", help="report how well a model finds leopards")
    _add_model_io_options(evaluate)
    evaluate.add_argument(
        "--out",
        dest="out_dir",
        type=Path,
        required=True,
        metavar="REPORT_DIR",
        help="report folder to write",
    )
    which = evaluate.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--model",
        dest="model_dir",
        type=Path,
        metavar="MODEL_DIR",
        help="a model folder written by uncia train",
    )
    which.add_argument(
        "--zero-shot",
        action="store_true",
        help="the ImageNet class-289 baseline of --backbone instead of a model",
    )
    evaluate.add_argument(
        "--threshold",
        type=float,
        help="flag frames scoring at least this (default: the model's; 0.5 zero-shot)",
    )
    evaluate.add_argument(
        "--tta-flip",
        action="store_true",
        help="average each frame's features with its mirror image's",
    )
    _add_view_options(evaluate, default=None)
    evaluate.add_argument(
        "--compare-views",
        action="store_true",
        help="also report whole frame, tiles and tiles+motion side by side",
    )


def train_command(args: argparse.Namespace) -> int:
    # Loads torch: imported when the command runs, so that `uncia serve` never does.
    from pipeline.training.train import DEFAULT_POSITIVE, TrainOptions, train_model

    options = TrainOptions(
        images_root=args.images,
        out_dir=args.out_dir,
        labels=args.labels,
        backbone=args.backbone or "resnet50",
        weights=args.weights,
        positive=tuple(args.positive or DEFAULT_POSITIVE),
        multiclass=args.multiclass,
        cache_dir=args.cache,
        flip=args.flip,
        extra_positive=tuple(args.extra_positive),
        extra_negative=tuple(args.extra_negative),
        extra_weight=args.extra_weight,
        target_recall=args.target_recall,
        group_by=args.group_by,
        test_fraction=args.test_fraction,
        folds=args.folds,
        c=args.c,
        burst_gap_seconds=args.burst_gap_seconds,
        seed=args.seed,
        batch_size=args.batch_size,
        workers=args.workers,
        device=args.device,
        precision=args.precision,
        runtime=args.runtime,
        progress=args.progress,
        **_view_settings(args),
    )
    for line in train_model(options).lines():
        print(line)
    return 0


def evaluate_command(args: argparse.Namespace) -> int:
    # Loads torch: imported when the command runs, so that `uncia serve` never does.
    from pipeline.training.evaluate import EvaluateOptions, evaluate

    options = EvaluateOptions(
        images_root=args.images,
        out_dir=args.out_dir,
        labels=args.labels,
        model_dir=args.model_dir,
        zero_shot=args.zero_shot,
        backbone=args.backbone,
        weights=args.weights,
        positive=tuple(args.positive) if args.positive else None,
        threshold=args.threshold,
        tta_flip=args.tta_flip,
        cache_dir=args.cache,
        burst_gap_seconds=args.burst_gap_seconds,
        batch_size=args.batch_size,
        workers=args.workers,
        device=args.device,
        precision=args.precision,
        runtime=args.runtime,
        progress=args.progress,
        compare_views=args.compare_views,
        **_view_settings(args),
    )
    for line in evaluate(options).lines():
        print(line)
    return 0
