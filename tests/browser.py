"""What the real-browser test modules share: Debian's Chromium, the marks every such module
carries, serving an app on a free port, and opening the page with its map drawn."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from dashboard import Settings, create_app
from tests.helpers import cell_center

CHROMIUM = Path("/usr/bin/chromium")


CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


GRAPH = "#hotspot-map .js-plotly-plot"


MAP_READY = f"""() => {{
  const g = document.querySelector('{GRAPH}');
  const sub = g && g._fullLayout && g._fullLayout.map && g._fullLayout.map._subplot;
  return !!(sub && sub.map && sub.map.loaded() && g.data && g.data[0].locations.length);
}}"""


Z_SUM = f"() => document.querySelector('{GRAPH}').data[0].z.reduce((a, b) => a + b, 0)"


# The marks of every module that drives the dashboard in Chromium.
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (make browser)"),
    pytest.mark.filterwarnings("ignore:(?s).*DataTable will be removed:DeprecationWarning"),
]


def serve_app(app: Any) -> tuple[Any, str]:
    """Serve `app` (a Dash app) on a free loopback port in a thread; shut the server down."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/"


def serve_demo(data_dir: Path, refresh_seconds: float = 5.0) -> tuple[Any, str]:
    return serve_app(
        create_app(Settings(data_dir=data_dir, tiles="none", refresh_seconds=refresh_seconds))
    )


@contextmanager
def open_page(browser: Any, url: str, **options: Any) -> Iterator[Any]:
    """A page of `browser` at `url` with its map drawn; no script error may happen on it."""
    page = browser.new_page(viewport={"width": 1400, "height": 1300}, **options)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    page.wait_for_function(MAP_READY, timeout=30_000)
    yield page
    page.close()
    assert errors == []  # e.g. MapLibre rejecting a style on update: "Map error."


def click_first_hexagon(page: Any) -> str:
    """Click the map's first hexagon where MapLibre draws it; return its cell id."""
    cell = page.evaluate(f"() => document.querySelector('{GRAPH}').data[0].locations[0]")
    lat, lng = cell_center(cell)
    x, y = page.evaluate(
        f"""([lng, lat]) => {{
          const map = document.querySelector('{GRAPH}')._fullLayout.map._subplot.map;
          const p = map.project([lng, lat]);
          const box = map.getContainer().getBoundingClientRect();
          return [box.left + p.x, box.top + p.y];
        }}""",
        [lng, lat],
    )
    page.mouse.click(x + 6, y + 9)  # a little off centre, clear of a camera dot
    return str(cell)
