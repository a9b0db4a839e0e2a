"""The dashboard's callbacks called as plain functions, plus the thumbnail route and tile probe.

Most tests read a small simulated survey built by pipeline.runs.demo; a few rewrite or break a store
to check live reload and the alerts a user sees instead of stack traces.
"""

from __future__ import annotations

import io
import logging
import re
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from dash import no_update
from PIL import Image, ImageStat

from dashboard import Settings, create_app
from dashboard.app import page_layout
from dashboard.components import DEMO_BANNER, NO_STORE, PICK_HEXAGON
from dashboard.context import DashboardContext, TileSource, build_context
from dashboard.filters import parse_hexagon
from dashboard.ids import Ids
from dashboard.serving.page_views import starting_values
from dashboard.views import common, insights, review
from dashboard.views import hotspots as callbacks
from dashboard.views.common import shows_alert
from pipeline.errors import ConfigError
from pipeline.schema import RUN_TABLES
from pipeline.store import store
from tests.helpers import CONTROLS, texts

# Dash 4 warns that DataTable will move out of the core some day; dash-ag-grid is not installed.
pytestmark = pytest.mark.filterwarnings("ignore:(?s).*DataTable will be removed:DeprecationWarning")


@pytest.fixture
def ctx(demo_dir: Path) -> DashboardContext:
    return build_context(Settings(data_dir=demo_dir, tiles="none", max_detections=25))


def test_map_shows_every_hexagon_and_events_drop_with_threshold(ctx: DashboardContext) -> None:
    events = {**CONTROLS, "map_mode": "events"}  # raw counts (the default map is the rate)
    low = callbacks.update_map(ctx, "v1", **{**events, "threshold": 0.3})
    high = callbacks.update_map(ctx, "v1", **{**events, "threshold": 0.95})
    assert low["alert"] == [] and high["alert"] == []
    low_trace, high_trace = low["figure"]["data"][0], high["figure"]["data"][0]
    assert set(low_trace["locations"]) == set(
        high_trace["locations"]
    )  # cameras, whatever the score
    assert sum(high_trace["z"]) < sum(low_trace["z"])
    assert len(low["rows"]) == len(low_trace["locations"])
    assert [r["events"] for r in low["rows"]] == sorted(low_trace["z"], reverse=True)
    assert f"{sum(low_trace['z'])} independent leopard events" in low["summary"]


def test_map_resolution_changes_the_hexagons(ctx: DashboardContext) -> None:
    events = {**CONTROLS, "map_mode": "events"}
    r5 = callbacks.update_map(ctx, "v1", **{**events, "resolution": 5})["figure"]["data"][0]
    r8 = callbacks.update_map(ctx, "v1", **{**events, "resolution": 8})["figure"]["data"][0]
    assert len(r5["locations"]) < len(r8["locations"])
    assert sum(r5["z"]) == sum(r8["z"])


def test_series_follows_season_and_period(ctx: DashboardContext) -> None:
    monthly = callbacks.update_series(ctx, "v1", "month", **CONTROLS)["figure"]["data"][0]
    weekly = callbacks.update_series(ctx, "v1", "week", **CONTROLS)["figure"]["data"][0]
    summer = callbacks.update_series(ctx, "v1", "month", **{**CONTROLS, "season": "summer"})
    assert len(weekly["x"]) > len(monthly["x"])
    assert sum(weekly["y"]) == sum(monthly["y"]) > 0
    assert {d.month for d in summer["figure"]["data"][0]["x"]} <= {6, 7, 8}
    assert "Summer" in summer["figure"]["layout"]["title"]["text"]


def test_custom_months_are_enabled_only_for_custom_season() -> None:
    assert callbacks.toggle_custom_months("custom") == {
        "start_disabled": False,
        "end_disabled": False,
    }
    assert callbacks.toggle_custom_months("winter")["start_disabled"] is True


def test_layout_starts_the_month_switches_as_the_toggle_would(ctx: DashboardContext) -> None:
    """The toggle does not run when the page opens, so the layout must agree with it."""
    found = starting_values(page_layout(ctx))
    toggled = callbacks.toggle_custom_months(found[(Ids.SEASON, "value")])
    assert found[(Ids.MONTH_START, "disabled")] is toggled["start_disabled"] is True
    assert found[(Ids.MONTH_END, "disabled")] is toggled["end_disabled"] is True


