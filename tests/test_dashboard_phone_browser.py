"""The dashboard on phones (360, 390 and 414 px wide): the map comes first and fits its
hexagons and cameras to the phone's width, the filters wait in a drawer that a button opens
and closes, and nothing is wider than the screen.

A real Dash server on a loopback port serving the demo survey, driven in Debian's headless
Chromium with a phone's viewport, touch and device scale.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import BROWSER_MARKS, GRAPH, MAP_READY, serve_demo

pytestmark = BROWSER_MARKS

MAP = f"document.querySelector('{GRAPH}')._fullLayout.map._subplot.map"
OVERFLOW = "() => [document.documentElement.scrollWidth, document.body.scrollWidth, innerWidth]"


@pytest.fixture(scope="module")
def url(demo_dir: Path) -> Iterator[str]:
    server, address = serve_demo(demo_dir)
    yield address
    server.shutdown()


def phone(browser: Any, url: str, width: int, height: int) -> Any:
    page = browser.new_page(
        viewport={"width": width, "height": height}, device_scale_factor=2, is_mobile=True,
        has_touch=True,
    )  # fmt: skip
    page.goto(url)
    page.wait_for_function(MAP_READY, timeout=30_000)
    return page


def outside_the_view(page: Any) -> list[list[float]]:
    """Hexagon corners and camera positions the map does not show."""
    return page.evaluate(
        f"""() => {{
          const g = document.querySelector('{GRAPH}');
          const map = {MAP};
          const b = map.getBounds();
          const points = [];
          g.data.forEach(t => {{
            if (t.type === 'choroplethmap') t.geojson.features.forEach(
              f => f.geometry.coordinates[0].forEach(p => points.push(p)));
            else if (t.name === 'Cameras') t.lon.forEach((lng, i) => points.push([lng, t.lat[i]]));
          }});
          if (!points.length) return [[NaN, NaN]];
          return points.filter(p => !b.contains(p));
        }}"""
    )


@pytest.mark.parametrize(("width", "height"), [(390, 844), (360, 740), (414, 896)])
def test_a_phone_sees_the_map_first_fitted_to_its_width(
    browser: Any, url: str, width: int, height: int
) -> None:
    page = phone(browser, url, width, height)
    # The map fits itself once drawn (a narrow map is re-fitted in the browser).
    page.wait_for_function(
        f"() => document.querySelector('{GRAPH}')._unciaFitKey !== undefined", timeout=10_000
    )
    page.wait_for_timeout(300)
    missing = outside_the_view(page)
    widths = page.evaluate(OVERFLOW)
    map_box = page.locator("#hotspot-map").bounding_box()
    filters_shown = page.locator("#filters").is_visible()
    toggle = page.get_by_role("button", name="Filters")
    toggle_box = toggle.bounding_box()
    page.close()
    assert widths[2] == width  # laid out at the phone's width, not zoomed out from 980 px
    assert widths[0] <= width and widths[1] <= width, widths  # no sideways scrolling
    assert missing == [], f"{len(missing)} hexagon corners or cameras outside the map"
    assert map_box["y"] < height  # the map is on the first screen …
    assert not filters_shown  # … and the filters are not: they wait in the drawer
    assert toggle_box["y"] + toggle_box["height"] <= height  # whose button is always in reach
    assert toggle_box["x"] + toggle_box["width"] <= width


def test_the_filters_drawer_opens_works_and_closes(browser: Any, url: str) -> None:
    page = phone(browser, url, 390, 844)
    toggle = page.locator("#filters-toggle")
    assert toggle.get_attribute("aria-expanded") == "false"
    toggle.click()
    drawer = page.locator("#filters")
    drawer.wait_for(state="visible")
    assert toggle.get_attribute("aria-expanded") == "true"
    assert toggle.inner_text() == "Close filters"
    box = drawer.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390  # inside the screen
    assert box["y"] + box["height"] <= 844 + 1
    assert page.evaluate(OVERFLOW)[0] <= 390
    # A filter in the drawer still drives the map: resolution 7 has more hexagons than 6.
    before = page.evaluate(f"() => document.querySelector('{GRAPH}').data[0].locations.length")
    page.locator("#resolution").get_by_text("7 (≈5 km²)").click()
    page.wait_for_function(
        f"n => document.querySelector('{GRAPH}').data[0].locations.length > n", arg=before
    )
    toggle.click()
    drawer.wait_for(state="hidden")
    assert toggle.inner_text() == "Filters"
    # The finer map is fitted again to the phone's width.
    page.wait_for_timeout(1200)
    missing = outside_the_view(page)
    # Escape closes the open drawer too (a keyboard on a tablet), and focus returns to its button.
    toggle.click()
    drawer.wait_for(state="visible")
    page.keyboard.press("Escape")
    drawer.wait_for(state="hidden", timeout=5_000)
    assert toggle.get_attribute("aria-expanded") == "false"
    assert page.evaluate("() => document.activeElement.id") == "filters-toggle"
    page.close()
    assert missing == []


def test_a_desktop_shows_the_filters_and_no_drawer_button(browser: Any, url: str) -> None:
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(url)
    page.wait_for_function(MAP_READY, timeout=30_000)
    shown = page.locator("#filters").is_visible()
    button = page.locator("#filters-toggle").is_visible()
    page.close()
    assert shown and not button
