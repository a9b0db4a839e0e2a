"""The hotspot page's views: plain functions of (context, control values) returning outputs.

Each parses its inputs into `Filters`, asks the data layer, and hands the rows to `figures`.
Errors become an alert on the page and a traceback in the log, never a stack trace in the
browser. `pages.hotspots.register` wires them to the Dash app.
"""

from __future__ import annotations

import logging
from typing import Any

from dash import no_update

from dashboard.components import (
    PICK_HEXAGON,
    demo_banner,
    detection_cards,
    folded,
    run_info,
    show_all_button,
)
from dashboard.context import DashboardContext
from dashboard.data import queries
from dashboard.figures import stations_label
from dashboard.filters import Season, parse_hexagon
from dashboard.ids import Ids
from dashboard.views import insights
from dashboard.views.common import shows_alert, view_filters

log = logging.getLogger(__name__)


def refresh_version(ctx: DashboardContext, n_intervals: int | None, current: str | None) -> Any:
    """Return the store file's new signature when a checkpoint replaced it, else no_update."""
    version = ctx.store.version()
    return no_update if version == current else version


@shows_alert("banner", "run_info", "min_date", "max_date", announce_missing_store=True)
def render_header(ctx: DashboardContext, version: str | None) -> dict[str, Any]:
    """Demo banner, latest run's model, and the date bounds, from the current store."""
    with ctx.store.connect() as con:
        overview = queries.survey_overview(con)
    return {
        "banner": demo_banner(overview),
        "run_info": run_info(overview),
        "min_date": overview.first_day.isoformat() if overview.first_day else None,
        "max_date": overview.last_day.isoformat() if overview.last_day else None,
        "alert": [],
    }


def toggle_custom_months(season: str | None) -> dict[str, bool]:
    """The month dropdowns only apply to the Custom season."""
    custom = season == Season.CUSTOM.value
    return {"start_disabled": not custom, "end_disabled": not custom}


@shows_alert("figure", "rows", "summary")
def update_map(
    ctx: DashboardContext,
    version: str | None,
    selected: str | None = None,
    map_mode: str | None = None,
    layer: str | None = None,
    year_a: Any = None,
    year_b: Any = None,
    reviews: str | None = None,
    **controls: Any,
) -> dict[str, Any]:
    """Hotspot map in the chosen mode and layer (the `selected` hexagon outlined), table rows
    with Gi* columns, and a one-line summary; camera gaps are taken out of the effort."""
    view = insights.parse_view(map_mode, layer, year_a, year_b)
    selected = parse_hexagon(selected)
    with ctx.store.connect() as con:
        overview = queries.survey_overview(con)
        filters = view_filters(overview, controls)
        out = insights.map_outputs(ctx, con, overview, filters, view, selected)
    return {**out, "alert": []}


@shows_alert("figure")
def update_series(
    ctx: DashboardContext,
    version: str | None,
    period: str | None,
    selected: str | None = None,
    layer: str | None = None,
    reviews: str | None = None,
    **controls: Any,
) -> dict[str, Any]:
    """Weekly or monthly bars of independent events of the layer, for the selected hexagon
    (all hexagons when none is selected)."""
    view = insights.parse_view(None, layer)
    selected = parse_hexagon(selected)
    with ctx.store.connect() as con:
        overview = queries.survey_overview(con)
        filters = view_filters(overview, {**controls, "period": period})
        figure = insights.series_outputs(ctx, con, overview, filters, view.layer, selected)
    return {"figure": figure, "alert": []}


def select_hexagon(
    click_data: dict[str, Any] | None,
    active_cell: dict[str, Any] | None,
    triggered: str | None,
    current: Any = None,
) -> str | None:
    """The hexagon picked last: a map click, a table row; none after a resolution change.

    Sorting or paging the table drops its active cell (`active_cell` None with the table as
    trigger): that is no pick, so the `current` selection stays."""
    # The browser sends these; anything may arrive, so shapes are checked, never trusted.
    if triggered == Ids.MAP and isinstance(click_data, dict):
        points = click_data.get("points")
        point = points[0] if isinstance(points, list) and points else {}
        if not isinstance(point, dict):
            return None
        if point.get("location"):
            return str(point["location"])
        custom = point.get("customdata")
        if isinstance(custom, list) and custom:  # a camera dot carries its hexagon
            return str(custom[0])
        return None
    if triggered == Ids.TABLE:
        if isinstance(active_cell, dict) and active_cell.get("row_id"):
            return str(active_cell["row_id"])
        return current if isinstance(current, str) and current.isalnum() else None
    return None


def table_highlight(hexagon: str | None) -> list[dict[str, Any]]:
    """The hotspot table's row styles: the selected hexagon's row, wherever sorting puts it,
    and a neutral active cell (after a re-sort it sits on another row than the selection)."""
    styles: list[dict[str, Any]] = [
        {"if": {"state": "active"}, "backgroundColor": "inherit", "border": "1px solid #d0d0d0"}
    ]
    if isinstance(hexagon, str) and hexagon.isalnum():
        styles.append(
            {
                "if": {"filter_query": f'{{hexagon}} = "{hexagon}"'},
                "backgroundColor": "#dbe9f6",
                "fontWeight": 600,
            }
        )
    return styles


@shows_alert("title", "cards", "more", "more_hidden")
def show_detections(
    ctx: DashboardContext,
    hexagon: str | None,
    version: str | None,
    more: int | None = None,
    **controls: Any,
) -> dict[str, Any]:
    """The selected hexagon's frames at or above the threshold (in "Human-verified only", the
    frames a person called a snow leopard, the ones the map counts), highest score first,
    each with its latest localization box when `uncia localize` boxed it: the first
    `detections_shown` of at most `max_detections`, all of them once "Show all" was clicked
    (`more`: its clicks, odd = expanded)."""
    hexagon = parse_hexagon(hexagon)
    if hexagon is None:
        return {"title": PICK_HEXAGON, "cards": [], "alert": [], **show_all_button(0, 0, False, "")}
    limit = ctx.settings.max_detections
    with ctx.store.connect() as con:
        overview = queries.survey_overview(con)
        filters = view_filters(overview, controls)
        if filters.verified_only:  # the verdicts the map counts
            ctx.store.prepare(con, ctx.settings.gap_days)
        rows = queries.hexagon_detections(con, filters, hexagon, limit).to_pylist()
        stations = stations_label(queries.hexagon_stations(con, filters, hexagon))
        shown, expanded = folded(rows, ctx.settings.detections_shown, more)
        ids = [r["image_id"] for r in shown]
        boxes = queries.latest_boxes(con, ctx.store.table("localizations"), ids)
    for row in shown:
        row["box"] = boxes.get(row["image_id"])
    which = (
        "frames a person verified as snow leopard"
        if filters.verified_only
        else f"frames scoring ≥ {filters.threshold:.2f}"
    )
    if rows:
        capped = f", the first {limit}" if len(rows) == limit else ""
        title = f"Hexagon {hexagon} ({stations}): {which}, highest first{capped}"
    else:
        title = (
            f"Hexagon {hexagon} ({stations}): no frame a person verified as snow leopard "
            "in this window"
            if filters.verified_only
            else f"Hexagon {hexagon} ({stations}): no frame scores ≥ {filters.threshold:.2f} "
            "in this window"
        )
    return {
        "title": title,
        "cards": detection_cards(shown, ctx.url_prefix),
        "alert": [],
        **show_all_button(ctx.settings.detections_shown, len(rows), expanded, "frames"),
    }
