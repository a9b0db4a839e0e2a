"""Downloads built from what the page shows: hotspot CSV, GeoJSON, GeoPackage, HTML and PDF,
and the occupancy and SECR histories (zip).

Each exporter is a plain function from Arrow tables (and a `ReportContext`) to bytes, tested
without a browser; the page serves them through `dcc.Download`.
"""

from dashboard.exports.histories import history_zip
from dashboard.exports.report import ReportContext, report_html, report_pdf
from dashboard.exports.tables import (
    generalize_for_public,
    hotspots_csv,
    hotspots_geodataframe,
    hotspots_geojson,
    hotspots_geopackage,
    with_provenance,
)

__all__ = [
    "ReportContext",
    "generalize_for_public",
    "history_zip",
    "hotspots_csv",
    "hotspots_geodataframe",
    "hotspots_geojson",
    "hotspots_geopackage",
    "report_html",
    "report_pdf",
    "with_provenance",
]
