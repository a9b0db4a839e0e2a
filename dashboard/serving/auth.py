"""Who may open the dashboard and who may change data: HTTP Basic users or a trusted proxy header.

Users live in a TOML file of scrypt hashes (`uncia hash-password` makes the entries); every
route, assets included, asks for credentials once authentication is on. Viewers read; only
reviewers may run write callbacks (`require_role`). See docs/security.md.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import threading
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from dash.exceptions import DependencyException
from flask import Flask, Response, g, has_request_context, request
from werkzeug.exceptions import Forbidden, HTTPException

from pipeline.errors import ConfigError

log = logging.getLogger(__name__)

REALM = "Uncia"
# scrypt at N=2**14, r=8, p=1 takes ~16 MiB and tens of milliseconds per guess (RFC 7914).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES = 16
HASH_BYTES = 32
MAX_VERIFIED_CACHE = 256
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "frame-ancestors 'none'; base-uri 'self'; object-src 'none'; form-action 'self'"
    ),
}
F = TypeVar("F", bound=Callable[..., Any])
REQUIRED_ROLE_ATTR = "uncia_required_role"


class Role(StrEnum):
    """Viewers see the maps and frames; reviewers may also record review decisions."""

    VIEWER = "viewer"
    REVIEWER = "reviewer"


_RANK = {Role.VIEWER: 0, Role.REVIEWER: 1}


@dataclass(frozen=True)
class User:
    """The person behind a request: a name from the users file or the proxy, and a role."""

    name: str
    role: Role

    def may(self, role: Role | str) -> bool:
        """True when this user's role is `role` or above it."""
        return _RANK[self.role] >= _RANK[Role(role)]


@dataclass(frozen=True)
class UserEntry:
    password_hash: str
    role: Role


def hash_password(password: str) -> str:
    """Return `scrypt$N$r$p$salt$hash` (base64 parts) for `password`, with a fresh random salt."""
    if not password:
        raise ConfigError("the password is empty")
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "$".join(
        ["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)]
    )


def verify_password(password: str, encoded: str) -> bool:
    """True when `password` matches `encoded` (from hash_password); compares in constant time."""
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest, validate=True)
        actual = _scrypt(password, base64.b64decode(salt, validate=True), int(n), int(r), int(p))
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(actual, expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=HASH_BYTES
    )


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def load_users(path: Path) -> dict[str, UserEntry]:
    """Read a users file: `[users.NAME]` tables with `password` (a hash) and `role`.

    Raises ConfigError when the file cannot be read or an entry is malformed.
    """
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read the users file {path}: {exc}") from exc
    users = data.get("users")
    if not isinstance(users, dict) or not users:
        raise ConfigError(f"the users file {path} has no [users.NAME] entries")
    entries: dict[str, UserEntry] = {}
    for name, entry in users.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"users.{name} must be a table with password and role")
        encoded, role = entry.get("password"), entry.get("role", Role.VIEWER.value)
        if not isinstance(encoded, str) or not encoded.startswith("scrypt$"):
            raise ConfigError(
                f"users.{name}.password must be a hash from `uncia hash-password`, not a password"
            )
        if role not in {r.value for r in Role}:
            raise ConfigError(f"users.{name}.role must be viewer or reviewer, got {role!r}")
        if ":" in name:
            raise ConfigError(f"user names cannot contain ':' ({name!r})")
        entries[name] = UserEntry(encoded, Role(role))
    if os.name == "posix" and Path(path).stat().st_mode & 0o022:
        log.warning("the users file %s is writable by others; make it 0600 or 0640", path)
    return entries


class Authenticator:
    """Decides who a request comes from; None means authentication is off.

    `users`: Basic-auth users (name → entry). `trusted_header`: a header naming the user, set by
    a reverse proxy; it is believed only from `trusted_proxies` addresses.
    """

    def __init__(
        self,
        users: dict[str, UserEntry] | None = None,
        trusted_header: str | None = None,
        trusted_proxies: Iterable[str] = ("127.0.0.1", "::1"),
    ) -> None:
        self.users = users or {}
        self.trusted_header = trusted_header
        self.trusted_proxies = tuple(ipaddress.ip_network(p) for p in trusted_proxies)
        self._verified: dict[bytes, str] = {}
        self._cache_key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._dummy_hash = hash_password(secrets.token_hex(8)) if self.users else ""

    @property
    def enabled(self) -> bool:
        return bool(self.users) or self.trusted_header is not None

    def identify(self) -> User | None:
        """The user of the current Flask request, or None when it carries no valid credentials."""
        if self.trusted_header is not None:
            name = request.headers.get(self.trusted_header, "").strip()
            if name and self._from_trusted_proxy():
                entry = self.users.get(name)
                return User(name, entry.role if entry else Role.VIEWER)
            if not self.users:
                return None
        auth = request.authorization
        if auth is None or auth.type != "basic" or not auth.username or auth.password is None:
            return None
        return self._check_basic(auth.username, auth.password)

    def _from_trusted_proxy(self) -> bool:
        try:
            address = ipaddress.ip_address(request.remote_addr or "")
        except ValueError:
            return False
        return any(address in network for network in self.trusted_proxies)

    def _check_basic(self, name: str, password: str) -> User | None:
        entry = self.users.get(name)
        # Scrypt on every request would cost tens of ms; remember good pairs under a keyed hash.
        key = hmac.new(self._cache_key, f"{name}\0{password}".encode(), "sha256").digest()
        with self._lock:
            cached = self._verified.get(key)
        if entry is not None and cached == entry.password_hash:
            return User(name, entry.role)
        # An unknown name costs the same scrypt as a known one: no user-name oracle by timing.
        ok = verify_password(password, entry.password_hash if entry else self._dummy_hash)
        if entry is None or not ok:
            return None
        with self._lock:
            if len(self._verified) >= MAX_VERIFIED_CACHE:
                self._verified.clear()
            self._verified[key] = entry.password_hash
        return User(name, entry.role)


