"""The decision views beside the hotspot map: map mode and layer, diel activity, camera
operation, the review gallery and the exports.

Callbacks are plain functions of (context, control values) like those in `callbacks`; the
map and series callbacks there call `map_outputs` and `series_outputs` here.
"""

from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
from dash import ALL, Input, Output, State, dcc, html, no_update

from dashboard import analysis_figures, figures
from dashboard.data import analysis, queries
from dashboard.data.analysis import EffortRules, GapCache
from dashboard.filters import Filters, parse_hexagon
from dashboard.pages.individuals import individuals_map_outputs
from dashboard.species import LAYER_LABELS, Layer
from pipeline.errors import ConfigError, UnciaError
from pipeline.store.reviews import read_reviews, reviews_signature
from pipeline.store.store import StorePaths

if TYPE_CHECKING:
    from dashboard.app import DashboardContext

log = logging.getLogger(__name__)


class MapMode(StrEnum):
    EVENTS = "events"
    RATE = "rate"
    SIGNIFICANCE = "significance"
    CHANGE = "change"
    INDIVIDUALS = "individuals"


MODE_LABELS = {
    MapMode.EVENTS: "Independent events",
    MapMode.RATE: "Events per 100 trap-nights",
    MapMode.SIGNIFICANCE: "Hot / cold spots (Gi*)",
    MapMode.CHANGE: "Change between two years",
    MapMode.INDIVIDUALS: "Distinct individuals (minimum known alive)",
}


class InsightIds:
    MODE = "map-mode"
    LAYER = "layer"
    SOURCE = "source"
    YEAR_A = "year-a"
    YEAR_B = "year-b"
    DIEL = "diel"
    TIMELINE = "timeline"
    INSIGHTS_ALERT = "insights-alert"
    GALLERY = "review-gallery"
    GALLERY_TITLE = "review-title"
    GALLERY_ALERT = "review-alert"
    REVIEWER = "reviewer-name"
    REVIEWS = "reviews-version"
    REVIEW_BUTTON = "review-button"
    RELABEL = "relabel-choice"
    EXPORT_BUTTON = "export-button"
    PUBLIC = "export-public"
    DOWNLOAD = "export-download"
    EXPORT_ALERT = "export-alert"


@dataclass(frozen=True)
class View:
    """What the map shows on top of `Filters`: mode, layer and the two years compared."""

    mode: MapMode = MapMode.EVENTS
    layer: Layer = Layer.LEOPARD
    year_a: int | None = None
    year_b: int | None = None


def parse_view(mode: Any, layer: Any, year_a: Any = None, year_b: Any = None) -> View:
    """Build a `View` from raw control values; raise ConfigError on unknown values."""
    try:
        parsed_mode = MapMode(mode) if mode else MapMode.EVENTS
        parsed_layer = Layer(layer) if layer else Layer.LEOPARD
    except ValueError:
        raise ConfigError(f"unknown map mode or layer {mode!r} / {layer!r}") from None
    years = []
    for value in (year_a, year_b):
        try:
            years.append(None if value in (None, "") else int(value))
        except (TypeError, ValueError):
            raise ConfigError(f"a year must be a number, got {value!r}") from None
    return View(parsed_mode, parsed_layer, years[0], years[1])


# --- shared preparation -------------------------------------------------------------------

_GAP_CACHES: weakref.WeakKeyDictionary[Any, GapCache] = weakref.WeakKeyDictionary()
_GAP_LOCK = threading.Lock()


def rules(ctx: DashboardContext) -> EffortRules:
    s = ctx.settings
    return EffortRules(gap_days=s.gap_days, min_trap_nights=s.min_trap_nights)


