"""Serve a built dashboard over HTTP: waitress (a production WSGI server) when it is installed.

Flask's own server is for development only; it remains the fallback so a bare install still runs.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import dash

log = logging.getLogger(__name__)

DEFAULT_THREADS = 8
MAX_BODY_BYTES = 4 * 1024 * 1024  # Dash callback bodies are a few kB
CONNECTION_LIMIT = 1000


class RunningServer(Protocol):
    """What `make_server` returns: run it, ask where it listens, close it."""

    def run(self) -> None: ...

    def close(self) -> None: ...


class _WaitressServer:
    def __init__(self, app: dash.Dash, host: str, port: int, threads: int) -> None:
        from waitress.server import create_server

        self.name = "waitress"
        # ident="" keeps the server's name and version out of every response.
        self._server: Any = create_server(
            app.server,
            host=host,
            port=port,
            threads=threads,
            ident="",
            max_request_body_size=MAX_BODY_BYTES,
            # Browsers keep up to 6 connections each open; waitress's default of 100 would make
            # the 17th open page wait for a free slot.
            connection_limit=CONNECTION_LIMIT,
            expose_tracebacks=False,
        )
        self.host, self.port = self._server.socket.getsockname()[:2]

    def run(self) -> None:
        self._server.run()

    def close(self) -> None:
        self._server.close()


class _FlaskServer:
    def __init__(self, app: dash.Dash, host: str, port: int, threads: int) -> None:
        from werkzeug.serving import make_server as werkzeug_server

        self.name = "flask"
        self._server = werkzeug_server(host, port, app.server, threaded=True)
        self.host, self.port = self._server.server_address[:2]

    def run(self) -> None:
        self._server.serve_forever()

    def close(self) -> None:
        self._server.shutdown()


def make_server(
    app: dash.Dash, host: str, port: int, *, threads: int = DEFAULT_THREADS
) -> _WaitressServer | _FlaskServer:
    """Bind `host:port` (port 0: any free port) for `app`; call `.run()` to serve.

    Uses waitress when importable, else Flask's development server with a warning.
    """
    try:
        return _WaitressServer(app, host, port, threads)
    except ImportError:
        log.warning("waitress is not installed; using Flask's development server")
        return _FlaskServer(app, host, port, threads)
