"""Decoding: fixed-size RGB from every kind of file a camera-trap card holds; bad files are rows.

Fixtures are made in code with Pillow; the `realdata` tests read ../shared/data/camera-traps and
are skipped when it is absent.
"""

from __future__ import annotations

import csv
import hashlib
import warnings
from datetime import datetime
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageFile

from pipeline.stages.decode import decode_frame, parse_exif_datetime
from tests.helpers import png_with_claimed_size

CAMERA_TRAPS = Path(__file__).resolve().parents[2] / "shared/data/camera-traps"
ELEPHANTS = CAMERA_TRAPS / "google-cameratrapai/test_data"
needs_realdata = pytest.mark.skipif(not CAMERA_TRAPS.is_dir(), reason=f"{CAMERA_TRAPS} absent")

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def quadrants(width: int, height: int) -> Image.Image:
    """An RGB image whose quadrants are red (top left), green, blue (bottom left), white."""
    image = Image.new("RGB", (width, height))
    half_w, half_h = width // 2, height // 2
    image.paste(RED, (0, 0, half_w, half_h))
    image.paste(GREEN, (half_w, 0, width, half_h))
    image.paste(BLUE, (0, half_h, half_w, height))
    image.paste(WHITE, (half_w, half_h, width, height))
    return image


def quadrant_colors(pixels: np.ndarray) -> list[tuple[int, ...]]:
    """Colors at the centers of the top-left, top-right, bottom-left, bottom-right quadrants."""
    size = pixels.shape[0]
    near, far = size // 4, 3 * size // 4
    spots = [(near, near), (near, far), (far, near), (far, far)]
    return [tuple(int(v) for v in pixels[row, col]) for row, col in spots]


def assert_color(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 12) -> None:
    assert all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True)), (
        actual,
        expected,
    )


def camera_exif(orientation: int = 1, taken: str | None = None, offset: str | None = None):
    exif = Image.Exif()
    exif[0x0112] = orientation
    sub_ifd = exif.get_ifd(ExifTags.IFD.Exif)
    if taken is not None:
        sub_ifd[0x9003] = taken  # DateTimeOriginal
    if offset is not None:
        sub_ifd[0x9011] = offset  # OffsetTimeOriginal
    return exif


def noisy_jpeg_bytes(width: int = 640, height: int = 480) -> bytes:
    pixels = np.random.default_rng(7).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def test_jpeg_gives_fixed_size_rgb_exif_time_and_hash(tmp_path: Path) -> None:
    path = tmp_path / "IMG_0001.JPG"
    exif = camera_exif(taken="2023:11:02 06:41:09", offset="+05:45")
    quadrants(800, 600).save(path, "JPEG", quality=95, exif=exif)

    frame = decode_frame(path)

    assert frame.failure is None
    assert frame.pixels is not None
    assert frame.pixels.shape == (224, 224, 3) and frame.pixels.dtype == np.uint8
    assert (frame.width, frame.height) == (800, 600)
    assert frame.content_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert frame.exif_datetime == "2023:11:02 06:41:09"
    assert frame.exif_offset == "+05:45"
    for actual, expected in zip(
        quadrant_colors(frame.pixels), [RED, GREEN, BLUE, WHITE], strict=True
    ):
        assert_color(actual, expected)


def test_size_option_sets_output_size(tmp_path: Path) -> None:
    path = tmp_path / "frame.jpg"
    quadrants(1000, 500).save(path, "JPEG")
    assert decode_frame(path, size=96).pixels.shape == (96, 96, 3)


