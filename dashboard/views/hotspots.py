"""The hotspot page's callbacks: plain functions of (context, control values) returning outputs.

Each parses its inputs into `Filters`, asks `queries`, and hands the rows to `figures`. Errors
become an alert on the page and a traceback in the log, never a stack trace in the browser.
`register` wires the functions to the Dash app.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import dash
from dash import Input, Output, State, no_update

from dashboard import figures
from dashboard.data import queries
from dashboard.filters import Filters, Season, parse_filters, parse_hexagon
from dashboard.pages import insights
from dashboard.pages.hotspots import (
    NO_STORE,
    PICK_HEXAGON,
    Ids,
    alert,
    demo_banner,
    detection_cards,
    run_info,
)
from pipeline.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from dashboard.app import DashboardContext

log = logging.getLogger(__name__)

UNREADABLE = (
    "The survey data cannot be read right now; the page will try again. "
    "The server log has the details."
)
WAITING = "Waiting for the pipeline's first checkpoint…"
FAILED = "Something went wrong while updating this view. The server log has the details."


def shows_alert(
    *outputs: str, announce_missing_store: bool = False
) -> Callable[[Callable[..., dict[str, Any]]], Callable[..., Any]]:
    """Turn exceptions of a callback returning {output: value} into an alert in its "alert" key.

    The other `outputs` keep their current value (no_update). Before the first checkpoint only
    the callback with `announce_missing_store` says so; the others show a waiting figure.
    Only messages written for users reach the page; tracebacks go to the log.
    """

    def decorate(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        @functools.wraps(fn)
        def guarded(ctx: DashboardContext, *args: Any, **kwargs: Any) -> dict[str, Any]:
            kept: dict[str, Any] = dict.fromkeys(outputs, no_update)
            try:
                return fn(ctx, *args, **kwargs)
            except ConfigError as exc:
                message = f"Cannot show this view: {exc}."
            except StoreError:
                if ctx.reader.version() is None:  # expected before the first checkpoint
                    log.info("%s: no store in the data folder yet", fn.__name__)
                    if "figure" in kept:
                        kept["figure"] = figures.message_figure(WAITING)
                    return {**kept, "alert": [alert(NO_STORE)] if announce_missing_store else []}
                log.warning("%s: store not readable", fn.__name__, exc_info=True)
                message = UNREADABLE
            except Exception:
                log.exception("callback %s failed", fn.__name__)
                message = FAILED
            return {**kept, "alert": [alert(message)]}

        return guarded

    return decorate


def _filters(overview: queries.Overview, controls: dict[str, Any]) -> Filters:
    default = overview.leopard_threshold if overview.leopard_threshold is not None else 0.5
    return parse_filters(default_threshold=default, **controls)


def refresh_version(ctx: DashboardContext, n_intervals: int | None, current: str | None) -> Any:
    """Return the store file's new signature when a checkpoint replaced it, else no_update."""
    version = ctx.reader.version()
    return no_update if version == current else version


@shows_alert("banner", "run_info", "min_date", "max_date", announce_missing_store=True)
def render_header(ctx: DashboardContext, version: str | None) -> dict[str, Any]:
    """Demo banner, latest run's model, and the date bounds, from the current store."""
    with ctx.reader.connect() as con:
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
    with ctx.reader.connect() as con:
        overview = queries.survey_overview(con)
        filters = _filters(overview, controls)
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
    with ctx.reader.connect() as con:
        overview = queries.survey_overview(con)
        filters = _filters(overview, {**controls, "period": period})
        figure = insights.series_outputs(ctx, con, overview, filters, view.layer, selected)
    return {"figure": figure, "alert": []}


def select_hexagon(
    click_data: dict[str, Any] | None,
    active_cell: dict[str, Any] | None,
    triggered: str | None,
) -> str | None:
    """The hexagon picked last: a map click, a table row; none after a resolution change."""
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
    if triggered == Ids.TABLE and isinstance(active_cell, dict) and active_cell.get("row_id"):
        return str(active_cell["row_id"])
    return None


@shows_alert("title", "cards")
def show_detections(
    ctx: DashboardContext, hexagon: str | None, version: str | None, **controls: Any
) -> dict[str, Any]:
    """The selected hexagon's frames at or above the threshold, highest score first, each
    with its latest localization box when `uncia localize` boxed it."""
    hexagon = parse_hexagon(hexagon)
    if hexagon is None:
        return {"title": PICK_HEXAGON, "cards": [], "alert": []}
    limit = ctx.settings.max_detections
    with ctx.reader.connect() as con:
        overview = queries.survey_overview(con)
        filters = _filters(overview, controls)
        rows = queries.hexagon_detections(con, filters, hexagon, limit).to_pylist()
        boxes = queries.latest_boxes(con, ctx.settings.data_dir, [r["image_id"] for r in rows])
    for row in rows:
        row["box"] = boxes.get(row["image_id"])
    if rows:
        capped = f", the first {limit}" if len(rows) == limit else ""
        title = (
            f"Hexagon {hexagon}: frames scoring ≥ {filters.threshold:.2f}, highest first{capped}"
        )
    else:
        title = f"Hexagon {hexagon}: no frame scores ≥ {filters.threshold:.2f} in this window"
    return {"title": title, "cards": detection_cards(rows, ctx.url_prefix), "alert": []}


