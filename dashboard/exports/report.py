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
    data_through: str = ""  # the last deployment day in the store
    gi_note: str | None = None  # why Gi* was not tested, when it was not


LEGEND_FRACTIONS = (0.0, 0.05, 0.1, 0.25, 0.5, 1.0)  # of the scale's top, for the legend


def rate_top(summary: pa.Table) -> float:
    """The darkest colour's rate: the view's highest rate rounded up to 1, 2 or 5 x 10^k (a
    fixed top of 10 once made 18 of 45 hexagons darkest red)."""
    rates = [
        r["events_per_100_trap_nights"]
        for r in summary.to_pylist()
        if r.get("events_per_100_trap_nights") and r.get("enough_effort") is not False
    ]
    top = max(rates, default=1.0)
    magnitude = 10 ** math.floor(math.log10(top))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= top)


def rate_colour(rate: float, top: float = 10.0) -> str:
    """Pale sand to deep red with events per 100 trap-nights (log scale, `top` and above
    darkest)."""
    t = min(1.0, math.log1p(max(rate, 0.0)) / math.log1p(top))
    r, g, b = 246 - int(t * 119), 241 - int(t * 241), 228 - int(t * 228)
    return f"#{r:02x}{g:02x}{b:02x}"


def _fill(row: dict, top: float) -> str:
    """A hexagon's fill: the rate alone; grey without enough effort. Gi* is an outline."""
    if row.get("hotspot") == "too little effort" or not row.get("trap_nights"):
        return LOW_EFFORT
    if row.get("enough_effort") is False:
        return LOW_EFFORT
    return rate_colour(row.get("events_per_100_trap_nights") or 0.0, top)


def _outline(row: dict) -> tuple[str, float]:
    """Stroke colour and width: Gi* hot and cold spots stand out from the fill."""
    if row.get("hotspot") == "hot":
        return "#111111", 3.0
    if row.get("hotspot") == "cold":
        return COLD, 3.0
    return "#5b5340", 0.7


def svg_map(summary: pa.Table, width: int = 640, height: int = 420) -> str:
    """Hexagons as SVG polygons (equirectangular, north up), filled by the rate, Gi* hot and
    cold spots outlined; scales to the page width (viewBox)."""
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
    top = rate_top(summary)
    parts = []
    # Plain hexagons first, outlined ones last, so a neighbour never paints over an outline.
    order = sorted(range(len(rows)), key=lambda i: _outline(rows[i])[1])
    for i in order:
        row, outline = rows[i], outlines[i]
        points = " ".join(
            f"{10 + (lng - min(lngs)) * kx * scale:.1f},{10 + (max(lats) - lat) * scale:.1f}"
            for lng, lat in outline
        )
        rate = row.get("events_per_100_trap_nights")
        tip = html.escape(
            f"{row['hexagon']}: {row['events']} events, {row['trap_nights']} trap-nights"
            + ("" if rate is None else f", {rate:.2f} per 100")
            + (f", Gi* {row['hotspot']}" if row.get("hotspot") else "")
        )
        stroke, stroke_width = _outline(row)
        parts.append(
            f'<polygon points="{points}" fill="{_fill(row, top)}" stroke="{stroke}" '
            f'stroke-width="{stroke_width}" data-hotspot="{html.escape(row.get("hotspot") or "")}">'
            f"<title>{tip}</title></polygon>"
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" style="max-width:{width}px" role="img" aria-label="hotspot map">'
        f'{"".join(parts)}</svg>'
    )


def map_legend(summary: pa.Table) -> str:
    """The map's key: numbers on the rate colours, grey, and the Gi* outlines only when the
    table carries Gi* (the public version does not)."""
    top = rate_top(summary)
    swatches = "".join(
        f'<span class="swatch" style="background:{rate_colour(f * top, top)}"></span>'
        f"{f * top:.3g}{'+' if f == 1.0 else ''} "
        for f in LEGEND_FRACTIONS
    )
    parts = [
        f"<span>Events per 100 trap-nights: {swatches}</span>",
        f'<span><span class="swatch" style="background:{LOW_EFFORT}"></span>too little effort'
        "</span>",
    ]
    if "hotspot" in summary.column_names:
        parts.append(
            '<span><span class="swatch outline" style="border-color:#111111"></span>'
            "Gi* hot spot (outline)</span>"
        )
        parts.append(
            f'<span><span class="swatch outline" style="border-color:{COLD}"></span>'
            "Gi* cold spot (outline)</span>"
        )
    return f'<p class="legend">{" ".join(parts)}</p>'