def current_user() -> User | None:
    """The signed-in user of the current request; None outside a request.

    With authentication off every request comes from the "local" user, a reviewer when the
    dashboard listens on a loopback address only and a viewer otherwise.
    """
    if not has_request_context():
        return None
    return g.get("uncia_user")


def require_role(role: Role | str) -> Callable[[F], F]:
    """Decorate a (write) callback so it runs only for users with `role`; others get HTTP 403.

    The check runs on the server for every call, whatever the browser sends.
    """

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def checked(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user is None or not user.may(role):
                log.warning("refused %s to %s", fn.__name__, user.name if user else "nobody")
                raise Forbidden("you may not change data")
            return fn(*args, **kwargs)

        setattr(checked, REQUIRED_ROLE_ATTR, Role(role))  # Dash's wrapper copies it
        return checked  # type: ignore[return-value]

    return decorate


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def served_names(host: str, allowed_hosts: Iterable[str]) -> frozenset[str] | None:
    """The host names a request may name in `Host` and `Origin`, lower case: the loopback
    names, the address listened on and `allowed_hosts`. None (any name) when listening on
    every interface with no `allowed_hosts`: the server cannot know the names it is reached by.
    """
    extra = {h.lower().strip("[]") for h in allowed_hosts}
    if host in WILDCARD_HOSTS and not extra:
        return None
    listened = set() if host in WILDCARD_HOSTS else {host.lower().strip("[]")}
    return LOOPBACK_NAMES | listened | extra


def _hostname(netloc: str) -> str | None:
    """The host name of a `Host` header or an origin's netloc, without port or brackets."""
    try:
        return urlsplit(f"//{netloc}").hostname
    except ValueError:
        return None


def install_auth(
    server: Flask,
    authenticator: Authenticator,
    *,
    host: str = "127.0.0.1",
    allowed_hosts: Iterable[str] = (),
    callback_map: dict[str, Any] | None = None,
) -> None:
    """Guard every route of `server`: the Host and Origin names first (DNS rebinding), then
    credentials, then security headers on every answer.

    `callback_map` is the Dash app's: a POST to /_dash-update-component whose callback was
    decorated with `require_role` is refused (403) before Dash runs it, unless the user may.
    Errors reach the browser as a short status text, never a traceback or a path.
    """
    anonymous = User("local", Role.REVIEWER if _is_loopback(host) else Role.VIEWER)
    names = served_names(host, allowed_hosts)
    if not authenticator.enabled and not _is_loopback(host):
        log.warning(
            "authentication is off and the dashboard listens on %s: anyone who can "
            "reach it sees the survey (see docs/security.md)",
            host,
        )

    @server.before_request
    def authenticate() -> Response | None:
        # A page of attacker.example whose name was rebound to this address is same-origin to
        # the browser, but its requests still say Host/Origin: attacker.example.
        if names is not None and _hostname(request.host) not in names:
            return Response("host not allowed", status=400, mimetype="text/plain")
        origin = request.headers.get("Origin")
        if origin is not None and (names is not None or request.method not in SAFE_METHODS):
            parts = urlsplit(origin)
            same = parts.netloc.lower() == request.host.lower()
            if not (same or (names is not None and _hostname(parts.netloc) in names)):
                return Response("origin not allowed", status=403, mimetype="text/plain")
        if not authenticator.enabled:
            g.uncia_user = anonymous
        else:
            user = authenticator.identify()
            if user is None:
                return Response(
                    "authentication required",
                    status=401,
                    mimetype="text/plain",
                    headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
                )
            g.uncia_user = user
        if (
            callback_map
            and request.method == "POST"
            and request.path.endswith("_dash-update-component")
        ):
            body = request.get_json(silent=True)
            output = body.get("output") if isinstance(body, dict) else None
            entry = callback_map.get(output) if isinstance(output, str) else None
            needed = getattr((entry or {}).get("callback"), REQUIRED_ROLE_ATTR, None)
            if needed is not None and not g.uncia_user.may(needed):
                return Response("you may not change data", status=403, mimetype="text/plain")
        return None

    @server.after_request
    def add_security_headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if authenticator.enabled and "Cache-Control" not in response.headers:
            response.headers["Cache-Control"] = "no-store"
        return response

    @server.errorhandler(Exception)
    def plain_error(exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            code = exc.code or 500
            return Response(f"{code} {exc.name}", status=code, mimetype="text/plain")
        if isinstance(exc, DependencyException):  # a /_dash-component-suites/ path Dash lacks
            log.warning("no such component file: %s", request.path)
            return Response("404 Not Found", status=404, mimetype="text/plain")
        log.error("unhandled error on %s", request.path, exc_info=exc)
        return Response(
            "internal error; the server log has the details", status=500, mimetype="text/plain"
        )


def authenticator_for(
    auth_file: Path | None, trusted_user_header: str | None, trusted_proxies: Iterable[str]
) -> Authenticator:
    """Build the Authenticator the settings ask for (authentication off when both are None)."""
    users = load_users(auth_file) if auth_file is not None else None
    try:
        return Authenticator(users, trusted_user_header, trusted_proxies)
    except ValueError as exc:
        raise ConfigError(f"trusted_proxies must be IP addresses or networks: {exc}") from None
