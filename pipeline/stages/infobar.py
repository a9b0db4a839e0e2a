"""Read the capture time a camera printed in its info bar, with Tesseract (Debian's
`tesseract-ocr`), for frames re-saved without EXIF; compare it with EXIF where both exist.

A preset says where the bar is (top or bottom) and the date order. Each bar is read twice,
from two differently scaled copies, in one Tesseract process for a whole batch; the time
counts only when both reads parse to the same valid date and time. Anything else is a flagged
row (no bar, unreadable, the two reads disagree), never a guess.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from pipeline.errors import ConfigError
from pipeline.stages.decode import (
    open_image,
    parse_exif_datetime,
    read_exif_time,
    read_regular_file,
)

TESSERACT = "tesseract"
WHITELIST = "0123456789-:/.APM "
MIN_BAR_PIXELS = 8  # a bar thinner than this holds no readable text (a thumbnail's)
SECONDS_PER_READ_LIMIT = 20  # Tesseract's time per page before the batch is given up


class InfoBarFlag(StrEnum):
    OK = "ok"
    NO_BAR = "no_bar"  # no dark band where the preset says the bar is, or too thin to read
    UNREADABLE = "unreadable"  # no valid date and time in the text
    DISAGREE = "disagree"  # the two reads gave different times
    FAILED = "failed"  # the file could not be opened


class Agreement(StrEnum):
    AGREE = "agree"
    DISAGREE = "disagree"
    INFOBAR_ONLY = "infobar_only"
    EXIF_ONLY = "exif_only"
    NEITHER = "neither"


@dataclass(frozen=True)
class InfoBarPreset:
    name: str
    bar: str  # "top" or "bottom"
    date_order: str  # "ymd", "mdy" or "dmy"
    max_bar_fraction: float = 0.08  # the bar ends within this share of the frame's height
    checked: bool = False  # read on real frames of that make (docs/interop.md)


PRESETS = {
    "reconyx": InfoBarPreset("reconyx", "top", "ymd", checked=True),
    "bushnell": InfoBarPreset("bushnell", "bottom", "mdy"),
    "browning": InfoBarPreset("browning", "bottom", "mdy"),
    "top-dmy": InfoBarPreset("top-dmy", "top", "dmy"),
    "bottom-dmy": InfoBarPreset("bottom-dmy", "bottom", "dmy"),
}


@dataclass(frozen=True)
class InfoBarReading:
    time: datetime | None
    flag: InfoBarFlag
    text: str  # what Tesseract read (the first read), for a person to check
    resolution_seconds: int = 1  # 60 for a bar that prints no seconds


@dataclass(frozen=True)
class TimeComparison:
    file: Path
    exif_time: datetime | None
    infobar: InfoBarReading
    agreement: Agreement
    difference_seconds: float | None  # infobar - EXIF


def tesseract_available() -> bool:
    return shutil.which(TESSERACT) is not None


def find_bar(gray: np.ndarray, preset: InfoBarPreset) -> np.ndarray | None:
    """The rows of the info bar at the preset's edge, or None when there is none thick enough
    to read. A bar is a band of mostly dark (or mostly light) rows; where the picture beside it
    is as dark (a night frame), the bar is the line of text at the edge."""
    height = gray.shape[0]
    limit = max(int(height * preset.max_bar_fraction), 1)
    rows = gray[:limit] if preset.bar == "top" else gray[::-1][:limit]
    dark, light = (rows < 60).mean(axis=1), (rows > 195).mean(axis=1)
    dark_bar = dark[:2].mean() >= light[:2].mean()
    band, text = (dark, light) if dark_bar else (light, dark)
    size = 0
    while size < limit and band[size] >= 0.4:
        size += 1
    if size == limit:  # no end to the band: keep the first line of text and a margin
        size = _text_line_end(text >= 0.01, limit)
    if size < MIN_BAR_PIXELS:
        return None
    bar = gray[:size] if preset.bar == "top" else gray[height - size :]
    return np.asarray(bar)


def _text_line_end(has_text: np.ndarray, limit: int) -> int:
    """Where the first run of text rows from the edge ends (gaps of 2 rows allowed), plus a
    2-row margin; 0 when no text starts in the first half of the band."""
    found = np.flatnonzero(has_text)
    if not len(found) or found[0] > limit // 2:
        return 0
    end, gap = int(found[0]), 0
    while end < limit and gap <= 2:
        gap = 0 if has_text[end] else gap + 1
        end += 1
    return min(end, limit)


def _read_copies(bar: np.ndarray) -> list[Image.Image]:
    """Two copies of the bar as black text on white: as it is and twice the size, smoothed."""
    text_is_light = (bar > 128).mean() < 0.5
    binary = np.where(bar > 128, 0, 255) if text_is_light else np.where(bar > 128, 255, 0)
    image = Image.fromarray(binary.astype(np.uint8))
    bigger = image.resize((image.width * 2, image.height * 2), Image.Resampling.BICUBIC)
    return [ImageOps.expand(copy, 20, fill=255) for copy in (image, bigger)]


def run_tesseract(images: list[Image.Image]) -> list[str]:
    """One line of text per image, read by one Tesseract process (single-line mode, digits and
    date punctuation only); when that process fails, image by image, "" for those that fail.
    ConfigError when Tesseract is not installed."""
    if not images:
        return []
    if not tesseract_available():
        raise ConfigError(
            "reading info bars needs Tesseract: apt-get install tesseract-ocr (make test does)"
        )
    texts = _tesseract_batch(images)
    if texts is None:  # Tesseract crashes on some pictures (a division by zero): isolate them
        texts = [(_tesseract_batch([image]) or [""])[0] for image in images]
    return texts


def _tesseract_batch(images: list[Image.Image]) -> list[str] | None:
    with tempfile.TemporaryDirectory(prefix="uncia-infobar-") as tmp:
        paths = []
        for i, image in enumerate(images):
            path = Path(tmp) / f"{i:06d}.png"
            image.save(path)
            paths.append(str(path))
        listing = Path(tmp) / "images.txt"
        listing.write_text("\n".join(paths) + "\n", encoding="utf-8")
        # One thread: the CPUs are shared, and OpenMP threads slow small images down.
        env = dict(os.environ, OMP_THREAD_LIMIT="1")
        result = subprocess.run(
            [TESSERACT, str(listing), "stdout", "--psm", "7",
             "-c", f"tessedit_char_whitelist={WHITELIST}"],
            capture_output=True, text=True, env=env, check=False,
            timeout=SECONDS_PER_READ_LIMIT * len(images),
        )  # fmt: skip
    if result.returncode != 0:
        return None
    pages = result.stdout.split("\f")
    return [page.strip() for page in pages[: len(images)]] + [""] * (len(images) - len(pages))


_TIME = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AP])?M?")
_YMD = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})")
_XY_YEAR = re.compile(r"(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})")


def parse_infobar_text(text: str, date_order: str) -> datetime | None:
    """The date and time in `text`, see `parse_infobar`."""
    parsed = parse_infobar(text, date_order)
    return parsed[0] if parsed else None


def parse_infobar(text: str, date_order: str) -> tuple[datetime, int] | None:
    """(The date and time in `text` (an info bar's OCR), its resolution in seconds: 1, or 60
    when the bar prints no seconds), or None unless both are there and valid: a real calendar
    day from 2000 on, hours 0-23 (1-12 with AM/PM)."""
    cleaned = re.sub(r"\s+", " ", text.upper())
    if date_order == "ymd":
        date = _YMD.search(cleaned)
        parts = (date.group(1), date.group(2), date.group(3)) if date else None
    else:
        date = _XY_YEAR.search(cleaned)
        if date and date_order == "mdy":
            parts = (date.group(3), date.group(1), date.group(2))
        elif date:
            parts = (date.group(3), date.group(2), date.group(1))
        else:
            parts = None
    if date is None or parts is None:
        return None
    clock = _TIME.search(cleaned, date.end())
    if clock is None:
        return None
    hour, minute = int(clock.group(1)), int(clock.group(2))
    second = int(clock.group(3) or 0)
    if clock.group(4):
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if clock.group(4) == "P" else 0)
    try:
        value = datetime(int(parts[0]), int(parts[1]), int(parts[2]), hour, minute, second)
    except ValueError:
        return None
    return (value, 1 if clock.group(3) else 60) if value.year >= 2000 else None


def read_infobar_times(paths: list[Path], preset: InfoBarPreset) -> list[InfoBarReading]:
    """The info-bar time of every file in `paths`, in order (one Tesseract run for all)."""
    copies: list[Image.Image] = []
    slots: list[tuple[int, int] | InfoBarReading] = []
    for path in paths:
        try:
            # The decoder's allow-list of formats and pixel limit, as for every frame.
            with open_image(read_regular_file(path)) as image:
                gray = np.asarray(image.convert("L"))
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            slots.append(InfoBarReading(None, InfoBarFlag.FAILED, f"cannot open: {exc}"[:200]))
            continue
        bar = find_bar(gray, preset)
        if bar is None:
            slots.append(InfoBarReading(None, InfoBarFlag.NO_BAR, ""))
            continue
        start = len(copies)
        copies.extend(_read_copies(bar))
        slots.append((start, len(copies)))
    texts = run_tesseract(copies)
    readings = []
    for slot in slots:
        if isinstance(slot, InfoBarReading):
            readings.append(slot)
            continue
        read = texts[slot[0] : slot[1]]
        parsed = [parse_infobar(t, preset.date_order) for t in read]
        if all(p is None for p in parsed):
            readings.append(InfoBarReading(None, InfoBarFlag.UNREADABLE, read[0]))
        elif len(set(parsed)) > 1:
            readings.append(InfoBarReading(None, InfoBarFlag.DISAGREE, " | ".join(read)))
        else:
            time, resolution = parsed[0]  # type: ignore[misc]
            readings.append(InfoBarReading(time, InfoBarFlag.OK, read[0], resolution))
    return readings


def compare_with_exif(
    paths: list[Path], preset: InfoBarPreset, tolerance_seconds: float = 1.0
) -> list[TimeComparison]:
    """Info-bar time against EXIF DateTimeOriginal for every file; they agree within
    `tolerance_seconds`, at the bar's resolution (a bar without seconds agrees with any EXIF
    time in its minute)."""
    readings = read_infobar_times(paths, preset)
    out = []
    for path, reading in zip(paths, readings, strict=True):
        exif, _, _ = parse_exif_datetime(read_exif_time(path), None)
        difference = None
        if exif is not None and reading.time is not None:
            difference = (reading.time - exif).total_seconds()
            if reading.resolution_seconds == 60:
                exif_minute = exif.replace(second=0, microsecond=0)
                close = abs((reading.time - exif_minute).total_seconds()) <= tolerance_seconds
            else:
                close = abs(difference) <= tolerance_seconds
            agreement = Agreement.AGREE if close else Agreement.DISAGREE
        elif reading.time is not None:
            agreement = Agreement.INFOBAR_ONLY
        elif exif is not None:
            agreement = Agreement.EXIF_ONLY
        else:
            agreement = Agreement.NEITHER
        out.append(TimeComparison(path, exif, reading, agreement, difference))
    return out
