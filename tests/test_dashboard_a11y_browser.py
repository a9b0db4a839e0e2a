"""Accessibility and what a hexagon says about itself, in the browser: axe-core finds no serious
or critical violation on the page (desktop and phone) nor in the report; a hexagon is named by
its stations; the camera-operation chart shows every station of the view; the individuals
panel shows the demo's simulated individuals; a click on empty map clears the selection.

One real Dash server on a loopback port, driven in Debian's headless Chromium.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h3
import pytest
from axe_playwright_python.sync_playwright import Axe

from dashboard import Settings
from dashboard.context import build_context
from dashboard.views.downloads import build_export
from tests.browser import (
    BROWSER_MARKS,
    GRAPH,
    MAP_READY,
    click_first_hexagon,
    open_page,
    serve_demo,
)
from tests.helpers import CONTROLS

pytestmark = BROWSER_MARKS

SERIOUS = ("serious", "critical")


@pytest.fixture(scope="module")
def url(demo_dir: Path) -> Iterator[str]:
    server, address = serve_demo(demo_dir)
    yield address
    server.shutdown()


def serious_violations(page: Any) -> list[str]:
    """axe-core (the copy axe-playwright-python bundles) on `page`: each serious or critical
    violation as "rule: the first offending element" (empty when there is none)."""
    results = Axe().run(page).response
    return [
        f"{v['id']} ({v['impact']}): {v['nodes'][0]['html'][:160]}"
        for v in results["violations"]
        if v["impact"] in SERIOUS
    ]


def settled(page: Any) -> None:
    """The lower panels have their content (gallery cards, camera operation drawn)."""
    page.wait_for_selector("#review-gallery .review-card", timeout=30_000)
    page.wait_for_function(
        "() => { const g = document.querySelector('#timeline .js-plotly-plot');"
        " return !!(g && g.data && g.data.length); }",
        timeout=30_000,
    )


def test_axe_finds_no_serious_violation_on_desktop_phone_or_report(
    browser: Any, url: str, demo_dir: Path
) -> None:
    with open_page(browser, url) as page:
        settled(page)
        assert serious_violations(page) == []
        click_first_hexagon(page)  # and with a hexagon's frames listed
        page.wait_for_selector("#detections figure img", timeout=30_000)
        assert serious_violations(page) == []
    phone = browser.new_page(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
        has_touch=True,
    )  # fmt: skip
    phone.goto(url)
    phone.wait_for_function(MAP_READY, timeout=30_000)
    settled(phone)
    assert serious_violations(phone) == []
    phone.close()
    ctx = build_context(Settings(data_dir=demo_dir, tiles="none"))
    content, _ = build_export(ctx, "html", False, **CONTROLS)
    report = browser.new_page(viewport={"width": 900, "height": 1200})
    report.set_content(content.decode("utf-8"))
    assert serious_violations(report) == []
    report.close()


def test_a_hexagon_is_named_by_its_stations_on_hover_title_and_table(
    browser: Any, url: str
) -> None:
    with open_page(browser, url) as page:
        hover = page.evaluate(
            f"() => document.querySelector('{GRAPH}').data[0].customdata.map(c => c[4])"
        )
        assert all("station" in h for h in hover), hover
        assert any(h.startswith("1 station: ") or " stations: " in h for h in hover)
        cell = click_first_hexagon(page)
        page.wait_for_function(
            f"() => document.querySelector('#detections-title').innerText.includes('{cell}')"
        )
        title = page.locator("#detections-title").inner_text()
        assert "station" in title and "Tost station" in title, title
        header = page.locator("#hotspot-table th").all_inner_texts()
        assert "Stations" in [h.strip() for h in header]
        names = page.locator("#hotspot-table td[data-dash-column='stations']").all_inner_texts()
        assert names and all(n.startswith("Tost station") for n in names), names


def test_camera_operation_shows_every_station_and_says_so(browser: Any, url: str) -> None:
    with open_page(browser, url) as page:
        settled(page)
        stations = page.evaluate(
            "() => new Set(document.querySelector('#timeline .js-plotly-plot').data"
            ".flatMap(t => t.y)).size"
        )
        title = page.evaluate(
            "() => document.querySelector('#timeline .js-plotly-plot').layout.title.text"
        )
        colours = page.evaluate(
            "() => document.querySelector('#timeline .js-plotly-plot').data"
            ".map(t => t.marker.color)"
        )
        assert stations == 12  # the demo of this module: 12 stations
        assert f"all {stations} stations in all hexagons" in title
        assert "All year" in title
        assert colours == ["#0072b2", "#e69f00"]  # blue / orange: told apart without red-green
        page.locator("#season").get_by_text("Winter", exact=False).first.click()
        page.wait_for_function(
            "() => document.querySelector('#timeline .js-plotly-plot')"
            ".layout.title.text.includes('Winter')",
            timeout=30_000,
        )


def test_individuals_panel_shows_simulated_individuals_on_the_page_resolution(
    browser: Any, url: str
) -> None:
    with open_page(browser, url) as page:
        section = page.locator("#individuals-section")
        section.scroll_into_view_if_needed()
        page.wait_for_function(
            "() => document.querySelector('#individuals-summary').innerText.length > 0",
            timeout=30_000,
        )
        assert page.evaluate(
            "() => !!document.querySelector('.page #individuals-section.panel')"
        )  # inside the page frame, a panel like the others
        summary = page.locator("#individuals-summary").inner_text()
        assert summary.startswith("SIMULATED individuals")
        assert "H3 resolution 6" in summary
        cells = page.locator(
            "#individuals-per-hexagon td[data-dash-column='hexagon']"
        ).all_inner_texts()
        assert cells and all(h3.get_resolution(c.strip()) == 6 for c in cells)
        page.locator("#resolution input[value='7']").check()
        page.wait_for_function(
            "() => document.querySelector('#individuals-summary').innerText"
            ".includes('H3 resolution 7')",
            timeout=30_000,
        )


def test_a_click_on_empty_map_clears_the_selection(browser: Any, url: str) -> None:
    with open_page(browser, url) as page:
        click_first_hexagon(page)
        page.wait_for_function(
            "() => !document.querySelector('#detections-title').innerText.startsWith('Click')"
        )
        # A point of the map that lies in no drawn hexagon (checked with h3 here).
        cells, resolution = page.evaluate(
            f"() => {{ const g = document.querySelector('{GRAPH}');"
            " return [g.data[0].locations, 6]; }"
        )
        drawn = set(cells)
        box = page.locator(GRAPH).bounding_box()
        empty = None
        for fx in (0.95, 0.9, 0.85, 0.05, 0.1):
            for fy in (0.9, 0.8, 0.1, 0.2, 0.5):
                x, y = box["x"] + fx * box["width"], box["y"] + fy * box["height"]
                on_map, lng, lat = page.evaluate(
                    f"""([x, y]) => {{
                      const map = document.querySelector('{GRAPH}')._fullLayout.map._subplot.map;
                      const r = map.getContainer().getBoundingClientRect();
                      const p = map.unproject([x - r.left, y - r.top]);
                      const top = document.elementFromPoint(x, y);
                      return [!!top.closest('.maplibregl-canvas-container'), p.lng, p.lat];
                    }}""",
                    [x, y],
                )  # on_map: not under the colour bar or the legend
                if on_map and h3.latlng_to_cell(lat, lng, resolution) not in drawn:
                    empty = (x, y)
                    break
            if empty:
                break
        assert empty is not None, "no empty point on the map"
        page.mouse.move(*empty)
        page.mouse.click(*empty)
        page.wait_for_function(
            "() => document.querySelector('#detections-title').innerText.startsWith('Click')",
            timeout=15_000,
        )
        page.wait_for_function(  # the outline went with the selection
            f"() => document.querySelector('{GRAPH}').getAttribute('data-selected-hexagon') === ''"
        )
