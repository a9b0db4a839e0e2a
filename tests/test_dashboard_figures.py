"""Figures from query-shaped tables: one map feature per hexagon, colours that follow events,
an offline map style that needs no network, and the event series."""

from __future__ import annotations

import json
from datetime import date

import plotly.colors
import pyarrow as pa

from dashboard.figures import (
    event_series_figure,
    hotspot_map,
    hotspot_rows,
    map_style,
)
from dashboard.filters import Period
from pipeline.hexgrid import cell_for

CELLS = [cell_for(43.10 + 0.05 * i, 100.40 + 0.1 * i, 7) for i in range(4)]


def summary(events: list[int]) -> pa.Table:
    return pa.table(
        {
            "hexagon": CELLS[: len(events)],
            "events": pa.array(events, pa.int64()),
            "cameras": pa.array([1] * len(events), pa.int64()),
            "trap_nights": pa.array([100] * len(events), pa.int64()),
            "events_per_100_trap_nights": pa.array([float(e) for e in events], pa.float64()),
        }
    )


def cameras() -> pa.Table:
    return pa.table(
        {
            "locationID": ["A", "B"],
            "locationName": ["station A", "station B"],
            "latitude": [43.10, 43.15],
            "longitude": [100.40, 100.50],
            "hexagon": CELLS[:2],
            "trap_nights": [100, 100],
        }
    )


def luminance(color: str) -> float:
    r, g, b = plotly.colors.hex_to_rgb(color) if color.startswith("#") else (0, 0, 0)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_map_has_one_feature_per_hexagon_keyed_by_cell() -> None:
    fig = hotspot_map(summary([5, 2, 0]), None, map_style(None))
    trace = fig["data"][0]
    assert trace["type"] == "choroplethmap"
    assert list(trace["locations"]) == CELLS[:3]
    assert [f["id"] for f in trace["geojson"]["features"]] == CELLS[:3]
    assert all(len(f["geometry"]["coordinates"][0]) == 7 for f in trace["geojson"]["features"])


def test_colours_follow_events_and_zero_is_palest() -> None:
    fig = hotspot_map(summary([5, 2, 0]), None, map_style(None))
    trace = fig["data"][0]
    assert list(trace["z"]) == [5, 2, 0]
    assert (trace["zmin"], trace["zmax"]) == (0, 5)
    scale = [c for _, c in trace["colorscale"]]
    assert luminance(scale[0]) == max(luminance(c) for c in scale)  # no events: lightest
    assert luminance(scale[-1]) == min(luminance(c) for c in scale)  # most events: darkest


def test_offline_style_names_no_external_resource() -> None:
    fig = hotspot_map(summary([1, 0]), cameras(), map_style(None))
    style = fig["layout"]["map"]["style"]
    text = json.dumps(style)
    assert "http" not in text and "glyphs" not in text and "sprite" not in text
    assert [layer["type"] for layer in style["layers"]] == ["background"]


def test_tile_style_draws_raster_tiles_with_attribution() -> None:
    url = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    style = map_style(url)
    assert style["sources"]["tiles"]["tiles"] == [url]
    assert "OpenStreetMap" in style["sources"]["tiles"]["attribution"]
    assert [layer["type"] for layer in style["layers"]] == ["background", "raster"]


def test_camera_dots_carry_their_hexagon_for_clicks() -> None:
    fig = hotspot_map(summary([1, 0]), cameras(), map_style(None))
    dots = fig["data"][1]
    assert dots["type"] == "scattermap"
    assert [c[0] for c in dots["customdata"]] == CELLS[:2]


def test_view_is_centred_on_the_hexagons_and_zooms_out_for_wider_spread() -> None:
    tight = hotspot_map(summary([1]), None, map_style(None))["layout"]["map"]
    wide = hotspot_map(summary([1, 1, 1, 1]), None, map_style(None))["layout"]["map"]
    assert 43.0 < tight["center"]["lat"] < 43.3 and 100.3 < tight["center"]["lon"] < 100.8
    assert wide["zoom"] < tight["zoom"]


def test_empty_map_says_no_camera_worked() -> None:
    fig = hotspot_map(summary([]), None, map_style(None))
    assert list(fig["data"][0]["locations"]) == []
    assert "No camera" in fig["layout"]["annotations"][0]["text"]


def test_series_bars_are_events_per_period() -> None:
    series = pa.table(
        {
            "period": [date(2023, 1, 1), date(2023, 2, 1), date(2023, 3, 1)],
            "events": pa.array([3, 0, 7], pa.int64()),
            "trap_nights": pa.array([300, 280, 310], pa.int64()),
        }
    )
    fig = event_series_figure(series, Period.MONTH, title="per month")
    bars = fig["data"][0]
    assert bars["type"] == "bar"
    assert list(bars["y"]) == [3, 0, 7]
    assert list(bars["x"]) == [date(2023, 1, 1), date(2023, 2, 1), date(2023, 3, 1)]
    assert fig["layout"]["yaxis"]["title"]["text"] == "Events per month"


def test_table_rows_are_sorted_rounded_and_keyed_by_hexagon() -> None:
    table = summary([1, 4, 2])
    table = table.set_column(4, "events_per_100_trap_nights", pa.array([1 / 3, 4.0, None]))
    rows = hotspot_rows(table)
    assert [r["events"] for r in rows] == [4, 2, 1]
    assert rows[0]["id"] == rows[0]["hexagon"] == CELLS[1]
    assert rows[2]["events_per_100_trap_nights"] == 0.33
    assert rows[1]["events_per_100_trap_nights"] is None
