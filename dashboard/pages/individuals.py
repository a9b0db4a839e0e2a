"""The individuals section: match review (query and candidate crops side by side, accept or
reject) and the number of distinct individuals per hexagon (the minimum known alive).

Reads the files of `uncia localize` and `uncia identify` when present (parquet/localizations,
matches, individuals); decisions go to the append-only match reviews of
`pipeline.store.matches.record_match_review`, with the signed-in reviewer's name.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dash
import duckdb
from dash import Input, Output, State, dcc, html
from dash.dash_table.DataTable import DataTable
from flask import abort, send_from_directory

from dashboard import individual_figures
from dashboard.data import queries
from dashboard.filters import Filters
from dashboard.serving.auth import Role, current_user, require_role
from pipeline.errors import UnciaError
from pipeline.schema import H3_RESOLUTIONS, MatchDecision
from pipeline.store.matches import latest_decisions, record_match_review
from pipeline.store.store import LOCALIZATIONS_DIR, StorePaths

if TYPE_CHECKING:
    from dashboard.app import DashboardContext

log = logging.getLogger(__name__)
PICTURES_ROUTE = "localization-pictures"
DEFAULT_RESOLUTION = 7


class Ids:
    SECTION = "individuals-section"
    PAIR = "individuals-pair"
    QUERY_IMAGE = "individuals-query-image"
    CANDIDATE_IMAGE = "individuals-candidate-image"
    ACCEPT = "individuals-accept"
    REJECT = "individuals-reject"
    STATUS = "individuals-status"
    RESOLUTION = "individuals-resolution"
    PER_HEXAGON = "individuals-per-hexagon"


def _table(data_dir: Path, name: str) -> str | None:
    path = StorePaths(Path(data_dir)).table(name)
    return str(path) if path.exists() else None


def individuals_per_hexagon(data_dir: Path, resolution: int = DEFAULT_RESOLUTION) -> list[dict]:
    """Distinct individuals (and their sightings) per H3 cell, most individuals first.

    Empty when `uncia identify` has not run. A distinct-individual count is a minimum: two
    individuals never matched count as two, one never photographed counts as none.
    """
    if resolution not in H3_RESOLUTIONS:
        raise ValueError(f"resolution must be one of {H3_RESOLUTIONS}")
    individuals, detections = _table(data_dir, "individuals"), _table(data_dir, "detections")
    if individuals is None or detections is None:
        return []
    column = f"h3_r{resolution}"
    rows = (
        duckdb.connect()
        .execute(
            f"""
            SELECT d.{column} AS cell, count(DISTINCT i.individualID) AS individuals,
                   count(*) AS sightings
            FROM read_parquet(?) i JOIN read_parquet(?) d USING (image_id)
            WHERE d.{column} IS NOT NULL
            GROUP BY cell ORDER BY individuals DESC, sightings DESC, cell
            """,
            [individuals, detections],
        )
        .fetchall()
    )
    return [{"cell": c, "individuals": n, "sightings": s} for c, n, s in rows]


def individuals_map_outputs(
    data_dir: Path,
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
    path = _table(data_dir, "individuals")
    if path is None:
        figure = individual_figures.individuals_map(None, working_cells, style, selected=selected)
        return figure, individual_figures.NOT_IDENTIFIED
    rows = queries.individuals_in_view(con, Path(path), filters).to_pylist()
    figure = individual_figures.individuals_map(rows, working_cells, style, selected=selected)
    distinct = len({i for r in rows for i in r["individual_ids"]})
    sightings = sum(r["sightings"] for r in rows)
    text = (
        f"{distinct} distinct individual(s), minimum known alive, in {len(rows)} hexagon(s) · "
        f"{sightings} identified frame(s) scoring ≥ {filters.threshold:.2f} · "
        f"{filters.describe_season()} · an individual seen in two hexagons counts in both · "
        "layer and detection source do not apply"
    )
    return figure, text


def review_queue(data_dir: Path) -> list[dict[str, Any]]:
    """Proposed matches, one per unordered pair, best score first, with the latest decision."""
    matches, localizations = _table(data_dir, "matches"), _table(data_dir, "localizations")
    if matches is None or localizations is None:
        return []
    rows = (
        duckdb.connect()
        .execute(
            """
            WITH crops AS (
                SELECT image_id, crop_path, heatmap_path FROM read_parquet(?)
                WHERE crop_path IS NOT NULL
                QUALIFY row_number() OVER (PARTITION BY image_id ORDER BY run_id DESC) = 1
            ), pairs AS (
                SELECT least(query_id, candidate_id) AS a, greatest(query_id, candidate_id) AS b,
                       max(score) AS score, bool_or(mirrored) AS mirrored
                FROM read_parquet(?) WHERE proposed GROUP BY a, b
            )
            SELECT p.a, p.b, p.score, p.mirrored, ca.crop_path, cb.crop_path,
                   ca.heatmap_path, cb.heatmap_path
            FROM pairs p JOIN crops ca ON ca.image_id = p.a JOIN crops cb ON cb.image_id = p.b
            ORDER BY p.score DESC, p.a, p.b
            """,
            [localizations, matches],
        )
        .fetchall()
    )
    decisions = latest_decisions(data_dir)
    return [
        {
            "query_id": a,
            "candidate_id": b,
            "score": round(float(score), 2),
            "mirrored": bool(mirrored),
            "query_crop": crop_a,
            "candidate_crop": crop_b,
            "query_heatmap": heat_a,
            "candidate_heatmap": heat_b,
            "decision": decisions.get(frozenset((a, b))),
        }
        for a, b, score, mirrored, crop_a, crop_b, heat_a, heat_b in rows
    ]


def decide_match(data_dir: Path, pair: str | None, decision: str) -> str:
    """Record the signed-in reviewer's decision on `pair` ("query_id|candidate_id").

    Returns the line the page shows. Runs only for reviewers (see `require_role` in `register`).
    """
    if not pair or "|" not in pair:
        return "Pick a proposed match first."
    query_id, candidate_id = pair.split("|", 1)
    user = current_user()
    reviewer = user.name if user is not None else "local"
    record_match_review(data_dir, query_id, candidate_id, decision, reviewer)
    return (
        f"{reviewer}: {decision} {query_id} ↔ {candidate_id}. "
        "Run `uncia identify` to update the individuals."
    )


def _picture_url(ctx: DashboardContext, relative: str | None) -> str | None:
    if not relative:
        return None
    inside = Path(relative).relative_to(LOCALIZATIONS_DIR).as_posix()
    return f"{ctx.url_prefix.rstrip('/')}/{PICTURES_ROUTE}/{inside}"


def layout(ctx: DashboardContext) -> html.Details:
    """The collapsible individuals section; says so plainly when identify has not run."""
    queue = review_queue(ctx.settings.data_dir)
    options = [
        {
            "label": f"{q['query_id']} ↔ {q['candidate_id']} · score {q['score']}"
            + (" · mirrored" if q["mirrored"] else "")
            + (f" · {q['decision']}ed" if q["decision"] else ""),
            "value": f"{q['query_id']}|{q['candidate_id']}",
        }
        for q in queue
    ]
    return html.Details(
        id=Ids.SECTION,
        children=[
            html.Summary("Individuals: match review and individuals per hexagon"),
            html.P(
                "No proposed matches yet: run `uncia localize` and `uncia identify`."
                if not queue
                else f"{len(queue)} proposed match(es). Accept or reject; the last word counts."
            ),
            dcc.Dropdown(id=Ids.PAIR, options=options, placeholder="Proposed match"),
            html.Div(
                [
                    html.Img(id=Ids.QUERY_IMAGE, style={"maxWidth": "45%", "margin": "4px"}),
                    html.Img(id=Ids.CANDIDATE_IMAGE, style={"maxWidth": "45%", "margin": "4px"}),
                ]
            ),
            html.Button("Same individual", id=Ids.ACCEPT, n_clicks=0),
            html.Button("Different individuals", id=Ids.REJECT, n_clicks=0),
            html.Div(id=Ids.STATUS, role="status"),
            dcc.Dropdown(
                id=Ids.RESOLUTION,
                options=[{"label": f"H3 resolution {r}", "value": r} for r in H3_RESOLUTIONS],
                value=DEFAULT_RESOLUTION,
                clearable=False,
            ),
            DataTable(
                id=Ids.PER_HEXAGON,
                columns=[
                    {"name": "hexagon", "id": "cell"},
                    {"name": "distinct individuals (minimum known alive)", "id": "individuals"},
                    {"name": "sightings", "id": "sightings"},
                ],
                data=individuals_per_hexagon(ctx.settings.data_dir),
                page_size=10,
            ),
        ],
    )


def show_pair(ctx: DashboardContext, pair: str | None) -> tuple[str | None, str | None]:
    """The crop URLs of the two frames of `pair`."""
    if not pair:
        return None, None
    for q in review_queue(ctx.settings.data_dir):
        if f"{q['query_id']}|{q['candidate_id']}" == pair:
            return _picture_url(ctx, q["query_crop"]), _picture_url(ctx, q["candidate_crop"])
    return None, None


def register(app: dash.Dash, ctx: DashboardContext) -> None:
    """Wire the section's callbacks and the route serving crops and heat maps."""
    folder = Path(ctx.settings.data_dir) / LOCALIZATIONS_DIR
    prefix = app.config.routes_pathname_prefix.rstrip("/")

    def picture(name: str) -> Any:
        if not name.endswith((".jpg", ".png")):
            abort(404)
        return send_from_directory(folder, name)  # refuses paths that leave the folder

    app.server.add_url_rule(
        f"{prefix}/{PICTURES_ROUTE}/<path:name>", "localization_picture", picture
    )
    app.callback(
        Output(Ids.QUERY_IMAGE, "src"),
        Output(Ids.CANDIDATE_IMAGE, "src"),
        Input(Ids.PAIR, "value"),
        prevent_initial_call=True,  # no pair is chosen when the page opens
    )(lambda pair: show_pair(ctx, pair))

    @require_role(Role.REVIEWER)
    def decide(accept: int, reject: int, pair: str | None) -> str:
        pressed = dash.ctx.triggered_id
        if pressed not in (Ids.ACCEPT, Ids.REJECT):
            return ""
        decision = MatchDecision.ACCEPT if pressed == Ids.ACCEPT else MatchDecision.REJECT
        try:
            return decide_match(ctx.settings.data_dir, pair, decision.value)
        except UnciaError as exc:
            log.exception("match decision failed")
            return f"Not recorded: {exc}"

    app.callback(
        Output(Ids.STATUS, "children"),
        Input(Ids.ACCEPT, "n_clicks"),
        Input(Ids.REJECT, "n_clicks"),
        State(Ids.PAIR, "value"),
        prevent_initial_call=True,
    )(decide)
    app.callback(
        Output(Ids.PER_HEXAGON, "data"),
        Input(Ids.RESOLUTION, "value"),
        prevent_initial_call=True,  # the layout holds the default resolution's rows
    )(
        # The browser may send anything: only a known resolution reaches the query.
        lambda resolution: (
            individuals_per_hexagon(ctx.settings.data_dir, int(resolution))
            if resolution in H3_RESOLUTIONS
            else dash.no_update
        )
    )
