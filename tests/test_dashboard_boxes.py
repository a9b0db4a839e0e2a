"""Localization boxes on the dashboard's thumbnails: the box query (latest box per frame, frames
without one), the frame list and review gallery drawing them, and thumbnails and boxes sharing
the upright frame.

Reads the hand-made survey of test_dashboard_queries plus a localizations table written here.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from dash import html
from PIL import Image

from dashboard import Settings
from dashboard.context import DashboardContext, build_context
from dashboard.data.queries import hexagon_detections, latest_boxes
from dashboard.data.store import Store
from dashboard.filters import Filters
from dashboard.serving.thumbnails import ThumbnailService
from dashboard.views import hotspots as callbacks
from dashboard.views.review import show_gallery
from pipeline.schema import LOCALIZATIONS
from pipeline.stages.decode import decode_frame
from pipeline.store.store import StorePaths, atomic_write_parquet
from tests.dashboard_fixtures import (
    RUNS_ROWS,
    cell,
    write_survey,
)
from tests.dashboard_fixtures import WHOLE_YEAR_R7 as CONTROLS

pytestmark = pytest.mark.filterwarnings("ignore:(?s).*DataTable will be removed:DeprecationWarning")

# Frames of the hand-made survey (hexagon of A and C at r7, all above 0.5).
C_TOP = "img-C-2023-20230305T040000"  # score 0.99: boxed twice, the later run must win
A_BEST = "img-A-2023-20230210T060000"  # score 0.9: boxed, then a failed re-run (no box)
A_PLAIN = "img-A-2023-20230210T062000"  # score 0.8: never localized


def localization(image_id: str, run_id: str, method: str, box: tuple | None, **extra: Any) -> dict:
    x, y, w, h = box if box is not None else (None,) * 4
    return {
        "image_id": image_id,
        "run_id": run_id,
        "method": method,
        "target": "imagenet:289",
        "score": 0.9,
        "target_score": extra.get("target_score"),
        "box_x": x,
        "box_y": y,
        "box_width": w,
        "box_height": h,
        "failure": extra.get("failure"),
    }


LOCALIZATION_ROWS = [
    localization(C_TOP, "20240601T000000Z-aaaaaa", "lime", (0.1, 0.1, 0.2, 0.2), target_score=0.4),
    localization(C_TOP, "20240701T000000Z-bbbbbb", "gradcam", (0.5, 0.25, 0.3, 0.4),
                 target_score=0.87),
    localization(A_BEST, "20240601T000000Z-aaaaaa", "lime", (0.0, 0.6, 0.5, 0.4)),
    localization(A_BEST, "20240801T000000Z-cccccc", "lime", None, failure="cannot crop: gone"),
]  # fmt: skip


def write_localizations(out: Path, rows: list[dict[str, Any]] = LOCALIZATION_ROWS) -> None:
    atomic_write_parquet(
        pa.Table.from_pylist(rows, schema=LOCALIZATIONS), StorePaths(out).table("localizations")
    )


@pytest.fixture
def survey(tmp_path: Path) -> Path:
    out = write_survey(tmp_path / "survey")
    write_localizations(out)
    return out


def context(data_dir: Path) -> DashboardContext:
    return build_context(Settings(data_dir=data_dir, tiles="none"))


def test_latest_box_wins_and_frames_without_a_box_have_none(survey: Path) -> None:
    store = Store(survey)
    with store.connect() as con:
        frames = hexagon_detections(con, Filters(resolution=7), cell("A"), 10)
        ids = frames.column("image_id").to_pylist()
        boxes = latest_boxes(con, store.table("localizations"), ids)
    assert set(frames.column("image_id").to_pylist()) >= {C_TOP, A_BEST, A_PLAIN}
    latest = boxes[C_TOP]
    assert (latest.method, latest.target) == ("gradcam", "imagenet:289")
    assert [latest.x, latest.y, latest.width, latest.height, latest.target_score] == pytest.approx(
        [0.5, 0.25, 0.3, 0.4, 0.87]
    )
    # The newer run failed (no box): the older box is still the frame's latest box.
    assert boxes[A_BEST].method == "lime" and boxes[A_BEST].y == pytest.approx(0.6)
    assert boxes[A_BEST].target_score is None
    assert A_PLAIN not in boxes
    assert set(boxes) == {C_TOP, A_BEST}


def test_no_localizations_file_or_an_unreadable_one_gives_no_boxes(tmp_path: Path) -> None:
    out = write_survey(tmp_path / "survey")
    with Store(out).connect() as con:
        assert latest_boxes(con, Store(out).table("localizations"), [C_TOP, A_BEST]) == {}
        StorePaths(out).table("localizations").write_bytes(b"PAR1 half-written")
        assert latest_boxes(con, Store(out).table("localizations"), [C_TOP, A_BEST]) == {}


def view(kind: str, x: float, y: float, w: float, h: float) -> dict[str, Any]:
    return {"view": kind, "view_box_x": x, "view_box_y": y, "view_box_width": w,
            "view_box_height": h}  # fmt: skip


def test_a_frame_without_localization_shows_its_best_views_box(tmp_path: Path) -> None:
    views = {
        A_PLAIN: view("tile", 0.23, 0.3, 0.31, 0.4),  # never localized: its tile is its box
        C_TOP: view("motion", 0.7, 0.1, 0.2, 0.3),  # localized: uncia localize's box wins
        A_BEST: view("whole", 0.0, 0.0, 1.0, 1.0),  # localized too
    }
    out = write_survey(tmp_path / "survey", views=views)
    write_localizations(out)
    with Store(out).connect() as con:
        boxes = latest_boxes(con, Store(out).table("localizations"), [C_TOP, A_BEST, A_PLAIN])
    assert (boxes[A_PLAIN].method, boxes[A_PLAIN].target) == ("view", "tile")
    assert [boxes[A_PLAIN].x, boxes[A_PLAIN].y, boxes[A_PLAIN].width] == pytest.approx(
        [0.23, 0.3, 0.31]
    )
    assert boxes[C_TOP].method == "gradcam" and boxes[A_BEST].method == "lime"
    cards = {
        image_id_of(c): c
        for c in callbacks.show_detections(context(out), cell("A"), "v1", **CONTROLS)["cards"]
    }
    outline = thumb_of(cards[A_PLAIN]).children[1]
    assert outline.style["left"] == "23.00%" and "tile" in outline.title
    assert "coarse" in outline.title


def test_a_tracked_region_draws_its_box_and_says_where_its_score_came_from(
    tmp_path: Path,
) -> None:
    out = write_survey(tmp_path / "survey", views={A_PLAIN: view("track", 0.3, 0.11, 0.08, 0.13)})
    with Store(out).connect() as con:
        boxes = latest_boxes(con, Store(out).table("localizations"), [A_PLAIN])
    assert (boxes[A_PLAIN].method, boxes[A_PLAIN].target) == ("view", "track")
    cards = {
        image_id_of(c): c
        for c in callbacks.show_detections(context(out), cell("A"), "v1", **CONTROLS)["cards"]
    }
    outline = thumb_of(cards[A_PLAIN]).children[1]
    assert outline.style["left"] == "30.00%"
    assert "tracked through the burst" in outline.title and "coarse" in outline.title


def test_the_whole_frame_view_draws_no_box(tmp_path: Path) -> None:
    out = write_survey(tmp_path / "survey", views={A_PLAIN: view("whole", 0, 0, 1, 1)})
    with Store(out).connect() as con:
        assert latest_boxes(con, Store(out).table("localizations"), [A_PLAIN]) == {}


def thumb_of(card: html.Figure) -> Any:
    """A card's thumbnail: the bare image, or the box's wrapper around it."""
    return card.children[0]


def image_id_of(card: html.Figure) -> str:
    thumb = thumb_of(card)
    image = thumb.children[0] if isinstance(thumb, html.Div) else thumb
    return str(image.src).rsplit("/", 1)[1]


def test_frame_list_draws_the_box_over_boxed_thumbnails_only(survey: Path) -> None:
    out = callbacks.show_detections(context(survey), cell("A"), "v1", **CONTROLS)
    assert out["alert"] == []
    cards = {image_id_of(c): c for c in out["cards"]}
    boxed = thumb_of(cards[C_TOP])
    assert isinstance(boxed, html.Div) and boxed.className == "thumb"
    image, outline = boxed.children
    assert isinstance(image, html.Img) and image.src == f"/thumbnail/{C_TOP}"
    assert outline.className == "box"
    assert outline.style == {"left": "50.00%", "top": "25.00%", "width": "30.00%",
                             "height": "40.00%"}  # fmt: skip
    assert "Grad-CAM" in outline.title and "0.87" in outline.title
    # A frame never localized shows its bare thumbnail, exactly as without localizations.
    plain = thumb_of(cards[A_PLAIN])
    assert isinstance(plain, html.Img) and plain.src == f"/thumbnail/{A_PLAIN}"


def test_store_without_localizations_lists_frames_as_before(tmp_path: Path) -> None:
    out = write_survey(tmp_path / "survey")
    cards = callbacks.show_detections(context(out), cell("A"), "v1", **CONTROLS)["cards"]
    assert len(cards) == 5
    assert all(isinstance(thumb_of(c), html.Img) for c in cards)


def test_box_reaching_past_the_edge_is_clipped_to_the_frame(tmp_path: Path) -> None:
    out = write_survey(tmp_path / "survey")
    write_localizations(out, [localization(C_TOP, "r1", "lime", (0.9, 0.8, 0.3, 0.3))])
    cards = callbacks.show_detections(context(out), cell("C"), "v1", **CONTROLS)["cards"]
    outline = thumb_of(cards[0]).children[1]
    assert outline.style["left"] == "90.00%" and outline.style["width"] == "10.00%"
    assert outline.style["top"] == "80.00%" and outline.style["height"] == "20.00%"
    assert "LIME" in outline.title


def test_review_gallery_draws_the_best_frames_box(survey: Path) -> None:
    out = show_gallery(context(survey), cell("A"), "v1", None, **CONTROLS)
    assert out["alert"] == []
    by_image = {image_id_of(c): thumb_of(c) for c in out["cards"]}
    assert isinstance(by_image[C_TOP], html.Div)
    assert by_image[C_TOP].children[1].style["left"] == "50.00%"
    assert isinstance(by_image[A_PLAIN], html.Img)


def red_centre(pixels: np.ndarray) -> tuple[float, float]:
    """Where the red patch is, as fractions of the width and height (x, y)."""
    red = (pixels[..., 0] > 180) & (pixels[..., 1] < 90) & (pixels[..., 2] < 90)
    ys, xs = np.nonzero(red)
    return (xs.mean() + 0.5) / pixels.shape[1], (ys.mean() + 0.5) / pixels.shape[0]


def test_thumbnail_and_box_share_the_upright_frame(tmp_path: Path) -> None:
    """A box is computed on the decoded (EXIF-upright) frame; the thumbnail it is drawn on must
    be upright too, or the box would land on the wrong part of a rotated photograph."""
    images_root = tmp_path / "images"
    images_root.mkdir()
    path = images_root / f"{A_PLAIN}.jpg"
    stored = np.full((300, 400, 3), 40, np.uint8)  # landscape as stored
    stored[20:80, 300:380] = (230, 20, 20)  # red patch near the top right, as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": upright is portrait
    Image.fromarray(stored).save(path, "JPEG", quality=95, exif=exif)

    runs = [{**r, "images_root": str(images_root)} for r in RUNS_ROWS]
    out = write_survey(tmp_path / "survey", runs=runs, file_paths={A_PLAIN: str(path)})

    decoded = decode_frame(path, 224)
    assert decoded.pixels is not None and (decoded.width, decoded.height) == (300, 400)
    thumb = ThumbnailService(Store(out), 320).thumbnail(A_PLAIN)
    assert thumb is not None and thumb.status == 200
    small = np.asarray(Image.open(io.BytesIO(thumb.body)).convert("RGB"))
    assert small.shape[1] / small.shape[0] == pytest.approx(300 / 400, abs=0.01)
    # Upright, the patch is near the bottom right: x ≈ 0.83, y ≈ 0.85 in both pictures.
    box_x, box_y = red_centre(decoded.pixels)
    thumb_x, thumb_y = red_centre(small)
    assert (box_x, box_y) == (pytest.approx(0.833, abs=0.03), pytest.approx(0.85, abs=0.03))
    assert (thumb_x, thumb_y) == (pytest.approx(box_x, abs=0.02), pytest.approx(box_y, abs=0.02))


def test_a_new_localizations_table_starts_a_new_callback_cache_key_space(tmp_path: Path) -> None:
    """Answers cached before `uncia localize` ran must not hide its boxes for minutes."""
    from dashboard.data.store import data_state

    out = write_survey(tmp_path / "survey")
    before = data_state(out)
    write_localizations(out)
    assert data_state(out) != before
