"""Plotly figures and table rows built from query results; no database, no Dash here.

Figures are plain plotly.js dicts (`{"data": [...], "layout": {...}}`), as Dash accepts them:
building `plotly.graph_objects` figures validates and deep-copies every property and template,
which cost more CPU per callback than the queries themselves (docs/benchmarks.md).

The map is a `choroplethmap` trace of independent leopard events per H3 hexagon over a
MapLibre style: the offline relief and place names this server serves, a configured raster
tile layer, or a plain background.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import plotly.io as pio
import pyarrow as pa

from dashboard.data.places import Place
from dashboard.filters import Period
from pipeline.hexgrid import cell_outline, cells_geojson

OFFLINE_BACKGROUND = "#e8ebe3"
OSM_ATTRIBUTION = "© OpenStreetMap contributors"
# The offline relief's last zoom level (serving.basemap.RELIEF_MAX_ZOOM; the layers forbid
# figures importing serving) and the font name its glyph route answers for.
RELIEF_MAX_ZOOM = 5
PLACE_FONT = "DejaVu Sans"
# Zero events is a pale sand colour, so hexagons with cameras but no leopard still show.
EVENT_COLORSCALE = [
    [0.0, "#f6f1e4"],
    [0.02, "#fde7b0"],
    [0.25, "#fdae61"],
    [0.55, "#e34a33"],
    [1.0, "#7f0000"],
]
MAP_HEIGHT_PX = 560
MAP_WIDTH_PX = 680  # about what the page gives the map (colour bar aside); picks a first zoom
# The trace types this dashboard draws; templates keep only their defaults.
TRACE_TYPES = ("bar", "choroplethmap", "scattermap")

Figure = dict[str, Any]


@functools.cache
def template(name: str) -> dict[str, Any]:
    """Plotly's named template (e.g. "plotly_white") as a plain dict, made once.

    plotly.js knows no template names, so a dict figure carries the template itself; the trace
    defaults are cut down to the trace types drawn here.
    """
    full = pio.templates[name].to_plotly_json()
    data = {k: v for k, v in full.get("data", {}).items() if k in TRACE_TYPES}
    return {"data": data, "layout": full["layout"]}


def figure(data: list[dict[str, Any]], layout: dict[str, Any], *, theme: str = "plotly") -> Figure:
    """A plotly.js figure dict with the named template (Dash serializes it as is)."""
    return {"data": data, "layout": {"template": template(theme), **layout}}


def add_centred_note(
    fig: Figure, text: str, size: int | None = 16, background: str | None = None
) -> None:
    """Write `text` across the middle of a figure (font `size`; None: plotly's), on a
    `background` colour when one is given (a note over drawn hexagons)."""
    note = {
        "text": text,
        "showarrow": False,
        "x": 0.5,
        "y": 0.5,
        "xref": "paper",
        "yref": "paper",
        "font": {"size": size} if size else {},
    }
    if background:
        note["bgcolor"] = background
    fig["layout"].setdefault("annotations", []).append(note)


def map_style(
    tile_url: str | None,
    basemap_prefix: str | None = None,
    places: Sequence[Place] = (),
) -> dict[str, Any]:
    """Return an inline MapLibre style under the hexagons.

    - `tile_url`: an external raster tile template, drawn instead of the offline relief;
    - else `basemap_prefix` (the app's URL prefix, e.g. "/"): the offline basemap this server
      itself serves (serving.basemap): shaded relief tiles and the glyphs for `places`' names;
    - neither: a plain background.

    Every URL is relative to the page's own host, so by default the map asks no other host
    for anything.
    """
    layers: list[dict[str, Any]] = [
        {
            "id": "background",
            "type": "background",
            "paint": {"background-color": OFFLINE_BACKGROUND},
        }
    ]
    # plotly.js drops an empty `sources` object when it updates the figure, and MapLibre then
    # rejects the style; an empty inline GeoJSON source keeps it present and stays offline.
    sources: dict[str, Any] = {"empty": {"type": "geojson", "data": _features([])}}
    style: dict[str, Any] = {"version": 8, "sources": sources, "layers": layers}
    if tile_url:
        attribution = OSM_ATTRIBUTION if "openstreetmap.org" in tile_url else "map tiles"
        sources["tiles"] = {
            "type": "raster",
            "tiles": [tile_url],
            "tileSize": 256,
            "attribution": attribution,
        }
        layers.append({"id": "tiles", "type": "raster", "source": "tiles"})
        return style
    if basemap_prefix is None:
        return style
    sources["relief"] = {
        "type": "raster",
        "tiles": [f"{basemap_prefix}basemap/relief/{{z}}/{{x}}/{{y}}.png"],
        "tileSize": 256,
        "maxzoom": RELIEF_MAX_ZOOM,
        "attribution": "Relief: Natural Earth",
    }
    layers.append(
        {"id": "relief", "type": "raster", "source": "relief", "paint": {"raster-opacity": 0.9}}
    )
    # plotly.js puts choropleth hexagons just above the first layer named "water…"; this empty
    # one sits under the place names, so names stay readable on top of the hexagons (plotly.js
    # then puts its scattermap traces, camera dots and outlines, below the names too).
    layers.append({"id": "water-under-place-names", "type": "fill", "source": "empty"})
    if not places:
        return style
    style["glyphs"] = f"{basemap_prefix}basemap/fonts/{{fontstack}}/{{range}}.pbf"
    sources["places"] = {
        "type": "geojson",
        "data": _features(
            [
                {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [p.lng, p.lat]},
                    "properties": {"name": p.name, "rank": i},
                }
                for i, p in enumerate(places)
            ]
        ),
        "attribution": "Places: GeoNames (CC BY 4.0)",
    }
    layers += [
        {
            "id": "place-dots",
            "type": "circle",
            "source": "places",
            "paint": {
                "circle-radius": 2.5,
                "circle-color": "#333333",
                "circle-stroke-color": "#ffffff",
                "circle-stroke-width": 1,
            },
        },
        {
            "id": "place-names",
            "type": "symbol",
            "source": "places",
            "layout": {
                "text-field": ["get", "name"],
                "text-font": [PLACE_FONT],
                "text-size": 12,
                "text-anchor": "left",
                "text-offset": [0.5, 0],
                "symbol-sort-key": ["get", "rank"],  # the largest place wins a tie for space
            },
            "paint": {
                "text-color": "#222222",
                "text-halo-color": "rgba(255,255,255,0.9)",
                "text-halo-width": 1.4,
            },
        },
    ]
    return style


def _features(features: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": features}


def _view(geojson: dict[str, Any]) -> tuple[dict[str, float], float]:
    """Centre and zoom that fit every hexagon in a map of about MAP_WIDTH_PX x MAP_HEIGHT_PX."""
    lngs = [p[0] for f in geojson["features"] for p in f["geometry"]["coordinates"][0]]
    lats = [p[1] for f in geojson["features"] for p in f["geometry"]["coordinates"][0]]
    if not lngs:
        return {"lat": 0.0, "lon": 0.0}, 1.0
    lat_c, lng_c = (min(lats) + max(lats)) / 2, (min(lngs) + max(lngs)) / 2
    lng_span = max(max(lngs) - min(lngs), 1e-3)
    lat_span = max(max(lats) - min(lats), 1e-3) / math.cos(math.radians(lat_c))
    # MapLibre's world is 512 px wide at zoom 0.
    zoom = min(
        math.log2(MAP_WIDTH_PX * 360 / (512 * lng_span)),
        math.log2(MAP_HEIGHT_PX * 360 / (512 * lat_span)),
    )
    return {"lat": lat_c, "lon": lng_c}, max(0.0, min(14.0, zoom - 0.2))


def _rate_text(rate: float | None) -> str:
    return "–" if rate is None else f"{rate:.2f}"


def stations_label(stations: str | None, most: int = 8) -> str:
    """A hexagon's stations in words: "3 stations: A12, A13, B02" (the first `most` names, then
    "and N more"); `stations` is analysis.layer_summary's comma-separated column."""
    names = [n for n in (stations or "").split(", ") if n]
    if not names:
        return "no station named"
    shown = ", ".join(names[:most]) + (
        f" and {len(names) - most} more" if len(names) > most else ""
    )
    return f"{len(names)} station{'s' if len(names) != 1 else ''}: {shown}"


def constant_colour_trace(
    cells: list[str], name: str, colour: str, hover: list[str], opacity: float = 0.8
) -> dict[str, Any]:
    """Hexagons `cells` filled in one `colour`, a legend entry `name`, `hover` text per cell."""
    return {
        "type": "choroplethmap",
        "geojson": cells_geojson(cells),
        "locations": cells,
        "z": [1] * len(cells),
        "featureidkey": "id",
        "colorscale": [[0, colour], [1, colour]],
        "showscale": False,
        "showlegend": True,
        "name": name,
        "marker": {"opacity": opacity, "line": {"width": 0.8, "color": "#5b5340"}},
        "text": hover,
        "hovertemplate": "%{text}<extra></extra>",
    }


def selected_outline(cell: str) -> dict[str, Any]:
    """A bold line around the selected hexagon, drawn over the map's other traces."""
    outline = cell_outline(cell)
    return {
        "type": "scattermap",
        "lon": [lng for lng, _ in outline],
        "lat": [lat for _, lat in outline],
        "mode": "lines",
        "line": {"width": 3.5, "color": "#0b4f8a"},
        "hoverinfo": "skip",
        "name": "Selected hexagon",
        "showlegend": False,
    }


HOT_OUTLINE = "#111111"
COLD_OUTLINE = "#17becf"


def hotspot_outlines(summary: pa.Table) -> list[dict[str, Any]]:
    """Gi* hot and cold spots as outlines over whatever colours the hexagons, so the marking
    never hides inside the rate's colour ramp; one legend entry each, none when there are none.

    Reads the `hotspot` column of `analysis.with_significance` (absent: no outlines).
    """
    if "hotspot" not in summary.column_names:
        return []
    traces = []
    for cls, name, colour, width in (
        ("hot", "Gi* hot spot (q < 0.05)", HOT_OUTLINE, 3.5),
        ("cold", "Gi* cold spot (q < 0.05)", COLD_OUTLINE, 3.0),
    ):
        cells = [r["hexagon"] for r in summary.to_pylist() if r["hotspot"] == cls]
        if not cells:
            continue
        lon: list[float | None] = []
        lat: list[float | None] = []
        for cell in cells:
            outline = cell_outline(cell)
            lon += [lng for lng, _ in outline] + [None]
            lat += [la for _, la in outline] + [None]
        traces.append(
            {
                "type": "scattermap",
                "lon": lon,
                "lat": lat,
                "mode": "lines",
                "line": {"width": width, "color": colour},
                "hoverinfo": "skip",
                "name": name,
                "showlegend": True,
            }
        )
    return traces


MAP_LEGEND = {"x": 0.01, "y": 0.99, "bgcolor": "rgba(255,255,255,0.85)", "font": {"size": 12}}


def hotspot_map(
    summary: pa.Table,
    cameras: pa.Table | None,
    style: dict[str, Any],
    *,
    selected: str | None = None,
    title: str = "",
) -> Figure:
    """Map one hexagon per row of `summary` (analysis.layer_summary), coloured by events.

    `cameras` (analysis.active_cameras) adds camera locations as dots; None leaves them out.
    Hexagons with cameras but no events are drawn in the palest colour; the `selected`
    hexagon, when on the map, gets a bold outline.
    """
    cells = summary.column("hexagon").to_pylist()
    events = summary.column("events").to_pylist()
    geojson = cells_geojson(cells)
    center, zoom = _view(geojson)
    names = (
        summary.column("stations").to_pylist()
        if "stations" in summary.column_names
        else [None] * summary.num_rows
    )
    customdata = [
        [n_cam, nights, _rate_text(rate), stations_label(stations)]
        for n_cam, nights, rate, stations in zip(
            summary.column("cameras").to_pylist(),
            summary.column("trap_nights").to_pylist(),
            summary.column("events_per_100_trap_nights").to_pylist(),
            names,
            strict=True,
        )
    ]
    traces: list[dict[str, Any]] = [
        {
            "type": "choroplethmap",
            "geojson": geojson,
            "locations": cells,
            "z": events,
            "featureidkey": "id",
            "zmin": 0,
            "zmax": max([1, *events]),
            "colorscale": EVENT_COLORSCALE,
            "marker": {"opacity": 0.78, "line": {"width": 0.8, "color": "#5b5340"}},
            "colorbar": {"title": {"text": "Events"}, "thickness": 14, "len": 0.85, "y": 0.45},
            "customdata": customdata,
            "hovertemplate": (
                "<b>%{z} leopard events</b><br>%{customdata[3]}<br>hexagon %{location}<br>"
                "%{customdata[0]} camera(s), %{customdata[1]} trap-nights<br>"
                "%{customdata[2]} events per 100 trap-nights<extra></extra>"
            ),
            "name": "Hexagons",
        }
    ]
    traces += hotspot_outlines(summary)
    if cameras is not None and cameras.num_rows:
        traces.append(
            {
                "type": "scattermap",
                "lat": cameras.column("latitude").to_pylist(),
                "lon": cameras.column("longitude").to_pylist(),
                "mode": "markers",
                "marker": {"size": 6, "color": "#1d2b36"},
                "customdata": [[c] for c in cameras.column("hexagon").to_pylist()],
                "hovertext": cameras.column("locationName").to_pylist(),
                "hovertemplate": "camera %{hovertext}<extra></extra>",
                "name": "Cameras",
                "showlegend": False,
            }
        )
    if selected is not None and selected in cells:
        traces.append(selected_outline(selected))
    fig = figure(
        traces,
        {
            "map": {"style": style, "center": center, "zoom": zoom},
            "margin": {"l": 0, "r": 0, "t": 32 if title else 0, "b": 0},
            "height": MAP_HEIGHT_PX,
            "title": {"text": title, "x": 0.01, "font": {"size": 14}},
            "uirevision": "hotspots",  # keep the user's pan and zoom when filters change
            "clickmode": "event",
            "legend": MAP_LEGEND,
        },
    )
    if not cells:
        add_centred_note(fig, "No camera was working in this window.")
    return fig


def event_series_figure(series: pa.Table, period: Period, *, title: str = "") -> Figure:
    """Bar chart of independent leopard events per week or month (analysis.layer_series)."""
    periods = series.column("period").to_pylist()
    events = series.column("events").to_pylist()
    nights = series.column("trap_nights").to_pylist()
    rates = [_rate_text(100.0 * e / n if n else None) for e, n in zip(events, nights, strict=True)]
    fig = figure(
        [
            {
                "type": "bar",
                "x": periods,
                "y": events,
                "xperiod": "M1" if period is Period.MONTH else 7 * 24 * 3600 * 1000,
                "xperiodalignment": "start",
                "marker": {"color": "#c2452d"},
                "customdata": [list(pair) for pair in zip(nights, rates, strict=True)],
                "hovertemplate": (
                    "%{x|%d %b %Y}: <b>%{y} events</b><br>%{customdata[0]} trap-nights, "
                    "%{customdata[1]} per 100<extra></extra>"
                ),
                "name": "Leopard events",
            }
        ],
        {
            "title": {"text": title, "x": 0.01, "font": {"size": 14}},
            "yaxis": {"title": {"text": f"Events per {period.value}"}, "rangemode": "tozero"},
            "xaxis": {"type": "date"},
            "margin": {"l": 56, "r": 16, "t": 40, "b": 40},
            "height": 300,
            "bargap": 0.1,
        },
        theme="plotly_white",
    )
    if not periods:
        add_centred_note(fig, "No camera was working in this window.", size=None)
    return fig


def hotspot_rows(summary: pa.Table) -> list[dict[str, Any]]:
    """Rows for the hotspot table, most events first, the rate rounded to 2 decimals.

    Each row's "id" is its hexagon, so a clicked cell tells which hexagon it belongs to.
    """
    rows = summary.to_pylist()
    for row in rows:
        row["id"] = row["hexagon"]  # the table reports clicks by row id
        rate = row["events_per_100_trap_nights"]
        row["events_per_100_trap_nights"] = None if rate is None else round(rate, 2)
    rows.sort(key=lambda r: (-r["events"], -(r["events_per_100_trap_nights"] or 0), r["hexagon"]))
    return rows


def message_figure(message: str) -> Figure:
    """An empty figure that says `message` (no data yet, or an error shown elsewhere)."""
    fig = figure(
        [],
        {"xaxis": {"visible": False}, "yaxis": {"visible": False}, "height": 300},
        theme="plotly_white",
    )
    add_centred_note(fig, message, size=15)
    return fig
