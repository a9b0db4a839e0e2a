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
from dashboard.data.individuals import review_queue
from dashboard.ids import Ids as HotspotIds
from dashboard.pages.wiring import page_view
from dashboard.serving.auth import Role, require_role
from dashboard.serving.thumbnails import confined_path
from dashboard.views.common import shows_alert
from dashboard.views.individuals import (
    PICTURES_ROUTE,
    decide_match,
    individuals_table,
    show_pair,
)
from pipeline.errors import UnciaError
from pipeline.schema import MatchDecision
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
    PER_HEXAGON = "individuals-per-hexagon"
    SUMMARY = "individuals-summary"
    ALERT = "individuals-alert"


def layout(ctx: DashboardContext) -> html.Section:
    """The individuals section, a panel of the page like the others: distinct individuals per
    hexagon on the page's resolution and filters, then the match review; says so plainly when
    identify has not run."""
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
    return html.Section(
        id=Ids.SECTION,
        className="panel individuals",
        children=[
            html.H2("Individuals: distinct leopards per hexagon and match review"),
            html.Div(id=Ids.SUMMARY, className="summary"),
            html.Div(id=Ids.ALERT),
            DataTable(
                id=Ids.PER_HEXAGON,
                columns=[
                    {"name": "Hexagon", "id": "hexagon"},
                    {"name": "Stations", "id": "stations"},
                    {
                        "name": "Individuals (minimum known alive)",
                        "id": "individuals",
                        "type": "numeric",
                    },
                    {"name": "Identified frames", "id": "sightings", "type": "numeric"},
                    {"name": "Names", "id": "names"},
                ],
                data=[],
                page_size=10,
                sort_action="native",
                style_table={"overflowX": "auto"},
                style_cell={"fontFamily": "inherit", "fontSize": "13px", "textAlign": "left"},
                style_header={"fontWeight": "600"},
            ),
            html.H3("Match review"),
            html.P(
                "No proposed matches to review: run `uncia localize` and `uncia identify`."
                if not queue
                else f"{len(queue)} proposed match(es). Accept or reject; the last word counts.",
                className="summary",
            ),
            html.Div(
                [
                    html.Label("Proposed match", htmlFor=Ids.PAIR),
                    dcc.Dropdown(id=Ids.PAIR, options=options, placeholder="Proposed match"),
                ],
                className="control pair",
            ),
            html.Div(
                [
                    html.Img(id=Ids.QUERY_IMAGE, alt="crop of the first frame of the match"),
                    html.Img(id=Ids.CANDIDATE_IMAGE, alt="crop of the second frame"),
                ],
                className="pair-crops",
            ),
            html.Div(
                [
                    html.Button("Same individual", id=Ids.ACCEPT, n_clicks=0),
                    html.Button("Different individuals", id=Ids.REJECT, n_clicks=0),
                    html.Div(id=Ids.STATUS, role="status"),
                ],
                className="review-actions",
            ),
        ],
    )


def register(app: dash.Dash, ctx: DashboardContext, filter_inputs: dict[str, Input]) -> None:
    """Wire the section's callbacks (its table follows the page's `filter_inputs`) and the
    route serving crops and heat maps."""
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
    page_view(
        app,
        ctx,
        shows_alert("rows", "summary")(individuals_table),
        output={
            "rows": Output(Ids.PER_HEXAGON, "data"),
            "summary": Output(Ids.SUMMARY, "children"),
            "alert": Output(Ids.ALERT, "children"),
        },
        inputs={"version": Input(HotspotIds.VERSION, "data"), **filter_inputs},
    )
