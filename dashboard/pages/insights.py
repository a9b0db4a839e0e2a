"""The insight controls and sections of the hotspot page: map mode, layer and detection
source; diel activity and camera operation, the review gallery and the exports. Their layout,
and the wiring of their callbacks to the views in `views.insights`, `views.review` and
`views.downloads`.
"""

from __future__ import annotations

from typing import Any

import dash
from dash import ALL, Input, Output, State, dcc, html, no_update

from dashboard.components import RELABEL_CHOICES, graph, loading, more_button
from dashboard.context import DashboardContext
from dashboard.ids import Ids, InsightIds
from dashboard.pages.wiring import bind, page_view
from dashboard.serving.auth import Role, require_role
from dashboard.species import LAYER_LABELS, Layer
from dashboard.views.common import shows_alert
from dashboard.views.downloads import EXPORT_LABELS, ExportFormat, build_export
from dashboard.views.insights import MODE_LABELS, MapMode, update_insights, year_options
from dashboard.views.review import record_decision, reviewer_name, show_gallery
from pipeline.interop.occupancy import HistoryOptions


def _control(label: str, *children: Any) -> html.Div:
    return html.Div([html.Label(label), *children], className="control")


def controls(ctx: DashboardContext) -> list[html.Div]:
    """Map mode, layer and detection source controls, added to the page's control bar.

    The change map's years are filled in here, from the store as the page loads, so the map
    is not drawn a second time when they arrive.
    """
    years = year_options(ctx, None)
    return [
        _control(
            "Map shows",
            dcc.RadioItems(
                id=InsightIds.MODE,
                options=[{"label": MODE_LABELS[m], "value": m.value} for m in MapMode],
                value=MapMode.RATE.value,
                inline=True,
            ),
            html.Div(
                [
                    html.Span("compare"),
                    dcc.Dropdown(
                        id=InsightIds.YEAR_A,
                        options=_or_empty(years["options_a"]),
                        value=_or_none(years["value_a"]),
                        clearable=True,
                    ),
                    html.Span("with"),
                    dcc.Dropdown(
                        id=InsightIds.YEAR_B,
                        options=_or_empty(years["options_b"]),
                        value=_or_none(years["value_b"]),
                        clearable=True,
                    ),
                ],
                className="months",
            ),
        ),
        _control(
            "Layer",
            dcc.RadioItems(
                id=InsightIds.LAYER,
                options=[{"label": LAYER_LABELS[x], "value": x.value} for x in Layer],
                value=Layer.LEOPARD.value,
                inline=True,
            ),
        ),
        _control(
            "Detections",
            dcc.RadioItems(
                id=InsightIds.SOURCE,
                options=[
                    {"label": "All machine detections", "value": "machine"},
                    {"label": "Human-verified only", "value": "verified"},
                ],
                value="machine",
                inline=True,
            ),
        ),
    ]


def _or_empty(value: Any) -> Any:
    return [] if value is no_update else value


def _or_none(value: Any) -> Any:
    return None if value is no_update else value


def sections() -> list[Any]:
    """Diel activity and camera operation, the review gallery and the exports."""
    export_buttons = [
        html.Button(
            EXPORT_LABELS[f],
            id={"type": InsightIds.EXPORT_BUTTON, "format": f.value},
            className="export",
            n_clicks=0,
        )
        for f in ExportFormat
    ]
    return [
        html.Section(
            [
                html.Div(id=InsightIds.INSIGHTS_ALERT),
                html.Div(
                    [
                        loading(graph(InsightIds.DIEL)),
                        # Every station, one row each: a survey of hundreds scrolls in its box.
                        html.Div(
                            loading(graph(InsightIds.TIMELINE)),
                            className="timeline-box",
                            tabIndex="0",
                            role="region",
                            **{"aria-label": "Camera operation of every station (scrolls)"},
                        ),
                    ],
                    className="row insights",
                ),
            ],
            className="panel",
        ),
        html.Section(
            [
                html.H2("Review candidate leopard bursts", id=InsightIds.GALLERY_TITLE),
                html.P(
                    "Keys on a focused card: c confirm, x reject, l relabel, j / k next / "
                    "previous card. Decisions are stored with your name and the time, never "
                    "overwritten.",
                    className="summary",
                ),
                html.Div(
                    [
                        html.Label("Reviewer", htmlFor=InsightIds.REVIEWER),
                        dcc.Input(
                            id=InsightIds.REVIEWER,
                            type="text",
                            placeholder="your name",
                            persistence=True,
                            debounce=True,
                        ),
                    ],
                    className="reviewer",
                ),
                html.Div(
                    [
                        html.Label("Relabel as", htmlFor=InsightIds.RELABEL),
                        dcc.Dropdown(
                            id=InsightIds.RELABEL,
                            options=list(RELABEL_CHOICES),
                            value=RELABEL_CHOICES[0],
                            clearable=False,
                        ),
                        html.Span("(the label a card's Relabel button or l gives)"),
                    ],
                    className="relabel-as",
                ),
                html.Div(id=InsightIds.GALLERY_ALERT),
                loading(
                    html.Div(
                        id=InsightIds.GALLERY,
                        className="detections gallery",
                        tabIndex="0",
                        role="region",
                        **{"aria-label": "Candidate leopard bursts to review"},
                    )
                ),
                more_button(InsightIds.GALLERY_MORE),
            ],
            className="panel",
        ),
        html.Section(
            [
                html.H2("Export what is on screen"),
                dcc.Checklist(
                    id=InsightIds.PUBLIC,
                    options=[
                        {
                            "label": "Public version (coarser hexagons, cells with few "
                            "cameras suppressed)",
                            "value": "public",
                        }
                    ],
                    value=[],
                ),
                html.Div(export_buttons, className="exports"),
                html.Div(
                    [
                        html.Label(
                            "Occasion length of the histories (days)",
                            htmlFor=InsightIds.OCCASION_DAYS,
                        ),
                        dcc.Input(
                            id=InsightIds.OCCASION_DAYS,
                            type="number",
                            min=1,
                            max=365,
                            step=1,
                            value=HistoryOptions().occasion_days,
                        ),
                    ],
                    className="reviewer",
                ),
                html.Div(id=InsightIds.EXPORT_ALERT),
                dcc.Download(id=InsightIds.DOWNLOAD),
            ],
            className="panel",
        ),
        dcc.Store(id=InsightIds.REVIEWS, data=None),
    ]


