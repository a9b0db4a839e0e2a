"""Small JPEG thumbnails of detection frames, served at /thumbnail/<image_id>.

Only files named in the store's images table are ever read: the URL carries an id, never a path,
and the file (symlinks resolved) must lie under an image root, else the answer is a bare 404.
Simulated demo frames have no file, so they get a generated placeholder that says "simulated".
"""

from __future__ import annotations

import functools
import io
import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, Response, request
from PIL import Image, ImageDraw, ImageFont, ImageOps

from dashboard.data.queries import image_source, run_image_roots
from dashboard.data.store import Store
from pipeline.errors import StoreError
from pipeline.stages.decode import open_image, read_regular_file

log = logging.getLogger(__name__)

IMAGE_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")
CACHE_ENTRIES = 512
PLACEHOLDER_BACKGROUND = "#d9d3c3"


@dataclass(frozen=True)
class Thumbnail:
    body: bytes
    mimetype: str
    status: int = 200


class ThumbnailService:
    """Looks image ids up in the store and renders thumbnails, keeping recent ones in memory."""

    def __init__(
        self, store: Store, size_px: int = 320, image_roots: Sequence[Path] = ()
    ) -> None:
        self.store = store
        self.size_px = size_px
        self.image_roots = tuple(image_roots)  # (): the images_root of the store's runs
        self._cache: OrderedDict[str, Thumbnail] = OrderedDict()
        self._lock = threading.Lock()

    def thumbnail(self, image_id: str) -> Thumbnail | None:
        """Return the thumbnail of `image_id`, or None when the store has no such frame.

        Raises StoreError when the store cannot be read.
        """
        if not IMAGE_ID.fullmatch(image_id):
            return None
        with self._lock:
            if image_id in self._cache:
                self._cache.move_to_end(image_id)
                return self._cache[image_id]
        with self.store.connect() as con:
            source = image_source(con, image_id)
            simulated = source is not None and source.simulated
            if source is None or (simulated and source.file_path.startswith("simulated://")):
                roots: Sequence[Path] = ()
            else:
                roots = self.image_roots or run_image_roots(con)
        if source is None:
            return None
        if simulated and source.file_path.startswith("simulated://"):
            thumb = placeholder("simulated", "demo frame: no photograph", self.size_px)
        else:
            path = confined_path(source.file_path, roots)
            if path is None:
                log.warning("thumbnail %s refused: its file is outside the image roots", image_id)
                return None
            thumb = self._render(path, simulated=source.simulated)
        with self._lock:
            self._cache[image_id] = thumb
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return thumb

    def _render(self, path: Path, *, simulated: bool) -> Thumbnail:
        if not path.is_file():
            if simulated:
                return placeholder("simulated", "demo frame: no photograph", self.size_px)
            return placeholder("image not found", "the file has moved", self.size_px, status=404)
        try:
            # The run's decoder rules: its formats only (no PostScript…), its pixel limit, so
            # a frame the run classified is shown and one it refused is refused here too.
            with open_image(read_regular_file(path)) as img:
                img.draft("RGB", (self.size_px, self.size_px))  # JPEG: decode at reduced size
                small = ImageOps.exif_transpose(img).convert("RGB")
                small.thumbnail((self.size_px, self.size_px))
                buf = io.BytesIO()
                small.save(buf, format="JPEG", quality=82)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            log.warning("cannot make a thumbnail of %s: %s", path, exc)
            return placeholder("unreadable image", "see the images table", self.size_px)
        return Thumbnail(buf.getvalue(), "image/jpeg")


def confined_path(file_path: str, roots: Sequence[Path]) -> Path | None:
    """The real path of `file_path` when it lies under one of `roots` (both resolved), else None.

    Resolving first means `..` parts and symlinks pointing out of a root are refused.
    """
    if "\0" in file_path or not os.path.isabs(file_path):
        return None
    real = os.path.realpath(file_path)
    for root in roots:
        real_root = os.path.realpath(root)
        if os.path.isabs(real_root) and os.path.commonpath([real, real_root]) == real_root:
            return Path(real)
    return None


@functools.lru_cache(maxsize=16)
def placeholder(title: str, subtitle: str, size_px: int, status: int = 200) -> Thumbnail:
    """A 4:3 grey PNG with `title` in large letters and `subtitle` below it (drawn once per
    wording and size: a demo page asks for the same "simulated" picture 80 times a click)."""
    width, height = size_px, size_px * 3 // 4
    img = Image.new("RGB", (width, height), PLACEHOLDER_BACKGROUND)
    draw = ImageDraw.Draw(img)
    big = ImageFont.load_default(size=max(12, width // 9))
    small = ImageFont.load_default(size=max(9, width // 22))
    draw.rectangle([3, 3, width - 4, height - 4], outline="#8c8573", width=2)
    draw.text((width / 2, height / 2 - 4), title, fill="#3b372d", font=big, anchor="md")
    draw.text((width / 2, height / 2 + 10), subtitle, fill="#5b5546", font=small, anchor="ma")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return Thumbnail(buf.getvalue(), "image/png", status)


def register_thumbnails(server: Flask, service: ThumbnailService, prefix: str = "/") -> None:
    """Add the GET {prefix}thumbnail/<image_id> route to the Flask `server`."""

    def serve_thumbnail(image_id: str) -> Response:
        try:
            thumb = service.thumbnail(image_id)
        except StoreError:
            log.exception("thumbnail %s: store unavailable", image_id)
            return Response("store unavailable", status=503, mimetype="text/plain")
        if thumb is None:
            return Response("no such frame", status=404, mimetype="text/plain")
        response = Response(thumb.body, status=thumb.status, mimetype=thumb.mimetype)
        response.headers["Cache-Control"] = "private, max-age=3600"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    server.add_url_rule(
        f"{prefix}thumbnail/<image_id>", "uncia_thumbnail", serve_thumbnail, methods=["GET"]
    )
    base = f"{prefix}thumbnail/"

    # Anything with a slash after thumbnail/ (%2F decodes to one) is no id: 404, not the page
    # that Dash's catch-all route would give.
    @server.before_request
    def refuse_paths() -> Response | None:
        if request.path.startswith(base) and "/" in request.path[len(base) :]:
            return Response("no such frame", status=404, mimetype="text/plain")
        return None
