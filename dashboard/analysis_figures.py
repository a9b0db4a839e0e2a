"""Figures for the effort-aware views: rate and Gi* maps, change map, diel plot, timeline.

Category maps draw one `Choroplethmap` trace per class, so the legend names every class and a
click reports the hexagon (`location`) whichever trace it lands on.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from dashboard.data.analysis import Change
from dashboard.figures import (
    EVENT_COLORSCALE,
    MAP_HEIGHT_PX,
    MAP_LEGEND,
    Figure,
    _view,
    add_centred_note,
    constant_colour_trace,
    figure,
    hotspot_outlines,
    selected_outline,
    stations_label,
)
from dashboard.stats import Hotness
from pipeline.hexgrid import cells_geojson

LOW_EFFORT_COLOUR = "#9e9e9e"
CLASS_COLOURS: dict[str, str] = {
    Hotness.HOT.value: "#c0392b",
    Hotness.COLD.value: "#2c7bb6",
    Hotness.NOT_SIGNIFICANT.value: "#f3e3b3",
    Hotness.TOO_LITTLE_EFFORT.value: LOW_EFFORT_COLOUR,
    Hotness.NOT_TESTED.value: "#e7e1d3",
    Change.APPEARED: "#d7301f",
    Change.VANISHED: "#3182bd",
    Change.STAYED: "#7a0177",
    Change.NEITHER: "#f3e3b3",
    Change.TOO_LITTLE: LOW_EFFORT_COLOUR,
    Change.NOT_TESTED: "#e7e1d3",
}


def _finish(
    traces: list[dict[str, Any]], cells: list[str], selected: str | None, style: dict
) -> Figure:
    center, zoom = _view(cells_geojson(cells))
    if selected is not None and selected in cells:
        traces.append(selected_outline(selected))
    fig = figure(
        traces,
        {
            "map": {"style": style, "center": center, "zoom": zoom},
            "margin": {"l": 0, "r": 0, "t": 0, "b": 0},
            "height": MAP_HEIGHT_PX,
            "uirevision": "hotspots",
            "clickmode": "event",
            "legend": MAP_LEGEND,
        },
    )
    if not cells:
        add_centred_note(fig, "No camera was working in this window.")
    return fig


def rate_map(
    summary: pa.Table,
    style: dict[str, Any],
    *,
    selected: str | None = None,
    withheld: str | None = None,
) -> Figure:
    """Events per 100 trap-nights; hexagons with too little effort drawn grey, not cold; Gi*
    hot and cold spots outlined on top (`withheld`: why there are none, noted on the map)."""
    rows = summary.to_pylist()
    judged = [r for r in rows if r["enough_effort"]]
    low = [r for r in rows if not r["enough_effort"]]
    rates = [r["events_per_100_trap_nights"] or 0.0 for r in judged]
    traces = [
        {
            "type": "choroplethmap",
            "geojson": cells_geojson([r["hexagon"] for r in judged]),
            "locations": [r["hexagon"] for r in judged],
            "z": rates,
            "featureidkey": "id",
            "zmin": 0,
            "zmax": max([1.0, *rates]),
            "colorscale": EVENT_COLORSCALE,
            "marker": {"opacity": 0.8, "line": {"width": 0.8, "color": "#5b5340"}},
            "colorbar": {
                "title": {"text": "per 100<br>trap-nights"},
                "thickness": 14,
                "len": 0.8,
            },
            "customdata": [
                [
                    r["events"],
                    r["trap_nights"],
                    r["cameras"],
                    r.get("hotspot", "–"),
                    stations_label(r.get("stations")),
                ]
                for r in judged
            ],
            "hovertemplate": (
                "<b>%{z:.2f} events per 100 trap-nights</b><br>%{customdata[4]}<br>"
                "hexagon %{location}<br>"
                "%{customdata[0]} events, %{customdata[1]} trap-nights, "
                "%{customdata[2]} camera(s)<br>Gi*: %{customdata[3]}<extra></extra>"
            ),
            "name": "Events per 100 trap-nights",
            "showlegend": False,
        }
    ]
    if low:
        traces.append(
            constant_colour_trace(
                [r["hexagon"] for r in low],
                Hotness.TOO_LITTLE_EFFORT.value,
                LOW_EFFORT_COLOUR,
                [
                    f"{stations_label(r.get('stations'))}<br>hexagon {r['hexagon']}: too little "
                    f"effort ({r['trap_nights']} trap-nights)"
                    for r in low
                ],
            )
        )
    traces += hotspot_outlines(summary)
    fig = _finish(traces, [r["hexagon"] for r in rows], selected, style)
    if withheld and rows:
        _corner_note(fig, withheld)
    return fig


def _corner_note(fig: Figure, text: str) -> None:
    """A note along the map's foot (e.g. why Gi* was not tested), clear of the hexagons' middle."""
    fig["layout"].setdefault("annotations", []).append(
        {
            "text": text,
            "showarrow": False,
            "x": 0.01,
            "y": 0.01,
            "xanchor": "left",
            "yanchor": "bottom",
            "xref": "paper",
            "yref": "paper",
            "bgcolor": "rgba(255,255,255,0.9)",
            "font": {"size": 12},
        }
    )


def category_map(
    table: pa.Table,
    column: str,
    order: list[str],
    style: dict[str, Any],
    *,
    hover: list[str],
    selected: str | None = None,
) -> Figure:
    """One trace per class of `column` (in `order`, absent classes skipped)."""
    rows = table.to_pylist()
    traces = []
    for cls in order:
        picked = [(r, h) for r, h in zip(rows, hover, strict=True) if r[column] == cls]
        if picked:
            traces.append(
                constant_colour_trace(
                    [r["hexagon"] for r, _ in picked],
                    cls,
                    CLASS_COLOURS.get(cls, "#cccccc"),
                    [h for _, h in picked],
                )
            )
    return _finish(traces, [r["hexagon"] for r in rows], selected, style)


def significance_map(
    summary: pa.Table,
    style: dict[str, Any],
    *,
    selected: str | None = None,
    withheld: str | None = None,
) -> Figure:
    """Gi* hot / cold / not significant / too little effort / not tested per hexagon;
    `withheld` (why the test was not run) is written on the map."""
    hover = [
        f"{stations_label(r.get('stations'))}<br>hexagon {r['hexagon']}: {r['hotspot']}"
        + ("" if r["gi_z"] is None else f" (z {r['gi_z']:.2f}, q {r['gi_q']:.3f})")
        for r in summary.to_pylist()
    ]
    order = [h.value for h in Hotness]
    fig = category_map(summary, "hotspot", order, style, hover=hover, selected=selected)
    if withheld and summary.num_rows:
        _corner_note(fig, withheld)
    return fig


def change_map(
    change: pa.Table, style: dict[str, Any], year_a: int, year_b: int, *, selected: str | None
) -> Figure:
    """Hotspots that appeared or vanished between `year_a` and `year_b`."""

    def rate(v: float | None) -> str:
        return "–" if v is None else f"{v:.2f}"

    hover = [
        f"hexagon {r['hexagon']}: {r['change']}<br>{year_a}: {rate(r['rate_a'])}, "
        f"{year_b}: {rate(r['rate_b'])} per 100 trap-nights"
        for r in change.to_pylist()
    ]
    order = [
        Change.APPEARED,
        Change.VANISHED,
        Change.STAYED,
        Change.NEITHER,
        Change.NOT_TESTED,
        Change.TOO_LITTLE,
    ]
    return category_map(change, "change", order, style, hover=hover, selected=selected)


def diel_figure(diel: pa.Table, *, title: str = "") -> Figure:
    """Bars of independent events by hour of day (local station time)."""
    bars = {
        "type": "bar",
        "x": diel.column("hour").to_pylist(),
        "y": diel.column("events").to_pylist(),
        "marker": {"color": "#5b4a8b"},
        "hovertemplate": "%{x}:00–%{x}:59: <b>%{y} events</b><extra></extra>",
        "name": "Events by hour",
    }
    return figure(
        [bars],
        {
            "title": {"text": title, "x": 0.01, "font": {"size": 14}},
            "xaxis": {"title": {"text": "Hour of day"}, "dtick": 3, "range": [-0.5, 23.5]},
            "yaxis": {"title": {"text": "Events"}, "rangemode": "tozero"},
            "margin": {"l": 56, "r": 16, "t": 40, "b": 40},
            "height": 260,
        },
        theme="plotly_white",
    )


def timeline_figure(timeline: pa.Table, *, title: str = "") -> Figure:
    """Per-camera operation, one row per station (every station of `timeline`, named): blue
    where it worked, orange where it was down (colour-blind safe, Okabe–Ito). Tall for many
    stations; the page scrolls it in a box of its own."""
    rows = timeline.to_pylist()
    traces = []
    for kind, colour in (("working", "#0072b2"), ("down", "#e69f00")):
        part = [r for r in rows if r["kind"] == kind]
        traces.append(
            {
                "type": "bar",
                "base": [r["start"].isoformat() for r in part],
                "x": [((r["end"] - r["start"]).days + 1) * 86_400_000 for r in part],
                "y": [r["locationName"] or r["locationID"] for r in part],
                "orientation": "h",
                "marker": {"color": colour},
                "name": kind,
                "customdata": [[r["deploymentID"], r["start"], r["end"]] for r in part],
                "hovertemplate": (
                    f"%{{customdata[0]}}: {kind} %{{customdata[1]}} to %{{customdata[2]}}"
                    "<extra></extra>"
                ),
            }
        )
    cameras = len({r["locationName"] or r["locationID"] for r in rows})
    return figure(
        traces,
        {
            "title": {"text": title, "x": 0.01, "font": {"size": 14}},
            "barmode": "overlay",
            "xaxis": {"type": "date", "side": "top"},
            "yaxis": {
                "autorange": "reversed",
                "type": "category",
                "dtick": 1,
                "tickfont": {"size": 10},
            },
            "height": max(240, 110 + 14 * cameras),
            "margin": {"l": 120, "r": 16, "t": 84, "b": 16},
            "showlegend": False,  # the title carries the colour key, clear of the date axis
        },
        theme="plotly_white",
    )


TIMELINE_KEY = (
    "<span style='color:#0072b2'>■</span> working · <span style='color:#e69f00'>■</span> down"
)
