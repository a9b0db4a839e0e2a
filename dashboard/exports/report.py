"""A self-contained HTML report of the current view (SVG map, series, table, methods) and a PDF.

The HTML names no external resource: the map and series are inline SVG drawn here, so the file
opens offline and prints as it looks. The PDF is that HTML printed by headless Chromium.
"""

from __future__ import annotations

import html
import math
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa

from pipeline.errors import UnciaError
from pipeline.hexgrid import cell_outline

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
HOT, COLD, NEUTRAL, LOW_EFFORT = "#c0392b", "#2c7bb6", "#f3e3b3", "#bdbdbd"


class ExportError(UnciaError):
    """An export could not be produced (e.g. no Chromium for the PDF)."""


@dataclass(frozen=True)
class ReportContext:
    """What the methods paragraph states about the view the report was made from."""

    title: str
    generated_at: datetime
    window: str  # e.g. "2021-01-01 to 2022-12-31"
    season: str
    layer: str
    source: str  # "machine detections at score ≥ 0.50" or "human-verified bursts"
    threshold: float
    model: str
    event_gap_minutes: float
    effort: str  # how trap-nights were counted (views.insights.effort_rule)
    min_trap_nights: int
    resolution: int
    public: bool = False
    simulated: bool = False


def _colour(row: dict) -> str:
    cls = row.get("hotspot")
    if cls == "hot":
        return HOT
    if cls == "cold":
        return COLD
    if cls == "too little effort" or not row.get("trap_nights"):
        return LOW_EFFORT
    rate = row.get("events_per_100_trap_nights") or 0.0
    # pale sand to deep red with the rate (log scale, 10 per 100 trap-nights is the top)
    t = min(1.0, math.log1p(rate) / math.log1p(10.0))
    r, g, b = 246 - int(t * 119), 241 - int(t * 241), 228 - int(t * 228)
    return f"#{r:02x}{g:02x}{b:02x}"


def svg_map(summary: pa.Table, width: int = 640, height: int = 420) -> str:
    """Hexagons as SVG polygons (equirectangular, north up), coloured by Gi* class or rate."""
    rows = summary.to_pylist()
    if not rows:
        return "<p>No camera was working in this window.</p>"
    outlines = [cell_outline(r["hexagon"]) for r in rows]
    lngs = [p[0] for o in outlines for p in o]
    lats = [p[1] for o in outlines for p in o]
    lat_c = (min(lats) + max(lats)) / 2
    kx = math.cos(math.radians(lat_c))
    span_x = max((max(lngs) - min(lngs)) * kx, 1e-6)
    span_y = max(max(lats) - min(lats), 1e-6)
    scale = min((width - 20) / span_x, (height - 20) / span_y)
    parts = []
    for row, outline in zip(rows, outlines, strict=True):
        points = " ".join(
            f"{10 + (lng - min(lngs)) * kx * scale:.1f},{10 + (max(lats) - lat) * scale:.1f}"
            for lng, lat in outline
        )
        tip = html.escape(
            f"{row['hexagon']}: {row['events']} events, {row['trap_nights']} trap-nights"
        )
        parts.append(
            f'<polygon points="{points}" fill="{_colour(row)}" stroke="#5b5340" '
            f'stroke-width="0.7"><title>{tip}</title></polygon>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="hotspot map">{"".join(parts)}</svg>'
    )


def svg_series(series: pa.Table, width: int = 640, height: int = 180) -> str:
    """Events per period as SVG bars, first and last period labelled."""
    rows = series.to_pylist()
    if not rows:
        return "<p>No camera was working in this window.</p>"
    top = max(1, *(r["events"] for r in rows))
    bar = (width - 40) / len(rows)
    bars = "".join(
        f'<rect x="{30 + i * bar:.1f}" y="{height - 20 - (height - 40) * r["events"] / top:.1f}" '
        f'width="{max(bar - 1, 0.5):.1f}" height="{(height - 40) * r["events"] / top:.1f}" '
        f'fill="#c2452d"><title>{r["period"]}: {r["events"]} events</title></rect>'
        for i, r in enumerate(rows)
    )
    labels = (
        f'<text x="30" y="{height - 4}" font-size="11">{rows[0]["period"]}</text>'
        f'<text x="{width - 10}" y="{height - 4}" font-size="11" text-anchor="end">'
        f'{rows[-1]["period"]}</text><text x="2" y="18" font-size="11">{top}</text>'
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="event series">{bars}{labels}</svg>'
    )


