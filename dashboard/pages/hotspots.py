"""The hotspot page: header, controls, map, hotspot table, event series and a hexagon's frames;
its layout and the wiring of its callbacks (the callbacks themselves are `views.hotspots`).

`layout(ctx)` runs at every page load, so date bounds and the default threshold follow the store.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import dash
from dash import Input, Output, State, dcc, html
from dash.dash_table.DataTable import DataTable

from dashboard.components import (
    NO_STORE,
    PICK_HEXAGON,
    alert,
    demo_banner,
    graph,
    loading,
    more_button,
    run_info,
)
from dashboard.context import DashboardContext
from dashboard.data.queries import Overview, survey_overview
from dashboard.filters import MONTH_NAMES, SEASON_LABELS, Period, Season
from dashboard.ids import Ids, InsightIds
from dashboard.pages.wiring import bind, page_view
from dashboard.views import hotspots as views
from pipeline.errors import UnciaError

log = logging.getLogger(__name__)

TITLE = "Uncia — snow leopard hotspots"
HEX_AREAS_KM2 = {5: "≈250 km²", 6: "≈36 km²", 7: "≈5 km²", 8: "≈0.7 km²", 9: "≈0.1 km²"}


def _load_overview(ctx: DashboardContext) -> tuple[Overview | None, str | None]:
    try:
        with ctx.store.connect() as con:
            return survey_overview(con), ctx.store.version()
    except UnciaError:
        log.info("layout: no readable store yet in the data folder")
        return None, None


def _control(label: str, *children: Any, html_for: str | None = None) -> html.Div:
    return html.Div([html.Label(label, htmlFor=html_for), *children], className="control")


def controls(
    ctx: DashboardContext, overview: Overview | None, extra: Sequence[Any] = ()
) -> html.Div:
    """The control bar; `extra` (the insight controls) joins it at its end."""
    first = overview.first_day.isoformat() if overview and overview.first_day else None
    last = overview.last_day.isoformat() if overview and overview.last_day else None
    threshold = (
        overview.leopard_threshold if overview and overview.leopard_threshold is not None else 0.5
    )
    months = [{"label": name, "value": i + 1} for i, name in enumerate(MONTH_NAMES)]
    season = Season.ALL.value

    def month_dropdown(component_id: str, month: int) -> dcc.Dropdown:
        # views.toggle_custom_months keeps `disabled` in step once the season changes.
        return dcc.Dropdown(
            id=component_id,
            options=months,
            value=month,
            clearable=False,
            disabled=season != Season.CUSTOM.value,
        )

    return html.Div(
        [
            _control(
                "Hexagon size (H3 resolution)",
                dcc.RadioItems(
                    id=Ids.RESOLUTION,
                    options=[
                        {"label": f"{r} ({HEX_AREAS_KM2[r]})", "value": r} for r in range(5, 10)
                    ],
                    value=ctx.settings.default_resolution,
                    inline=True,
                ),
            ),
            _control(
                "Dates",
                dcc.DatePickerRange(
                    id=Ids.DATES,
                    min_date_allowed=first,
                    max_date_allowed=last,
                    start_date=first,
                    end_date=last,
                    initial_visible_month=first,
                    display_format="YYYY-MM-DD",
                    clearable=False,
                ),
            ),
            _control(
                "Season",
                dcc.RadioItems(
                    id=Ids.SEASON,
                    options=[{"label": SEASON_LABELS[s], "value": s.value} for s in Season],
                    value=season,
                    inline=True,
                ),
                html.Div(
                    [
                        html.Span("from"),
                        month_dropdown(Ids.MONTH_START, 11),
                        html.Span("to"),
                        month_dropdown(Ids.MONTH_END, 3),
                    ],
                    className="months",
                ),
            ),
            _control(
                "Leopard score threshold",
                dcc.Slider(
                    id=Ids.THRESHOLD,
                    min=0,
                    max=1,
                    step=0.01,
                    value=threshold,
                    marks={0: "0", 0.25: "0.25", 0.5: "0.5", 0.75: "0.75", 1: "1"},
                    tooltip={"placement": "bottom", "always_visible": False},
                    updatemode="mouseup",
                ),
            ),
            _control(
                "Time series",
                dcc.RadioItems(
                    id=Ids.PERIOD,
                    options=[
                        {"label": "Weekly", "value": Period.WEEK.value},
                        {"label": "Monthly", "value": Period.MONTH.value},
                    ],
                    value=Period.MONTH.value,
                    inline=True,
                ),
            ),
            *extra,
        ],
        id=Ids.FILTERS,
        className="controls",
    )


def filters_toggle() -> html.Button:
    """The button that opens and closes the filters' drawer on a phone (hidden on wider
    screens, where the filters always show)."""
    aria: dict[str, Any] = {"aria-controls": Ids.FILTERS, "aria-expanded": "false"}
    return html.Button(
        "Filters", id=Ids.FILTERS_TOGGLE, n_clicks=0, className="filters-toggle", **aria
    )


TABLE_COLUMNS: list[Any] = [
    {"id": "hexagon", "name": "Hexagon"},
    {"id": "events", "name": "Events", "type": "numeric"},
    {"id": "cameras", "name": "Cameras", "type": "numeric"},
    {"id": "trap_nights", "name": "Trap-nights", "type": "numeric"},
    {"id": "events_per_100_trap_nights", "name": "Per 100 trap-nights", "type": "numeric"},
    {"id": "enough_effort", "name": "Enough effort"},
    {"id": "gi_z", "name": "Gi* z", "type": "numeric"},
    {"id": "gi_q", "name": "q (FDR)", "type": "numeric"},
    {"id": "hotspot", "name": "Hotspot"},
    {"id": "stations", "name": "Stations"},  # last: the figures stay in view, the names scroll
]


def layout(
    ctx: DashboardContext, extra_controls: Sequence[Any] = (), sections: Sequence[Any] = ()
) -> html.Div:
    """The hotspot page, built from the store as it is when the page loads; `extra_controls`
    and `sections` (the insight controls and sections) take their places in it."""
    overview, version = _load_overview(ctx)
    return html.Div(
        [
            html.Header(
                [
                    html.H1(TITLE),
                    html.Div(run_info(overview), id=Ids.RUN_INFO, className="run-info"),
                ]
            ),
            html.Div(demo_banner(overview), id=Ids.BANNER),
            html.Div([] if overview else [alert(NO_STORE)], id=Ids.STATUS),
            filters_toggle(),
            controls(ctx, overview, extra_controls),
            html.Main(
                [
                    html.Section(
                        [
                            html.Div(id=Ids.MAP_ALERT),
                            html.Div(id=Ids.MAP_SUMMARY, className="summary"),
                            html.Button(
                                "Clear selection (Esc)",
                                id=Ids.CLEAR,
                                n_clicks=0,
                                className="clear",
                            ),
                            loading(graph(Ids.MAP, scroll_zoom=True, className="map")),
                        ],
                        className="panel map-panel",
                    ),
                    html.Section(
                        [
                            html.H2("Hotspots"),
                            DataTable(
                                id=Ids.TABLE,
                                columns=TABLE_COLUMNS,
                                data=[],
                                sort_action="native",
                                page_size=14,
                                style_table={"overflowX": "auto"},
                                style_cell={"fontFamily": "inherit", "fontSize": "13px"},
                                style_header={"fontWeight": "600"},
                                style_cell_conditional=[
                                    {"if": {"column_id": "hexagon"}, "textAlign": "left"},
                                    {
                                        "if": {"column_id": "stations"},
                                        "textAlign": "left",
                                        "whiteSpace": "normal",
                                        "minWidth": "160px",
                                        "maxWidth": "320px",
                                    },
                                ],
                                style_data_conditional=views.table_highlight(None),
                            ),
                        ],
                        className="panel table-panel",
                    ),
                ],
                className="row",
            ),
            html.Section(
                [
                    html.Div(id=Ids.SERIES_ALERT),
                    loading(graph(Ids.SERIES)),
                ],
                className="panel",
            ),
            html.Section(
                [
                    html.H2(PICK_HEXAGON, id=Ids.DETECTIONS_TITLE),
                    html.Div(id=Ids.DETECTIONS_ALERT),
                    # A scrolling box: focusable, so a keyboard can scroll it too.
                    loading(
                        html.Div(
                            id=Ids.DETECTIONS,
                            className="detections",
                            tabIndex="0",
                            role="region",
                            **{"aria-label": "Frames of the selected hexagon"},
                        )
                    ),
                    more_button(Ids.DETECTIONS_MORE),
                ],
                className="panel",
            ),
            *sections,
            dcc.Store(id=Ids.VERSION, data=version),
            dcc.Store(id=Ids.SELECTED, data=None),
            dcc.Store(id=InsightIds.REVIEWS_FOR_VIEWS, data=None),
            dcc.Interval(id=Ids.REFRESH, interval=int(ctx.settings.refresh_seconds * 1000)),
        ],
        className="page",
    )


INDEX_STRING = """<!DOCTYPE html>
<html lang="en">
<head>
{%metas%}
<title>{%title%}</title>
{%favicon%}
{%css%}
<style>
body { margin: 0; font-family: system-ui, -apple-system, "Segoe UI", sans-serif;
       color: #222; background: #f4f3ef; }
.page { max-width: 1400px; margin: 0 auto; padding: 12px 20px 40px; }
header { display: flex; align-items: baseline; gap: 18px; flex-wrap: wrap; }
h1 { font-size: 22px; margin: 8px 0; }
h2 { font-size: 16px; margin: 4px 0 8px; }
.run-info { color: #555; font-size: 13px; }
.banner { background: #fff4c2; border: 1px solid #d9b400; padding: 8px 12px; margin: 6px 0;
          border-radius: 4px; font-weight: 600; }
.alert { background: #fde2e1; border: 1px solid #c0392b; color: #7b1d14; padding: 8px 12px;
         margin: 6px 0; border-radius: 4px; }
.controls { display: flex; flex-wrap: wrap; gap: 10px 28px; background: #fff; padding: 10px 14px;
            border-radius: 6px; margin: 8px 0; }
.control { display: flex; flex-direction: column; gap: 4px; min-width: 220px; font-size: 13px; }
.control > label { font-weight: 600; }
.control label { margin-right: 10px; }
.months { display: flex; align-items: center; gap: 6px; }
.months .dash-dropdown { min-width: 90px; }
.row { display: flex; gap: 12px; flex-wrap: wrap; }
.panel { background: #fff; border-radius: 6px; padding: 10px; margin: 8px 0; }
.map-panel { flex: 3 1 600px; min-width: 0; }
.table-panel { flex: 2 1 430px; min-width: 0; }
.summary { font-size: 13px; color: #444; margin-bottom: 4px; }
.detections { display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr));
              gap: 10px; max-height: 760px; overflow-y: auto; }
.detection { margin: 0; background: #faf9f6; border: 1px solid #ddd; border-radius: 4px;
             padding: 6px; font-size: 12px; }
.detection img { width: 100%; aspect-ratio: 4 / 3; object-fit: cover; background: #d9d3c3; }
/* A boxed frame shows whole (no 4:3 crop), so the box's percentages match the picture. */
.thumb { position: relative; line-height: 0; }
.thumb img { display: block; height: auto; aspect-ratio: auto; object-fit: fill; }
.thumb .box { position: absolute; box-sizing: border-box; border: 2px solid #39ff14;
              box-shadow: 0 0 0 1px rgba(0, 0, 0, 0.7); }
.detection .lines { white-space: pre-line; color: #444; }
.detection .lines::first-line { font-weight: 600; color: #222; }
.insights > div { flex: 1 1 480px; min-width: 0; }
h3 { font-size: 14px; margin: 12px 0 6px; }
.individuals .pair { max-width: 520px; }
.pair-crops { display: flex; gap: 8px; flex-wrap: wrap; }
.pair-crops img { max-width: 45%; }
.pair-crops img:not([src]) { display: none; }
.timeline-box { max-height: 560px; overflow-y: auto; }
.review-card:focus { outline: 3px solid #0b4f8a; }
.review-actions { display: flex; flex-wrap: wrap; gap: 4px; align-items: center; margin-top: 4px; }
.review-actions > div { flex: 1 0 100%; }
.relabel-as { display: flex; gap: 8px; align-items: center; margin: 6px 0; font-size: 13px; }
.relabel-as .dash-dropdown { min-width: 140px; }
button.more { margin: 8px 0 0; font-size: 13px; }
.decision.confirm { color: #1a7a35; font-weight: 600; }
.decision.reject, .decision.relabel { color: #9b2c1f; font-weight: 600; }
.reviewer { display: flex; gap: 8px; align-items: center; margin: 6px 0; font-size: 13px; }
.exports { display: flex; flex-wrap: wrap; gap: 8px; margin: 8px 0; }
button.clear { font-size: 12px; margin: 0 0 4px; }
.filters-toggle { display: none; }
.map-scale { position: absolute; z-index: 2; pointer-events: none; font-size: 11px;
             color: #222; line-height: 1.2; }
.map-scale-label { display: inline-block; padding: 0 3px; background: rgba(255,255,255,0.8);
                   border-radius: 2px; }
/* A waiting panel's spinner never swallows a click meant for the map or a card under it. */
.dash-spinner-container, .dash-spinner { pointer-events: none; }
:focus-visible { outline: 3px solid #0b4f8a; outline-offset: 1px; }
/* A phone: one column, nothing wider than the screen, the map before the filters. */
@media (max-width: 640px) {
  .page { padding: 6px 8px 30px; display: flex; flex-direction: column; }
  .page > * { min-width: 0; max-width: 100%; }
  h1 { font-size: 18px; }
  /* The filters are a drawer: hidden until the Filters button (always in reach, bottom
     right) opens them over the page; the map comes first. */
  .controls { display: none; position: fixed; left: 0; right: 0; bottom: 0; z-index: 1000;
              max-height: 78vh; overflow-y: auto; margin: 0; border-radius: 10px 10px 0 0;
              box-shadow: 0 -4px 18px rgba(0,0,0,0.3); padding: 12px 12px 64px;
              box-sizing: border-box; }
  .controls.open { display: flex; }
  .filters-toggle { display: block; position: fixed; right: 12px; bottom: 12px; z-index: 1001;
                    padding: 10px 16px; font-size: 15px; font-weight: 600; border: none;
                    border-radius: 22px; background: #0b4f8a; color: #fff;
                    box-shadow: 0 2px 8px rgba(0,0,0,0.35); }
  .control { min-width: 0; width: 100%; }
  .row { flex-direction: column; flex-wrap: nowrap; }
  .map-panel, .table-panel { flex: 1 1 auto; }
  main { order: 2; }
  .page > main ~ * { order: 4; }
  .detections { grid-template-columns: 1fr 1fr; }
  .modebar-container { display: none; }
  .DateRangePickerInput { flex-wrap: wrap; }
  .months { flex-wrap: wrap; }
  .dash-dropdown-focus-target { max-width: 100%; }
  .table-panel { overflow-x: auto; }
  .dash-graph { overflow: hidden; }
}
</style>
</head>
<body>
{%app_entry%}
<footer>
{%config%}
{%scripts%}
{%renderer%}
</footer>
</body>
</html>"""


def filter_inputs() -> dict[str, Input]:
    """The filter controls every view of the page reads, as keyword -> Input."""
    return {
        "resolution": Input(Ids.RESOLUTION, "value"),
        "start_date": Input(Ids.DATES, "start_date"),
        "end_date": Input(Ids.DATES, "end_date"),
        "season": Input(Ids.SEASON, "value"),
        "month_start": Input(Ids.MONTH_START, "value"),
        "month_end": Input(Ids.MONTH_END, "value"),
        "threshold": Input(Ids.THRESHOLD, "value"),
        "verified": Input(InsightIds.SOURCE, "value"),
    }


def register(app: dash.Dash, ctx: DashboardContext) -> None:
    """Wire the header, map, series, hexagon pick and detections callbacks to `app`."""
    version = Input(Ids.VERSION, "data")
    app.callback(
        Output(Ids.VERSION, "data"),
        Input(Ids.REFRESH, "n_intervals"),
        State(Ids.VERSION, "data"),
        prevent_initial_call=True,  # the layout holds the version it was built from
    )(bind(views.refresh_version, ctx))
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
    )(bind(views.render_header, ctx))
    # The phone's filter drawer opens and closes in the browser, with no round trip.
    app.clientside_callback(
        """function (clicks) {
          const open = (clicks || 0) % 2 === 1;
          return [open ? "controls open" : "controls", open ? "Close filters" : "Filters",
                  open ? "true" : "false"];
        }""",
        Output(Ids.FILTERS, "className"),
        Output(Ids.FILTERS_TOGGLE, "children"),
        Output(Ids.FILTERS_TOGGLE, "aria-expanded"),
        Input(Ids.FILTERS_TOGGLE, "n_clicks"),
        prevent_initial_call=True,
    )
    app.callback(
        output={
            "start_disabled": Output(Ids.MONTH_START, "disabled"),
            "end_disabled": Output(Ids.MONTH_END, "disabled"),
        },
        inputs={"season": Input(Ids.SEASON, "value")},
        prevent_initial_call=True,  # the layout starts them in step with its season
    )(views.toggle_custom_months)
    page_view(
        app,
        ctx,
        views.update_map,
        output={
            "figure": Output(Ids.MAP, "figure"),
            "rows": Output(Ids.TABLE, "data"),
            "summary": Output(Ids.MAP_SUMMARY, "children"),
            "alert": Output(Ids.MAP_ALERT, "children"),
        },
        inputs={
            "version": version,
            # No selection: a click redraws no map; the browser outlines the selected hexagon
            # on the map's canvas (assets/map_outline.js), whatever map the server drew.
            "map_mode": Input(InsightIds.MODE, "value"),
            "layer": Input(InsightIds.LAYER, "value"),
            "year_a": Input(InsightIds.YEAR_A, "value"),
            "year_b": Input(InsightIds.YEAR_B, "value"),
            "reviews": Input(InsightIds.REVIEWS_FOR_VIEWS, "data"),
            **filter_inputs(),
        },
    )
    app.clientside_callback(
        "function (cell) { window.unciaOutline(cell); }",
        Input(Ids.SELECTED, "data"),
        prevent_initial_call=True,
    )
    # A review decision changes what the map, series and charts count only when they show
    # human-verified detections; the gallery alone follows every decision.
    app.clientside_callback(
        """function (reviews, source) {
          return source === "verified" ? reviews : window.dash_clientside.no_update;
        }""",
        Output(InsightIds.REVIEWS_FOR_VIEWS, "data"),
        Input(InsightIds.REVIEWS, "data"),
        Input(InsightIds.SOURCE, "value"),
        prevent_initial_call=True,
    )
    page_view(
        app,
        ctx,
        views.update_series,
        output={
            "figure": Output(Ids.SERIES, "figure"),
            "alert": Output(Ids.SERIES_ALERT, "children"),
        },
        inputs={
            "version": version,
            "period": Input(Ids.PERIOD, "value"),
            "selected": Input(Ids.SELECTED, "data"),
            "layer": Input(InsightIds.LAYER, "value"),
            "reviews": Input(InsightIds.REVIEWS_FOR_VIEWS, "data"),
            **filter_inputs(),
        },
    )

    def on_pick(
        click_data: Any, active_cell: Any, resolution: Any, clear: Any, current: Any
    ) -> str | None:
        return views.select_hexagon(click_data, active_cell, dash.ctx.triggered_id, current)

    app.callback(
        Output(Ids.SELECTED, "data"),
        Input(Ids.MAP, "clickData"),
        Input(Ids.TABLE, "active_cell"),
        Input(Ids.RESOLUTION, "value"),
        Input(Ids.CLEAR, "n_clicks"),
        State(Ids.SELECTED, "data"),
        prevent_initial_call=True,
    )(on_pick)
    # In the browser: the table shows the page holding the selected hexagon's row, after a
    # map pick or a re-sort, so the table and the map always show the same hexagon.
    app.clientside_callback(
        """function (ids, hexagon, pageSize, current) {
          const no = window.dash_clientside.no_update;
          if (typeof hexagon !== "string" || !Array.isArray(ids) || !pageSize) { return no; }
          const i = ids.indexOf(hexagon);
          if (i < 0) { return no; }
          const wanted = Math.floor(i / pageSize);
          return wanted === (current || 0) ? no : wanted;
        }""",
        Output(Ids.TABLE, "page_current"),
        Input(Ids.TABLE, "derived_virtual_row_ids"),
        Input(Ids.SELECTED, "data"),
        State(Ids.TABLE, "page_size"),
        State(Ids.TABLE, "page_current"),
        prevent_initial_call=True,
    )
    # In the browser (no round trip): the same styles as views.table_highlight.
    app.clientside_callback(
        """function (hexagon) {
          const styles = [{if: {state: "active"}, backgroundColor: "inherit",
                           border: "1px solid #d0d0d0"}];
          if (typeof hexagon === "string" && /^[0-9a-zA-Z]+$/.test(hexagon)) {
            styles.push({if: {filter_query: '{hexagon} = "' + hexagon + '"'},
                         backgroundColor: "#dbe9f6", fontWeight: 600});
          }
          return styles;
        }""",
        Output(Ids.TABLE, "style_data_conditional"),
        Input(Ids.SELECTED, "data"),
        prevent_initial_call=True,
    )
    app.callback(
        output={
            "title": Output(Ids.DETECTIONS_TITLE, "children"),
            "cards": Output(Ids.DETECTIONS, "children"),
            "alert": Output(Ids.DETECTIONS_ALERT, "children"),
            "more": Output(Ids.DETECTIONS_MORE, "children"),
            "more_hidden": Output(Ids.DETECTIONS_MORE, "hidden"),
        },
        inputs={
            "hexagon": Input(Ids.SELECTED, "data"),
            "version": version,
            "more": Input(Ids.DETECTIONS_MORE, "n_clicks"),
            **filter_inputs(),
        },
        prevent_initial_call=True,  # no hexagon is picked when the page opens
    )(bind(views.show_detections, ctx))
