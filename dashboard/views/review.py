"""The review gallery: candidate leopard bursts, highest score first, with confirm / reject /
relabel buttons (keyboard shortcuts in assets/review_keys.js) and append-only decisions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from dash import dcc, html, no_update

from dashboard.data import analysis, queries
from dashboard.filters import parse_hexagon
from dashboard.pages.hotspots import thumbnail
from dashboard.pages.insights import InsightIds, current_reviews, prepare
from pipeline.errors import ConfigError
from pipeline.schema import ReviewDecision
from pipeline.store.reviews import record_review

if TYPE_CHECKING:
    from dashboard.app import DashboardContext

RELABEL_CHOICES = ("ibex", "livestock", "people", "other_animal", "empty")


def data_attribute(name: str, value: str) -> dict[str, Any]:
    """A `data-*` attribute for a Dash html component (the JS shortcuts read them)."""
    return {f"data-{name}": value}


def review_cards(rows: list[dict[str, Any]], url_prefix: str) -> list[html.Figure]:
    """One focusable card per candidate burst with confirm / reject / relabel buttons; a row's
    "box" (queries.FrameBox of its best frame) is drawn on the thumbnail."""
    cards = []
    for row in rows:
        burst = row["burst_id"]
        decided = (
            f"{row['decision']} ({row['label']}) by {row['reviewer']}"
            if row.get("decision")
            else "not reviewed"
        )

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
                            html.Strong(f"score {row['score']:.3f}"),
                            html.Div(f"{when} · {row['locationName']} · {row['n_frames']} frames"),
                            html.Div(decided, className=f"decision {row.get('decision') or ''}"),
                            html.Div(
                                [
                                    button(ReviewDecision.CONFIRM, "Confirm", "c"),
                                    button(ReviewDecision.REJECT, "Reject", "x"),
                                    dcc.Dropdown(
                                        id={"type": InsightIds.RELABEL, "burst": burst},
                                        options=list(RELABEL_CHOICES),
                                        value=RELABEL_CHOICES[0],
                                        clearable=False,
                                        className="relabel",
                                    ),
                                    button(ReviewDecision.RELABEL, "Relabel", "l"),
                                ],
                                className="review-actions",
                            ),
                        ]
                    ),
                ],
                className="detection review-card",
                tabIndex="0",
                **data_attribute("burst", burst),
            )
        )
    return cards


def show_gallery(
    ctx: DashboardContext,
    hexagon: str | None,
    version: str | None,
    reviews: str | None,
    **controls: Any,
) -> dict[str, Any]:
    """Candidate leopard bursts (threshold, window, hexagon), highest score first, the best
    frame's localization box on each thumbnail."""
    from dashboard.views.hotspots import _filters

    hexagon = parse_hexagon(hexagon)

    limit = ctx.settings.max_review_bursts
    with ctx.reader.connect() as con:
        overview = queries.survey_overview(con)
        filters = _filters(overview, controls)
        prepare(ctx, con)
        rows = analysis.review_candidates(con, filters, hexagon, limit).to_pylist()
        best = [r["best_image_id"] for r in rows]
        boxes = queries.latest_boxes(con, ctx.settings.data_dir, best)
    for row in rows:
        row["box"] = boxes.get(row["best_image_id"])
    where = f"hexagon {hexagon}" if hexagon else "all hexagons"
    done = sum(1 for r in rows if r.get("decision"))
    title = (
        f"Review: {len(rows)} candidate leopard bursts in {where} scoring ≥ "
        f"{filters.threshold:.2f}, highest first ({done} reviewed)"
    )
    return {"title": title, "cards": review_cards(rows, ctx.url_prefix), "alert": []}


def reviewer_name(typed: str | None) -> str:
    """The signed-in user's name; with authentication off ("local"), the typed name if any."""
    from dashboard.serving.auth import current_user

    user = current_user()
    if user is not None and user.name != "local":
        return user.name
    return (typed or "").strip() or (user.name if user else "local")


def record_decision(
    ctx: DashboardContext,
    triggered: dict[str, Any] | None,
    relabels: dict[str, str],
    reviewer: str,
) -> dict[str, Any]:
    """Store the decision of the clicked button; return the new reviews signature."""
    if not triggered or triggered.get("type") != InsightIds.REVIEW_BUTTON:
        return {"reviews": no_update, "alert": no_update}
    burst = str(triggered["burst"])
    decision = ReviewDecision(triggered["decision"])
    with ctx.reader.connect() as con:
        rows = con.execute(
            "SELECT b.best_image_id, b.score, d.model_name FROM bursts b "
            "LEFT JOIN detections d ON d.image_id = b.best_image_id WHERE b.burst_id = $burst",
            {"burst": burst},
        ).fetchall()
    if not rows:
        raise ConfigError("that burst is not in the store any more")
    image_id, score, model = rows[0]
    record_review(
        ctx.settings.data_dir,
        burst_id=burst,
        image_id=image_id,
        decision=decision,
        reviewer=reviewer,
        label=relabels.get(burst),
        score=score,
        model_name=model,
    )
    return {"reviews": current_reviews(ctx), "alert": []}
