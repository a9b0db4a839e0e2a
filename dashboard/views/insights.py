"""The decision views beside the hotspot map: map mode and layer (events, rate, Gi* hot spots,
change, individuals), the event series, diel activity and camera operation.

Plain functions of (context, control values) like `views.hotspots`; the map and series views
there call `map_outputs` and `series_outputs` here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import duckdb
import pyarrow as pa
from dash import no_update

from dashboard import analysis_figures, figures
from dashboard.context import DashboardContext
from dashboard.data import analysis, queries
from dashboard.data.analysis import EffortRules
from dashboard.filters import Filters, parse_hexagon
from dashboard.species import LAYER_LABELS, Layer
from dashboard.views.common import view_filters
from dashboard.views.individuals import individuals_map_outputs
from pipeline.errors import ConfigError, UnciaError

log = logging.getLogger(__name__)


class MapMode(StrEnum):
    # Effort-adjusted first, and the default: raw counts favour hexagons with more cameras.
    RATE = "rate"
    EVENTS = "events"
    SIGNIFICANCE = "significance"
    CHANGE = "change"
    INDIVIDUALS = "individuals"


MODE_LABELS = {
    MapMode.RATE: "Events per 100 trap-nights (effort-adjusted)",
    MapMode.EVENTS: "Independent events (raw counts)",
    MapMode.SIGNIFICANCE: "Hot / cold spots (Gi*)",
    MapMode.CHANGE: "Change between two years",
    MapMode.INDIVIDUALS: "Distinct individuals (minimum known alive)",
}


@dataclass(frozen=True)
class View:
    """What the map shows on top of `Filters`: mode, layer and the two years compared."""

    mode: MapMode = MapMode.RATE
    layer: Layer = Layer.LEOPARD
    year_a: int | None = None
    year_b: int | None = None


def parse_view(mode: Any, layer: Any, year_a: Any = None, year_b: Any = None) -> View:
    """Build a `View` from raw control values; raise ConfigError on unknown values."""
    try:
        parsed_mode = MapMode(mode) if mode else MapMode.RATE
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


# The most hexagons (and camera dots) one map answer draws and its table lists. A survey has a
# few hundred cameras; a deployments table of hundreds of thousands of stations (a careless
# export, or a hostile one) otherwise makes one answer of hundreds of MB (docs/security.md).
# Gi* and the summary's totals still use every hexagon; the ones drawn are those with most
# events (the summary's own order).
MAP_CELLS = 3000


def _bounded(table: pa.Table) -> pa.Table:
    return table.slice(0, MAP_CELLS)


def _change_rank(row: dict[str, Any]) -> tuple[int, str]:
    order = [analysis.Change.APPEARED, analysis.Change.VANISHED, analysis.Change.STAYED]
    change = row["change"]
    return (order.index(change) if change in order else len(order), row["hexagon"])


def rules(ctx: DashboardContext) -> EffortRules:
    s = ctx.settings
    return EffortRules(
        gap_days=s.gap_days,
        min_trap_nights=s.min_trap_nights,
        min_gi_events=s.min_gi_events,
        min_gi_cameras=s.min_gi_cameras,
    )


def effort_rule(ctx: DashboardContext) -> str:
    """How camera operation is counted, in words for titles, summaries and reports."""
    outages, _ = ctx.store.outages()
    text = "each day from deployment start to end"
    if outages is not None:
        text += ", less the reported outages"
    if ctx.settings.gap_days is not None:
        text += (
            f", less stretches of more than {ctx.settings.gap_days} days without a frame "
            "(guessed down from silence)"
        )
    return text


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


def camera_bounds(cameras: pa.Table) -> tuple[float, float, float, float] | None:
    """West, south, east and north of the cameras (analysis.active_cameras); None for none."""
    lngs = [v for v in cameras.column("longitude").to_pylist() if v is not None]
    lats = [v for v in cameras.column("latitude").to_pylist() if v is not None]
    if not lngs or not lats:
        return None
    return min(lngs), min(lats), max(lngs), max(lats)


def map_outputs(
    ctx: DashboardContext,
    con: duckdb.DuckDBPyConnection,
    overview: queries.Overview,
    filters: Filters,
    view: View,
    selected: str | None,
) -> dict[str, Any]:
    """Figure, table rows and a one-line summary for the map callback."""
    ctx.store.prepare(con, ctx.settings.gap_days)
    summary = hotspot_table(ctx, con, overview, filters, view.layer)
    drawn = _bounded(summary)
    shown = set(drawn.column("hexagon").to_pylist())
    cameras = analysis.active_cameras(con, filters, hexagons=sorted(shown), limit=MAP_CELLS)
    style = ctx.tiles.style(camera_bounds(cameras))
    what = {
        Layer.LEOPARD: "leopard",
        Layer.PREY: "ibex & prey",
        Layer.LIVESTOCK: "livestock",
        Layer.PEOPLE: "people",
    }[view.layer]
    withheld = analysis.gi_withheld_reason(summary, rules(ctx))
    if view.mode is MapMode.RATE:
        figure = analysis_figures.rate_map(drawn, style, selected=selected, withheld=withheld)
    elif view.mode is MapMode.SIGNIFICANCE:
        figure = analysis_figures.significance_map(
            drawn, style, selected=selected, withheld=withheld
        )
    elif view.mode is MapMode.CHANGE:
        first, last = default_years(analysis.camera_days_per_year(con))
        year_a = view.year_a or first or 2000
        year_b = view.year_b or last or 2001
        change = analysis.change_between(
            con, filters, ctx.event_gap_minutes(overview), rules(ctx), year_a, year_b, view.layer
        )
        if change.num_rows > MAP_CELLS:  # the hexagons that changed first
            rows = sorted(change.to_pylist(), key=_change_rank)[:MAP_CELLS]
            change = pa.Table.from_pylist(rows, schema=change.schema)
        figure = analysis_figures.change_map(change, style, year_a, year_b, selected=selected)
    elif view.mode is MapMode.INDIVIDUALS:
        cells = drawn.column("hexagon").to_pylist()
        figure, text = individuals_map_outputs(ctx.store, con, filters, cells, style, selected)
        return {"figure": figure, "rows": table_rows(drawn), "summary": text}
    else:
        figure = figures.hotspot_map(drawn, cameras, style, selected=selected)
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
        f"{summary.num_rows} hexagons with working cameras{_capped(summary)} · "
        f"{total} independent {what} "
        f"events {source} · {filters.describe_season()} · "
        f"{withheld or f'{hot} Gi* hot spot(s) (outlined)'} · "
        f"{low} with too little effort (< {ctx.settings.min_trap_nights} trap-nights) · "
        f"trap-nights: {effort_rule(ctx)}"
    )
    return {"figure": figure, "rows": table_rows(drawn), "summary": text}


def _capped(summary: pa.Table) -> str:
    if summary.num_rows <= MAP_CELLS:
        return ""
    return f" (the {MAP_CELLS:,} with most events drawn and listed)"


def series_outputs(
    ctx: DashboardContext,
    con: duckdb.DuckDBPyConnection,
    overview: queries.Overview,
    filters: Filters,
    layer: Layer,
    hexagon: str | None,
) -> Any:
    """The weekly or monthly series for the selected hexagon (or every hexagon)."""
    ctx.store.prepare(con, ctx.settings.gap_days)
    series = analysis.layer_series(con, filters, ctx.event_gap_minutes(overview), layer, hexagon)
    where = f"hexagon {hexagon}" if hexagon else "all hexagons"
    title = (
        f"{LAYER_LABELS[layer]}: independent events per {filters.period.value} · {where} · "
        f"{filters.describe_season()}"
    )
    return figures.event_series_figure(series, filters.period, title=title)


PARTIAL_YEAR = 0.5  # a year with less than half the busiest year's camera-days is partial


def default_years(days: dict[int, int]) -> tuple[int | None, int | None]:
    """The two years the change map compares at first: the last two with data for most of the
    year (a last year of 3 days would leave every hexagon grey), else the last two at all."""
    years = sorted(days)
    if not years:
        return None, None
    busiest = max(days.values())
    full = [y for y in years if days[y] >= PARTIAL_YEAR * busiest]
    pick = full if len(full) >= 2 else years
    return (pick[-2] if len(pick) > 1 else pick[0]), pick[-1]


def year_options(ctx: DashboardContext, version: str | None) -> dict[str, Any]:
    """The years the survey covers, for the change map's two dropdowns; partial years say so."""
    try:
        with ctx.store.connect() as con:
            days = analysis.camera_days_per_year(con)
    except UnciaError:
        log.info("year_options: no readable store yet")
        return dict.fromkeys(("options_a", "options_b", "value_a", "value_b"), no_update)
    busiest = max(days.values(), default=0)
    options = [
        {
            "label": f"{y} (partial)" if d < PARTIAL_YEAR * busiest else str(y),
            "value": y,
        }
        for y, d in sorted(days.items())
    ]
    year_a, year_b = default_years(days)
    return {"options_a": options, "options_b": options, "value_a": year_a, "value_b": year_b}


