"""Downloads of the current view: hotspot CSV, GeoJSON, GeoPackage, HTML and PDF reports
(optionally generalized for the public), the reviews as training labels, and the occupancy and
SECR histories (views.history_downloads).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from dashboard.context import DashboardContext
from dashboard.data import analysis, queries
from dashboard.exports import (
    ReportContext,
    generalize_for_public,
    hotspots_csv,
    hotspots_geojson,
    hotspots_geopackage,
    report_html,
    report_pdf,
    with_provenance,
)
from dashboard.filters import parse_hexagon
from dashboard.species import LAYER_LABELS
from dashboard.views.common import view_filters
from dashboard.views.history_downloads import build_history_export
from dashboard.views.insights import effort_rule, hotspot_table, parse_view, rules
from pipeline.store.reviews import training_labels_csv


class ExportFormat(StrEnum):
    CSV = "csv"
    GEOJSON = "geojson"
    GPKG = "gpkg"
    HTML = "html"
    PDF = "pdf"
    LABELS = "labels"
    OCCUPANCY = "occupancy"
    SECR = "secr"


EXPORT_LABELS = {
    ExportFormat.CSV: "Hotspot table (CSV)",
    ExportFormat.GEOJSON: "Hexagons (GeoJSON)",
    ExportFormat.GPKG: "Hexagons (GeoPackage)",
    ExportFormat.HTML: "Report (HTML)",
    ExportFormat.PDF: "Report (PDF)",
    ExportFormat.LABELS: "Reviews as training labels (CSV)",
    ExportFormat.OCCUPANCY: "Occupancy detection history (zip)",
    ExportFormat.SECR: "SECR captures and traps (zip)",
}


def build_export(
    ctx: DashboardContext,
    fmt: str,
    public: bool,
    selected: str | None = None,
    map_mode: Any = None,
    layer: Any = None,
    occasion: Any = None,
    **controls: Any,
) -> tuple[bytes, str]:
    """The bytes and file name of one export of the current view (`occasion`: the histories'
    occasion length in days, as typed)."""
    fmt = ExportFormat(fmt)
    if fmt in (ExportFormat.OCCUPANCY, ExportFormat.SECR):
        return build_history_export(ctx, fmt.value, public, occasion, **controls)
    selected = parse_hexagon(selected)
    view = parse_view(map_mode, layer)
    stamp = datetime.now(UTC)
    if fmt is ExportFormat.LABELS:
        with ctx.store.connect() as con:
            text = training_labels_csv(ctx.store.reviews(), queries.image_paths(con))
        return text.encode("utf-8"), f"uncia-labels-{stamp:%Y%m%d-%H%M%S}.csv"
    with ctx.store.connect() as con:
        overview = queries.survey_overview(con)
        filters = view_filters(overview, controls)
        ctx.store.prepare(con, ctx.settings.gap_days)
        summary = hotspot_table(ctx, con, overview, filters, view.layer)
        series = analysis.layer_series(
            con, filters, ctx.event_gap_minutes(overview), view.layer, selected
        )
    withheld = analysis.gi_withheld_reason(summary, rules(ctx))
    if public:
        summary = generalize_for_public(
            summary, ctx.settings.public_resolution, ctx.settings.public_min_cameras
        )
    window = f"{filters.start or overview.first_day} to {filters.end or overview.last_day}"
    source = (
        "human-verified bursts"
        if filters.verified_only
        else f"machine detections at score ≥ {filters.threshold:.2f}"
    )
    provenance = {
        "view_window": window,
        "view_season": filters.describe_season(),
        "view_layer": LAYER_LABELS[view.layer],
        "view_counted_from": source,
        "model": f"{overview.model_name} ({overview.backbone})",
        "data_through": str(overview.last_day or ""),
        "simulated": "yes" if overview.is_demo else "no",
        "trap_nights_rule": effort_rule(ctx),
        "gi_star": (
            "left out of the public version"
            if public
            else withheld or "Getis-Ord Gi*, Benjamini–Hochberg q < 0.05"
        ),
        "public_version": "yes" if public else "no",
        "exported_at": f"{stamp:%Y-%m-%d %H:%M:%S} UTC",
    }
    # Seconds and the view's digest: two exports of one day (or of two views) never share a
    # name, so a download does not silently replace the other.
    view_key = {**controls, "mode": map_mode, "layer": layer, "public": public}
    digest = hashlib.sha256(repr(sorted(view_key.items())).encode()).hexdigest()[:6]
    base = f"uncia-hotspots-{'public-' if public else ''}{stamp:%Y%m%d-%H%M%S}-{digest}"
    described = with_provenance(summary, provenance)
    if fmt is ExportFormat.CSV:
        return hotspots_csv(described), f"{base}.csv"
    if fmt is ExportFormat.GEOJSON:
        return hotspots_geojson(described, provenance), f"{base}.geojson"
    if fmt is ExportFormat.GPKG:
        description = "; ".join(f"{k}: {v}" for k, v in provenance.items())
        return hotspots_geopackage(described, description=description), f"{base}.gpkg"
    report = ReportContext(
        title="Uncia — snow leopard survey report",
        generated_at=stamp,
        window=window,
        season=filters.describe_season(),
        layer=LAYER_LABELS[view.layer],
        source=source,
        threshold=filters.threshold,
        model=f"{overview.model_name} ({overview.backbone})",
        event_gap_minutes=ctx.event_gap_minutes(overview),
        effort=effort_rule(ctx),
        min_trap_nights=ctx.settings.min_trap_nights,
        resolution=ctx.settings.public_resolution if public else filters.resolution,
        public=public,
        simulated=overview.is_demo,
        data_through=provenance["data_through"],
        gi_note=None if public else withheld,
    )
    document = report_html(report, summary, series)
    if fmt is ExportFormat.HTML:
        return document, f"{base}.html"
    return report_pdf(document), f"{base}.pdf"
