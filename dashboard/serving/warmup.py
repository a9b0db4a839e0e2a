"""Prepare each store snapshot before the first visitor asks for it.

A snapshot's first map pays once for its camera gaps, its materialized operating nights and a
cold DuckDB buffer pool (about a second on a 10-million-row store, bench/dashboard_bench.py),
then each of the page's views costs a few hundred milliseconds more. `StoreWarmer` pays all of
it in a background thread when the server starts and again whenever a pipeline checkpoint
replaces the store, by answering the page's views (page_views.py) with the values a browser
opening the page sends.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable
from typing import Any

import dash

from dashboard.serving.page_views import PageViews, starting_values

log = logging.getLogger(__name__)


class StoreWarmer:
    """Answers the page's views for each new store version, off the request path."""

    def __init__(
        self,
        version: Callable[[], str | None],
        views: PageViews,
        layout: Callable[[], Any],
        interval_s: float,
    ) -> None:
        """`version` gives the store's current version, `layout` the page a browser opens."""
        self.version = version
        self.views = views
        self.layout = layout
        self.interval_s = interval_s
        self.warmed_version: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def warm_once(self) -> bool:
        """Warm the current store version unless done already; True when it did."""
        version = self.version()
        if version is None or version == self.warmed_version:
            return False
        # The page's views, answered with what a browser opening the page sends; the callbacks
        # turn errors into alerts, so a store that cannot be read only logs.
        self.views.warm(starting_values(self.layout()))
        self.warmed_version = version
        log.debug("warmed store version %s", version)
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.warm_once()
            except Exception:  # never let warming take the server down
                log.warning("warming the store failed", exc_info=True)
            self._stop.wait(self.interval_s)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="uncia-warmup", daemon=True)
            self._thread.start()
            # Also when the program ends without stopping the server (a script, a test run):
            # Python abandoning this thread inside DuckDB at exit aborts the process.
            atexit.register(self.stop)

    def stop(self, wait_s: float = 60.0) -> None:
        """Stop warming, waiting up to `wait_s` for a warm in progress to finish: a thread
        still inside DuckDB when Python exits aborts the process ("terminate called...")."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(wait_s)
            if self._thread.is_alive():
                log.warning("the store warmer did not stop within %.0f s", wait_s)


def stop_background_work(app: dash.Dash, wait_s: float = 60.0) -> None:
    """Stop the threads `create_app` started (the store warmer), waiting up to `wait_s`."""
    warmer = app.server.extensions.get("uncia_warmer")
    if warmer is not None:
        warmer.stop(wait_s)
