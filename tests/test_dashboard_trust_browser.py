"""What must hold in the browser for a page that shows where an endangered species lives: no
chart can send itself anywhere, the page asks no other host for anything, every control is
reachable by keyboard, and a phone sees the page without sideways scrolling.

A real Dash server on a loopback port, driven in Debian's headless Chromium.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from dashboard.data import analysis
from pipeline.runs.demo import DemoOptions, build_demo_survey
from tests.browser import (
    BROWSER_MARKS,
    GRAPH,
    MAP_READY,
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


def test_no_chart_offers_share_or_dead_selection_tools(browser: Any, url: str) -> None:
    with open_page(browser, url) as page:
        page.wait_for_function(
            "() => document.querySelectorAll('.js-plotly-plot .modebar').length >= 4",
            timeout=30_000,
        )
        graphs = page.locator(".js-plotly-plot")
        assert graphs.count() >= 4  # map, series, diel, camera operation
        for i in range(graphs.count()):
            graphs.nth(i).hover()  # the toolbar shows on hover
        buttons = page.eval_on_selector_all(
            ".modebar-btn", "els => els.map(e => e.getAttribute('data-title') || '')"
        )
        assert buttons, "the toolbars have buttons (zoom, download)"
        for forbidden in ("share", "chart studio", "box select", "lasso"):
            assert not [b for b in buttons if forbidden in b.lower()], (forbidden, buttons)
        assert page.locator("[data-attr='sendDataToCloud'], [data-val='select']").count() == 0


def test_page_requests_nothing_off_the_serving_host(browser: Any, url: str) -> None:
    host = urlsplit(url).netloc
    requested: list[str] = []
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.on("request", lambda request: requested.append(request.url))
    page.goto(url)
    page.wait_for_function(MAP_READY, timeout=30_000)
    page.mouse.wheel(0, 3000)  # the lower sections and their thumbnails load too
    page.wait_for_timeout(1500)
    page.close()
    assert any(urlsplit(u).netloc == host for u in requested)
    off_host = [
        u
        for u in requested
        if urlsplit(u).scheme not in ("data", "blob") and urlsplit(u).netloc != host
    ]
    assert off_host == []


def test_the_map_style_names_no_tile_server_by_default(browser: Any, url: str) -> None:
    with open_page(browser, url) as page:
        sources = page.evaluate(
            f"() => JSON.stringify(document.querySelector('{GRAPH}').layout.map.style.sources)"
        )
    assert "http" not in sources


def test_tab_leaves_the_table_and_reaches_the_last_export_button(browser: Any, url: str) -> None:
    with open_page(browser, url) as page:
        page.wait_for_selector("#hotspot-table tbody tr td")
        page.locator("#hotspot-table tbody tr td").nth(1).click()  # now inside the table
        last = page.locator("button.export").last
        reached = False
        for _ in range(200):
            page.keyboard.press("Tab")
            reached = page.evaluate(
                "() => document.activeElement === [...document.querySelectorAll("
                "'button.export')].pop()"
            )
            if reached:
                break
        assert reached, "Tab never reached the last export button"
        assert last.is_visible()
        # and Shift+Tab walks back out of the page's end the same way
        for _ in range(5):
            page.keyboard.press("Shift+Tab")
        assert page.evaluate("() => !document.activeElement.closest('#hotspot-table')")


def test_escape_and_the_button_clear_the_selected_hexagon(browser: Any, url: str) -> None:
    with open_page(browser, url) as page:
        click_first_hexagon(page)
        title = page.locator("#detections-title")
        page.wait_for_function(
            "() => !document.querySelector('#detections-title').innerText.startsWith('Click')"
        )
        page.mouse.click(5, 5)  # focus off any input
        page.keyboard.press("Escape")
        page.wait_for_function(
            "() => document.querySelector('#detections-title').innerText.startsWith('Click')"
        )
        assert title.inner_text().startswith("Click a hexagon")
        click_first_hexagon(page)
        page.wait_for_function(
            "() => !document.querySelector('#detections-title').innerText.startsWith('Click')"
        )
        page.get_by_role("button", name="Clear selection (Esc)").click()
        page.wait_for_function(
            "() => document.querySelector('#detections-title').innerText.startsWith('Click')"
        )


def test_sorting_the_table_keeps_a_row_picked_there(browser: Any, url: str) -> None:
    """Sorting (like paging) drops the table's active cell; the hexagon picked by its row
    stays selected (it used to clear every panel). Paging takes the same path
    (select_hexagon, tested in test_dashboard_callbacks.py); this demo fits on one page."""
    title = "() => document.querySelector('#detections-title').innerText"
    with open_page(browser, url) as page:
        row = page.locator("#hotspot-table td[data-dash-column='hexagon']").nth(1)
        picked = row.inner_text().strip()
        row.click()
        page.wait_for_function(f"() => ({title})().includes('{picked}')")
        page.locator("#hotspot-table .column-header--sort").nth(1).click()  # sort by a column
        page.wait_for_timeout(1500)  # any callback the sort fires has answered by now
        assert picked in page.evaluate(title)
        # The next row picked is picked: the table still selects.
        other = page.locator("#hotspot-table td[data-dash-column='hexagon']").nth(0)
        other_id = other.inner_text().strip()
        other.click()
        page.wait_for_function(f"() => ({title})().includes('{other_id}')")


def test_after_a_re_sort_the_table_shows_the_page_of_the_selected_row(
    browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """40 stations: more hexagons than a table page (14). The row picked first (most events)
    sorts to the last page when the events column is sorted ascending; the table follows it
    there, so the map and the table keep showing the same hexagon."""
    data = tmp_path_factory.mktemp("wide")
    build_demo_survey(data, DemoOptions(n_stations=40, n_years=1, seed=3))
    server, address = serve_demo(data)
    cells = "#hotspot-table td[data-dash-column='hexagon']"
    shown = f"() => [...document.querySelectorAll(\"{cells}\")].map(c => c.innerText.trim())"
    try:
        with open_page(browser, address) as page:
            first = page.locator(cells).nth(0)
            picked = first.inner_text().strip()
            first.click()
            page.wait_for_function(
                f"() => document.querySelector('#detections-title').innerText.includes('{picked}')"
            )
            header = "#hotspot-table th[data-dash-column='events']"
            events = page.locator(f"{header} .column-header--sort")
            counts = (
                "() => [...document.querySelectorAll(\"#hotspot-table "
                "td[data-dash-column='events']\")].map(c => Number(c.innerText))"
            )
            events.click()
            page.wait_for_timeout(500)
            if page.evaluate(counts)[0] > 0 and page.evaluate(shown)[0] == picked:
                events.click()  # that sorted most events first: once more for fewest first
            page.wait_for_function(f"() => ({counts})()[0] === 0 || ({shown})()[0] !== '{picked}'")
            page.wait_for_function(f"() => ({shown})().includes('{picked}')", timeout=10_000)
            current = page.locator("#hotspot-table .current-page").get_attribute("placeholder")
            assert current != "1"
            assert picked in page.locator("#detections-title").inner_text()
    finally:
        server.shutdown()


def test_a_phone_sees_the_page_without_sideways_scrolling(browser: Any, url: str) -> None:
    page = browser.new_page(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
        has_touch=True,
    )  # fmt: skip
    page.goto(url)
    page.wait_for_function(MAP_READY, timeout=30_000)
    page.wait_for_timeout(500)
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.body.scrollWidth, innerWidth]"
    )
    map_top = page.locator("#hotspot-map").bounding_box()["y"]
    filters_shown = page.locator(".controls").is_visible()
    page.close()
    assert widths[2] == 390  # laid out at the phone's width, not zoomed out from 980 px
    assert widths[0] <= widths[2] and widths[1] <= widths[2], widths
    assert map_top < 844 and not filters_shown  # the map first, the filters in a drawer
    # (the drawer itself: test_dashboard_phone_browser.py)


def test_a_slow_panel_is_dimmed_under_a_spinner_while_it_waits(
    browser: Any, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = analysis.diel_activity

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(2.5)
        return real(*args, **kwargs)

    with open_page(browser, url) as page:
        monkeypatch.setattr(analysis, "diel_activity", slow)  # the server runs in this process
        page.locator("#season").get_by_text("Summer", exact=False).first.click()
        page.wait_for_function(
            "() => [...document.querySelectorAll('.dash-spinner, [class*=dash-spinner]')]"
            ".some(e => e.offsetParent !== null)",
            timeout=5_000,
        )
        page.wait_for_function(
            "() => ![...document.querySelectorAll('.dash-spinner, [class*=dash-spinner]')]"
            ".some(e => e.offsetParent !== null)",
            timeout=30_000,
        )
