"""The cut-down plotly.js in dashboard/assets matches plotly.py's and draws every trace we build.

Rebuild it with tools/plotly-bundle (README there) when one of these fails.
"""

from __future__ import annotations

import re
from pathlib import Path

from plotly.offline import get_plotlyjs_version

from dashboard.figures import TRACE_TYPES

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "dashboard" / "assets" / "plotly-uncia.min.js"
ENTRY = ROOT / "tools" / "plotly-bundle" / "index.js"


def test_bundle_is_the_plotly_js_version_that_plotly_py_ships() -> None:
    banner = BUNDLE.read_text(encoding="utf-8")[:300]
    assert f"plotly.js v{get_plotlyjs_version()} " in banner


def test_bundle_registers_every_trace_type_the_figures_draw() -> None:
    registered = set(re.findall(r"require\('plotly\.js/lib/(\w+)'\)", ENTRY.read_text()))
    assert set(TRACE_TYPES) <= registered
    drawn: set[str] = set()
    for module in (ROOT / "dashboard").rglob("*.py"):
        drawn |= set(re.findall(r'"type":\s*"(\w+)"', module.read_text(encoding="utf-8")))
    # "type" also names GeoJSON objects, map style layers and sources, axes and table columns.
    not_traces = {"FeatureCollection", "Feature", "Polygon", "Point", "geojson", "raster"}
    not_traces |= {"background", "fill", "circle", "symbol"}  # the basemap's style layers
    traces = drawn - not_traces - {"date", "numeric", "text", "linear", "log", "category"}
    assert traces and traces <= set(TRACE_TYPES), traces
