"""What must hold in the browser for a page that shows where an endangered species lives: no
chart can send itself anywhere, the page asks no other host for anything, every control is
reachable by keyboard, and a phone sees the page without sideways scrolling.

A real Dash server on a loopback port, driven in Debian's headless Chromium.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.browser import BROWSER_MARKS, GRAPH, MAP_READY, open_page, serve_demo

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
