"""Decoding stage: one image file in, a fixed-size RGB array plus its EXIF capture time out.

A file that cannot be decoded gives a `DecodedFrame` whose `failure` says why; nothing here raises
for a bad file. JPEGs are decoded at reduced size by the DCT (Pillow draft mode), which is what
makes decoding cheap next to the model.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import struct
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO

import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageOps, JpegImagePlugin, UnidentifiedImageError

from pipeline.schema import TimeFlag

_TAG_ORIENTATION = 0x0112
_TAG_DATETIME_ORIGINAL = 0x9003
_TAG_DATETIME_DIGITIZED = 0x9004
_TAG_OFFSET_TIME_ORIGINAL = 0x9011
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that turn the frame by 90 degrees

# The one pixel limit of every decode, `uncia run` and the dashboard's thumbnails alike: a
# frame one classifies, the other shows. Camera traps and DSLRs make 5-60 Mpx; a 100 Mpx
# frame decodes to 300 MB of RGB, and a PNG claiming more is most likely a decompression bomb.
MAX_PIXELS = 100_000_000
# The only formats decoded (Pillow plugin ids; MPO files open through JPEG). Camera traps write
# JPEG; PNG, TIFF, WebP, BMP and AVIF/HEIF come from exports and phones. Every other plugin -
# PostScript/EPS above all, which runs Ghostscript - never sees a byte of a frame.
ALLOWED_FORMATS = ("JPEG", "PNG", "TIFF", "WEBP", "BMP", "AVIF", "HEIF")

_DATETIME = re.compile(r"(\d{4})[:\-/](\d{2})[:\-/](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})")


@dataclass(frozen=True)
class DecodedFrame:
    """One decoded file. `pixels` is None exactly when `failure` is set.

    `width`/`height` are the original size after EXIF orientation; `pixels` is the whole frame
    squeezed to (size, size) with no crop, so an animal at the edge of the frame is kept.
    `working` is the upright frame at the larger size tiles are cut from (pipeline/stages/views.py),
    when one was asked for.
    """

    pixels: np.ndarray | None
    width: int | None
    height: int | None
    content_sha256: str | None
    exif_datetime: str | None
    exif_offset: str | None
    failure: str | None
    working: np.ndarray | None = None


def decode_frame(
    path: str | os.PathLike[str],
    size: int = 224,
    max_pixels: int = MAX_PIXELS,
    working_side: int | None = None,
) -> DecodedFrame:
    """Decode the image at `path` into a uint8 (size, size, 3) RGB array.

    With `working_side`, the frame is also kept upright at the smallest DCT scale whose long
    side is at least `working_side` px (other formats are reduced to about that size), and the
    (size, size) array is made from it: one decode serves the whole frame and its tiles.

    Takes the ALLOWED_FORMATS, sniffed from the content (a PNG named .jpg is fine), and
    refuses headers claiming more than `max_pixels` before allocating anything. Returns a
    `DecodedFrame`; never raises for a bad file (unreadable, not a regular file, empty,
    truncated, not an image, too large): the reason is in `failure`. The file is read once;
    its sha256 is of those bytes.
    """
    try:
        data = read_regular_file(path)
    except OSError as exc:
        return _failed(f"unreadable: {exc}")
    sha256 = hashlib.sha256(data).hexdigest()
    if not data:
        return _failed("empty file (0 bytes)", sha256)

    exif_datetime: str | None = None
    exif_offset: str | None = None
    width: int | None = None
    height: int | None = None
    try:
        image = _open_image(data)
        full_width, full_height = image.size
        if full_width * full_height > max_pixels:
            return _failed(
                f"decompression bomb: {full_width * full_height:,} pixels exceeds limit of "
                f"{max_pixels:,}",
                sha256,
            )
        exif_datetime, exif_offset, orientation = _read_exif(image)
        swapped = orientation in _SWAPPING_ORIENTATIONS
        width, height = (full_height, full_width) if swapped else (full_width, full_height)
        draft = _draft_size(full_width, full_height, size, working_side)
        if isinstance(image, JpegImagePlugin.JpegImageFile):  # MPO files are JPEGs too
            # DCT scaling: decodes at 1/2, 1/4 or 1/8 size, keeping both sides >= draft.
            image.draft("RGB", draft)
        image.load()
        upright = ImageOps.exif_transpose(image) if orientation != 1 else image
        rgb = _to_rgb(upright)
        if working_side is not None and max(rgb.size) >= 2 * max(draft):
            # Not DCT-scaled (PNG, TIFF...): shrink by an integer factor first, cheaply.
            rgb = rgb.reduce(max(rgb.size) // max(draft))
        pixels = np.asarray(rgb.resize((size, size), Image.Resampling.BILINEAR))
        working = np.asarray(rgb) if working_side is not None else None
    except Exception as exc:  # any decoder failure is this file's problem, not the run's
        return DecodedFrame(
            None, width, height, sha256, exif_datetime, exif_offset, _describe_failure(exc)
        )
    return DecodedFrame(pixels, width, height, sha256, exif_datetime, exif_offset, None, working)


def _draft_size(width: int, height: int, size: int, working_side: int | None) -> tuple[int, int]:
    """The smallest (width, height) the decoder may scale a stored frame down to."""
    if working_side is None:
        return (size, size)
    shrink = max(width, height) / working_side
    if shrink <= 1:
        return (width, height)
    return (max(size, int(width / shrink)), max(size, int(height / shrink)))


def parse_exif_datetime(
    raw: str | None, offset: str | None
) -> tuple[datetime | None, int | None, str]:
    """Parse an EXIF capture time and its UTC offset.

    Takes the raw DateTimeOriginal string (e.g. "2009:04:10 05:07:00") and the raw
    OffsetTimeOriginal (e.g. "+07:00", or None). Returns (naive local datetime, offset in
    minutes or None, flag) with flag "ok", "missing" (raw is None) or "unparseable" (empty,
    zeroed "0000:00:00 00:00:00", garbage). An unreadable offset gives None, not a bad flag.
    """
    if raw is None:
        return None, None, TimeFlag.MISSING
    match = _DATETIME.fullmatch(raw.strip("\x00 \t\r\n"))
    if match is None:
        return None, None, TimeFlag.UNPARSEABLE
    try:
        year, month, day, hour, minute, second = (int(part) for part in match.groups())
        local = datetime(year, month, day, hour, minute, second)
    except ValueError:  # year 0, month 13, hour 25 ...
        return None, None, TimeFlag.UNPARSEABLE
    return local, _parse_offset_minutes(offset), TimeFlag.OK


def _parse_offset_minutes(offset: str | None) -> int | None:
    if offset is None:
        return None
    match = _OFFSET.fullmatch(offset.strip("\x00 \t\r\n"))
    if match is None:
        return None
    sign, hours, minutes = match.groups()
    if int(hours) > 14 or int(minutes) > 59:  # real offsets run from -12:00 to +14:00
        return None
    total = int(hours) * 60 + int(minutes)
    return -total if sign == "-" else total


def _failed(reason: str, sha256: str | None = None) -> DecodedFrame:
    return DecodedFrame(None, None, None, sha256, None, None, reason)


def read_regular_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of the regular file at `path` (a link to one is fine).

    Opened without blocking and checked before reading: a FIFO or device named .jpg would
    otherwise block the reader forever. Raises OSError (EINVAL for anything not a regular file).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with open(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(22, "not a regular file (a FIFO, device or socket)", str(path))
        return handle.read()


def open_image(data: bytes, max_pixels: int = MAX_PIXELS) -> ImageFile.ImageFile:
    """Open `data` as one of the ALLOWED_FORMATS, refusing more than `max_pixels` pixels
    before anything is decoded. Raises UnidentifiedImageError (not an allowed image) or
    Image.DecompressionBombError (too large)."""
    image = _open_image(data)
    width, height = image.size
    if width * height > max_pixels:
        raise Image.DecompressionBombError(
            f"{width * height:,} pixels exceeds limit of {max_pixels:,}"
        )
    return image


def _open_image(data: bytes) -> ImageFile.ImageFile:
    """Open `data` with the allowed plugin its content matches, without Pillow's global limit.

    `Image.open` applies `Image.MAX_IMAGE_PIXELS` (a process-wide setting) and warns or raises
    on its own; the caller applies its per-call `max_pixels` instead, so this mirrors
    `Image.open`'s format sniffing minus that check, over ALLOWED_FORMATS only. Raises
    UnidentifiedImageError.
    """
    # A truncated file is a failure row, never a grey-padded picture: another library loaded
    # into the process may have switched Pillow's process-wide LOAD_TRUNCATED_IMAGES on
    # (megadetector's visualization_utils does at import), so it is switched back here.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    buffer = BytesIO(data)
    prefix = data[:16]
    for load_plugins in (Image.preinit, Image.init):  # common formats first, as Image.open does
        load_plugins()
        for format_id in [f for f in Image.ID if f in ALLOWED_FORMATS]:
            factory, accept = Image.OPEN[format_id]
            if accept is not None:
                verdict = accept(prefix)
                if not verdict or isinstance(verdict, str):
                    continue
            buffer.seek(0)
            try:
                return factory(buffer, "")
            except (SyntaxError, IndexError, TypeError, struct.error):
                continue  # the prefix matched but the header did not: try the next plugin
    raise UnidentifiedImageError("cannot identify image file")


def read_exif_time(path: str | os.PathLike[str]) -> str | None:
    """The raw EXIF capture time of the file at `path` (DateTimeOriginal, else
    DateTimeDigitized), or None when it has none or cannot be opened."""
    try:
        with Image.open(path) as image:
            return _read_exif(image)[0]
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def _read_exif(image: Image.Image) -> tuple[str | None, str | None, int]:
    """Return (raw capture time, raw UTC offset, orientation 1-8); a broken EXIF block gives
    (None, None, 1) so the pixels can still be used."""
    try:
        exif = image.getexif()
        sub_ifd = exif.get_ifd(ExifTags.IFD.Exif)
        orientation = exif.get(_TAG_ORIENTATION, 1)
        raw_time = _exif_text(sub_ifd.get(_TAG_DATETIME_ORIGINAL, exif.get(_TAG_DATETIME_ORIGINAL)))
        if raw_time is None:
            raw_time = _exif_text(
                sub_ifd.get(_TAG_DATETIME_DIGITIZED, exif.get(_TAG_DATETIME_DIGITIZED))
            )
        raw_offset = _exif_text(sub_ifd.get(_TAG_OFFSET_TIME_ORIGINAL))
    except Exception:  # corrupt EXIF is common in camera-trap files; the image may be fine
        return None, None, 1
    if not isinstance(orientation, int) or not 1 <= orientation <= 8:
        orientation = 1
    return raw_time, raw_offset, orientation


def _exif_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    return str(value).rstrip("\x00")


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any mode to 8-bit RGB, scaling 16-bit grey instead of clipping it to white."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I;16") or mode == "I":
        grey = np.asarray(image).astype(np.float32)
        # 65535 maps to 255; Pillow's own convert("L") clips everything above 255 to white.
        grey8 = np.clip(np.rint(grey / 257.0), 0, 255).astype(np.uint8)
        return Image.fromarray(grey8).convert("RGB")
    if mode == "F":
        scale = 255.0 if float(np.nanmax(np.asarray(image), initial=0.0)) <= 1.0 else 1.0
        grey8 = np.clip(np.nan_to_num(np.asarray(image) * scale), 0, 255).astype(np.uint8)
        return Image.fromarray(grey8).convert("RGB")
    if mode == "P":
        # Going through RGBA avoids Pillow's warning about palette transparency.
        image = image.convert("RGBA")
    # Alpha is dropped: camera frames are opaque, an alpha channel here is incidental.
    return image.convert("RGB")


def _describe_failure(exc: Exception) -> str:
    message = str(exc) or type(exc).__name__
    if isinstance(exc, UnidentifiedImageError):
        return "not an image: cannot identify image file"
    if isinstance(exc, Image.DecompressionBombError):
        return f"decompression bomb: {message}"
    if "truncated" in message.lower():
        return f"truncated image: {message}"
    if isinstance(exc, OSError):
        return f"corrupt image: {message}"
    return f"decode error: {type(exc).__name__}: {message}"