def test_exif_orientation_6_swaps_size_and_rotates_pixels(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    # Stored landscape; orientation 6 means "turn 90 degrees clockwise to display".
    quadrants(400, 200).save(path, "JPEG", quality=95, exif=camera_exif(orientation=6))

    frame = decode_frame(path)

    assert (frame.width, frame.height) == (200, 400)
    top_left, top_right, bottom_left, bottom_right = quadrant_colors(frame.pixels)
    assert_color(top_left, BLUE)  # the stored bottom-left comes up to the top left
    assert_color(top_right, RED)
    assert_color(bottom_left, WHITE)
    assert_color(bottom_right, GREEN)


def test_frame_without_exif_has_no_capture_time(tmp_path: Path) -> None:
    path = tmp_path / "plain.jpg"
    quadrants(64, 48).save(path, "JPEG")
    frame = decode_frame(path)
    assert frame.failure is None
    assert (frame.exif_datetime, frame.exif_offset) == (None, None)


def test_truncated_jpeg_is_a_failure_row(tmp_path: Path) -> None:
    data = noisy_jpeg_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) * 6 // 10])

    frame = decode_frame(path)

    assert frame.pixels is None
    assert frame.failure is not None and frame.failure.startswith("truncated image")
    assert frame.content_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_truncated_jpeg_stays_a_failure_when_a_library_switched_pillow_to_pad_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """megadetector's visualization_utils sets Pillow's process-wide LOAD_TRUNCATED_IMAGES at
    import; a frame cut short must still be a failure row, not grey-padded pixels."""
    data = noisy_jpeg_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) * 6 // 10])
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    frame = decode_frame(path)
    assert frame.pixels is None and frame.failure.startswith("truncated image")


