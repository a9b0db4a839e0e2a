"""The individuals map: distinct snow leopards (minimum known alive) per H3 hexagon.

Returns plain plotly figure dicts (`{"data": [...], "layout": {...}}`), which Dash sends as they
are; no database and no Dash here. Tests read them by key (`fig["data"][0]["z"]`).
"""

from __future__ import annotations

from typing import Any

from dashboard.figures import (
    MAP_HEIGHT_PX,
    _view,
    add_centred_note,
    constant_colour_trace,
    figure,
    selected_outline,
)
from pipeline.hexgrid import cells_geojson

NOT_IDENTIFIED = "Run `uncia identify` to see individuals."
NONE_IN_VIEW = "No identified snow leopard in this window."
NO_IDENTIFICATION_COLOUR = "#b9b9b9"
# Zero is the palest sand of the events map, so hexagons watched without a known individual
# still show; individuals run through purples, unlike the events' reds.
INDIVIDUALS_COLORSCALE = [
    [0.0, "#f6f1e4"],
    [0.02, "#e5d8ef"],
    [0.3, "#b497d6"],
    [0.65, "#7b4fb0"],
    [1.0, "#3f1d6e"],
]
IDS_IN_HOVER = 5


def _ids_text(ids: list[str]) -> str:
    shown = ", ".join(ids[:IDS_IN_HOVER])
    return shown + (f" and {len(ids) - IDS_IN_HOVER} more" if len(ids) > IDS_IN_HOVER else "")


def individuals_map(
    per_hexagon: list[dict[str, Any]] | None,
    working_cells: list[str],
    style: dict[str, Any],
    *,
    selected: str | None = None,
) -> dict[str, Any]:
    """Choropleth of distinct individuals per hexagon, as a plain figure dict.

    `per_hexagon`: rows of `queries.individuals_in_view` (hexagon, individuals, sightings,
    individual_ids), or None when `uncia identify` has not run: the hexagons are then drawn
    grey under a note saying to run it. `working_cells`: hexagons with a working camera in the
    window, drawn at zero when no individual was seen there. `style`: the MapLibre style
    (`figures.map_style`). The `selected` hexagon, when drawn, gets a bold outline.
    """
    data: list[dict[str, Any]] = []
    notes: list[str] = []
    if per_hexagon is None:
        cells = list(working_cells)
        data.append(
            constant_colour_trace(
                cells,
                "No identification yet",
                NO_IDENTIFICATION_COLOUR,
                [f"hexagon {c}: {NOT_IDENTIFIED}" for c in cells],
                opacity=0.6,
            )
        )
        notes.append(NOT_IDENTIFIED)
    else:
        seen = {r["hexagon"]: r for r in per_hexagon}
        cells = [r["hexagon"] for r in per_hexagon]
        cells += [c for c in dict.fromkeys(working_cells) if c not in seen]
        empty = {"individuals": 0, "sightings": 0, "individual_ids": []}
        rows = [seen.get(c, empty) for c in cells]
        counts = [int(r["individuals"]) for r in rows]
        top = max([1, *counts])
        data.append(
            {
                "type": "choroplethmap",
                "geojson": cells_geojson(cells),
                "locations": cells,
                "z": counts,
                "featureidkey": "id",
                "zmin": 0,
                "zmax": top,
                "colorscale": INDIVIDUALS_COLORSCALE,
                "marker": {"opacity": 0.8, "line": {"width": 0.8, "color": "#5b5340"}},
                "colorbar": {
                    "title": {"text": "Individuals<br>(min. known<br>alive)"},
                    "thickness": 14,
                    "len": 0.8,
                    **({"dtick": 1} if top <= 10 else {}),
                },
                "customdata": [
                    [int(r["sightings"]), _ids_text(list(r["individual_ids"] or []))] for r in rows
                ],
                "hovertemplate": (
                    "<b>%{z} distinct individual(s)</b><br>hexagon %{location}<br>"
                    "%{customdata[0]} sighting(s)<br>%{customdata[1]}<extra></extra>"
                ),
                "name": "Individuals",
            }
        )
        if not per_hexagon:
            notes.append(NONE_IN_VIEW)
    if selected is not None and selected in cells:
        data.append(selected_outline(selected))
    center, zoom = _view(cells_geojson(cells))
    fig = figure(
        data,
        {
            "map": {"style": style, "center": center, "zoom": zoom},
            "margin": {"l": 0, "r": 0, "t": 0, "b": 0},
            "height": MAP_HEIGHT_PX,
            "uirevision": "hotspots",  # keep the user's pan and zoom across modes
            "clickmode": "event",
            "showlegend": False,
        },
    )
    for note in notes:
        add_centred_note(fig, note, background="rgba(255,255,255,0.85)")
    return fig