def methods_paragraph(ctx: ReportContext, summary: pa.Table) -> str:
    cameras = sum(summary.column("cameras").to_pylist()) if summary.num_rows else 0
    nights = sum(summary.column("trap_nights").to_pylist()) if summary.num_rows else 0
    events = sum(summary.column("events").to_pylist()) if summary.num_rows else 0
    text = (
        f"Layer: {ctx.layer}, counted from {ctx.source}. Model: {ctx.model}. Window "
        f"{ctx.window}, {ctx.season}. Frames within 60 s form a burst; bursts at least "
        f"{ctx.event_gap_minutes:g} minutes apart at the same camera are independent events. "
        f"Effort: {cameras} camera(s) and {nights} trap-nights, counting {ctx.effort}. "
        f"{events} independent events in all. Hexagons are H3 resolution "
        f"{ctx.resolution}; the relative abundance index is events per 100 trap-nights. "
        f"Hexagons with fewer than {ctx.min_trap_nights} trap-nights are marked as too little "
        "effort and left out of the significance test. Hotspots are Getis-Ord Gi* over H3 "
        "neighbours (each hexagon and its first ring, binary weights) with two-sided normal "
        "p-values adjusted by Benjamini–Hochberg (q < 0.05). Other species layers are "
        "zero-shot ImageNet label groupings, not identifications."
    )
    if ctx.public:
        text += (
            " Public version: locations are generalized to coarser hexagons and cells with "
            "few cameras are suppressed."
        )
    return text


def _table(summary: pa.Table, limit: int = 40) -> str:
    cols = summary.column_names
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = []
    for row in summary.slice(0, limit).to_pylist():
        cells = []
        for c in cols:
            v = row[c]
            text = f"{v:.3g}" if isinstance(v, float) else ("" if v is None else str(v))
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    more = (
        f"<p>The first {limit} of {summary.num_rows} hexagons.</p>"
        if summary.num_rows > limit
        else ""
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}"


def report_html(ctx: ReportContext, summary: pa.Table, series: pa.Table) -> bytes:
    """The report as one UTF-8 HTML document with no external resources."""
    banner = (
        '<p class="banner">Simulated data: the demo survey, not real observations.</p>'
        if ctx.simulated
        else ""
    )
    legend = (
        f'<p class="legend"><span style="background:{HOT}"></span>Gi* hot spot '
        f'<span style="background:{COLD}"></span>cold spot '
        f'<span style="background:{LOW_EFFORT}"></span>too little effort; other hexagons '
        "shaded by events per 100 trap-nights.</p>"
    )
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(ctx.title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; color: #222; max-width: 900px; margin: 20px auto; }}
h1 {{ font-size: 22px; }} h2 {{ font-size: 16px; margin-top: 22px; }}
table {{ border-collapse: collapse; font-size: 12px; }}
td, th {{ border: 1px solid #ccc; padding: 3px 6px; text-align: right; }}
.banner {{ background: #fff4c2; border: 1px solid #d9b400; padding: 6px 10px; }}
.legend span {{ display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 10px; }}
</style></head><body>
<h1>{html.escape(ctx.title)}</h1>
<p>Generated {ctx.generated_at:%Y-%m-%d %H:%M UTC}.</p>
{banner}
<h2>Methods</h2><p id="methods">{html.escape(methods_paragraph(ctx, summary))}</p>
<h2>Map</h2>{svg_map(summary)}{legend}
<h2>Events over time</h2>{svg_series(series)}
<h2>Hexagons</h2>{_table(summary)}
</body></html>"""
    return doc.encode("utf-8")


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def report_pdf(html_bytes: bytes, timeout_s: float = 60.0) -> bytes:
    """Print `html_bytes` to PDF with headless Chromium; raise ExportError without one."""
    chromium = find_chromium()
    if chromium is None:
        raise ExportError("the PDF needs Chromium installed on the server (HTML works without)")
    with tempfile.TemporaryDirectory(prefix="uncia-pdf-") as tmp:
        source, target = Path(tmp) / "report.html", Path(tmp) / "report.pdf"
        source.write_bytes(html_bytes)
        command = [
            chromium,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--no-pdf-header-footer",
            f"--user-data-dir={tmp}/profile",
            f"--print-to-pdf={target}",
            source.as_uri(),
        ]
        try:
            subprocess.run(command, capture_output=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ExportError("printing the PDF took too long") from exc
        if not target.exists() or target.stat().st_size == 0:
            raise ExportError("Chromium did not print the PDF")
        return target.read_bytes()