def test_zero_byte_file_is_a_failure_row(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.touch()
    frame = decode_frame(path)
    assert frame.pixels is None
    assert frame.failure == "empty file (0 bytes)"
    assert frame.content_sha256 == hashlib.sha256(b"").hexdigest()


def test_text_named_jpg_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("battery low, card swapped 2023-11-02\n")
    frame = decode_frame(path)
    assert frame.pixels is None
    assert frame.failure == "not an image: cannot identify image file"


def test_unreadable_path_is_a_failure_row(tmp_path: Path) -> None:
    missing = decode_frame(tmp_path / "gone.jpg")
    folder = decode_frame(tmp_path)
    for frame in (missing, folder):
        assert frame.pixels is None and frame.content_sha256 is None
        assert frame.failure is not None and frame.failure.startswith("unreadable: ")


def test_png_named_jpg_decodes_by_content(tmp_path: Path) -> None:
    path = tmp_path / "really_a_png.jpg"
    quadrants(300, 200).save(path, "PNG")
    frame = decode_frame(path)
    assert frame.failure is None
    assert (frame.width, frame.height) == (300, 200)
    for actual, expected in zip(
        quadrant_colors(frame.pixels), [RED, GREEN, BLUE, WHITE], strict=True
    ):
        assert_color(actual, expected, tolerance=0)


def test_cmyk_jpeg_comes_out_in_true_colors(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (320, 240), (0, 255, 255, 0)).save(path, "JPEG", quality=95)  # pure red
    frame = decode_frame(path)
    assert frame.failure is None
    assert_color(tuple(int(v) for v in frame.pixels[112, 112]), RED)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA"])
def test_other_modes_become_rgb(tmp_path: Path, mode: str) -> None:
    path = tmp_path / f"{mode}.png"
    quadrants(200, 200).convert(mode).save(path, "PNG")
    frame = decode_frame(path)
    assert frame.failure is None
    assert frame.pixels.shape == (224, 224, 3)
    assert_color(quadrant_colors(frame.pixels)[3], WHITE)


def test_16_bit_grey_keeps_mid_grey(tmp_path: Path) -> None:
    path = tmp_path / "thermal.png"
    Image.fromarray(np.full((60, 80), 32768, dtype=np.uint16)).save(path, "PNG")
    frame = decode_frame(path)
    assert frame.failure is None
    # Half of the 16-bit range is half of the 8-bit range, not white.
    assert np.all(np.abs(frame.pixels.astype(int) - 128) <= 1)


def test_decompression_bomb_header_fails_fast_without_pillow_warnings(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_with_claimed_size(30_000, 30_000))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = decode_frame(path)
    assert frame.pixels is None
    assert frame.failure == "decompression bomb: 900,000,000 pixels exceeds limit of 100,000,000"
    assert caught == []


def test_max_pixels_is_the_only_size_limit(tmp_path: Path) -> None:
    # 120 Mpx is past Pillow's own process-wide warning threshold (about 89 Mpx); only the
    # per-call limit may decide, and Pillow must not warn.
    path = tmp_path / "panorama.png"
    path.write_bytes(png_with_claimed_size(12_000, 10_000))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = decode_frame(path, max_pixels=110_000_000)
    assert frame.failure == "decompression bomb: 120,000,000 pixels exceeds limit of 110,000,000"
    assert caught == []


@pytest.mark.parametrize(
    ("raw", "offset", "expected"),
    [
        ("2023:11:02 06:41:09", "+05:45", (datetime(2023, 11, 2, 6, 41, 9), 345, "ok")),
        ("2023:11:02 06:41:09", "-03:30", (datetime(2023, 11, 2, 6, 41, 9), -210, "ok")),
        ("2023:11:02 06:41:09", None, (datetime(2023, 11, 2, 6, 41, 9), None, "ok")),
        ("2023:11:02 06:41:09\x00", "   :  ", (datetime(2023, 11, 2, 6, 41, 9), None, "ok")),
        (None, "+07:00", (None, None, "missing")),
        ("0000:00:00 00:00:00", None, (None, None, "unparseable")),
        ("", None, (None, None, "unparseable")),
        ("    :  :     :  :  ", None, (None, None, "unparseable")),
        ("not a date", None, (None, None, "unparseable")),
        ("2023:13:40 25:00:00", None, (None, None, "unparseable")),
    ],
)
def test_parse_exif_datetime(raw, offset, expected) -> None:
    assert parse_exif_datetime(raw, offset) == expected


@pytest.mark.realdata
@needs_realdata
def test_real_elephant_variants_decode_like_the_original() -> None:
    original = decode_frame(ELEPHANTS / "african_elephants.jpg")
    cmyk = decode_frame(ELEPHANTS / "african_elephants_cmyk.jpg")
    rotated = decode_frame(ELEPHANTS / "african_elephants_with_exif_orientation.jpg")
    black_white = decode_frame(ELEPHANTS / "african_elephants_bw.jpg")

    assert original.failure is None and original.exif_datetime == "2010:08:04 08:43:15"
    for variant in (cmyk, rotated):
        assert variant.failure is None
        assert np.abs(variant.pixels.astype(int) - original.pixels).mean() < 4
    # The rotated file is stored 1536x2048 with orientation 6: upright it is 2048x1536 again.
    with Image.open(ELEPHANTS / "african_elephants_with_exif_orientation.jpg") as stored:
        assert stored.size == (1536, 2048)
    assert (rotated.width, rotated.height) == (original.width, original.height) == (2048, 1536)
    assert black_white.failure is None
    channels = black_white.pixels.astype(int)
    assert np.array_equal(channels[..., 0], channels[..., 1])
    assert np.array_equal(channels[..., 1], channels[..., 2])


@pytest.mark.realdata
@needs_realdata
def test_real_truncated_file_is_a_failure_that_keeps_its_capture_time() -> None:
    frame = decode_frame(ELEPHANTS / "african_elephants_truncated_file.jpg")
    assert frame.pixels is None
    assert frame.failure is not None and frame.failure.startswith("truncated image")
    assert frame.exif_datetime == "2010:08:04 08:43:15"


@pytest.mark.realdata
@needs_realdata
def test_real_camtrapr_frames_give_their_exif_capture_times() -> None:
    with open(CAMERA_TRAPS / "labels.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["file"].startswith("jniedballa-camtrapR/")]
    assert len(rows) > 100
    for row in rows:
        frame = decode_frame(CAMERA_TRAPS / row["file"])
        assert frame.failure is None, row["file"]
        assert (frame.exif_datetime or "") == row["exif_datetime"], row["file"]
        local, _, flag = parse_exif_datetime(frame.exif_datetime, frame.exif_offset)
        if row["exif_datetime"]:
            assert flag == "ok"
            assert local == datetime.strptime(row["exif_datetime"], "%Y:%m:%d %H:%M:%S")
        else:
            assert flag == "missing"
