"""The page's small building blocks: alerts, the run line, frame thumbnails with their
localization box, detection cards and review cards. Plain Dash html, no callbacks."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from dash import dcc, html

from dashboard.data.queries import FrameBox, Overview
from dashboard.ids import InsightIds
from pipeline.schema import ReviewDecision

DEMO_BANNER = "Simulated data: this is the demo survey, not real observations."


NO_STORE = (
    "No survey data in this folder yet. This page updates by itself once the pipeline "
    "writes its first checkpoint."
)


PICK_HEXAGON = "Click a hexagon on the map, or a row of the table, to see its frames."


# Every chart's toolbar: no "Share chart" (plotly.js 3 shows it by default, and it uploads the
# figure, exact camera positions included, to a public plotting cloud), no Chart Studio link,
# no plotly logo, and no Box / Lasso select, which nothing here listens to.
GRAPH_CONFIG: dict[str, Any] = {
    "displaylogo": False,
    "showSendToCloud": False,
    "showEditInChartStudio": False,
    "showLink": False,
    "sendData": False,
    "plotlyServerURL": "",
    "modeBarButtonsToRemove": ["sendDataToCloud", "editInChartStudio", "select2d", "lasso2d"],
}


def loading(child: Any) -> dcc.Loading:
    """`child` dimmed under a spinner while a callback that updates it runs (after 250 ms, so a
    quick answer does not flicker): stale content never passes for the answer."""
    return dcc.Loading(
        child,
        type="circle",
        delay_show=250,
        # Dimmed, not blurred: a blur filter over a large panel is redrawn on the CPU where
        # there is no GPU, for every frame the spinner turns.
        overlay_style={"visibility": "visible", "opacity": 0.4},
        color="#0b4f8a",
    )


def graph(component_id: str, *, scroll_zoom: bool = False, **kwargs: Any) -> dcc.Graph:
    """A `dcc.Graph` with the page's toolbar (GRAPH_CONFIG); `scroll_zoom` for the map."""
    config = {**GRAPH_CONFIG, "scrollZoom": True} if scroll_zoom else dict(GRAPH_CONFIG)
    return dcc.Graph(id=component_id, config=config, **kwargs)


def more_button(component_id: str) -> html.Button:
    """A gallery's "Show all" toggle (components.show_all_button fills it in), hidden until
    there is more to show."""
    return html.Button(id=component_id, n_clicks=0, hidden=True, className="more")


def alert(message: str) -> html.Div:
    """A visible, screen-reader-announced message box."""
    return html.Div(message, className="alert", role="alert")


def demo_banner(overview: Overview | None) -> list[Any]:
    return [html.Div(DEMO_BANNER, className="banner")] if overview and overview.is_demo else []


def run_info(overview: Overview | None) -> str:
    if overview is None or overview.model_name is None:
        return "No run recorded yet."
    parts = [f"Latest run: model {overview.model_name}", f"backbone {overview.backbone}"]
    if overview.views:
        parts.append(f"views {overview.views}")
    if overview.leopard_threshold is not None:
        parts.append(f"threshold {overview.leopard_threshold:g}")
    if overview.run_status:
        parts.append(overview.run_status)
    return " · ".join(parts)


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if isinstance(value, datetime) else "time unknown"


METHOD_NAMES = {"lime": "LIME", "gradcam": "Grad-CAM", "megadetector": "MegaDetector"}


def box_title(box: FrameBox) -> str:
    """The tooltip of a localization box: how it was found and how sure the model was."""
    if box.method == "view":
        score = "" if box.target_score is None else f", leopard score {box.target_score:.2f}"
        if box.target == "track":
            return (
                f"Moving region tracked through the burst to a view seen as a leopard{score}:"
                " a coarse box; uncia localize refines it"
            )
        if box.target == "detector":
            return (
                f"MegaDetector's box, whose crop scored best{score}: "
                "an animal box from an imported detector run"
            )
        return f"Best-scoring view ({box.target}{score}): a coarse box; uncia localize refines it"
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
        # Plain text lines, not a list of elements: the browser re-checks every component of
        # the page on every update, so each card is as few components as it can be.
        top5 = " · ".join(
            f"{label} {score:.2f}" for label, score in zip(labels, scores, strict=False)
        )
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
                    # One text node, its first line (the score) in bold by CSS.
                    html.Figcaption(
                        f"score {row['score']:.3f}\n{_when(row['captured_at'])}\n{camera}\n"
                        + (f"{row['verdict']}\n" if row.get("verdict") else "")
                        + f"top 5: {top5}",
                        className="lines",
                    ),
                ],
                className="detection",
            )
        )
    return cards


