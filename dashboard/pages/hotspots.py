"""The hotspot page: header, controls, map, hotspot table, event series and a hexagon's frames.

`layout(ctx)` runs at every page load, so date bounds and the default threshold follow the store.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from dash import dcc, html
from dash.dash_table.DataTable import DataTable

from dashboard.data.queries import FrameBox, Overview, survey_overview
from dashboard.filters import MONTH_NAMES, SEASON_LABELS, Period, Season
from dashboard.pages import insights
from pipeline.errors import UnciaError

if TYPE_CHECKING:
    from dashboard.app import DashboardContext

log = logging.getLogger(__name__)

TITLE = "Uncia — snow leopard hotspots"
DEMO_BANNER = "Simulated data: this is the demo survey, not real observations."
NO_STORE = (
    "No survey data in this folder yet. This page updates by itself once the pipeline "
    "writes its first checkpoint."
)
PICK_HEXAGON = "Click a hexagon on the map, or a row of the table, to see its frames."
HEX_AREAS_KM2 = {5: "≈250 km²", 6: "≈36 km²", 7: "≈5 km²", 8: "≈0.7 km²", 9: "≈0.1 km²"}


class Ids:
    """Component ids, named once so callbacks and tests agree."""

    VERSION = "data-version"
    REFRESH = "refresh"
    BANNER = "demo-banner"
    RUN_INFO = "run-info"
    STATUS = "status-alert"
    RESOLUTION = "resolution"
    DATES = "date-range"
    SEASON = "season"
    MONTH_START = "month-start"
    MONTH_END = "month-end"
    THRESHOLD = "threshold"
    PERIOD = "period"
    MAP = "hotspot-map"
    MAP_ALERT = "map-alert"
    MAP_SUMMARY = "map-summary"
    TABLE = "hotspot-table"
    SERIES = "event-series"
    SERIES_ALERT = "series-alert"
    SELECTED = "selected-hexagon"
    DETECTIONS = "detections"
    DETECTIONS_TITLE = "detections-title"
    DETECTIONS_ALERT = "detections-alert"


def alert(message: str) -> html.Div:
    """A visible, screen-reader-announced message box."""
    return html.Div(message, className="alert", role="alert")


def demo_banner(overview: Overview | None) -> list[Any]:
    return [html.Div(DEMO_BANNER, className="banner")] if overview and overview.is_demo else []


def run_info(overview: Overview | None) -> str:
    if overview is None or overview.model_name is None:
        return "No run recorded yet."
    parts = [f"Latest run: model {overview.model_name}", f"backbone {overview.backbone}"]
    if overview.leopard_threshold is not None:
        parts.append(f"threshold {overview.leopard_threshold:g}")
    if overview.run_status:
        parts.append(overview.run_status)
    return " · ".join(parts)


def _load_overview(ctx: DashboardContext) -> tuple[Overview | None, str | None]:
    try:
        with ctx.reader.connect() as con:
            return survey_overview(con), ctx.reader.version()
    except UnciaError:
        log.info("layout: no readable store yet in the data folder")
        return None, None


def _control(label: str, *children: Any, html_for: str | None = None) -> html.Div:
    return html.Div([html.Label(label, htmlFor=html_for), *children], className="control")


def controls(ctx: DashboardContext, overview: Overview | None) -> html.Div:
    first = overview.first_day.isoformat() if overview and overview.first_day else None
    last = overview.last_day.isoformat() if overview and overview.last_day else None
    threshold = (
        overview.leopard_threshold if overview and overview.leopard_threshold is not None else 0.5
    )
    months = [{"label": name, "value": i + 1} for i, name in enumerate(MONTH_NAMES)]
    season = Season.ALL.value

    def month_dropdown(component_id: str, month: int) -> dcc.Dropdown:
        # callbacks.toggle_custom_months keeps `disabled` in step once the season changes.
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
            *insights.controls(ctx),
        ],
        className="controls",
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
]


def layout(ctx: DashboardContext) -> html.Div:
    """The whole page, built from the store as it is when the page loads."""
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
            controls(ctx, overview),
            html.Main(
                [
                    html.Section(
                        [
                            html.Div(id=Ids.MAP_ALERT),
                            html.Div(id=Ids.MAP_SUMMARY, className="summary"),
                            dcc.Graph(
                                id=Ids.MAP,
                                config={"scrollZoom": True, "displaylogo": False},
                                className="map",
                            ),
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
                                    {"if": {"column_id": "hexagon"}, "textAlign": "left"}
                                ],
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
                    dcc.Graph(id=Ids.SERIES, config={"displaylogo": False}),
                ],
                className="panel",
            ),
            html.Section(
                [
                    html.H2(PICK_HEXAGON, id=Ids.DETECTIONS_TITLE),
                    html.Div(id=Ids.DETECTIONS_ALERT),
                    html.Div(id=Ids.DETECTIONS, className="detections"),
                ],
                className="panel",
            ),
            *insights.sections(),
            dcc.Store(id=Ids.VERSION, data=version),
            dcc.Store(id=Ids.SELECTED, data=None),
            dcc.Interval(id=Ids.REFRESH, interval=int(ctx.settings.refresh_seconds * 1000)),
        ],
        className="page",
    )


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if isinstance(value, datetime) else "time unknown"


METHOD_NAMES = {"lime": "LIME", "gradcam": "Grad-CAM"}


def box_title(box: FrameBox) -> str:
    """The tooltip of a localization box: how it was found and how sure the model was."""
    method = METHOD_NAMES.get(box.method, box.method)
    score = "" if box.target_score is None else f", {box.target} score {box.target_score:.2f}"
    return f"Animal box from uncia localize ({method}{score})"


def _percent(fraction: float) -> str:
    return f"{100 * min(1.0, max(0.0, fraction)):.2f}%"


def thumbnail(src: str, alt: str, box: FrameBox | None = None) -> Any:
    """A frame's thumbnail; with a `box`, wrapped with an outline drawn over the animal.

    The outline is a div placed in percentages of the wrapper, which the image fills at its own
    aspect ratio: boxes are fractions of the upright frame and thumbnails are upright too
    (EXIF orientation applied), so it lands right whatever the thumbnail's size. Frames
    without a box get the bare image, as before localization existed.
    """
    image = html.Img(src=src, alt=alt)
    if box is None:
        return image
    right = min(1.0, box.x + box.width)
    bottom = min(1.0, box.y + box.height)
    outline = html.Div(
        className="box",
        title=box_title(box),
        style={
            "left": _percent(box.x),
            "top": _percent(box.y),
            "width": _percent(right - max(0.0, box.x)),
            "height": _percent(bottom - max(0.0, box.y)),
        },
    )
    return html.Div([image, outline], className="thumb")


def detection_cards(rows: list[dict[str, Any]], url_prefix: str) -> list[html.Figure]:
    """One card per frame (queries.hexagon_detections rows): thumbnail, time, camera, scores.

    A row's "box" (queries.FrameBox, when `uncia localize` boxed the frame) is drawn on the
    thumbnail."""
    cards = []
    for row in rows:
        labels = row.get("top5_labels") or []
        scores = row.get("top5_scores") or []
        top5 = [
            html.Li(f"{label} {score:.2f}") for label, score in zip(labels, scores, strict=False)
        ]
        camera = row.get("locationName") or row["locationID"]
        if row.get("cameraID"):
            camera = f"{camera} ({row['cameraID']})"
        cards.append(
            html.Figure(
                [
                    thumbnail(
                        f"{url_prefix}thumbnail/{quote(row['image_id'], safe='')}",
                        f"frame at {camera}, {_when(row['captured_at'])}",
                        row.get("box"),
                    ),
                    html.Figcaption(
                        [
                            html.Strong(f"score {row['score']:.3f}"),
                            html.Div(_when(row["captured_at"])),
                            html.Div(camera),
                            html.Ol(top5, className="top5"),
                        ]
                    ),
                ],
                className="detection",
            )
        )
    return cards


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
.top5 { margin: 4px 0 0; padding-left: 18px; color: #555; }
.insights > div { flex: 1 1 480px; min-width: 0; }
.review-card:focus { outline: 3px solid #0b4f8a; }
.review-actions { display: flex; flex-wrap: wrap; gap: 4px; align-items: center; margin-top: 4px; }
.review-actions .relabel { min-width: 110px; }
.decision.confirm { color: #1a7a35; font-weight: 600; }
.decision.reject, .decision.relabel { color: #9b2c1f; font-weight: 600; }
.reviewer { display: flex; gap: 8px; align-items: center; margin: 6px 0; font-size: 13px; }
.exports { display: flex; flex-wrap: wrap; gap: 8px; margin: 8px 0; }
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