def _bind(fn: Callable[..., Any], ctx: DashboardContext) -> Callable[..., Any]:
    @functools.wraps(fn)
    def bound(*args: Any, **kwargs: Any) -> Any:
        return fn(ctx, *args, **kwargs)

    return bound


def page_view(
    app: dash.Dash,
    ctx: DashboardContext,
    fn: Callable[..., Any],
    output: dict[str, Output],
    inputs: dict[str, Input],
) -> None:
    """Register a read-only callback whose answers ctx.views keeps per data state and inputs;
    the store warmer answers it with the layout's starting values before anyone asks."""
    sources = {kw: (str(i.component_id), i.component_property) for kw, i in inputs.items()}
    name = getattr(fn, "__name__", repr(fn))
    app.callback(output=output, inputs=inputs)(ctx.views.register(name, _bind(fn, ctx), sources))


def _filter_inputs() -> dict[str, Input]:
    return {
        "resolution": Input(Ids.RESOLUTION, "value"),
        "start_date": Input(Ids.DATES, "start_date"),
        "end_date": Input(Ids.DATES, "end_date"),
        "season": Input(Ids.SEASON, "value"),
        "month_start": Input(Ids.MONTH_START, "value"),
        "month_end": Input(Ids.MONTH_END, "value"),
        "threshold": Input(Ids.THRESHOLD, "value"),
        "verified": Input(insights.InsightIds.SOURCE, "value"),
    }


def register(app: dash.Dash, ctx: DashboardContext) -> None:
    """Wire every callback of the page to `app`, bound to `ctx`."""
    version = Input(Ids.VERSION, "data")
    app.callback(
        Output(Ids.VERSION, "data"),
        Input(Ids.REFRESH, "n_intervals"),
        State(Ids.VERSION, "data"),
        prevent_initial_call=True,  # the layout holds the version it was built from
    )(_bind(refresh_version, ctx))
    app.callback(
        output={
            "banner": Output(Ids.BANNER, "children"),
            "run_info": Output(Ids.RUN_INFO, "children"),
            "min_date": Output(Ids.DATES, "min_date_allowed"),
            "max_date": Output(Ids.DATES, "max_date_allowed"),
            "alert": Output(Ids.STATUS, "children"),
        },
        inputs={"version": version},
        prevent_initial_call=True,  # the layout is drawn from the same store version
    )(_bind(render_header, ctx))
    app.callback(
        output={
            "start_disabled": Output(Ids.MONTH_START, "disabled"),
            "end_disabled": Output(Ids.MONTH_END, "disabled"),
        },
        inputs={"season": Input(Ids.SEASON, "value")},
        prevent_initial_call=True,  # the layout starts them in step with its season
    )(toggle_custom_months)
    page_view(
        app,
        ctx,
        update_map,
        output={
            "figure": Output(Ids.MAP, "figure"),
            "rows": Output(Ids.TABLE, "data"),
            "summary": Output(Ids.MAP_SUMMARY, "children"),
            "alert": Output(Ids.MAP_ALERT, "children"),
        },
        inputs={
            "version": version,
            "selected": Input(Ids.SELECTED, "data"),
            "map_mode": Input(insights.InsightIds.MODE, "value"),
            "layer": Input(insights.InsightIds.LAYER, "value"),
            "year_a": Input(insights.InsightIds.YEAR_A, "value"),
            "year_b": Input(insights.InsightIds.YEAR_B, "value"),
            "reviews": Input(insights.InsightIds.REVIEWS, "data"),
            **_filter_inputs(),
        },
    )
    page_view(
        app,
        ctx,
        update_series,
        output={
            "figure": Output(Ids.SERIES, "figure"),
            "alert": Output(Ids.SERIES_ALERT, "children"),
        },
        inputs={
            "version": version,
            "period": Input(Ids.PERIOD, "value"),
            "selected": Input(Ids.SELECTED, "data"),
            "layer": Input(insights.InsightIds.LAYER, "value"),
            "reviews": Input(insights.InsightIds.REVIEWS, "data"),
            **_filter_inputs(),
        },
    )
    insights.register(app, ctx, _filter_inputs())

    def on_pick(click_data: Any, active_cell: Any, resolution: Any) -> str | None:
        return select_hexagon(click_data, active_cell, dash.ctx.triggered_id)

    app.callback(
        Output(Ids.SELECTED, "data"),
        Input(Ids.MAP, "clickData"),
        Input(Ids.TABLE, "active_cell"),
        Input(Ids.RESOLUTION, "value"),
        prevent_initial_call=True,
    )(on_pick)
    app.callback(
        output={
            "title": Output(Ids.DETECTIONS_TITLE, "children"),
            "cards": Output(Ids.DETECTIONS, "children"),
            "alert": Output(Ids.DETECTIONS_ALERT, "children"),
        },
        inputs={"hexagon": Input(Ids.SELECTED, "data"), "version": version, **_filter_inputs()},
        prevent_initial_call=True,  # no hexagon is picked when the page opens
    )(_bind(show_detections, ctx))
