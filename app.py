"""Serve the Uncia dashboard: `python app.py` shows data/demo, building the demo survey first.

Options: --data DIR (an output folder of `uncia run`), --host, --port, --tiles.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from dashboard import Settings, create_app
from dashboard.serving.server import make_server, serve_until_stopped
from pipeline.errors import UnciaError
from pipeline.runs.demo import build_demo_survey
from pipeline.store.store import StorePaths

DEMO_DIR = Path(__file__).resolve().parent / "data" / "demo"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=None, metavar="DIR", help="default data/demo")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8050)
    parser.add_argument("--tiles", default="none", help="none (offline) or a tile URL template")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    data_dir = args.data or DEMO_DIR
    try:
        if args.data is None and not StorePaths(DEMO_DIR).duckdb.exists():
            print(f"building the simulated demo survey in {DEMO_DIR} (once)")
            build_demo_survey(DEMO_DIR)
        app = create_app(
            Settings(data_dir=data_dir, host=args.host, port=args.port, tiles=args.tiles)
        )
    except UnciaError as exc:
        print(f"uncia: error: {exc}", file=sys.stderr)
        return 2
    server = make_server(app, args.host, args.port)  # waitress, not Flask's development server
    print(f"Uncia dashboard on http://{args.host}:{server.port}/ (data: {data_dir})", flush=True)
    serve_until_stopped(app, server)  # Ctrl-C or SIGTERM
    print("uncia: dashboard stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