def _stations_in(stations: int, where: str) -> str:
    return f"the 1 station in {where}" if stations == 1 else f"all {stations} stations in {where}"


def describe_window(filters: Filters) -> str:
    """The date range and season of `filters` in words, e.g. "2021-01-05 to 2024-11-30, winter"."""
    start = filters.start.isoformat() if filters.start else "first day"
    end = filters.end.isoformat() if filters.end else "last day"
    return f"{start} to {end} · {filters.describe_season()}"


def update_insights(
    ctx: DashboardContext,
    version: str | None,
    selected: str | None,
    layer: str | None,
    reviews: str | None,
    **controls: Any,
) -> dict[str, Any]:
    """Diel activity and the camera operation timeline for the selected hexagon (or all)."""
    view = parse_view(None, layer)
    selected = parse_hexagon(selected)
    with ctx.store.connect() as con:
        overview = queries.survey_overview(con)
        filters = view_filters(overview, controls)
        ctx.store.prepare(con, ctx.settings.gap_days)
        gap = ctx.event_gap_minutes(overview)
        diel = analysis.diel_activity(con, filters, gap, view.layer, selected)
        timeline = analysis.operation_timeline(con, filters, selected)
    where = f"hexagon {selected}" if selected else "all hexagons"
    stations = len(set(timeline.column("locationID").to_pylist()))
    return {
        "diel": analysis_figures.diel_figure(
            diel, title=f"{LAYER_LABELS[view.layer]} by hour of day · {where}"
        ),
        "timeline": analysis_figures.timeline_figure(
            timeline,
            title=(
                f"Camera operation of {_stations_in(stations, where)} · "
                f"{describe_window(filters)}<br><sub>{analysis_figures.TIMELINE_KEY} · "
                f"trap-nights: {effort_rule(ctx)}</sub>"
            ),
        ),
        "alert": [],
    }
