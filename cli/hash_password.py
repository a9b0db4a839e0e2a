"""`uncia hash-password`: print a users-file entry with a scrypt hash (see docs/security.md).

uncia hash-password [--user NAME --role reviewer] [--password-stdin]
"""

from __future__ import annotations

import argparse
import getpass
import sys

from dashboard.serving.auth import hash_password
from pipeline.errors import ConfigError


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
