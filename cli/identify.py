"""`uncia localize` and `uncia identify`: thin wrappers over localize_run and identify_run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pipeline.stages.identify import IdentifyOptions
from pipeline.stages.localize_options import METHODS, LimeOptions


def _classes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected class numbers like 290 or 288,290: {text!r}"
        ) from None


def add_identify_commands(sub: Any) -> None:
    """Register `localize` and `identify` on the `uncia` subparsers."""
    localize = sub.add_parser(
        "localize", help="box, heat map and crop for every frame above the leopard threshold"
    )
    localize.add_argument(
        "--data", type=Path, required=True, metavar="DIR", help="a store written by `uncia run`"
    )
    localize.add_argument(
        "--method",
        choices=METHODS,
        default="lime",
        help="lime (default): superpixel masks, model-agnostic; gradcam: one backward pass, "
        "fast; megadetector: no model, the best box of `uncia import megadetector` (frames "
        "without one get a failure row)",
    )
    localize.add_argument(
        "--threshold",
        type=float,
        metavar="T",
        help="localize frames scoring at least T (default: the latest run's leopard threshold)",
    )
    localize.add_argument(
        "--samples",
        type=int,
        default=LimeOptions().samples,
        metavar="N",
        help=f"LIME: random superpixel masks per frame (default {LimeOptions().samples})",
    )
    localize.add_argument(
        "--target-class",
        type=_classes,
        metavar="K[,K...]",
        help="explain ImageNet class(es) K (288 leopard, 290 jaguar; several: their summed "
        "probability) instead of the model's class",
    )
    localize.add_argument(
        "--input-size",
        type=int,
        metavar="PX",
        help="frame side given to the explainer (default 320 for gradcam, 224 for lime)",
    )
    localize.add_argument(
        "--box-fraction",
        type=float,
        metavar="F",
        help="heat at or above F of the peak forms the box (default 0.5)",
    )
    localize.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    localize.add_argument("--limit", type=int, metavar="N", help="localize at most N frames")
    localize.add_argument(
        "--engine",
        choices=("local", "spark"),
        default="local",
        help="local (default) or spark: explanations run on Spark workers (ImageNet targets)",
    )
    localize.add_argument(
        "--spark-master", default="local[2]", metavar="URL", help="Spark master (local[2])"
    )

    identify = sub.add_parser(
        "identify", help="match localized crops by spot pattern and form individuals"
    )
    identify.add_argument(
        "--data",
        type=Path,
        required=True,
        metavar="DIR",
        help="a store with `uncia localize` crops",
    )
    identify.add_argument(
        "--accept-score",
        type=float,
        default=IdentifyOptions().accept_score,
        metavar="S",
        help=f"propose matches scoring at least S (default {IdentifyOptions().accept_score})",
    )
    identify.add_argument(
        "--top-k",
        type=int,
        default=IdentifyOptions().top_k,
        metavar="K",
        help=f"candidates kept per crop (default {IdentifyOptions().top_k})",
    )
    identify.add_argument(
        "--no-mirror",
        dest="mirror",
        action="store_false",
        help="do not also match each crop's mirror image",
    )
    identify.add_argument(
        "--confirmed-only",
        action="store_true",
        help="form individuals only from matches a person accepted",
    )


def localize_command(args: argparse.Namespace) -> int:
    # Loads torch: imported when the command runs, so that `uncia serve` never does.
    from pipeline.runs.localize_run import LocalizeOptions, run_localize

    options = LocalizeOptions(
        data_dir=args.data,
        method=args.method,
        threshold=args.threshold,
        target_class=args.target_class,
        samples=args.samples,
        box_fraction=args.box_fraction,
        input_size=args.input_size,
        device=args.device,
        limit=args.limit,
        engine=args.engine,
        spark_master=args.spark_master,
    )
    summary = run_localize(options)
    print(
        f"localized {summary['localized']} frame(s) at score >= {summary['threshold']:g} "
        f"({summary['failed']} failed, {summary['skipped_already_done']} already done) "
        f"into {args.data / 'parquet' / 'localizations.parquet'}"
    )
    for reason, count in list(summary["failures"].items())[:FAILURES_SHOWN]:
        print(f"  {count} failed: {reason}")
    return 0


FAILURES_SHOWN = 8  # the most common reasons a frame has no box; all are in the table


def identify_command(args: argparse.Namespace) -> int:
    # Loads torch: imported when the command runs, so that `uncia serve` never does.
    from pipeline.runs.identify_run import IdentifyRunOptions, run_identify

    options = IdentifyRunOptions(
        data_dir=args.data,
        identify=IdentifyOptions(
            accept_score=args.accept_score, top_k=args.top_k, mirror=args.mirror
        ),
        confirmed_only=args.confirmed_only,
    )
    summary = run_identify(options)
    print(
        f"matched {summary['crops']} crop(s): {summary['proposed']} proposed match(es), "
        f"{summary['decisions']} decision(s), {summary['individuals']} individual(s) "
        f"into {args.data / 'parquet' / 'individuals.parquet'}"
    )
    return 0