def test_bad_control_values_show_an_alert_and_keep_the_figure(ctx: DashboardContext) -> None:
    out = callbacks.update_map(
        ctx, "v1", **{**CONTROLS, "start_date": "2024-05-01", "end_date": "2024-01-01"}
    )
    assert out["figure"] is no_update
    assert "start date is after the end date" in texts(out["alert"])
    out = callbacks.update_series(ctx, "v1", "fortnight", **CONTROLS)
    assert "unknown period" in texts(out["alert"])


@pytest.mark.parametrize(
    "picked", [True, 12, "not-a-cell", "-1e309", "862411aafffff", ["862411aafffffff"], {"a": 1}]
)
def test_a_picked_value_that_is_no_hexagon_gets_a_plain_alert_in_every_view(
    ctx: DashboardContext, picked: Any
) -> None:
    """The selection store holds what the browser sends; DuckDB once tried to cast the h3
    column to BOOL for `True` and the page said only that something went wrong."""
    filters = {k: v for k, v in CONTROLS.items() if k != "period"}
    answers = [
        callbacks.update_map(ctx, "v1", selected=picked, **filters),
        callbacks.update_series(ctx, "v1", "month", selected=picked, **filters),
        callbacks.show_detections(ctx, picked, "v1", **filters),
        # as insights.register wraps them for the page
        shows_alert("diel", "timeline")(insights.update_insights)(
            ctx, "v1", picked, None, None, **filters
        ),
        shows_alert("title", "cards")(review.show_gallery)(ctx, picked, "v1", None, **filters),
    ]
    for out in answers:
        assert "the picked hexagon is not an H3 cell" in texts(out["alert"]), out["alert"]
    assert parse_hexagon(None) is None and parse_hexagon("") is None
    assert parse_hexagon("862411aafffffff") == "862411aafffffff"


def test_picking_a_hexagon_from_map_dot_or_table() -> None:
    cell = "862411aafffffff"
    hexagon_click = {"points": [{"curveNumber": 0, "location": cell, "z": 3}]}
    dot_click = {"points": [{"curveNumber": 1, "customdata": [cell], "lat": 43.1}]}
    row = {"row": 0, "column": 0, "row_id": cell, "column_id": "hexagon"}
    assert callbacks.select_hexagon(hexagon_click, None, Ids.MAP) == cell
    assert callbacks.select_hexagon(dot_click, None, Ids.MAP) == cell
    assert callbacks.select_hexagon(None, row, Ids.TABLE) == cell
    assert callbacks.select_hexagon(hexagon_click, row, Ids.RESOLUTION) is None
    # Sorting or paging the table drops its active cell: the selection stays.
    assert callbacks.select_hexagon(None, None, Ids.TABLE, cell) == cell
    assert callbacks.select_hexagon(None, None, Ids.TABLE, None) is None
    assert callbacks.select_hexagon(None, None, Ids.TABLE, "<script>") is None
    assert callbacks.select_hexagon(None, None, Ids.CLEAR, cell) is None  # a clear clears


def test_detections_of_a_hexagon_list_thumbnails_highest_score_first(
    ctx: DashboardContext,
) -> None:
    rows = callbacks.update_map(ctx, "v1", **CONTROLS)["rows"]
    busiest = rows[0]["hexagon"]
    out = callbacks.show_detections(ctx, busiest, "v1", **CONTROLS)
    cards = out["cards"]
    assert 0 < len(cards) <= 25
    assert busiest in out["title"]
    scores = [float(m) for m in re.findall(r"score (\d\.\d+)", texts(cards))]
    assert scores == sorted(scores, reverse=True) and min(scores) >= 0.5
    image = cards[0].children[0]
    assert re.fullmatch(r"/thumbnail/[0-9a-f]+", image.src)
    assert "snow leopard" in texts(cards[0])


