"""The dashboard in a real headless Chromium against a real Dash server on a loopback port.

Loads the page, checks the MapLibre map drew its hexagons, moves the threshold slider, clicks a
hexagon for its frames, switches the season, and rewrites the store under the open page.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from PIL import Image
from plotly.offline import get_plotlyjs_version as plotly_js_version

from dashboard import Settings
from dashboard.components import DEMO_BANNER
from dashboard.data import analysis
from dashboard.data.store import Store
from dashboard.filters import Filters
from dashboard.pages.hotspots import TITLE
from pipeline.schema import RUN_TABLES
from pipeline.store import store
from tests.browser import (
    BROWSER_MARKS,
    GRAPH,
    MAP_READY,
    Z_SUM,
    click_first_hexagon,
    open_page,
    serve_demo,
)

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def url(demo_dir: Path) -> Iterator[str]:
    server, address = serve_demo(demo_dir)
    yield address
    server.shutdown()


@pytest.fixture
def page(browser: Any, url: str) -> Iterator[Any]:
    with open_page(browser, url) as page:
        yield page


def map_pixels(page: Any) -> str:
    """A digest of the WebGL map canvas alone (no colour bar) as drawn now."""
    page.mouse.move(1, 1)  # no hover label over the map
    shot = page.locator("#hotspot-map canvas.maplibregl-canvas").screenshot()
    return hashlib.sha256(shot).hexdigest()


def test_page_shows_title_banner_and_a_drawn_map(page: Any, demo_dir: Path, tmp_path: Path) -> None:
    with Store(demo_dir).connect() as con:  # the hexagons the page's own query finds
        analysis.attach(con, analysis.camera_gaps(con, Settings(data_dir=demo_dir).gap_days), None)
        expected = analysis.layer_summary(con, Filters(resolution=6), 30.0).num_rows
    assert page.locator("h1").inner_text() == TITLE
    assert page.get_by_text(DEMO_BANNER).is_visible()
    assert page.evaluate(f"() => document.querySelector('{GRAPH}').data[0].locations.length") == (
        expected
    )
    assert page.locator("#hotspot-map canvas").count() >= 1
    page.locator("#hotspot-map").screenshot(path=str(tmp_path / "map.png"))
    pixels = Image.open(tmp_path / "map.png").convert("RGB")
    colours = pixels.getcolors(maxcolors=1 << 20) or []
    # WebGL drew filled hexagons: many colours, and warm (event) ones among them.
    assert len(colours) > 50
    warm = sum(n for n, c in colours if isinstance(c, tuple) and c[0] > 200 and c[2] < 120)
    assert warm > 500
    assert page.locator("#hotspot-table tbody tr").count() > 1


def test_opening_the_page_asks_only_for_what_it_draws(browser: Any, url: str) -> None:
    """The layout already holds the store version, header, date bounds, month switches, year
    choices and the match review: the first load runs only the callbacks that draw data
    (the individuals table among them, on the page's filters), each once (a callback fired
    for what the layout holds made the drawing ones wait a second round trip, ~0.2 s of the
    first render)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1300})
    asked: list[str] = []

    def on_request(request: Any) -> None:
        if "/_dash-update-component" in request.url:
            asked.append(next(p for p in request.post_data_json["output"].split("..") if p))

    page.on("request", on_request)
    try:
        page.goto(url)
        page.wait_for_function(MAP_READY, timeout=30_000)
        page.wait_for_selector("#review-gallery .review-card")
        page.wait_for_timeout(500)  # a late callback would have been sent by now
    finally:
        page.close()
    # Dash runs the review buttons' (pattern-matching) callback once the buttons exist; it
    # finds no click and changes nothing.
    # The store check every refresh_seconds (5 s) is no part of the load; on a busy machine it
    # comes due before the gallery is drawn.
    drawn = sorted(
        o for o in asked if not o.startswith(("reviews-version.data", "data-version.data"))
    )
    assert drawn == [
        "detections-title.children",  # the selection store announces itself on mount
        "diel.figure",
        "event-series.figure",
        "hotspot-map.figure",
        "individuals-per-hexagon.data",
        "review-title.children",
    ]


