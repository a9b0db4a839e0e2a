"""Info-bar times (Tesseract): on the 20 development frames, the times read equal the ones
printed (typed by a person who looked at each bar); on frames drawn here, agreement with EXIF,
bars without seconds, and every kind of frame that must be a flagged row, never a guess."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path

import pytest

from cli.main import main
from pipeline.stages.infobar import (
    PRESETS,
    compare_with_exif,
    parse_infobar,
    tesseract_available,
)
from tests.helpers import drawn_frame

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "snow-leopard-dev"
needs_tesseract = pytest.mark.skipif(
    not tesseract_available(), reason="no tesseract (make test installs tesseract-ocr)"
)
# Read off each frame's top info bar by eye: "2012-07-06 1:17:34 AM", … (all AM).
PRINTED = {
    "IMG_0031.JPG": "01:17:34", "IMG_0032.JPG": "01:17:35", "IMG_0033.JPG": "01:17:36",
    "IMG_0034.JPG": "01:17:37", "IMG_0035.JPG": "01:17:38", "IMG_0036.JPG": "01:17:39",
    "IMG_0037.JPG": "01:17:39", "IMG_0038.JPG": "01:17:40", "IMG_0039.JPG": "01:17:41",
    "IMG_0040.JPG": "01:17:42", "IMG_0041.JPG": "01:17:46", "IMG_0042.JPG": "01:17:47",
    "IMG_0043.JPG": "01:17:47", "IMG_0044.JPG": "01:17:48", "IMG_0045.JPG": "01:17:49",
    "IMG_0046.JPG": "01:17:50", "IMG_0047.JPG": "01:17:50", "IMG_0048.JPG": "01:17:52",
    "IMG_0049.JPG": "01:17:53", "IMG_0050.JPG": "01:17:53",
}  # fmt: skip


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@needs_tesseract
@pytest.mark.skipif(not DEV.exists(), reason="no ../shared/data/snow-leopard-dev")
def test_the_development_frames_give_the_printed_times(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "times.csv"
    assert main(["infobar", str(DEV / "images"), "--out", str(out)]) == 0
    assert "read 20 frame(s) with the reconyx preset: 20 ok; against EXIF: 20 infobar_only" in (
        capsys.readouterr().out
    )
    rows = {Path(r["file"]).name: r for r in _read_csv(out)}
    assert {name: r["infobar_time"] for name, r in rows.items()} == {
        name: f"2012-07-06T{clock}" for name, clock in PRINTED.items()
    }
    assert {r["exif_time"] for r in rows.values()} == {""}  # re-saved: no EXIF
    assert rows["IMG_0031.JPG"]["file"] == "PANTHERA-16/IMG_0031.JPG"


@needs_tesseract
def test_exif_agreement_and_the_frames_that_must_be_flagged(tmp_path: Path) -> None:
    t = datetime(2024, 3, 1, 18, 5, 7)
    frames = [
        drawn_frame(tmp_path / "agree.jpg", "2024-03-01 6:05:07 PM  M 1/3", t),
        drawn_frame(tmp_path / "clock_off.jpg", "2024-03-01 7:05:07 PM  M 2/3", t),
        drawn_frame(tmp_path / "no_exif.jpg", "2024-03-01 6:05:09 PM  M 3/3", None),
        drawn_frame(tmp_path / "no_bar.jpg", None, t),
        drawn_frame(tmp_path / "thumb.jpg", "2024-03-01 6:05:07 PM", t, size=(100, 75)),
        drawn_frame(tmp_path / "garbage.jpg", "TRAIL CAM OK", t),
        drawn_frame(tmp_path / "nonsense_date.jpg", "2024-13-45 6:05:07 PM", t),
    ]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(frames[0].read_bytes()[:300])
    found = {c.file.name: c for c in compare_with_exif([*frames, broken], PRESETS["reconyx"])}
    summary = {n: (c.infobar.flag.value, c.agreement.value) for n, c in found.items()}
    assert summary == {
        "agree.jpg": ("ok", "agree"),
        "clock_off.jpg": ("ok", "disagree"),
        "no_exif.jpg": ("ok", "infobar_only"),
        "no_bar.jpg": ("no_bar", "exif_only"),
        "thumb.jpg": ("no_bar", "exif_only"),  # a thumbnail's bar is too thin to read
        "garbage.jpg": ("unreadable", "exif_only"),
        "nonsense_date.jpg": ("unreadable", "exif_only"),  # month 13 is never a time
        "broken.jpg": ("failed", "neither"),
    }
    assert found["clock_off.jpg"].difference_seconds == 3600
    assert found["no_exif.jpg"].infobar.time == datetime(2024, 3, 1, 18, 5, 9)


@needs_tesseract
def test_a_bottom_bar_without_seconds_agrees_within_its_minute(tmp_path: Path) -> None:
    exif = datetime(2024, 3, 1, 18, 5, 41)
    frames = [
        drawn_frame(tmp_path / "a.jpg", "CAM-7  03/01/2024 6:05 PM", exif, bar="bottom"),
        drawn_frame(tmp_path / "b.jpg", "CAM-7  03/01/2024 6:07 PM", exif, bar="bottom"),
    ]
    found = compare_with_exif(frames, PRESETS["bushnell"])
    assert [c.agreement.value for c in found] == ["agree", "disagree"]
    assert found[0].infobar.resolution_seconds == 60
    # The reconyx preset looks at the top, where these frames have no bar.
    assert {c.infobar.flag.value for c in compare_with_exif(frames, PRESETS["reconyx"])} == {
        "no_bar"
    }


@pytest.mark.parametrize(
    ("text", "order", "expected"),
    [
        ("2012-07-06 1:17:34 AM M 1/10", "ymd", (datetime(2012, 7, 6, 1, 17, 34), 1)),
        ("2012-07-06 12:00:01 AM", "ymd", (datetime(2012, 7, 6, 0, 0, 1), 1)),
        ("2012-07-06 12:00:01 PM", "ymd", (datetime(2012, 7, 6, 12, 0, 1), 1)),
        ("2012-07-06 23:59:59", "ymd", (datetime(2012, 7, 6, 23, 59, 59), 1)),
        ("04.01.2018 22:51:29", "mdy", (datetime(2018, 4, 1, 22, 51, 29), 1)),
        ("04.01.2018 22:51:29", "dmy", (datetime(2018, 1, 4, 22, 51, 29), 1)),
        ("10/22/2018 5:50 AM", "mdy", (datetime(2018, 10, 22, 5, 50), 60)),
        ("10/22/2018 5:50 AM", "dmy", None),  # month 22
        ("2012-02-30 1:17:34 AM", "ymd", None),
        ("2012-07-06 13:17:34 PM", "ymd", None),
        ("1999-07-06 1:17:34", "ymd", None),  # before any digital trail camera of ours
        ("2012-07-06", "ymd", None),  # a date without a time is not a capture time
        ("1:17:34 AM", "ymd", None),
        ("", "ymd", None),
    ],
)
def test_parse_info_bar_text(text: str, order: str, expected: tuple[datetime, int] | None) -> None:
    assert parse_infobar(text, order) == expected


def test_infobar_on_a_missing_folder_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["infobar", str(tmp_path / "nope"), "--out", str(tmp_path / "t.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is neither a folder nor a file" in err
    (tmp_path / "empty").mkdir()
    assert main(["infobar", str(tmp_path / "empty"), "--out", str(tmp_path / "t.csv")]) == 2
    assert "no frames" in capsys.readouterr().err


def test_the_report_escapes_formula_cells_and_keeps_numbers(tmp_path: Path) -> None:
    if not tesseract_available():
        pytest.skip("no tesseract")
    root = tmp_path / "=cmd"
    root.mkdir()
    drawn_frame(root / "=HYPERLINK.jpg", "2024-03-01 7:05:07 PM", datetime(2024, 3, 1, 20, 5, 7))
    out = tmp_path / "t.csv"
    assert main(["infobar", str(tmp_path), "--out", str(out)]) == 0
    (row,) = list(csv.DictReader(io.StringIO(out.read_text())))
    assert row["file"] == "'=cmd/=HYPERLINK.jpg" and row["difference_s"] == "-3600"
