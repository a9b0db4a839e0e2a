"""The hotspot map's "individuals" mode: distinct individuals (minimum known alive) per hexagon
under the date, season, threshold and resolution controls, and its empty state.

Reads the hand-made survey of test_dashboard_queries plus an individuals table written here,
as `uncia identify` writes it.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import pyarrow as pa
import pytest

from dashboard import Settings
from dashboard.context import DashboardContext, build_context
from dashboard.data.queries import individuals_in_view
from dashboard.data.store import Store
from dashboard.filters import Filters, Season
from dashboard.individual_figures import NONE_IN_VIEW, NOT_IDENTIFIED, individuals_map
from dashboard.pages import insights
from dashboard.views import hotspots as callbacks
from dashboard.views import insights as insight_views
from dashboard.views.insights import MODE_LABELS, MapMode
from pipeline.schema import INDIVIDUALS
from pipeline.store.store import StorePaths, atomic_write_parquet
from tests.dashboard_fixtures import WHOLE_YEAR_R7 as CONTROLS
from tests.dashboard_fixtures import cell, write_survey

pytestmark = pytest.mark.filterwarnings("ignore:(?s).*DataTable will be removed:DeprecationWarning")

# Frames of the hand-made survey: A and C share an r7 hexagon, B is 40 km east.
SIGHTINGS = {
    "img-A-2023-20230210T060000": "ind-1",  # 0.9, February
    "img-C-2023-20230305T040000": "ind-1",  # 0.99, March
    "img-B-2023-20231220T220000": "ind-1",  # 0.95, December: ind-1 crossed to B's hexagon
    "img-A-2023-20230715T200000": "ind-2",  # 0.6, summer
    "img-A-2023-20230716T200000": "ind-2",  # 0.3, below the usual threshold
    "img-B-2023-20240310T030000": "ind-3",  # 0.4, below the usual threshold
}


def write_individuals(out: Path) -> Path:
    counts = {who: list(SIGHTINGS.values()).count(who) for who in SIGHTINGS.values()}
    path = StorePaths(out).table("individuals")
    atomic_write_parquet(
        pa.Table.from_pylist(
            [
                {"image_id": i, "individualID": w, "sightings": counts[w], "status": "proposed"}
                for i, w in SIGHTINGS.items()
            ],
            schema=INDIVIDUALS,
        ),
        path,
    )
    return path


@pytest.fixture
def survey(tmp_path: Path) -> Path:
    out = write_survey(tmp_path / "survey")
    write_individuals(out)
    return out


def context(data_dir: Path) -> DashboardContext:
    return build_context(Settings(data_dir=data_dir, tiles="none", min_trap_nights=1))


def per_cell(table: pa.Table) -> dict[str, tuple[int, int, list[str]]]:
    return {
        r["hexagon"]: (r["individuals"], r["sightings"], r["individual_ids"])
        for r in table.to_pylist()
    }


def test_individuals_in_view_follow_threshold_season_dates_and_resolution(survey: Path) -> None:
    path = StorePaths(survey).table("individuals")
    with Store(survey).connect() as con:
        usual = individuals_in_view(con, path, Filters(resolution=7, threshold=0.5))
        low = individuals_in_view(con, path, Filters(resolution=7, threshold=0.3))
        winter = individuals_in_view(
            con, path, Filters(resolution=7, threshold=0.5, season=Season.WINTER)
        )
        spring = individuals_in_view(
            con,
            path,
            Filters(resolution=7, threshold=0.5, start=date(2023, 1, 1), end=date(2023, 6, 30)),
        )
        coarse = individuals_in_view(con, path, Filters(resolution=5, threshold=0.5))
    a, b = cell("A"), cell("B")
    assert per_cell(usual) == {a: (2, 3, ["ind-1", "ind-2"]), b: (1, 1, ["ind-1"])}
    assert per_cell(low) == {a: (2, 4, ["ind-1", "ind-2"]), b: (2, 2, ["ind-1", "ind-3"])}
    assert per_cell(winter) == {a: (1, 2, ["ind-1"]), b: (1, 1, ["ind-1"])}
    assert per_cell(spring) == {a: (1, 2, ["ind-1"])}
    assert sum(r["sightings"] for r in coarse.to_pylist()) == 4
    assert {r["hexagon"] for r in coarse.to_pylist()} == {cell("A", 5), cell("B", 5)}


def z_by_cell(figure: dict[str, Any]) -> dict[str, int]:
    trace = figure["data"][0]
    return dict(zip(trace["locations"], trace["z"], strict=True))


def test_map_mode_draws_individuals_per_hexagon(survey: Path) -> None:
    ctx = context(survey)
    out = callbacks.update_map(ctx, "v1", map_mode="individuals", **CONTROLS)
    assert out["alert"] == []
    figure = out["figure"]
    assert figure["data"][0]["type"] == "choroplethmap"
    assert figure["data"][0]["name"] == "Individuals"
    # C's hexagon is A's; every hexagon with a working camera is drawn.
    assert z_by_cell(figure) == {cell("A"): 2, cell("B"): 1}
    assert "2 distinct individual(s)" in out["summary"] and "2 hexagon(s)" in out["summary"]
    assert "4 identified frame(s) scoring ≥ 0.50" in out["summary"]
    assert figure["layout"].get("annotations", []) == []
    assert {r["hexagon"] for r in out["rows"]} == {cell("A"), cell("B")}  # the table stays
    go.Figure(figure)  # plotly's own schema accepts every property of the dict

    lower = callbacks.update_map(
        ctx, "v1", map_mode="individuals", **{**CONTROLS, "threshold": 0.3}
    )
    assert z_by_cell(lower["figure"]) == {cell("A"): 2, cell("B"): 2}
    summer = callbacks.update_map(
        ctx, "v1", map_mode="individuals", **{**CONTROLS, "season": "summer"}
    )
    assert z_by_cell(summer["figure"]) == {cell("A"): 1}  # B's camera was out only in winter


def test_hexagons_watched_without_an_individual_are_zero_with_a_note(survey: Path) -> None:
    # In July A's camera worked, and ind-2's only frame there scores 0.6, below 0.7.
    july = {**CONTROLS, "start_date": "2023-07-01", "end_date": "2023-07-31", "threshold": 0.7}
    out = callbacks.update_map(context(survey), "v1", map_mode="individuals", **july)
    assert z_by_cell(out["figure"]) == {cell("A"): 0}
    assert [a["text"] for a in out["figure"]["layout"]["annotations"]] == [NONE_IN_VIEW]
    assert "0 distinct individual(s)" in out["summary"]


def test_selected_hexagon_is_outlined_and_clicks_pick_it(survey: Path) -> None:
    out = callbacks.update_map(
        context(survey), "v1", selected=cell("B"), map_mode="individuals", **CONTROLS
    )
    names = [t["name"] for t in out["figure"]["data"]]
    assert names == ["Individuals", "Selected hexagon"]
    click = {"points": [{"location": cell("A"), "z": 2}]}
    assert callbacks.select_hexagon(click, None, "hotspot-map") == cell("A")


def test_store_without_identification_says_to_run_identify(tmp_path: Path) -> None:
    out_dir = write_survey(tmp_path / "survey")
    out = callbacks.update_map(context(out_dir), "v1", map_mode="individuals", **CONTROLS)
    assert out["alert"] == []
    assert out["summary"] == NOT_IDENTIFIED
    figure = out["figure"]
    assert [a["text"] for a in figure["layout"]["annotations"]] == [NOT_IDENTIFIED]
    assert figure["data"][0]["name"] == "No identification yet"
    assert set(z_by_cell(figure)) == {cell("A"), cell("B")}  # hexagons still show, grey
    assert "showscale" in figure["data"][0] and not figure["data"][0]["showscale"]
    go.Figure(figure)


def test_mode_is_offered_with_its_label(survey: Path) -> None:
    radio = insights.controls(context(survey))[0].children[1]
    labels = [o["label"] for o in radio.options]
    assert MODE_LABELS[MapMode.INDIVIDUALS] in labels
    assert labels[-1] == "Distinct individuals (minimum known alive)"
    assert insight_views.parse_view("individuals", None).mode is MapMode.INDIVIDUALS


def test_figure_lists_the_individuals_of_a_hexagon_in_its_hover() -> None:
    rows = [
        {"hexagon": cell("A"), "individuals": 7, "sightings": 9,
         "individual_ids": [f"ind-{n}" for n in range(7)]},
    ]  # fmt: skip
    figure = individuals_map(rows, [cell("A"), cell("B")], {"version": 8, "layers": []})
    trace = figure["data"][0]
    assert trace["z"] == [7, 0] and trace["zmax"] == 7
    assert trace["customdata"][0] == [9, "ind-0, ind-1, ind-2, ind-3, ind-4 and 2 more"]
    assert trace["customdata"][1] == [0, ""]
