"""`create_app(settings)`: the Dash app, its store reader, tile source and thumbnail route.

Nothing happens at import time; the CLI (`uncia serve`) and the root `app.py` call create_app.
"""

from __future__ import annotations

import logging
import threading
import urllib.request
from dataclasses import dataclass
from typing import Any

import dash

from dashboard.data.queries import DEFAULT_EVENT_GAP_MINUTES, Overview, StoreReader
from dashboard.figures import map_style
from dashboard.pages import hotspots, individuals
from dashboard.serving.auth import authenticator_for, install_auth
from dashboard.serving.callback_cache import CallbackCache, install_callback_cache
from dashboard.serving.page_views import PageViews
from dashboard.serving.thumbnails import ThumbnailService, register_thumbnails
from dashboard.serving.warmup import StoreWarmer
from dashboard.settings import Settings
from dashboard.views import hotspots as callbacks
from pipeline import __version__

log = logging.getLogger(__name__)


class TileSource:
    """Decides whether the configured tile server answers; probed once, in the background.

    Until the probe has answered (at most `timeout_s`), maps use the offline style.
    """

    def __init__(self, url: str | None, timeout_s: float) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._done = threading.Event()
        self._available = False
        self._started = False
        self._waited = False
        self._lock = threading.Lock()

    def start_probe(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        if self.url is None:
            self._done.set()
            return
        threading.Thread(target=self._probe, name="uncia-tile-probe", daemon=True).start()

    def _probe(self) -> None:
        if self.url is None:
            return
        tile = self.url.replace("{z}", "0").replace("{x}", "0").replace("{y}", "0")
        request = urllib.request.Request(
            tile, headers={"User-Agent": f"uncia-dashboard/{__version__}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                self._available = response.status == 200
        except (OSError, ValueError) as exc:
            log.info("tile server %s not reachable (%s); using the offline map", tile, exc)
        finally:
            self._done.set()

    def available(self) -> bool:
        """True when the tile server answered the probe.

        Only the first call waits for the probe (at most `timeout_s`): a name lookup that hangs
        offline must not slow every map down.
        """
        self.start_probe()
        if not self._waited:
            self._done.wait(self.timeout_s)
            self._waited = True
        return self._available

    def style(self) -> dict[str, Any]:
        """The MapLibre style to draw under the hexagons."""
        return map_style(self.url if self.available() else None)


@dataclass(frozen=True)
class DashboardContext:
    """What every callback needs: the settings, the store reader, the tile source and the
    page's kept views."""

    settings: Settings
    reader: StoreReader
    tiles: TileSource
    views: PageViews
    url_prefix: str = "/"

    def event_gap_minutes(self, overview: Overview) -> float:
        """Settings win, then the latest run's option, then the 30-minute convention."""
        if self.settings.event_gap_minutes is not None:
            return self.settings.event_gap_minutes
        if overview.event_gap_minutes is not None:
            return overview.event_gap_minutes
        return DEFAULT_EVENT_GAP_MINUTES


def build_context(settings: Settings, url_prefix: str = "/") -> DashboardContext:
    """Open the store reader and tile source for `settings` (no network call yet)."""
    return DashboardContext(
        settings=settings,
        reader=StoreReader(settings.data_dir),
        tiles=TileSource(settings.tile_url, settings.tile_probe_timeout_s),
        views=PageViews(settings.data_dir),
        url_prefix=url_prefix,
    )


def create_app(settings: Settings) -> dash.Dash:
    """Build the hotspot dashboard for `settings.data_dir`; run it with `app.run(...)`.

    The folder may not hold a store yet: the page says so and shows the data once a
    pipeline checkpoint writes it.
    """
    app = dash.Dash(
        __name__,
        title="Uncia — snow leopard hotspots",
        update_title="",
        serve_locally=True,
    )
    ctx = build_context(settings, url_prefix=app.config.requests_pathname_prefix)
    app.index_string = hotspots.INDEX_STRING
    app.layout = lambda: dash.html.Div([hotspots.layout(ctx), individuals.layout(ctx)])
    callbacks.register(app, ctx)
    individuals.register(app, ctx)
    register_thumbnails(
        app.server,
        ThumbnailService(ctx.reader, settings.thumbnail_px, settings.image_roots),
        prefix=app.config.routes_pathname_prefix,
    )
    # Last, so it sees every route; write callbacks are marked with auth.require_role.
    install_auth(
        app.server,
        authenticator_for(
            settings.auth_file, settings.trusted_user_header, settings.trusted_proxies
        ),
        host=settings.host,
        callback_map=app.callback_map,
    )
    install_callback_cache(app.server, settings.data_dir, app.callback_map, CallbackCache())
    # Dash registers its component scripts on a process's first request, but marks itself set
    # up before it has: the parallel first script requests a fresh server (or a new --workers
    # process) receives found no registered library and answered 500. Setting up now, before
    # any request, closes that race.
    app._setup_server()
    ctx.tiles.start_probe()
    warmer = StoreWarmer(ctx, interval_s=settings.refresh_seconds)
    app.server.extensions["uncia_warmer"] = warmer
    warmer.start()
    return app


def stop_background_work(app: dash.Dash, wait_s: float = 60.0) -> None:
    """Stop the threads `create_app` started (the store warmer), waiting up to `wait_s`."""
    warmer = app.server.extensions.get("uncia_warmer")
    if warmer is not None:
        warmer.stop(wait_s)
