"""The individuals views: the hotspot map's "individuals" mode, the crops of a proposed match,
and the match decision a reviewer records (append-only, `pipeline.store.matches`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from dashboard import individual_figures
from dashboard.context import DashboardContext
from dashboard.data import queries
from dashboard.data.individuals import review_queue
from dashboard.data.store import Store
from dashboard.filters import Filters
from dashboard.serving.auth import current_user
from dashboard.views.common import view_filters
from pipeline.store.matches import record_match_review
from pipeline.store.store import LOCALIZATIONS_DIR

PICTURES_ROUTE = "localization-pictures"  # where pages.individuals serves crops and heat maps


def individuals_map_outputs(
    store: Store,
    con: duckdb.DuckDBPyConnection,
    filters: Filters,
    working_cells: list[str],
    style: dict[str, Any],
    selected: str | None,
) -> tuple[dict[str, Any], str]:
    """The hotspot map's "individuals" mode: the figure and its one-line summary.

    Date range, season, threshold and resolution apply (`queries.individuals_in_view`); the
    layer and the detection source do not: individuals are snow leopards matched by their
    spots, and their human check is the match review. Without `uncia identify` output the
    hexagons with working cameras (`working_cells`) are drawn grey under a note.
    """
    path = store.table("individuals")
    if path is None:
        figure = individual_figures.individuals_map(None, working_cells, style, selected=selected)
        return figure, individual_figures.NOT_IDENTIFIED
    rows = queries.individuals_in_view(con, path, filters).to_pylist()
    figure = individual_figures.individuals_map(rows, working_cells, style, selected=selected)
    distinct = len({i for r in rows for i in r["individual_ids"]})
    sightings = sum(r["sightings"] for r in rows)
    text = (
        f"{distinct} distinct individual(s), minimum known alive, in {len(rows)} hexagon(s) · "
        f"{sightings} identified frame(s) scoring ≥ {filters.threshold:.2f} · "
        f"{filters.describe_season()} · an individual seen in two hexagons counts in both · "
        "layer and detection source do not apply"
    )
    if queries.individuals_simulated(con, path):
        text = "SIMULATED individuals of the demo survey, not real identifications · " + text
    return figure, text


def individuals_table(
    ctx: DashboardContext, version: str | None, **controls: Any
) -> dict[str, Any]:
    """The individuals section's table on the page's resolution and filters (date range,
    season, threshold; as the map's "individuals" mode): one row per hexagon where an
    individual was identified, with its stations, and a one-line summary above it."""
    path = ctx.store.table("individuals")
    with ctx.store.connect() as con:
        overview = queries.survey_overview(con)
        filters = view_filters(overview, controls)
        if path is None:
            return {"rows": [], "summary": individual_figures.NOT_IDENTIFIED, "alert": []}
        per_hexagon = queries.individuals_in_view(con, path, filters).to_pylist()
        stations = {
            r["hexagon"]: queries.hexagon_stations(con, filters, r["hexagon"]) for r in per_hexagon
        }
        simulated = queries.individuals_simulated(con, path)
    rows = [
        {
            "hexagon": r["hexagon"],
            "stations": stations[r["hexagon"]],
            "individuals": r["individuals"],
            "sightings": r["sightings"],
            "names": ", ".join(r["individual_ids"]),
        }
        for r in per_hexagon
    ]
    distinct = len({i for r in per_hexagon for i in r["individual_ids"]})
    text = (
        f"{distinct} distinct individual(s) in {len(rows)} hexagon(s) of H3 resolution "
        f"{filters.resolution} · identified frames scoring ≥ {filters.threshold:.2f} · "
        f"{filters.describe_season()} · an individual seen in two hexagons counts in both"
    )
    if simulated:
        text = "SIMULATED individuals of the demo survey, not real identifications · " + text
    return {"rows": rows, "summary": text, "alert": []}


def decide_match(store: Store, pair: str | None, decision: str) -> str:
    """Record the signed-in reviewer's decision on `pair` ("query_id|candidate_id").

    Returns the line the page shows; a pair that is not a proposed match is not recorded.
    Runs only for reviewers (see `require_role` in `register`).
    """
    if not pair or "|" not in pair:
        return "Pick a proposed match first."
    # Only pairs `uncia identify` proposed: a crafted "a|b" would otherwise join any two frames
    # (or ids that exist nowhere) into one individual at the next identify.
    proposed = {f"{q['query_id']}|{q['candidate_id']}" for q in review_queue(store)}
    if pair not in proposed:
        return "That pair is not a proposed match: pick one from the list."
    query_id, candidate_id = pair.split("|", 1)
    user = current_user()
    reviewer = user.name if user is not None else "local"
    record_match_review(store.data_dir, query_id, candidate_id, decision, reviewer)
    return (
        f"{reviewer}: {decision} {query_id} ↔ {candidate_id}. "
        "Run `uncia identify` to update the individuals."
    )


def _picture_url(ctx: DashboardContext, relative: str | None) -> str | None:
    if not relative:
        return None
    inside = Path(relative).relative_to(LOCALIZATIONS_DIR).as_posix()
    return f"{ctx.url_prefix.rstrip('/')}/{PICTURES_ROUTE}/{inside}"


def show_pair(ctx: DashboardContext, pair: str | None) -> tuple[str | None, str | None]:
    """The crop URLs of the two frames of `pair`."""
    if not pair:
        return None, None
    for q in review_queue(ctx.store):
        if f"{q['query_id']}|{q['candidate_id']}" == pair:
            return _picture_url(ctx, q["query_crop"]), _picture_url(ctx, q["candidate_crop"])
    return None, None