RELABEL_CHOICES = ("ibex", "livestock", "people", "other_animal", "empty")


def data_attribute(name: str, value: str) -> dict[str, Any]:
    """A `data-*` attribute for a Dash html component (the JS shortcuts read them)."""
    return {f"data-{name}": value}


def verdict_text(row: dict[str, Any]) -> str:
    """What a person said of a burst, and where: "verified in review by X: confirm
    (snow_leopard)", "verified: imported from Timelapse (labels.csv): relabel (empty)", or
    "not reviewed" (`row`: a review_candidates row)."""
    if not row.get("decision"):
        return "not reviewed"
    said = f"{row['decision']} ({row['label']})"
    if row.get("origin") == "import":
        return f"verified: {row['reviewer']}: {said}"
    return f"verified in review by {row['reviewer']}: {said}"


# Dark text on pale amber: readable (contrast above 7:1) and not a decision's colour.
LIKELY_EMPTY_STYLE = {
    "background": "#fff1c2",
    "color": "#4a3600",
    "borderRadius": "3px",
    "padding": "0 4px",
    "marginLeft": "6px",
    "fontSize": "85%",
}


def likely_empty_badge(row: dict[str, Any]) -> list[Any]:
    """A small "likely empty" badge for a review candidate whose frames MegaDetector (an
    imported run) called likely empty, its tooltip saying how many; nothing otherwise."""
    if not row.get("likely_empty"):
        return []
    seen = row.get("detector_seen") or 0
    title = (
        f"MegaDetector (imported run) saw {seen} of this burst's {row['n_frames']} frame(s) "
        "and found no animal above its threshold in any: reviewed last"
    )
    return [html.Span("likely empty", className="likely-empty", title=title,
                      style=LIKELY_EMPTY_STYLE)]  # fmt: skip


def show_all_button(shown: int, total: int, expanded: bool, noun: str) -> dict[str, Any]:
    """The "Show all" toggle under a gallery of `total` cards of which the first `shown` are
    drawn folded: its text and whether it is hidden (nothing more to show)."""
    if total <= shown:
        return {"more": "", "more_hidden": True}
    text = f"Show only the first {shown}" if expanded else f"Show all {total} {noun}"
    return {"more": text, "more_hidden": False}


def folded(rows: list[Any], shown: int, clicks: Any) -> tuple[list[Any], bool]:
    """The rows a gallery draws: all when its "Show all" toggle was clicked an odd number of
    times (`clicks`, as the browser sends it), else the first `shown`; and whether expanded."""
    expanded = isinstance(clicks, int) and not isinstance(clicks, bool) and clicks % 2 == 1
    return (rows if expanded else rows[:shown]), expanded


def review_cards(rows: list[dict[str, Any]], url_prefix: str) -> list[html.Figure]:
    """One focusable card per candidate burst with confirm / reject / relabel buttons; a row's
    "box" (queries.FrameBox of its best frame) is drawn on the thumbnail. Relabel gives the
    label chosen in the gallery's one "Relabel as" dropdown (a dropdown per card cost the
    browser ~0.5 CPU-s per redraw of 24 cards)."""
    cards = []
    for row in rows:
        burst = row["burst_id"]
        decided = verdict_text(row)

        def button(decision: ReviewDecision, text: str, key: str, burst: str = burst) -> Any:
            return html.Button(
                text,
                id={"type": InsightIds.REVIEW_BUTTON, "burst": burst, "decision": decision.value},
                n_clicks=0,
                title=f"shortcut: {key}",
                **data_attribute("decision", decision.value),
            )

        when = row["start_time"].strftime("%Y-%m-%d %H:%M") if row.get("start_time") else "?"
        cards.append(
            html.Figure(
                [
                    thumbnail(
                        f"{url_prefix}thumbnail/{quote(row['best_image_id'], safe='')}",
                        f"burst at {row['locationName']}, {when}",
                        row.get("box"),
                    ),
                    html.Figcaption(
                        [
                            *likely_empty_badge(row),
                            html.Div(
                                f"score {row['score']:.3f}\n{when} · {row['locationName']} · "
                                f"{row['n_frames']} frames",
                                className="lines",
                            ),
                            html.Div(decided, className=f"decision {row.get('decision') or ''}"),
                            button(ReviewDecision.CONFIRM, "Confirm", "c"),
                            button(ReviewDecision.REJECT, "Reject", "x"),
                            button(ReviewDecision.RELABEL, "Relabel", "l"),
                        ],
                        className="review-actions",
                    ),
                ],
                className="detection review-card",
                tabIndex="0",
                **data_attribute("burst", burst),
            )
        )
    return cards
