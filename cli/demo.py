"""`uncia demo --out DIR`: build the simulated demo survey (a wrapper over `pipeline.runs.demo`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pipeline.runs.demo import DemoOptions, build_demo_survey
from pipeline.store.store import StorePaths


def add_demo_command(sub: Any) -> None:
    """Register `demo` on the `uncia` subparsers."""
    demo = sub.add_parser("demo", help="build the simulated demo survey")
    demo.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    demo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    demo.add_argument(
        "--if-missing", action="store_true", help="do nothing when DIR already holds a store"
    )


def demo_command(args: argparse.Namespace) -> int:
    if args.if_missing and StorePaths(args.out).duckdb.exists():
        print(f"demo survey already in {args.out}")
        return 0
    counts = build_demo_survey(args.out, DemoOptions(seed=args.seed))
    print(
        f"simulated demo survey written to {args.out}: "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
    )
    return 0