def test_moving_the_threshold_slider_redraws_the_map(page: Any) -> None:
    before, drawn = page.evaluate(Z_SUM), map_pixels(page)
    track = page.locator("#threshold .dash-slider-track").bounding_box()
    page.mouse.click(track["x"] + 0.95 * track["width"], track["y"] + track["height"] / 2)
    page.wait_for_function(f"() => ({Z_SUM})() < {before}", timeout=15_000)
    assert float(page.locator("#threshold [role=slider]").get_attribute("aria-valuenow")) > 0.8
    page.wait_for_function(MAP_READY)
    page.wait_for_timeout(500)
    assert map_pixels(page) != drawn  # the canvas itself was redrawn, not only the data


def test_clicking_a_hexagon_lists_its_frames_with_thumbnails(page: Any) -> None:
    cell = click_first_hexagon(page)
    page.wait_for_selector("#detections figure img", timeout=15_000)
    assert cell in page.locator("#detections-title").inner_text()
    # Outlined on the map's canvas, a line layer on top of the rest with the hexagon's ring.
    outlined = f"document.querySelector('{GRAPH}').getAttribute('data-selected-hexagon')"
    page.wait_for_function(f"() => {outlined} === '{cell}'")
    ring, outline, top = page.evaluate(
        f"""async () => {{
          const g = document.querySelector('{GRAPH}');
          const map = g._fullLayout.map._subplot.map;
          const f = g.data[0].geojson.features.find((x) => x.id === '{cell}');
          const layers = map.getStyle().layers;
          const drawn = await map.getSource('uncia-selected-hexagon').getData();
          return [f.geometry.coordinates[0], drawn, layers[layers.length - 1].id];
        }}"""
    )
    assert outline["geometry"]["coordinates"] == ring and top == "uncia-selected-hexagon"
    first = page.locator("#detections figure img").first
    first.scroll_into_view_if_needed()
    page.wait_for_function(
        "() => document.querySelector('#detections figure img').naturalWidth > 0",
        timeout=15_000,
    )
    assert "/thumbnail/" in first.get_attribute("src")
    assert "score" in page.locator("#detections figure").first.inner_text()


def test_season_filter_changes_the_series(page: Any) -> None:
    months_js = (
        "() => document.querySelector('#event-series .js-plotly-plot').data[0].x"
        ".map(d => Number(String(d).slice(5, 7)))"
    )
    page.wait_for_function(f"() => ({months_js})().length > 0")
    assert set(page.evaluate(months_js)) - {6, 7, 8}
    page.get_by_text("Summer (Jun–Aug)").click()
    only_summer = (
        f"() => {{ const m = ({months_js})(); return m.length && m.every(x => x >= 6 && x <= 8); }}"
    )
    page.wait_for_function(only_summer, timeout=15_000)


def test_store_rewritten_under_an_open_page_shows_up(
    browser: Any, demo_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "live"
    shutil.copytree(demo_dir, data)
    server, address = serve_demo(data, refresh_seconds=0.5)
    page = browser.new_page(viewport={"width": 1400, "height": 1300})
    try:
        page.goto(address)
        page.wait_for_function(MAP_READY, timeout=30_000)
        assert page.evaluate(Z_SUM) > 0
        tables = {name: pq.read_table(store.StorePaths(data).table(name)) for name in RUN_TABLES}
        keep = pc.less(tables["bursts"]["score"], pa.scalar(0.3, pa.float32()))
        store.write_tables(data, {**tables, "bursts": tables["bursts"].filter(keep)})
        page.wait_for_function(f"() => ({Z_SUM})() === 0", timeout=15_000)
    finally:
        page.close()
        server.shutdown()


def test_page_draws_with_the_cut_down_plotly_bundle(page: Any) -> None:
    """dashboard/assets/plotly-uncia.min.js defines Plotly; the full bundle is never fetched."""
    loaded = page.evaluate("() => performance.getEntriesByType('resource').map(e => e.name)")
    assert any(name.split("?")[0].endswith("/plotly-uncia.min.js") for name in loaded)
    full = [n for n in loaded if "/plotly." in n or "package_data/plotly" in n]  # any fingerprint
    assert full == []
    assert page.evaluate("() => Plotly.version") == plotly_js_version()
