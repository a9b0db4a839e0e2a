"""`uncia serve --data DIR`: serve the hotspot dashboard (a wrapper over `dashboard`).

uncia serve --data DIR [--auth-file USERS.toml] [--trusted-user-header X-Forwarded-User]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dashboard import create_app
from dashboard.serving.server import (
    bind_socket,
    make_server,
    serve_in_processes,
    serve_until_stopped,
)
from dashboard.settings import Settings, resolve_settings
from pipeline.errors import ConfigError
from pipeline.store.store import StorePaths

# The command-line options that are dashboard settings (dashboard/settings.py), by field name.
SERVE_SETTINGS = (
    "data_dir",
    "host",
    "port",
    "tiles",
    "gap_days",
    "outages_file",
    "min_trap_nights",
    "min_gi_events",
    "min_gi_cameras",
    "default_resolution",
    "public_resolution",
    "public_min_cameras",
    "auth_file",
    "trusted_user_header",
    "trusted_proxies",
    "image_roots",
    "allowed_hosts",
)


def add_serve_command(sub: Any) -> None:
    """Register `serve` on the `uncia` subparsers."""
    serve = sub.add_parser("serve", help="serve the hotspot dashboard")
    serve.add_argument(
        "--data",
        dest="data_dir",
        type=Path,
        required=True,
        metavar="DIR",
        help="an output folder written by `uncia run` or `uncia demo`",
    )
    serve.add_argument("--host", help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, help="default 8050")
    serve.add_argument(
        "--tiles",
        help="map tiles: none (default: offline, nothing fetched from third parties) or a tile "
        "URL template such as https://tile.openstreetmap.org/{z}/{x}/{y}.png",
    )
    serve.add_argument(
        "--config", type=Path, metavar="FILE", help="TOML file with a [serve] table of settings"
    )
    add_serve_analysis_options(serve)
    add_serve_access_options(serve)


def add_serve_analysis_options(serve: argparse.ArgumentParser) -> None:
    """The analysis defaults a team tunes (docs/dashboard.md)."""
    serve.add_argument(
        "--gap-days",
        type=int,
        metavar="DAYS",
        help="guess a camera down when silent for longer than DAYS (default: off, 0: off); "
        "without it, cameras work from deployment start to end less the outages file",
    )
    serve.add_argument(
        "--outages",
        dest="outages_file",
        type=Path,
        metavar="CSV",
        help="camera outages: deploymentID,outageStart,outageEnd (default DIR/outages.csv)",
    )
    serve.add_argument(
        "--min-trap-nights",
        type=int,
        metavar="N",
        help="hexagons with less effort show as too little effort (default 30)",
    )
    serve.add_argument(
        "--min-gi-events",
        type=int,
        metavar="N",
        help="withhold Gi* hot spots when the view holds fewer events (default 10)",
    )
    serve.add_argument(
        "--min-gi-cameras",
        type=int,
        metavar="N",
        help="withhold Gi* hot spots when the view holds fewer cameras (default 10)",
    )
    serve.add_argument(
        "--default-resolution", type=int, metavar="RES", help="H3 resolution at start (default 6)"
    )
    serve.add_argument(
        "--public-resolution",
        type=int,
        metavar="RES",
        help="public exports merge hexagons up to this H3 resolution (default 5)",
    )
    serve.add_argument(
        "--public-min-cameras",
        type=int,
        metavar="N",
        help="public exports leave out cells with fewer cameras (default 3)",
    )


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
        "--allowed-host",
        dest="allowed_hosts",
        action="append",
        metavar="NAME",
        help="a host name the dashboard is reached by (repeatable; loopback names and --host "
        "always are); other Host or Origin headers are refused",
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


def settings_from_args(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Settings:
    """The dashboard settings of a parsed `uncia serve`: defaults < --config file [serve] <
    environment (UNCIA_SERVE_<SETTING>) < the options given."""
    given = {
        name: getattr(args, name)
        for name in SERVE_SETTINGS
        if getattr(args, name, None) not in (None, [])
    }
    return resolve_settings(given, env=env, config_file=args.config)


def check_data_folder(data_dir: Path) -> None:
    """Refuse, in one line, a folder that is no Uncia output folder: a mistyped path, or an
    images folder, used to start a server that waited silently for a store that never came.

    A folder where `uncia run` has begun (DIR/work/runs or DIR/work/deployments) but not yet
    written its first checkpoint is served: the page fills in when the store arrives.
    """
    paths = StorePaths(data_dir)
    if not data_dir.is_dir():
        raise ConfigError(f"--data {data_dir}: no such folder")
    if paths.duckdb.exists() or paths.runs.exists() or paths.deployments.exists():
        return
    raise ConfigError(
        f"--data {data_dir} holds no Uncia store ({paths.duckdb.name}): give the --out folder "
        "of `uncia run` or `uncia demo`"
    )


def serve_command(args: argparse.Namespace) -> int:
    if not 1 <= args.threads <= 256:
        raise ConfigError(f"--threads must be 1–256, got {args.threads}")
    if not 1 <= args.workers <= 64:
        raise ConfigError(f"--workers must be 1–64, got {args.workers}")
    settings = settings_from_args(args)
    check_data_folder(settings.data_dir)
    access = "users file" if settings.auth_file else "no authentication"
    if settings.trusted_user_header:
        access = f"proxy header {settings.trusted_user_header}" + (
            " or users file" if settings.auth_file else ""
        )
    if args.workers > 1:
        # The parent only binds and watches; each worker builds its app after the fork.
        sock = bind_socket(settings.host, settings.port)
        print(
            f"Uncia dashboard on http://{settings.host}:{sock.getsockname()[1]}/ "
            f"(data: {settings.data_dir}; {access}; waitress server, {args.workers} processes)",
            flush=True,
        )
        return serve_in_processes(
            lambda: create_app(settings), sock, workers=args.workers, threads=args.threads
        )
    app = create_app(settings)
    server = make_server(app, settings.host, settings.port, threads=args.threads)
    print(
        f"Uncia dashboard on http://{settings.host}:{server.port}/ "
        f"(data: {settings.data_dir}; {access}; {server.name} server)",
        flush=True,
    )
    serve_until_stopped(app, server)
    print("uncia: dashboard stopped", file=sys.stderr)
    return 0
