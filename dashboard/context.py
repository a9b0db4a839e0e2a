"""What every view and page gets: the dashboard's settings, the open store, the map tiles and
the kept page views, in one `DashboardContext` built by `build_context(settings)`."""

from __future__ import annotations

import logging
import threading
import urllib.request
from dataclasses import dataclass
from typing import Any

from dashboard.data.places import all_places, places_near
from dashboard.data.queries import DEFAULT_EVENT_GAP_MINUTES, Overview
from dashboard.data.store import Store
from dashboard.figures import map_style
from dashboard.serving.page_views import PageViews
from dashboard.settings import Settings
from pipeline import __version__

log = logging.getLogger(__name__)


class TileSource:
    """Decides whether the configured tile server answers; probed once, in the background.

    Until the probe has answered (at most `timeout_s`), and always without a tile URL, maps
    use the offline basemap this server serves under `basemap_prefix` (relief and place
    names; serving.basemap), or a plain background when `basemap_prefix` is None.
    """

    def __init__(self, url: str | None, timeout_s: float, basemap_prefix: str | None = None):
        self.url = url
        self.timeout_s = timeout_s
        self.basemap_prefix = basemap_prefix
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
        if self.basemap_prefix is not None:
            # The place list takes about a second to read; read it before the first map asks.
            threading.Thread(target=all_places, name="uncia-places", daemon=True).start()
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

    def style(self, bounds: tuple[float, float, float, float] | None = None) -> dict[str, Any]:
        """The MapLibre style to draw under the hexagons; `bounds` (min_lng, min_lat, max_lng,
        max_lat of the cameras) picks the place names around them."""
        if self.available():
            return map_style(self.url)
        if self.basemap_prefix is None:
            return map_style(None)
        return map_style(None, self.basemap_prefix, places_near(bounds))


@dataclass(frozen=True)
class Caches:
    """Which of the dashboard's caches are on: all of them, except in bench/caches_bench.py,
    which turns each off in turn to measure what it saves (docs/dashboard.md#caches-and-why).

    `gaps`: each store version's camera gaps kept in this process (data.analysis.GapCache);
    `shared_gaps`: written once to DIR/work/dashboard for the other `--workers` processes and
    the next start; `operating_nights`: operating nights and spans materialized once per
    snapshot; `page_views`: the page's view answers kept per data state and inputs
    (serving.page_views); `callback_cache`: repeated callback requests answered byte for byte
    (serving.callback_cache); `warmer`: the page's opening views answered in the background at
    start and after each checkpoint (serving.warmup).
    """

    gaps: bool = True
    shared_gaps: bool = True
    operating_nights: bool = True
    page_views: bool = True
    callback_cache: bool = True
    warmer: bool = True


ALL_CACHES = Caches()


@dataclass(frozen=True)
class DashboardContext:
    """What every callback needs: the settings, the open store, the tile source and the
    page's kept views."""

    settings: Settings
    store: Store
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


def build_context(
    settings: Settings, url_prefix: str = "/", caches: Caches = ALL_CACHES
) -> DashboardContext:
    """Open the store reader and tile source for `settings` (no network call yet), with the
    `caches` that are on."""
    store = Store(
        settings.data_dir,
        settings.outages_file,
        keep_gaps=caches.gaps,
        share_gaps=caches.shared_gaps,
        keep_operating_nights=caches.operating_nights,
    )
    return DashboardContext(
        settings=settings,
        store=store,
        tiles=TileSource(settings.tile_url, settings.tile_probe_timeout_s, url_prefix),
        views=PageViews(store.state, entries=PageViews.ENTRIES if caches.page_views else 0),
        url_prefix=url_prefix,
    )