def prepare(ctx: DashboardContext, con: duckdb.DuckDBPyConnection) -> None:
    """Register this store's camera gaps (cached per store version) and latest reviews."""
    with _GAP_LOCK:
        shared = StorePaths(ctx.settings.data_dir).dashboard_cache
        cache = _GAP_CACHES.setdefault(ctx.reader, GapCache(shared_folder=shared))
    gaps = cache.get(con, ctx.reader.version(), ctx.settings.gap_days)
    analysis.attach(
        con, gaps, read_reviews(ctx.settings.data_dir), cache_key=f"g{ctx.settings.gap_days}"
    )


def current_reviews(ctx: DashboardContext) -> str:
    return reviews_signature(ctx.settings.data_dir)


def _rate(value: Any, digits: int = 2) -> Any:
    return None if value is None else round(float(value), digits)


def table_rows(summary: pa.Table) -> list[dict[str, Any]]:
    """Hotspot-table rows: figures.hotspot_rows plus rounded Gi* columns."""
    rows = figures.hotspot_rows(summary)
    for row in rows:
        row["gi_z"] = _rate(row.get("gi_z"))
        row["gi_q"] = _rate(row.get("gi_q"), 4)
        row.pop("gi_p", None)
        row["enough_effort"] = "yes" if row.get("enough_effort") else "no"
    return rows


def hotspot_table(
    ctx: DashboardContext,
    con: duckdb.DuckDBPyConnection,
    overview: queries.Overview,
    filters: Filters,
    layer: Layer,
) -> pa.Table:
    """The effort-aware summary with Gi* columns for the current filters and layer."""
    summary = analysis.layer_summary(
        con, filters, ctx.event_gap_minutes(overview), layer, ctx.settings.min_trap_nights
    )
    return analysis.with_significance(summary, rules(ctx))


def map_outputs(
    ctx: DashboardContext,
    con: duckdb.DuckDBPyConnection,
    overview: queries.Overview,
    filters: Filters,
    view: View,
    selected: str | None,
) -> dict[str, Any]:
    """Figure, table rows and a one-line summary for the map callback."""
    prepare(ctx, con)
    summary = hotspot_table(ctx, con, overview, filters, view.layer)
    cameras = analysis.active_cameras(con, filters)
    style = ctx.tiles.style()
    what = {
        Layer.LEOPARD: "leopard",
        Layer.PREY: "ibex & prey",
        Layer.LIVESTOCK: "livestock",
        Layer.PEOPLE: "people",
    }[view.layer]
    if view.mode is MapMode.RATE:
        figure = analysis_figures.rate_map(summary, style, selected=selected)
    elif view.mode is MapMode.SIGNIFICANCE:
        figure = analysis_figures.significance_map(summary, style, selected=selected)
    elif view.mode is MapMode.CHANGE:
        years = analysis.survey_years(con)
        year_a = view.year_a or (years[-2] if len(years) > 1 else years[0] if years else 2000)
        year_b = view.year_b or (years[-1] if years else 2001)
        change = analysis.change_between(
            con, filters, ctx.event_gap_minutes(overview), rules(ctx), year_a, year_b, view.layer
        )
        figure = analysis_figures.change_map(change, style, year_a, year_b, selected=selected)
    elif view.mode is MapMode.INDIVIDUALS:
        cells = summary.column("hexagon").to_pylist()
        figure, text = individuals_map_outputs(
            ctx.settings.data_dir, con, filters, cells, style, selected
        )
        return {"figure": figure, "rows": table_rows(summary), "summary": text}
    else:
        figure = figures.hotspot_map(summary, cameras, style, selected=selected)
    total = sum(summary.column("events").to_pylist())
    low = summary.num_rows - sum(1 for v in summary.column("enough_effort").to_pylist() if v)
    hot = sum(1 for v in summary.column("hotspot").to_pylist() if v == "hot")
    if filters.verified_only:
        source = "human-verified"
    elif view.layer is Layer.LEOPARD:
        source = f"at score ≥ {filters.threshold:.2f}"
    else:
        source = "by zero-shot labels"
    text = (
        f"{summary.num_rows} hexagons with working cameras · {total} independent {what} "
        f"events {source} · {filters.describe_season()} · {hot} Gi* hot spot(s) · "
        f"{low} with too little effort (< {ctx.settings.min_trap_nights} trap-nights)"
    )
    return {"figure": figure, "rows": table_rows(summary), "summary": text}


