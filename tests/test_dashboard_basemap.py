"""The offline basemap as the dashboard serves it: relief tiles cut from the installed world
relief image, MapLibre glyphs for place names, the place list, and the style that names them
by the serving host's own paths only.

Real routes of a real app (Flask's test client), the real relief image and font, no network.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from PIL import Image

from dashboard import Settings, create_app
from dashboard.data.places import all_places, places_near
from dashboard.figures import map_style
from dashboard.serving.basemap import RELIEF_MAX_ZOOM, relief_file, tile_bounds

pytestmark = pytest.mark.filterwarnings("ignore:(?s).*DataTable will be removed:DeprecationWarning")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("empty")  # the basemap needs no survey
    return create_app(Settings(data_dir=folder, tiles="none")).server.test_client()


def png(response: Any) -> np.ndarray:
    assert response.status_code == 200
    assert response.mimetype == "image/png"
    return np.asarray(Image.open(io.BytesIO(response.data)).convert("RGB")).astype(float)


def test_tile_edges_are_web_mercator() -> None:
    # By hand: zoom 1 splits the world in four at the Greenwich meridian and the equator; the
    # top edge of the world is atan(sinh(pi)) = 85.0511 degrees.
    west, south, east, north = tile_bounds(1, 0, 0)
    assert (west, east) == (-180.0, 0.0)
    assert south == pytest.approx(0.0, abs=1e-9)
    assert north == pytest.approx(85.0511287798, abs=1e-9)
    assert tile_bounds(2, 3, 3)[1] == pytest.approx(-85.0511287798, abs=1e-9)


def test_a_relief_tile_shows_the_relief_image_where_it_lies(client: Any) -> None:
    world = png(client.get("/basemap/relief/0/0/0.png"))
    assert world.shape == (256, 256, 3)
    # The equator is the middle row of a zoom-0 tile; compare it with the middle row of the
    # equirectangular relief image, read independently and averaged over the same columns.
    path = relief_file()
    assert path is not None
    with Image.open(path) as img:
        source = np.asarray(img.convert("RGB").resize((256, 128), Image.Resampling.BOX))
    equator_tile = (world[127] + world[128]) / 2
    equator_source = (source[63].astype(float) + source[64]) / 2
    assert np.abs(equator_tile - equator_source).mean() < 12  # a few grey levels of resampling
    # Mountains show as relief: the Pamir's tile (zoom 5, x = floor(253 / 360 * 32) = 22,
    # y = floor((1 - asinh(tan(38.5 deg)) / pi) / 2 * 32) = 12 for 73 E, 38.5 N) has far more
    # texture than a tile of open Pacific (zoom 5, south of Hawaii).
    west, south, east, north = tile_bounds(5, 22, 12)
    assert west < 73 < east and south < 38.5 < north
    mountains = png(client.get("/basemap/relief/5/22/12.png"))
    ocean = png(client.get("/basemap/relief/5/2/14.png"))

    def texture(tile: np.ndarray) -> float:  # how much neighbouring pixels differ
        grey = tile.mean(axis=2)
        return float(np.abs(np.diff(grey, axis=0)).mean() + np.abs(np.diff(grey, axis=1)).mean())

    assert texture(mountains) > 3 * texture(ocean)
    assert ocean[..., 2].mean() > ocean[..., 0].mean() + 30  # the sea is blue


def test_tiles_outside_the_world_or_the_zoom_range_are_refused(client: Any) -> None:
    for path in (
        f"/basemap/relief/{RELIEF_MAX_ZOOM + 1}/0/0.png",
        "/basemap/relief/2/4/0.png",
        "/basemap/relief/2/0/4.png",
        "/basemap/relief/-1/0/0.png",
        "/basemap/relief/1/0/0.jpg",
        "/basemap/relief/99999999999999/0/0.png",  # answered at once, no 2**z computed
        "/basemap/relief/3/99999999999999999999/0.png",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.mimetype != "text/html"  # not the page Dash's catch-all would give


def _fields(buf: bytes) -> list[tuple[int, Any]]:
    """A protobuf message's (field number, value) pairs: varints and length-delimited bytes."""
    out, i = [], 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            length, i = _varint(buf, i)
            value, i = buf[i : i + length], i + length
        else:
            raise AssertionError(f"unexpected wire type {wire}")
        out.append((number, value))
    return out


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def test_glyphs_are_signed_distance_fields_maplibre_can_read(client: Any) -> None:
    response = client.get("/basemap/fonts/DejaVu%20Sans/0-255.pbf")
    assert response.status_code == 200
    assert response.mimetype == "application/x-protobuf"
    [(number, stack)] = _fields(response.data)
    assert number == 1
    fields = _fields(stack)
    assert (1, b"DejaVu Sans") in fields and (2, b"0-255") in fields
    glyphs = {}
    for number, value in fields:
        if number == 3:
            glyph = dict(_fields(value))
            glyphs[glyph[1]] = glyph
    assert {ord(c) for c in "Naryn Khorog 0123"} <= set(glyphs)
    capital_o = glyphs[ord("O")]
    width, height = capital_o[3], capital_o[4]
    assert 12 <= width <= 22 and 14 <= height <= 22  # a capital at 24 px
    sdf = np.frombuffer(capital_o[2], np.uint8).reshape(height + 6, width + 6)
    # 192 marks the outline: the ring of the O is inside (above), its hole and the border out.
    assert sdf[(height + 6) // 2, 3 + 2] > 192  # on the left stroke
    assert sdf[(height + 6) // 2, (width + 6) // 2] < 192  # the hole
    assert sdf[0, 0] < 100  # the corner, well outside
    assert glyphs[ord(" ")][7] > 3 and glyphs[ord(" ")][3] == 0  # a space advances, drawing nothing


def test_glyph_requests_that_are_no_range_are_refused(client: Any) -> None:
    for path in (
        "/basemap/fonts/DejaVu%20Sans/0-254.pbf",
        "/basemap/fonts/DejaVu%20Sans/1-256.pbf",
        "/basemap/fonts/DejaVu%20Sans/65536-65791.pbf",
        "/basemap/fonts/%3Cscript%3E/0-255.pbf",
    ):
        assert client.get(path).status_code == 404, path


def test_places_near_a_survey_are_its_towns_largest_first() -> None:
    assert len(all_places()) > 50_000
    near = places_near((74.0, 40.5, 77.0, 42.0))  # the central Tian Shan, Kyrgyzstan
    names = [p.name for p in near]
    assert "Naryn" in names and "Bishkek" in names  # 0.5 and 0.9 degrees outside the box
    local = [p for p in near if 70 <= p.lng <= 81 and 36.5 <= p.lat <= 46]
    assert [p.population for p in local] == sorted((p.population for p in local), reverse=True)
    # Far from the survey only the world's largest places are named.
    far = [p for p in near if not (70 <= p.lng <= 81 and 36.5 <= p.lat <= 46)]
    assert far and all(p.population >= 3_000_000 for p in far)
    assert "Naryn" not in [p.name for p in places_near(None)]


def test_the_offline_style_names_only_the_serving_hosts_paths() -> None:
    style = map_style(None, "/uncia/", places_near((100.3, 43.0, 101.2, 43.3)))
    assert style["sources"]["relief"]["tiles"] == ["/uncia/basemap/relief/{z}/{x}/{y}.png"]
    assert style["glyphs"] == "/uncia/basemap/fonts/{fontstack}/{range}.pbf"
    assert "http" not in str(style) and "//" not in str(style)
    ids = [layer["id"] for layer in style["layers"]]
    # plotly.js puts hexagons above the first "water…" layer: under the names, over the relief
    assert ids.index("relief") < ids.index("water-under-place-names") < ids.index("place-names")
    names = [f["properties"]["name"] for f in style["sources"]["places"]["data"]["features"]]
    assert "Bayanhongor" in names  # the aimag centre 3 degrees north of the Tost demo survey
    # An external tile server, when one is configured, replaces the offline layers.
    external = map_style("https://tiles.example.org/{z}/{x}/{y}.png", "/", [])
    assert "relief" not in external["sources"] and "glyphs" not in external
    assert [layer["id"] for layer in external["layers"]] == ["background", "tiles"]
