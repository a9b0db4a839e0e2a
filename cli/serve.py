"""`uncia serve --data DIR`: serve the hotspot dashboard (a wrapper over `dashboard`).

uncia serve --data DIR [--auth-file USERS.toml] [--trusted-user-header X-Forwarded-User]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from dashboard import create_app
from dashboard.serving.server import (
    bind_socket,
    make_server,
    serve_in_processes,
    serve_until_stopped,
)
from dashboard.settings import Settings
from pipeline.errors import ConfigError


def add_serve_command(sub: Any) -> None:
    """Register `serve` on the `uncia` subparsers."""
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


def add_serve_access_options(serve: argparse.ArgumentParser) -> None:
    """Authentication, image roots and server threads of `uncia serve` (docs/security.md)."""
    serve.add_argument(
        "--auth-file",
        type=Path,
        metavar="FILE",
        help="TOML users file with scrypt hashes; every page then asks for a user and password",
    )
    serve.add_argument(
        "--trusted-user-header",
        metavar="HEADER",
        help="trust this header (e.g. X-Forwarded-User) from --trusted-proxy for the user name",
    )
    serve.add_argument(
        "--trusted-proxy",
        dest="trusted_proxies",
        action="append",
        metavar="ADDRESS",
        help="address or network of the reverse proxy (repeatable; default 127.0.0.1 and ::1)",
    )
    serve.add_argument(
        "--image-root",
        dest="image_roots",
        action="append",
        type=Path,
        metavar="DIR",
        help="serve thumbnails only of files under DIR (repeatable; default: the runs' roots)",
    )
    serve.add_argument(
        "--threads", type=int, default=8, help="request threads of each server process (8)"
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes sharing the port (1); one per CPU core serves busy pages best",
    )


def serve_command(args: argparse.Namespace) -> int:
    if not 1 <= args.threads <= 256:
        raise ConfigError(f"--threads must be 1–256, got {args.threads}")
    if not 1 <= args.workers <= 64:
        raise ConfigError(f"--workers must be 1–64, got {args.workers}")
    settings = Settings(
        data_dir=args.data,
        host=args.host,
        port=args.port,
        tiles=args.tiles,
        auth_file=args.auth_file,
        trusted_user_header=args.trusted_user_header,
        trusted_proxies=tuple(args.trusted_proxies or ("127.0.0.1", "::1")),
        image_roots=tuple(args.image_roots or ()),
    )
    access = "users file" if args.auth_file else "no authentication"
    if args.trusted_user_header:
        access = f"proxy header {args.trusted_user_header}" + (
            " or users file" if args.auth_file else ""
        )
    if args.workers > 1:
        # The parent only binds and watches; each worker builds its app after the fork.
        sock = bind_socket(settings.host, settings.port)
        print(
            f"Uncia dashboard on http://{args.host}:{sock.getsockname()[1]}/ "
            f"(data: {args.data}; {access}; waitress server, {args.workers} processes)",
            flush=True,
        )
        return serve_in_processes(
            lambda: create_app(settings), sock, workers=args.workers, threads=args.threads
        )
    app = create_app(settings)
    server = make_server(app, settings.host, settings.port, threads=args.threads)
    print(
        f"Uncia dashboard on http://{args.host}:{server.port}/ "
        f"(data: {args.data}; {access}; {server.name} server)",
        flush=True,
    )
    serve_until_stopped(app, server)
    print("uncia: dashboard stopped", file=sys.stderr)
    return 0