def series_outputs(
    ctx: DashboardContext,
    con: duckdb.DuckDBPyConnection,
    overview: queries.Overview,
    filters: Filters,
    layer: Layer,
    hexagon: str | None,
) -> Any:
    """The weekly or monthly series for the selected hexagon (or every hexagon)."""
    prepare(ctx, con)
    series = analysis.layer_series(con, filters, ctx.event_gap_minutes(overview), layer, hexagon)
    where = f"hexagon {hexagon}" if hexagon else "all hexagons"
    title = (
        f"{LAYER_LABELS[layer]}: independent events per {filters.period.value} · {where} · "
        f"{filters.describe_season()}"
    )
    return figures.event_series_figure(series, filters.period, title=title)


# --- layout ------------------------------------------------------------------------------


def _control(label: str, *children: Any) -> html.Div:
    return html.Div([html.Label(label), *children], className="control")


def controls(ctx: DashboardContext) -> list[html.Div]:
    """Map mode, layer and detection source controls, added to the page's control bar.

    The change map's years are filled in here, from the store as the page loads, so the map
    is not drawn a second time when they arrive.
    """
    years = year_options(ctx, None)
    return [
        _control(
            "Map shows",
            dcc.RadioItems(
                id=InsightIds.MODE,
                options=[{"label": MODE_LABELS[m], "value": m.value} for m in MapMode],
                value=MapMode.EVENTS.value,
                inline=True,
            ),
            html.Div(
                [
                    html.Span("compare"),
                    dcc.Dropdown(
                        id=InsightIds.YEAR_A,
                        options=_or_empty(years["options_a"]),
                        value=_or_none(years["value_a"]),
                        clearable=True,
                    ),
                    html.Span("with"),
                    dcc.Dropdown(
                        id=InsightIds.YEAR_B,
                        options=_or_empty(years["options_b"]),
                        value=_or_none(years["value_b"]),
                        clearable=True,
                    ),
                ],
                className="months",
            ),
        ),
        _control(
            "Layer",
            dcc.RadioItems(
                id=InsightIds.LAYER,
                options=[{"label": LAYER_LABELS[x], "value": x.value} for x in Layer],
                value=Layer.LEOPARD.value,
                inline=True,
            ),
        ),
        _control(
            "Detections",
            dcc.RadioItems(
                id=InsightIds.SOURCE,
                options=[
                    {"label": "All machine detections", "value": "machine"},
                    {"label": "Human-verified only", "value": "verified"},
                ],
                value="machine",
                inline=True,
            ),
        ),
    ]


def _or_empty(value: Any) -> Any:
    return [] if value is no_update else value


def _or_none(value: Any) -> Any:
    return None if value is no_update else value


