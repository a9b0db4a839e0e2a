"""The individuals section: match review (query and candidate crops side by side, accept or
reject) and the number of distinct individuals per hexagon (the minimum known alive): its
layout, the route serving crops and heat maps, and the wiring of its callbacks.

Reads the files of `uncia localize` and `uncia identify` when present (`data.individuals`);
decisions go to the append-only match reviews (`views.individuals.decide_match`).
"""

from __future__ import annotations

import logging
from typing import Any

import dash
from dash import Input, Output, State, dcc, html
from dash.dash_table.DataTable import DataTable
from flask import abort, send_file

from dashboard.context import DashboardContext
from dashboard.data.individuals import DEFAULT_RESOLUTION, individuals_per_hexagon, review_queue
from dashboard.serving.auth import Role, require_role
from dashboard.serving.thumbnails import confined_path
from dashboard.views.individuals import PICTURES_ROUTE, decide_match, show_pair
from pipeline.errors import UnciaError
from pipeline.schema import H3_RESOLUTIONS, MatchDecision
from pipeline.store.store import LOCALIZATIONS_DIR

log = logging.getLogger(__name__)


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


def layout(ctx: DashboardContext) -> html.Details:
    """The collapsible individuals section; says so plainly when identify has not run."""
    queue = review_queue(ctx.store)
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
                data=individuals_per_hexagon(ctx.store),
                page_size=10,
            ),
        ],
    )


def register(app: dash.Dash, ctx: DashboardContext) -> None:
    """Wire the section's callbacks and the route serving crops and heat maps."""
    folder = ctx.store.data_dir / LOCALIZATIONS_DIR
    prefix = app.config.routes_pathname_prefix.rstrip("/")

    def picture(name: str) -> Any:
        if not name.endswith((".jpg", ".png")):
            abort(404)
        # Symlinks resolved, like thumbnails: a link in crops/ to /etc/passwd is no picture.
        path = confined_path(str(folder / name), [folder])
        if path is None or not path.is_file():
            abort(404)
        return send_file(path, mimetype="image/png" if name.endswith(".png") else "image/jpeg")

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
            return decide_match(ctx.store, pair, decision.value)
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
            individuals_per_hexagon(ctx.store, int(resolution))
            if resolution in H3_RESOLUTIONS
            else dash.no_update
        )
    )
