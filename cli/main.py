"""The `uncia` command: builds the parser from each subcommand's module and dispatches.

    uncia run ROOT --deployments CSV --out DIR [options]   classify a survey into a store
    uncia serve --data DIR [--host H] [--port P]           serve the hotspot dashboard
    uncia hash-password --user NAME --role reviewer        print a users-file entry
    uncia demo --out DIR                                   build the simulated demo survey
    uncia train --images ROOT --labels CSV --out MODEL     train a leopard head
    uncia evaluate --model MODEL --images ROOT --labels CSV --out REPORT   measure it
    uncia localize --data DIR [--method lime|gradcam|megadetector]  boxes, heat maps, crops
    uncia identify --data DIR                              spot-pattern matches, individuals
    uncia import FORMAT SOURCE --out DIR                   another tool's data into a store
    uncia export FORMAT --data DIR --out FILE              a store in another tool's format
    uncia infobar ROOT --out CSV                           info-bar times (OCR) against EXIF

Any UnciaError prints one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence

# The command line's one process-wide setting: idle OpenMP threads sleep instead of spinning,
# leaving the cores to the JPEG decoders (measured: about 10% more frames/s on 2 cores). It
# must precede the first torch import, which the subcommand modules below bring in.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from cli.demo import add_demo_command, demo_command
from cli.export import add_export_command, export_command
from cli.hash_password import add_hash_password_command, hash_password_command
from cli.identify import add_identify_commands, identify_command, localize_command
from cli.imports import add_import_command, import_command
from cli.infobar import add_infobar_command, infobar_command
from cli.run import add_run_command, run_command
from cli.serve import add_serve_command, serve_command
from cli.train import add_train_commands, evaluate_command, train_command
from pipeline import __version__
from pipeline.errors import UnciaError

EXIT_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uncia",
        description="Camera-trap frames of snow-leopard surveys in, hotspot maps out.",
    )
    parser.add_argument("--version", action="version", version=f"uncia {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    add_run_command(sub)
    add_serve_command(sub)
    add_demo_command(sub)
    add_train_commands(sub)
    add_identify_commands(sub)
    add_import_command(sub)
    add_export_command(sub)
    add_infobar_command(sub)
    add_hash_password_command(sub)
    return parser


# Commands that skip what an earlier, interrupted run already wrote.
RESUMABLE_COMMANDS = frozenset({"run", "localize"})


class Terminated(KeyboardInterrupt):
    """SIGTERM (`docker stop`, systemd, kill), raised where the command is, like Ctrl-C: the
    same cleanup runs and a run is recorded as interrupted."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    handlers = {
        "run": run_command,
        "serve": serve_command,
        "demo": demo_command,
        "train": train_command,
        "evaluate": evaluate_command,
        "localize": localize_command,
        "identify": identify_command,
        "hash-password": hash_password_command,
        "import": import_command,
        "export": export_command,
        "infobar": infobar_command,
    }
    if args.command != "serve":  # the server stops its workers on SIGTERM itself
        signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return handlers[args.command](args)
    except UnciaError as exc:
        print(f"uncia: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt as exc:
        resumes = args.command in RESUMABLE_COMMANDS
        terminated = isinstance(exc, Terminated)
        print(
            "uncia: "
            + ("terminated" if terminated else "interrupted")
            + ("; re-run the same command to resume" if resumes else ""),
            file=sys.stderr,
        )
        return 128 + signal.SIGTERM if terminated else 130


if __name__ == "__main__":
    sys.exit(main())