def sections() -> list[Any]:
    """Diel activity and camera operation, the review gallery and the exports."""
    from dashboard.views.downloads import EXPORT_LABELS, ExportFormat

    export_buttons = [
        html.Button(
            EXPORT_LABELS[f],
            id={"type": InsightIds.EXPORT_BUTTON, "format": f.value},
            className="export",
            n_clicks=0,
        )
        for f in ExportFormat
    ]
    return [
        html.Section(
            [
                html.Div(id=InsightIds.INSIGHTS_ALERT),
                html.Div(
                    [
                        dcc.Graph(id=InsightIds.DIEL, config={"displaylogo": False}),
                        dcc.Graph(id=InsightIds.TIMELINE, config={"displaylogo": False}),
                    ],
                    className="row insights",
                ),
            ],
            className="panel",
        ),
        html.Section(
            [
                html.H2("Review candidate leopard bursts", id=InsightIds.GALLERY_TITLE),
                html.P(
                    "Keys on a focused card: c confirm, x reject, l relabel, j / k next / "
                    "previous card. Decisions are stored with your name and the time, never "
                    "overwritten.",
                    className="summary",
                ),
                html.Div(
                    [
                        html.Label("Reviewer", htmlFor=InsightIds.REVIEWER),
                        dcc.Input(
                            id=InsightIds.REVIEWER,
                            type="text",
                            placeholder="your name",
                            persistence=True,
                            debounce=True,
                        ),
                    ],
                    className="reviewer",
                ),
                html.Div(id=InsightIds.GALLERY_ALERT),
                html.Div(id=InsightIds.GALLERY, className="detections gallery"),
            ],
            className="panel",
        ),
        html.Section(
            [
                html.H2("Export what is on screen"),
                dcc.Checklist(
                    id=InsightIds.PUBLIC,
                    options=[
                        {
                            "label": "Public version (coarser hexagons, cells with few "
                            "cameras suppressed)",
                            "value": "public",
                        }
                    ],
                    value=[],
                ),
                html.Div(export_buttons, className="exports"),
                html.Div(id=InsightIds.EXPORT_ALERT),
                dcc.Download(id=InsightIds.DOWNLOAD),
            ],
            className="panel",
        ),
        dcc.Store(id=InsightIds.REVIEWS, data=None),
    ]


# --- callbacks ---------------------------------------------------------------------------


def year_options(ctx: DashboardContext, version: str | None) -> dict[str, Any]:
    """The years the survey covers, for the change map's two dropdowns."""
    try:
        with ctx.reader.connect() as con:
            years = analysis.survey_years(con)
    except UnciaError:
        log.info("year_options: no readable store yet")
        return dict.fromkeys(("options_a", "options_b", "value_a", "value_b"), no_update)
    options = [{"label": str(y), "value": y} for y in years]
    return {
        "options_a": options,
        "options_b": options,
        "value_a": years[-2] if len(years) > 1 else (years[0] if years else None),
        "value_b": years[-1] if years else None,
    }


def update_insights(
    ctx: DashboardContext,
    version: str | None,
    selected: str | None,
    layer: str | None,
    reviews: str | None,
    **controls: Any,
) -> dict[str, Any]:
    """Diel activity and the camera operation timeline for the selected hexagon (or all)."""
    from dashboard.views.hotspots import _filters

    view = parse_view(None, layer)
    selected = parse_hexagon(selected)
    with ctx.reader.connect() as con:
        overview = queries.survey_overview(con)
        filters = _filters(overview, controls)
        prepare(ctx, con)
        gap = ctx.event_gap_minutes(overview)
        diel = analysis.diel_activity(con, filters, gap, view.layer, selected)
        timeline = analysis.operation_timeline(con, filters, selected)
    where = f"hexagon {selected}" if selected else "all hexagons"
    return {
        "diel": analysis_figures.diel_figure(
            diel, title=f"{LAYER_LABELS[view.layer]} by hour of day · {where}"
        ),
        "timeline": analysis_figures.timeline_figure(
            timeline,
            title=f"Camera operation · {where} · down = no frame for > "
            f"{ctx.settings.gap_days} days",
        ),
        "alert": [],
    }


