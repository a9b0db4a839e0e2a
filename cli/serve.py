"""`uncia serve`'s access options and `uncia hash-password`: thin wrappers over dashboard.auth.

uncia serve --data DIR [--auth-file USERS.toml] [--trusted-user-header X-Forwarded-User]
uncia hash-password [--user NAME --role reviewer]     print a users-file entry
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from pipeline.errors import ConfigError


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
    from dashboard import create_app
    from dashboard.server import bind_socket, make_server, serve_in_processes, serve_until_stopped
    from dashboard.settings import Settings

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


def add_hash_password_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    command = sub.add_parser(
        "hash-password", help="print a users-file entry with a scrypt hash of a password"
    )
    command.add_argument("--user", default="NAME", help="user name of the entry (default NAME)")
    command.add_argument(
        "--role", choices=("viewer", "reviewer"), default="viewer", help="default viewer"
    )
    command.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input instead of a prompt",
    )


def hash_password_command(args: argparse.Namespace) -> int:
    from dashboard.auth import hash_password

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise ConfigError("the two passwords differ")
    if len(password) < 8:
        raise ConfigError("use a password of at least 8 characters")
    if not args.user or any(c in args.user for c in ':"\\\n[]'):
        raise ConfigError(f'user names cannot contain : " \\ [ ] or newlines: {args.user!r}')
    print(
        f'[users.{_toml_key(args.user)}]\npassword = "{hash_password(password)}"\n'
        f'role = "{args.role}"'
    )
    return 0


def _toml_key(name: str) -> str:
    bare = all(c.isascii() and (c.isalnum() or c in "-_") for c in name)
    return name if bare else f'"{name}"'