def svg_series(series: pa.Table, width: int = 640, height: int = 180) -> str:
    """Events per period as SVG bars on a time axis: periods without a working camera leave
    their gap (between winters, say) instead of being squeezed out."""
    rows = series.to_pylist()
    if not rows:
        return "<p>No camera was working in this window.</p>"
    top = max(1, *(r["events"] for r in rows))
    days = [r["period"].toordinal() for r in rows]
    steps = [b - a for a, b in zip(days, days[1:], strict=False)]
    step = min(steps) if steps else 7  # a week or about a month
    first, last = days[0], days[-1] + step
    per_day = (width - 40) / max(last - first, 1)
    bars = "".join(
        f'<rect x="{30 + (d - first) * per_day:.1f}" '
        f'y="{height - 20 - (height - 40) * r["events"] / top:.1f}" '
        f'width="{max(step * per_day - 1, 0.5):.1f}" '
        f'height="{(height - 40) * r["events"] / top:.1f}" '
        f'fill="#c2452d"><title>{r["period"]}: {r["events"]} events, '
        f'{r["trap_nights"]} trap-nights</title></rect>'
        for d, r in zip(days, rows, strict=True)
    )
    labels = (
        f'<text x="30" y="{height - 4}" font-size="11">{rows[0]["period"]}</text>'
        f'<text x="{width - 10}" y="{height - 4}" font-size="11" text-anchor="end">'
        f'{rows[-1]["period"]}</text><text x="2" y="18" font-size="11">{top}</text>'
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" style="max-width:{width}px" role="img" aria-label="event series">'
        f"{bars}{labels}</svg>"
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
    if ctx.gi_note:
        text += f" {ctx.gi_note}: no hexagon is marked hot or cold."
    if ctx.public:
        text += (
            " Public version: locations are generalized to coarser hexagons and cells with "
            "few cameras are suppressed."
        )
    return text


COLUMN_NAMES = {
    "hexagon": "Hexagon (H3)",
    "stations": "Stations",
    "events": "Events",
    "cameras": "Cameras",
    "trap_nights": "Trap-nights",
    "events_per_100_trap_nights": "Events per 100 trap-nights",
    "enough_effort": "Enough effort",
    "gi_z": "Gi* z",
    "gi_p": "Gi* p",
    "gi_q": "Gi* q (FDR)",
    "hotspot": "Gi* class",
}


def _table(summary: pa.Table) -> str:
    """Every hexagon (the report is the record of the view), with readable column names."""
    cols = [c for c in summary.column_names if c != "gi_p"]
    head = "".join(f"<th>{html.escape(COLUMN_NAMES.get(c, c))}</th>" for c in cols)
    body = []
    for row in summary.to_pylist():
        cells = []
        for c in cols:
            v = row[c]
            if isinstance(v, bool):
                text = "yes" if v else "no"
            elif isinstance(v, float):
                text = f"{v:.3g}"
            else:
                text = "" if v is None else str(v)
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (
        # Focusable: a keyboard can scroll a table wider than the screen.
        '<div class="wide" tabindex="0" role="region" aria-label="Hexagons (table)">'
        f"<table><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _view_list(ctx: ReportContext) -> str:
    """The view's filters and provenance, one line each."""
    items = [
        ("Window", ctx.window),
        ("Season", ctx.season),
        ("Layer", ctx.layer),
        ("Counted from", ctx.source),
        ("Model", ctx.model),
        ("Data through", ctx.data_through or "unknown"),
        ("Hexagons", f"H3 resolution {ctx.resolution}"),
        ("Simulated data", "yes" if ctx.simulated else "no"),
        ("Public version", "yes" if ctx.public else "no"),
    ]
    rows = "".join(
        f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in items
    )
    return f'<dl class="view">{rows}</dl>'


def report_html(ctx: ReportContext, summary: pa.Table, series: pa.Table) -> bytes:
    """The report as one UTF-8 HTML document with no external resources."""
    banner = (
        '<p class="banner">Simulated data: the demo survey, not real observations.</p>'
        if ctx.simulated
        else ""
    )
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(ctx.title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
@page {{ size: A4; margin: 14mm; }}
body {{ font-family: system-ui, sans-serif; color: #222; max-width: 900px; margin: 20px auto;
        padding: 0 12px; }}
h1 {{ font-size: 22px; }} h2 {{ font-size: 16px; margin-top: 22px; }}
table {{ border-collapse: collapse; font-size: 12px; }}
td, th {{ border: 1px solid #ccc; padding: 3px 6px; text-align: right; }}
th {{ text-align: left; }}
thead {{ display: table-header-group; }}
.wide {{ overflow-x: auto; }}
.banner {{ background: #fff4c2; border: 1px solid #d9b400; padding: 6px 10px; }}
.legend {{ font-size: 12px; display: flex; flex-wrap: wrap; gap: 4px 16px; }}
.swatch {{ display: inline-block; width: 12px; height: 12px; margin: 0 3px 0 6px;
           vertical-align: middle; border: 1px solid #5b5340; box-sizing: border-box; }}
.swatch.outline {{ border-width: 3px; background: #fff; }}
dl.view {{ display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; font-size: 13px; }}
dl.view dt {{ font-weight: 600; }} dl.view dd {{ margin: 0; }}
</style></head><body><main>
<h1>{html.escape(ctx.title)}</h1>
<p>Generated {ctx.generated_at:%Y-%m-%d %H:%M UTC}.</p>
{banner}
<h2>This view</h2>{_view_list(ctx)}
<h2>Methods</h2><p id="methods">{html.escape(methods_paragraph(ctx, summary))}</p>
<h2>Map</h2>{svg_map(summary)}{map_legend(summary)}
<h2>Events over time</h2>{svg_series(series)}
<h2>Hexagons</h2>{_table(summary)}
</main></body></html>"""
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