def register(app: Any, ctx: DashboardContext, filter_inputs: dict[str, Input]) -> None:
    """Wire the insight, gallery, review and export callbacks to `app`."""
    from dashboard.pages.hotspots import Ids
    from dashboard.serving.auth import Role, require_role
    from dashboard.views.downloads import build_export
    from dashboard.views.hotspots import _bind, page_view, shows_alert
    from dashboard.views.review import record_decision, reviewer_name, show_gallery

    version = Input(Ids.VERSION, "data")
    reviews = Input(InsightIds.REVIEWS, "data")
    app.callback(
        output={
            "options_a": Output(InsightIds.YEAR_A, "options"),
            "options_b": Output(InsightIds.YEAR_B, "options"),
            "value_a": Output(InsightIds.YEAR_A, "value"),
            "value_b": Output(InsightIds.YEAR_B, "value"),
        },
        inputs={"version": version},
        prevent_initial_call=True,
    )(_bind(year_options, ctx))
    page_view(
        app,
        ctx,
        shows_alert("diel", "timeline")(update_insights),
        output={
            "diel": Output(InsightIds.DIEL, "figure"),
            "timeline": Output(InsightIds.TIMELINE, "figure"),
            "alert": Output(InsightIds.INSIGHTS_ALERT, "children"),
        },
        inputs={
            "version": version,
            "selected": Input(Ids.SELECTED, "data"),
            "layer": Input(InsightIds.LAYER, "value"),
            "reviews": reviews,
            **filter_inputs,
        },
    )
    page_view(
        app,
        ctx,
        shows_alert("title", "cards")(show_gallery),
        output={
            "title": Output(InsightIds.GALLERY_TITLE, "children"),
            "cards": Output(InsightIds.GALLERY, "children"),
            "alert": Output(InsightIds.GALLERY_ALERT, "children"),
        },
        inputs={
            "hexagon": Input(Ids.SELECTED, "data"),
            "version": version,
            "reviews": reviews,
            **filter_inputs,
        },
    )

    @require_role(Role.REVIEWER)
    def on_review(clicks: Any, relabel_values: Any, relabel_ids: Any, typed: Any) -> Any:
        import dash

        if not any(c for c in (clicks or []) if c):
            return no_update, no_update
        relabels = {
            i["burst"]: v for i, v in zip(relabel_ids or [], relabel_values or [], strict=False)
        }
        out = shows_alert("reviews")(record_decision)(
            ctx, dash.ctx.triggered_id, relabels, reviewer_name(typed)
        )
        return out["reviews"], out["alert"]

    app.callback(
        Output(InsightIds.REVIEWS, "data"),
        Output(InsightIds.GALLERY_ALERT, "children", allow_duplicate=True),
        Input({"type": InsightIds.REVIEW_BUTTON, "burst": ALL, "decision": ALL}, "n_clicks"),
        State({"type": InsightIds.RELABEL, "burst": ALL}, "value"),
        State({"type": InsightIds.RELABEL, "burst": ALL}, "id"),
        State(InsightIds.REVIEWER, "value"),
        prevent_initial_call=True,
    )(on_review)

    def on_export(clicks: Any, public: Any, selected: Any, mode: Any, layer: Any, **controls: Any):
        import dash

        triggered = dash.ctx.triggered_id
        if not triggered or not any(c for c in (clicks or []) if c):
            return no_update, no_update

        def make(ctx: DashboardContext) -> dict[str, Any]:
            content, name = build_export(
                ctx,
                triggered["format"],
                "public" in (public or []),
                selected=selected,
                map_mode=mode,
                layer=layer,
                **controls,
            )
            return {"download": dcc.send_bytes(content, name), "alert": []}

        out = shows_alert("download")(make)(ctx)
        return out["download"], out["alert"]

    states = {
        name: State(i.component_id, i.component_property) for name, i in filter_inputs.items()
    }
    app.callback(
        output=[Output(InsightIds.DOWNLOAD, "data"), Output(InsightIds.EXPORT_ALERT, "children")],
        inputs={
            "clicks": Input({"type": InsightIds.EXPORT_BUTTON, "format": ALL}, "n_clicks"),
            "public": State(InsightIds.PUBLIC, "value"),
            "selected": State(Ids.SELECTED, "data"),
            "mode": State(InsightIds.MODE, "value"),
            "layer": State(InsightIds.LAYER, "value"),
            **states,
        },
        prevent_initial_call=True,
    )(on_export)
