"""Every export says which view it shows (filters, threshold, model, data date, simulated),
never shares a file name with another, and the report reads right: A4, every hexagon under
readable names, a numeric legend, hot spots outlined apart from the rate colours, and the gaps
between seasons kept in its series."""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

import h3
import pyarrow as pa
import pytest

from dashboard import Settings
from dashboard.context import DashboardContext, build_context
from dashboard.exports.report import rate_colour, rate_top, svg_map, svg_series
from dashboard.views import downloads
from tests.helpers import CONTROLS

pytestmark = pytest.mark.filterwarnings("ignore:(?s).*DataTable will be removed:DeprecationWarning")

PROVENANCE = (
    "view_window",
    "view_season",
    "view_layer",
    "view_counted_from",
    "model",
    "data_through",
    "simulated",
    "trap_nights_rule",
    "gi_star",
    "public_version",
    "exported_at",
)


@pytest.fixture
def ctx(demo_dir: Path) -> DashboardContext:
    return build_context(
        Settings(data_dir=demo_dir, tiles="none", public_min_cameras=2, min_gi_cameras=5)
    )


def export(ctx: DashboardContext, fmt: str, public: bool = False, **controls: Any) -> Any:
    return downloads.build_export(ctx, fmt, public, **{**CONTROLS, **controls})


def test_every_table_export_carries_the_view_it_shows(ctx: DashboardContext, tmp_path: Path):
    content, _ = export(ctx, "csv", threshold=0.7, season="winter")
    rows = list(csv.DictReader(io.StringIO(content.decode())))
    assert rows and all(name in rows[0] for name in PROVENANCE)
    first = rows[0]
    assert first["view_counted_from"] == "machine detections at score ≥ 0.70"
    assert first["view_season"].startswith("Winter") and first["simulated"] == "yes"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", first["data_through"])
    assert first["model"] and "None" not in first["model"]
    geojson = json.loads(export(ctx, "geojson")[0])
    assert geojson["uncia"]["simulated"] == "yes" and "view_window" in geojson["uncia"]
    assert geojson["features"][0]["properties"]["view_layer"] == "Snow leopards"
    content, name = export(ctx, "gpkg", public=True)
    (tmp_path / name).write_bytes(content)
    with sqlite3.connect(tmp_path / name) as con:
        (description,) = con.execute("SELECT description FROM gpkg_contents").fetchone()
    assert "simulated: yes" in description and "public_version: yes" in description
    assert "gi_star: left out of the public version" in description


def test_two_exports_never_share_a_file_name(ctx: DashboardContext) -> None:
    names = {
        export(ctx, "csv")[1],
        export(ctx, "csv", threshold=0.6)[1],  # another view in the same second
        export(ctx, "csv", public=True)[1],
    }
    assert len(names) == 3
    assert all(
        re.fullmatch(r"uncia-hotspots-(public-)?\d{8}-\d{6}-[0-9a-f]{6}\.csv", n) for n in names
    )


def test_the_report_is_a4_complete_readable_and_marks_hot_spots_apart(
    ctx: DashboardContext,
) -> None:
    doc = export(ctx, "html")[0].decode()
    assert "@page { size: A4;" in doc
    assert 'name="viewport"' in doc and 'width="100%"' in doc  # fits a phone
    shown = export(ctx, "csv")[0].decode().count("\n") - 1
    assert doc.count("<tr>") == shown + 1  # every hexagon, plus the header row
    assert "Events per 100 trap-nights</th>" in doc and "Gi* q (FDR)</th>" in doc
    assert "trap_nights</th>" not in doc and "gi_q" not in doc
    assert "Simulated data</dt><dd>yes" in doc and "Data through</dt>" in doc
    # the legend gives numbers for the colours, and Gi* as outlines
    assert re.search(r"Events per 100 trap-nights: (<span[^>]*></span>\d+(\.\d+)?\+? ){6}", doc)
    assert "Gi* hot spot (outline)" in doc
    public = export(ctx, "html", public=True)[0].decode()
    assert "Gi* hot spot" not in public and "Gi* q" not in public


def test_the_reports_hot_spot_is_an_outline_over_its_rate_colour() -> None:
    cells = [h3.latlng_to_cell(43.1, 100.5 + 0.3 * i, 6) for i in range(3)]
    summary = pa.table(
        {
            "hexagon": cells,
            "events": [9, 9, 0],
            "cameras": [2, 2, 1],
            "trap_nights": [90, 90, 5],
            "events_per_100_trap_nights": [10.0, 10.0, 0.0],
            "enough_effort": [True, True, False],
            "gi_z": [3.1, 0.2, None],
            "gi_p": [0.002, 0.8, None],
            "gi_q": [0.004, 0.8, None],
            "hotspot": ["hot", "not significant", "too little effort"],
        }
    )
    polygons = re.findall(r"<polygon [^>]*>", svg_map(summary))
    found = {re.search(r'data-hotspot="([^"]*)"', p).group(1): p for p in polygons}
    # same rate, same fill: the hot spot differs only by its thick black outline
    assert rate_top(summary) == 10.0  # the highest rate, rounded up to 1, 2 or 5 x 10^k
    assert re.search(r'fill="(#\w+)"', found["hot"]).group(1) == rate_colour(10.0, 10.0)
    assert re.search(r'fill="(#\w+)"', found["not significant"]).group(1) == rate_colour(10.0)
    assert 'stroke="#111111" stroke-width="3.0"' in found["hot"]
    assert 'stroke-width="0.7"' in found["not significant"]
    assert 'fill="#bdbdbd"' in found["too little effort"]


def test_the_reports_colour_scale_follows_the_view() -> None:
    table = pa.table({"events_per_100_trap_nights": [0.4, 26.9, 3.0], "enough_effort": [True] * 3})
    assert rate_top(table) == 50.0  # not a fixed 10 that paints most hexagons darkest
    assert rate_top(table.slice(0, 1)) == 0.5
    assert rate_colour(26.9, 50.0) != rate_colour(50.0, 50.0) == rate_colour(99.0, 50.0)


def test_the_reports_series_keeps_the_gap_between_winters() -> None:
    series = pa.table(
        {
            "period": [date(2021, 12, 1), date(2022, 1, 1), date(2022, 12, 1)],
            "events": [2, 3, 1],
            "trap_nights": [100, 100, 100],
        }
    )
    svg = svg_series(series)
    xs = [float(x) for x in re.findall(r'<rect x="([\d.]+)"', svg)]
    # Dec 2021 and Jan 2022 sit side by side; Dec 2022 is eleven months on, not next to them
    assert xs[1] - xs[0] < 0.15 * (xs[2] - xs[1])
