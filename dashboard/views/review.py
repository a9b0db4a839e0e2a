"""The review gallery's views: candidate leopard bursts, highest score first, and the decision
a confirm / reject / relabel button records (append-only, `pipeline.store.reviews`).
"""

from __future__ import annotations

from typing import Any

from dash import no_update

from dashboard.components import folded, review_cards, show_all_button
from dashboard.context import DashboardContext
from dashboard.data import analysis, queries
from dashboard.filters import parse_hexagon
from dashboard.ids import InsightIds
from dashboard.serving.auth import current_user
from dashboard.views.common import view_filters
from pipeline.errors import ConfigError
from pipeline.schema import ReviewDecision
from pipeline.store.reviews import record_review


def show_gallery(
    ctx: DashboardContext,
    hexagon: str | None,
    version: str | None,
    reviews: str | None,
    more: int | None = None,
    **controls: Any,
) -> dict[str, Any]:
    """Candidate leopard bursts (threshold, window, hexagon), highest score first, bursts an
    imported MegaDetector run called likely empty last and badged, the best frame's
    localization box on each thumbnail: the first `review_bursts_shown` of at most
    `max_review_bursts`, all once "Show all" was clicked (`more`: its clicks, odd = all)."""
    hexagon = parse_hexagon(hexagon)

    limit = ctx.settings.max_review_bursts
    with ctx.store.connect() as con:
        overview = queries.survey_overview(con)
        filters = view_filters(overview, controls)
        ctx.store.prepare(con, ctx.settings.gap_days)
        rows = analysis.review_candidates(
            con, filters, hexagon, limit, ctx.store.table("detector_boxes")
        ).to_pylist()
        shown, expanded = folded(rows, ctx.settings.review_bursts_shown, more)
        best = [r["best_image_id"] for r in shown]
        boxes = queries.latest_boxes(con, ctx.store.table("localizations"), best)
    for row in shown:
        row["box"] = boxes.get(row["best_image_id"])
    where = f"hexagon {hexagon}" if hexagon else "all hexagons"
    done = sum(1 for r in rows if r.get("decision"))
    empty = sum(1 for r in rows if r.get("likely_empty"))
    last = f"; {empty} MegaDetector called likely empty last" if empty else ""
    title = (
        f"Review: {len(rows)} candidate leopard bursts in {where} scoring ≥ "
        f"{filters.threshold:.2f}, highest first{last} ({done} reviewed)"
    )
    return {
        "title": title,
        "cards": review_cards(shown, ctx.url_prefix),
        "alert": [],
        **show_all_button(ctx.settings.review_bursts_shown, len(rows), expanded, "bursts"),
    }


def reviewer_name(typed: str | None) -> str:
    """The signed-in user's name; with authentication off ("local"), the typed name if any."""
    user = current_user()
    if user is not None and user.name != "local":
        return user.name
    return (typed or "").strip() or (user.name if user else "local")


def record_decision(
    ctx: DashboardContext,
    triggered: dict[str, Any] | None,
    label: str | None,
    reviewer: str,
) -> dict[str, Any]:
    """Store the decision of the clicked button (`label`: the gallery's "Relabel as" choice,
    which only a relabel uses); return the new reviews signature."""
    if not triggered or triggered.get("type") != InsightIds.REVIEW_BUTTON:
        return {"reviews": no_update, "alert": no_update}
    burst = str(triggered["burst"])
    decision = ReviewDecision(triggered["decision"])
    with ctx.store.connect() as con:
        facts = queries.burst_for_review(con, burst)
    if facts is None:
        raise ConfigError("that burst is not in the store any more")
    image_id, score, model = facts
    record_review(
        ctx.store.data_dir,
        burst_id=burst,
        image_id=image_id,
        decision=decision,
        reviewer=reviewer,
        label=label if isinstance(label, str) else None,
        score=score,
        model_name=model,
    )
    return {"reviews": ctx.store.reviews_signature(), "alert": []}