def test_galleries_draw_their_first_cards_and_show_all_on_an_odd_click(
    ctx: DashboardContext,
) -> None:
    busiest = callbacks.update_map(ctx, "v1", **CONTROLS)["rows"][0]["hexagon"]
    every = callbacks.show_detections(ctx, busiest, "v1", more=1, **CONTROLS)
    total = len(every["cards"])
    assert 12 < total <= 25  # max_detections=25, more than the 12 drawn at first
    assert every["more"] == "Show only the first 12" and every["more_hidden"] is False
    for clicks in (None, 0, 2, "1", True, [1], {"n": 1}):  # what a browser might send
        first = callbacks.show_detections(ctx, busiest, "v1", more=clicks, **CONTROLS)
        assert texts(first["cards"]) == texts(every["cards"][:12]), clicks
        assert first["more"] == f"Show all {total} frames" and first["more_hidden"] is False
    gallery = review.show_gallery(ctx, None, "v1", None, **CONTROLS)
    assert len(gallery["cards"]) == 12 and gallery["more"] == "Show all 24 bursts"
    unfolded = review.show_gallery(ctx, None, "v1", None, more=3, **CONTROLS)
    assert len(unfolded["cards"]) == 24 and texts(unfolded["cards"][:12]) == texts(gallery["cards"])
    # Nothing more to show: no button.
    few = build_context(Settings(data_dir=ctx.settings.data_dir, tiles="none", max_detections=5))
    out = callbacks.show_detections(few, busiest, "v1", **CONTROLS)
    assert len(out["cards"]) == 5 and out["more_hidden"] is True
    for bad in ({"detections_shown": 0}, {"review_bursts_shown": 201}):
        with pytest.raises(ConfigError, match=next(iter(bad)) + " must be"):
            Settings(data_dir=ctx.settings.data_dir, **bad)


def test_no_hexagon_picked_asks_for_a_click(ctx: DashboardContext) -> None:
    out = callbacks.show_detections(ctx, None, "v1", **CONTROLS)
    assert out["title"] == PICK_HEXAGON and out["cards"] == []


def test_header_says_demo_and_names_the_model(ctx: DashboardContext) -> None:
    out = callbacks.render_header(ctx, "v1")
    assert DEMO_BANNER in texts(out["banner"])
    assert "model simulated" in out["run_info"]
    assert out["min_date"] < out["max_date"]


def test_version_changes_only_when_the_store_is_replaced(tmp_path: Path, demo_dir: Path) -> None:
    data = tmp_path / "live"
    shutil.copytree(demo_dir, data)
    ctx = build_context(Settings(data_dir=data, tiles="none"))
    first = callbacks.refresh_version(ctx, 1, None)
    assert callbacks.refresh_version(ctx, 2, first) is no_update
    before = callbacks.update_map(ctx, first, **CONTROLS)["figure"]["data"][0]
    tables = {name: pq.read_table(store.StorePaths(data).table(name)) for name in RUN_TABLES}
    keep = pc.less(tables["bursts"]["score"], pa.scalar(0.5, pa.float32()))
    store.write_tables(data, {**tables, "bursts": tables["bursts"].filter(keep)})
    second = callbacks.refresh_version(ctx, 3, first)
    assert second not in (first, no_update)
    after = callbacks.update_map(ctx, second, **CONTROLS)["figure"]["data"][0]
    assert sum(before["z"]) > 0 and sum(after["z"]) == 0


def test_missing_store_shows_a_waiting_message_without_paths(tmp_path: Path) -> None:
    ctx = build_context(Settings(data_dir=tmp_path / "empty", tiles="none"))
    header = callbacks.render_header(ctx, None)
    assert texts(header["alert"]) == NO_STORE
    assert str(tmp_path) not in texts(header["alert"])
    assert NO_STORE in texts(page_layout(ctx).children)
    out = callbacks.update_map(ctx, None, **CONTROLS)
    assert out["alert"] == []  # said once, in the header, not above every view
    assert out["figure"]["layout"]["annotations"][0]["text"] == common.WAITING


def test_unexpected_failure_shows_alert_and_logs_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A DuckDB file that is not an Uncia store: the query fails deep inside DuckDB.
    con = duckdb.connect(str(tmp_path / store.DUCKDB_NAME))
    con.execute("CREATE TABLE deployments (x INTEGER)")
    con.close()
    ctx = build_context(Settings(data_dir=tmp_path, tiles="none"))
    with caplog.at_level(logging.ERROR):
        out = callbacks.update_map(ctx, None, **CONTROLS)
    shown = texts(out["alert"])
    assert shown == common.FAILED
    assert "Traceback" not in shown and str(tmp_path) not in shown
    assert any(r.exc_info for r in caplog.records if "update_map" in r.getMessage())


