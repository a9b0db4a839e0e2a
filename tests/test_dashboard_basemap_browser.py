"""The offline basemap in the browser: relief tiles and place-name glyphs come from the serving
host and are drawn, place names are labelled, the scale bar is as long as it says, and still
nothing is asked of another host.

A real Dash server on a loopback port serving the demo survey (the Tost mountains, Mongolia),
driven in Debian's headless Chromium.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image

from dashboard.data.places import places_near
from tests.browser import BROWSER_MARKS, GRAPH, MAP_READY, serve_demo

pytestmark = BROWSER_MARKS

MAP = f"document.querySelector('{GRAPH}')._fullLayout.map._subplot.map"
EARTH_RADIUS_M = 6371008.8


@pytest.fixture(scope="module")
def url(demo_dir: Path) -> Iterator[str]:
    server, address = serve_demo(demo_dir)
    yield address
    server.shutdown()


class Traffic:
    def __init__(self) -> None:
        self.requested: list[str] = []
        self.answered: list[tuple[str, int, str]] = []


@pytest.fixture(scope="module")
def opened(browser: Any, url: str) -> Iterator[tuple[Any, Traffic]]:
    """One page for the module (a page takes seconds to draw), with every request it made."""
    traffic = Traffic()
    page = browser.new_page(viewport={"width": 1440, "height": 1100})
    page.on("request", lambda request: traffic.requested.append(request.url))
    page.on(
        "response",
        lambda r: traffic.answered.append((r.url, r.status, r.headers.get("content-type", ""))),
    )
    page.goto(url)
    page.wait_for_function(MAP_READY, timeout=30_000)
    yield page, traffic
    page.close()


def haversine_m(lng1: float, lat1: float, lng2: float, lat2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


def settle(page: Any, zoom: float | None = None) -> None:
    """Zoom the map (when `zoom` is given) and wait until its tiles and labels are drawn."""
    if zoom is not None:
        page.evaluate(f"() => {MAP}.jumpTo({{zoom: {zoom}}})")
    page.wait_for_function(f"() => {MAP}.loaded() && {MAP}.areTilesLoaded()", timeout=20_000)
    page.wait_for_timeout(600)  # the scale bar and the symbol placement follow the frame


def scale_bar(page: Any) -> dict[str, Any]:
    """The scale bar's label and ruler ends, the ends also as longitude/latitude (read from
    the map), and the map's zoom and centre."""
    return page.evaluate(
        f"""() => {{
          const map = {MAP};
          const box = map.getContainer().getBoundingClientRect();
          const ruler = document.querySelector('.map-scale-ruler').getBoundingClientRect();
          const y = ruler.bottom - box.top;
          const a = map.unproject([ruler.left - box.left, y]);
          const b = map.unproject([ruler.right - box.left, y]);
          return {{label: document.querySelector('.map-scale-label').textContent,
                  metres: Number(document.querySelector('.map-scale').dataset.metres),
                  px: ruler.width, a: [a.lng, a.lat], b: [b.lng, b.lat],
                  zoom: map.getZoom(), lat: a.lat}};
        }}"""
    )


def test_relief_tiles_and_glyphs_come_from_the_serving_host_and_nothing_else(
    opened: tuple[Any, Traffic], url: str
) -> None:
    page, traffic = opened
    host = urlsplit(url).netloc
    settle(page, zoom=6.5)  # zoomed out: names of towns around the survey are in view
    assert page.evaluate(f"() => {MAP}.isSourceLoaded('relief')")
    # What the user sees: a corner of the map away from the hexagons is relief, not the flat
    # background colour the offline map used to be.
    box = page.locator(f"{GRAPH} .maplibregl-canvas").bounding_box()
    corner = {"x": box["x"] + 20, "y": box["y"] + 80, "width": 200, "height": 120}
    pixels = np.asarray(Image.open(io.BytesIO(page.screenshot(clip=corner))).convert("L"))
    answered, requested = list(traffic.answered), list(traffic.requested)
    relief = [(u, s, t) for u, s, t in answered if "/basemap/relief/" in urlsplit(u).path]
    glyphs = [(u, s, t) for u, s, t in answered if "/basemap/fonts/" in urlsplit(u).path]
    assert relief and all(s == 200 and t == "image/png" for _, s, t in relief), relief
    assert glyphs and all(s == 200 and t == "application/x-protobuf" for _, s, t in glyphs)
    assert all(urlsplit(u).netloc == host for u, _, _ in relief + glyphs)
    assert pixels.std() > 4 and int(pixels.max()) - int(pixels.min()) > 20  # flat: 0 and 0
    off_host = [
        u for u in requested if urlsplit(u).scheme not in ("data", "blob") and
        urlsplit(u).netloc != host
    ]  # fmt: skip
    assert off_host == []


def test_towns_around_the_survey_are_labelled_on_the_map(opened: tuple[Any, Traffic]) -> None:
    page, _ = opened
    settle(page, zoom=6.0)
    labelled = page.evaluate(
        f"() => {MAP}.queryRenderedFeatures({{layers: ['place-names']}})"
        ".map(f => [f.properties.name, f.geometry.coordinates[0], f.geometry.coordinates[1]])"
    )
    bounds = page.evaluate(f"() => {MAP}.getBounds().toArray()")
    (west, south), (east, north) = bounds
    expected = {
        p.name
        for p in places_near((100.3, 43.0, 101.2, 43.3))  # the demo survey's cameras
        if west <= p.lng <= east and south <= p.lat <= north
    }
    names = {name for name, _, _ in labelled}
    assert names, "no place name drawn"
    assert names <= expected  # every label is a GeoNames town in view …
    assert len(names) >= len(expected) // 2  # … and most of them find room to be drawn


def test_the_scale_bar_is_as_long_as_its_label_says_at_every_zoom(
    opened: tuple[Any, Traffic],
) -> None:
    page, _ = opened
    seen = []
    for zoom in (8.6, 10.3, 7.2, 4.0):
        settle(page, zoom)
        bar = scale_bar(page)
        seen.append(bar["label"])
        # The label is a round length: 1, 2 or 5 times a power of ten, in m or km.
        mantissa = bar["metres"] / 10 ** math.floor(math.log10(bar["metres"]))
        assert round(mantissa, 6) in (1, 2, 5), bar
        unit_value = bar["metres"] / 1000 if bar["metres"] >= 1000 else bar["metres"]
        assert bar["label"] == f"{unit_value:g} {'km' if bar['metres'] >= 1000 else 'm'}"
        # Its ends, as the map places them, lie that far apart on the ground …
        assert haversine_m(*bar["a"], *bar["b"]) == pytest.approx(bar["metres"], rel=0.01)
        # … and so says Web Mercator's ground resolution, computed here independently:
        # 2 pi R cos(lat) / (512 * 2^zoom) metres per CSS pixel (MapLibre's 512 px world).
        metres_per_px = 2 * math.pi * EARTH_RADIUS_M * math.cos(math.radians(bar["lat"]))
        metres_per_px /= 512 * 2 ** bar["zoom"]
        assert bar["px"] * metres_per_px == pytest.approx(bar["metres"], rel=0.02)
        assert 40 <= bar["px"] <= 120
    assert len(set(seen)) == 4, seen  # the bar follows the zoom
