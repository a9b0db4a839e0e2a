"""The `uncia` command: a thin wrapper over the library functions.

    uncia run ROOT --deployments CSV --out DIR [options]   classify a survey into a store
    uncia serve --data DIR [--host H] [--port P]           serve the hotspot dashboard
    uncia hash-password --user NAME --role reviewer        print a users-file entry
    uncia demo --out DIR                                   build the simulated demo survey
    uncia train --images ROOT --labels CSV --out MODEL     train a leopard head
    uncia evaluate --model MODEL --images ROOT --labels CSV --out REPORT   measure it
    uncia localize --data DIR [--method lime|gradcam]      boxes, heat maps, crops
    uncia identify --data DIR                              spot-pattern matches, individuals

Any UnciaError prints one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

# The command line's one process-wide setting: idle OpenMP threads sleep instead of spinning,
# leaving the cores to the JPEG decoders (measured: about 10% more frames/s on 2 cores). It
# must precede the first torch import, which the subcommand modules below bring in.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from cli.identify import add_identify_commands, identify_command, localize_command
from cli.serve import (
    add_hash_password_command,
    add_serve_access_options,
    hash_password_command,
    serve_command,
)
from cli.train import add_train_commands, evaluate_command, train_command
from pipeline import __version__  # noqa: E402
from pipeline.errors import UnciaError

EXIT_ERROR = 2
EXIT_STRICT = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uncia",
        description="Camera-trap frames of snow-leopard surveys in, hotspot maps out.",
    )
    parser.add_argument("--version", action="version", version=f"uncia {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

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
        "--threshold", type=float, help="leopard score threshold, the dashboard's default (0.5)"
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
        "--no-progress", dest="progress", action="store_false", default=None, help="no progress bar"
    )

    serve = sub.add_parser("serve", help="serve the hotspot dashboard")
    serve.add_argument(
        "--data",
        type=Path,
        required=True,
        metavar="DIR",
        help="an output folder written by `uncia run` or `uncia demo`",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    serve.add_argument("--port", type=int, default=8050, help="default 8050")
    serve.add_argument(
        "--tiles",
        default="auto",
        help="map tiles: auto (use OpenStreetMap when reachable), none, or a tile URL template",
    )
    add_serve_access_options(serve)

    demo = sub.add_parser("demo", help="build the simulated demo survey")
    demo.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    demo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    demo.add_argument(
        "--if-missing", action="store_true", help="do nothing when DIR already holds a store"
    )
    add_train_commands(sub)
    add_identify_commands(sub)
    add_hash_password_command(sub)
    return parser


def _run(args: argparse.Namespace) -> int:
    from pipeline.config import resolve_run_options
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


def _demo(args: argparse.Namespace) -> int:
    from pipeline.runs.demo import DemoOptions, build_demo_survey
    from pipeline.store.store import StorePaths

    if args.if_missing and StorePaths(args.out).duckdb.exists():
        print(f"demo survey already in {args.out}")
        return 0
    counts = build_demo_survey(args.out, DemoOptions(seed=args.seed))
    print(
        f"simulated demo survey written to {args.out}: "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
    )
    return 0


# Commands that skip what an earlier, interrupted run already wrote.
RESUMABLE_COMMANDS = frozenset({"run", "localize"})


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    handlers = {
        "run": _run,
        "serve": serve_command,
        "demo": _demo,
        "train": train_command,
        "evaluate": evaluate_command,
        "localize": localize_command,
        "identify": identify_command,
        "hash-password": hash_password_command,
    }
    try:
        return handlers[args.command](args)
    except UnciaError as exc:
        print(f"uncia: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        resumes = args.command in RESUMABLE_COMMANDS
        print(
            "uncia: interrupted" + ("; re-run the same command to resume" if resumes else ""),
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
