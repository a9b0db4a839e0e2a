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
import signal
import socket
import time
from collections.abc import Callable
from typing import Any, Protocol

import dash
from waitress.server import create_server

from dashboard.serving.guards import MAX_BODY_BYTES
from dashboard.serving.warmup import stop_background_work

log = logging.getLogger(__name__)

DEFAULT_THREADS = 8
# Waitress reads bodies up to this (to disk past 512 kB) so that the app can answer 413 to
# one over MAX_BODY_BYTES; past it waitress closes the connection (the client sees a reset).
MAX_READ_BODY_BYTES = 4 * MAX_BODY_BYTES
CONNECTION_LIMIT = 1000


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
        # ident="" keeps the server's name and version out of every response.
        self._server: Any = create_server(
            app.server,
            **where,
            threads=threads,
            ident="",
            max_request_body_size=MAX_READ_BODY_BYTES,
            # Browsers keep up to 6 connections each open; waitress's default of 100 would make
            # the 17th open page wait for a free slot.
            connection_limit=CONNECTION_LIMIT,
            expose_tracebacks=False,
        )
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