def test_thumbnails_serve_only_frames_in_the_store(tmp_path: Path, demo_dir: Path) -> None:
    data = tmp_path / "real"
    tables = {name: pq.read_table(store.StorePaths(demo_dir).table(name)) for name in RUN_TABLES}
    photo = tmp_path / "IMG_0001.JPG"
    Image.new("RGB", (1000, 800), (200, 30, 30)).save(photo)
    ids = tables["images"]["image_id"].to_pylist()
    real_id, missing_id = ids[0], ids[1]
    moved = {real_id: str(photo), missing_id: str(tmp_path / "moved" / "IMG_0002.JPG")}
    paths = [
        moved.get(i, p) for i, p in zip(ids, tables["images"]["file_path"].to_pylist(), strict=True)
    ]
    images = tables["images"].set_column(
        tables["images"].schema.get_field_index("file_path"), "file_path", pa.array(paths)
    )
    runs = tables["runs"].set_column(
        tables["runs"].schema.get_field_index("kind"), "kind", pa.array(["pipeline"])
    )
    # Thumbnails come only from under a run's images_root (tests/test_dashboard_security.py).
    runs = runs.set_column(
        runs.schema.get_field_index("images_root"), "images_root", pa.array([str(tmp_path)])
    )
    store.write_tables(data, {**tables, "images": images, "runs": runs})
    client = create_app(Settings(data_dir=data, tiles="none")).server.test_client()

    real = client.get(f"/thumbnail/{real_id}")
    assert real.status_code == 200 and real.mimetype == "image/jpeg"
    thumb = Image.open(io.BytesIO(real.data))
    assert thumb.size == (320, 256)
    assert ImageStat.Stat(thumb).mean[0] > 150  # still the red photograph

    gone = client.get(f"/thumbnail/{missing_id}")  # a real run whose file is not there
    assert gone.status_code == 404 and gone.mimetype == "image/png"
    assert client.get("/thumbnail/not-an-image-id").status_code == 404
    assert client.get("/thumbnail/..").status_code == 404
    # Paths in the URL never reach the file system (Dash answers them with its page).
    for url in ("/thumbnail/..%2F..%2Fetc%2Fpasswd", f"/thumbnail/{photo}"):
        response = client.get(url)
        assert b"root:" not in response.data and not response.mimetype.startswith("image/")


def test_simulated_frames_get_a_placeholder(demo_dir: Path) -> None:
    client = create_app(Settings(data_dir=demo_dir, tiles="none")).server.test_client()
    with duckdb.connect(str(store.StorePaths(demo_dir).duckdb), read_only=True) as con:
        (image_id,) = con.execute("SELECT image_id FROM detections LIMIT 1").fetchall()[0]
    response = client.get(f"/thumbnail/{image_id}")
    assert response.status_code == 200 and response.mimetype == "image/png"
    placeholder = Image.open(io.BytesIO(response.data)).convert("L")
    dark = sum(placeholder.histogram()[:100])
    assert dark > 200  # it carries lettering, not just a blank tile


class _TileHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        buf = io.BytesIO()
        Image.new("RGB", (256, 256), "white").save(buf, format="PNG")
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()
        self.wfile.write(buf.getvalue())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def tile_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TileHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/{{z}}/{{x}}/{{y}}.png"
    server.shutdown()


def test_reachable_tile_server_draws_raster_tiles(tile_server: str) -> None:
    style = TileSource(tile_server, timeout_s=2).style()
    assert style["sources"]["tiles"]["tiles"] == [tile_server]


def test_unreachable_tile_server_falls_back_to_offline_map() -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), _TileHandler) as probe:
        port = probe.server_port  # bound, then closed: nothing listens there
    style = TileSource(f"http://127.0.0.1:{port}/{{z}}/{{x}}/{{y}}.png", timeout_s=1).style()
    assert "tiles" not in style["sources"]
    assert [layer["type"] for layer in style["layers"]] == ["background"]
    assert "tiles" not in TileSource(None, timeout_s=1).style()["sources"]