def register(app: Any, ctx: DashboardContext, filter_inputs: dict[str, Input]) -> None:
    """Wire the insight, gallery, review and export callbacks to `app`."""
    version = Input(Ids.VERSION, "data")
    reviews = Input(InsightIds.REVIEWS, "data")
    reviews_for_views = Input(InsightIds.REVIEWS_FOR_VIEWS, "data")
    app.callback(
        output={
            "options_a": Output(InsightIds.YEAR_A, "options"),
            "options_b": Output(InsightIds.YEAR_B, "options"),
            "value_a": Output(InsightIds.YEAR_A, "value"),
            "value_b": Output(InsightIds.YEAR_B, "value"),
        },
        inputs={"version": version},
        prevent_initial_call=True,
    )(bind(year_options, ctx))
    page_view(
        app,
        ctx,
        shows_alert("diel", "timeline")(update_insights),
        output={
            "diel": Output(InsightIds.DIEL, "figure"),
            "timeline": Output(InsightIds.TIMELINE, "figure"),
            "alert": Output(InsightIds.INSIGHTS_ALERT, "children"),
        },
        inputs={
            "version": version,
            "selected": Input(Ids.SELECTED, "data"),
            "layer": Input(InsightIds.LAYER, "value"),
            "reviews": reviews_for_views,
            **filter_inputs,
        },
    )
    page_view(
        app,
        ctx,
        shows_alert("title", "cards", "more", "more_hidden")(show_gallery),
        output={
            "title": Output(InsightIds.GALLERY_TITLE, "children"),
            "cards": Output(InsightIds.GALLERY, "children"),
            "alert": Output(InsightIds.GALLERY_ALERT, "children"),
            "more": Output(InsightIds.GALLERY_MORE, "children"),
            "more_hidden": Output(InsightIds.GALLERY_MORE, "hidden"),
        },
        inputs={
            "hexagon": Input(Ids.SELECTED, "data"),
            "version": version,
            "reviews": reviews,
            "more": Input(InsightIds.GALLERY_MORE, "n_clicks"),
            **filter_inputs,
        },
    )

    @require_role(Role.REVIEWER)
    def on_review(clicks: Any, relabel: Any, typed: Any) -> Any:
        if not any(c for c in (clicks or []) if c):
            return no_update, no_update
        out = shows_alert("reviews")(record_decision)(
            ctx, dash.ctx.triggered_id, relabel, reviewer_name(typed)
        )
        return out["reviews"], out["alert"]

    app.callback(
        Output(InsightIds.REVIEWS, "data"),
        Output(InsightIds.GALLERY_ALERT, "children", allow_duplicate=True),
        Input({"type": InsightIds.REVIEW_BUTTON, "burst": ALL, "decision": ALL}, "n_clicks"),
        State(InsightIds.RELABEL, "value"),
        State(InsightIds.REVIEWER, "value"),
        prevent_initial_call=True,
    )(on_review)

    def on_export(
        clicks: Any,
        public: Any,
        selected: Any,
        mode: Any,
        layer: Any,
        occasion: Any,
        **controls: Any,
    ):
        triggered = dash.ctx.triggered_id
        if not triggered or not any(c for c in (clicks or []) if c):
            return no_update, no_update

        def make(ctx: DashboardContext) -> dict[str, Any]:
            content, name = build_export(
                ctx,
                triggered["format"],
                "public" in (public or []),
                selected=selected,
                map_mode=mode,
                layer=layer,
                occasion=occasion,
                **controls,
            )
            return {"download": dcc.send_bytes(content, name), "alert": []}

        out = shows_alert("download")(make)(ctx)
        return out["download"], out["alert"]

    states = {
        name: State(i.component_id, i.component_property) for name, i in filter_inputs.items()
    }
    app.callback(
        output=[Output(InsightIds.DOWNLOAD, "data"), Output(InsightIds.EXPORT_ALERT, "children")],
        inputs={
            "clicks": Input({"type": InsightIds.EXPORT_BUTTON, "format": ALL}, "n_clicks"),
            "public": State(InsightIds.PUBLIC, "value"),
            "selected": State(Ids.SELECTED, "data"),
            "mode": State(InsightIds.MODE, "value"),
            "layer": State(InsightIds.LAYER, "value"),
            "occasion": State(InsightIds.OCCASION_DAYS, "value"),
            **states,
        },
        prevent_initial_call=True,
    )(on_export)
