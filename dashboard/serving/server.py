"""Serve a built dashboard over HTTP: waitress (a production WSGI server) when it is installed.

Flask's own server is for development only; it remains the fallback so a bare install still runs.
`serve_in_processes` runs several waitress processes on one listening socket: Python parts of
the callbacks (figures, JSON) hold the GIL, so one process uses about one core however many
threads it has.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import signal
import socket
import time
import types
from collections.abc import Callable
from typing import Any, Protocol

import dash
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, create_server

from dashboard.serving.guards import MAX_BODY_BYTES
from dashboard.serving.warmup import stop_background_work

log = logging.getLogger(__name__)

DEFAULT_THREADS = 8
# Waitress reads bodies up to this (to disk past 512 kB) so that the app can answer 413 to
# one over MAX_BODY_BYTES; past it waitress closes the connection (the client sees a reset).
MAX_READ_BODY_BYTES = 4 * MAX_BODY_BYTES

# Slow and idle clients (docs/security.md, "Slow clients"). Every open connection holds a slot
# before any authentication, so 1,100 idle half-sent requests used to fill waitress's table of
# 1,000 and every visitor waited 20 s and more. Now the table is large (the open-files limit
# raised to fit, and poll() instead of select(), which stops at descriptor 1024), a connection
# idle for IDLE_TIMEOUT_S is closed, and so is one that has not finished sending its request
# REQUEST_DEADLINE_S after its first byte (a client trickling a byte now and then is never
# idle). The checks run every CLEANUP_INTERVAL_S.
CONNECTION_LIMIT = 10_000
IDLE_TIMEOUT_S = 10
REQUEST_DEADLINE_S = 10
CLEANUP_INTERVAL_S = 1
SPARE_FILES = 256  # descriptors kept for DuckDB, Parquet files, logs and thumbnails


class _DeadlineChannel(HTTPChannel):
    """Waitress's channel, noting when the request it is reading began to arrive."""

    request_started: float | None = None

    def received(self, data: bytes) -> bool:
        if self.request is None and data:
            self.request_started = time.time()
        result: bool = super().received(data)
        if self.request is None:  # nothing half-read left
            self.request_started = None
        return result


def _close_slow_requests(server: BaseWSGIServer, now: float) -> None:
    """Waitress's own maintenance (idle channels) plus the request deadline."""
    BaseWSGIServer.maintenance(server, now)
    cutoff = now - REQUEST_DEADLINE_S
    for channel in list(server.active_channels.values()):
        started = getattr(channel, "request_started", None)
        if started is not None and started < cutoff and not channel.requests:
            channel.will_close = True


def open_files_limit(wanted: int) -> int:
    """Raise this process's soft limit on open files towards `wanted` (never past the hard
    limit); return the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return wanted
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return soft
    return target


class RunningServer(Protocol):
    """What `make_server` returns: run it, ask where it listens, close it."""

    def run(self) -> None: ...

    def close(self) -> None: ...


class _WaitressServer:
    def __init__(
        self,
        app: dash.Dash,
        host: str,
        port: int,
        threads: int,
        sock: socket.socket | None = None,
    ) -> None:
        self.name = "waitress"
        where: dict[str, Any] = {"sockets": [sock]} if sock else {"host": host, "port": port}
        files = open_files_limit(CONNECTION_LIMIT + SPARE_FILES)
        self.connection_limit = max(100, min(CONNECTION_LIMIT, files - SPARE_FILES))
        channels: dict[int, Any] = {}
        # ident="" keeps the server's name and version out of every response.
        self._server: Any = create_server(
            app.server,
            map=channels,
            **where,
            threads=threads,
            ident="",
            max_request_body_size=MAX_READ_BODY_BYTES,
            # Browsers keep up to 6 connections each open (waitress's default of 100 would make
            # the 17th open page wait); slow clients are the reason for the rest.
            connection_limit=self.connection_limit,
            channel_timeout=IDLE_TIMEOUT_S,
            cleanup_interval=CLEANUP_INTERVAL_S,
            asyncore_use_poll=True,
            expose_tracebacks=False,
        )
        # create_server builds one listener per address in `channels`: each gets the
        # deadline-keeping channel and the maintenance that enforces the deadline.
        for listener in list(channels.values()):
            if isinstance(listener, BaseWSGIServer):
                listener.channel_class = _DeadlineChannel
                enforce = types.MethodType(_close_slow_requests, listener)
                listener.maintenance = enforce  # type: ignore[method-assign]
                listener.maintenance = types.MethodType(_close_slow_requests, listener)  # type: ignore[method-assign]
        self.host, self.port = self._server.socket.getsockname()[:2]

    def run(self) -> None:
        self._server.run()

    def close(self) -> None:
        """Stop listening, then let requests in progress finish (up to 5 s) so that no request
        thread is inside DuckDB when Python exits."""
        self._server.close()
        self._server.task_dispatcher.shutdown()


def make_server(
    app: dash.Dash, host: str, port: int, *, threads: int = DEFAULT_THREADS
) -> _WaitressServer:
    """Bind `host:port` (port 0: any free port) for `app` with waitress; call `.run()` to serve."""
    return _WaitressServer(app, host, port, threads)


def serve_until_stopped(app: dash.Dash, server: RunningServer) -> None:
    """Run `server` until Ctrl-C or SIGTERM (docker stop, systemd), then let requests in
    progress (up to 5 s) and `app`'s store warmer finish: a thread still inside DuckDB when
    Python exits aborts the process ("terminate called ...")."""
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        server.run()  # waitress returns on KeyboardInterrupt; Flask's server lets it through
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        stop_background_work(app)
        signal.signal(signal.SIGTERM, previous)


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host:port` (port 0: any free port), to share between workers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    return sock


def serve_in_processes(
    build_app: Callable[[], dash.Dash],
    sock: socket.socket,
    *,
    workers: int,
    threads: int = DEFAULT_THREADS,
    min_uptime_s: float = 5.0,
) -> int:
    """Serve `build_app()` from `workers` forked waitress processes sharing `sock`.

    Each worker builds its own app after the fork (its own DuckDB snapshot, cache and threads;
    the parent starts none). A worker killed by a signal (the OOM killer, an operator) is
    replaced; one that exits on its own within `min_uptime_s` of starting could not build or
    serve the app, and everything stops with exit status 1. SIGTERM or SIGINT stops every
    worker; returns the exit status.
    """
    children: dict[int, float] = {}
    stopping = False

    def spawn() -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 0
            try:
                _WaitressServer(build_app(), "", 0, threads, sock=sock).run()
            except BaseException:
                log.exception("dashboard worker %d failed", os.getpid())
                code = 1
            finally:
                os._exit(code)
        children[pid] = time.monotonic()

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for _ in range(workers):
        spawn()
    status = 0
    while children:
        try:
            pid, wait_status = os.wait()
        except ChildProcessError:
            break
        started = children.pop(pid, None)
        if started is None or stopping:
            continue
        if os.WIFEXITED(wait_status) and time.monotonic() - started < min_uptime_s:
            log.error("a dashboard worker died right after starting; stopping")
            status = 1
            stop(signal.SIGTERM, None)
        else:
            log.warning("dashboard worker %d died; starting another", pid)
            spawn()
    return status
