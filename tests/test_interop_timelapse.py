"""Timelapse CSV import: a hand-made export (a template with a Species choice, a Count, an
Ibex counter and an Empty flag) becomes the `file,label` CSV `uncia train` reads; deleted,
unlabelled, doubly labelled and hostile rows are reported, never guessed."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from cli.main import main
from pipeline.training.labels import read_labelled_frames

HEADER = "File,RelativePath,DateTime,DeleteFlag,Species,Count,Ibex,Empty,Note\n"
ROWS = [
    # file, folder, time, delete, species, count, ibex, empty, note  -> expected
    ('IMG_0001.JPG,D1\\2024-05,2024-05-01 06:00:00,false,Snow Leopard,1,0,false,', "snow_leopard"),
    ("IMG_0002.JPG,D1\\2024-05,2024-05-01 06:00:02,False,snow_leopard,2,,false,", "snow_leopard"),
    ("IMG_0003.JPG,D1\\2024-05,2024-05-01 06:00:04,true,Snow leopard,1,0,false,", "DeleteFlag set"),
    ("IMG_0004.JPG,D2,2024-05-02 10:00:00,false,,,0,true,", "empty"),
    ("IMG_0005.JPG,D2,2024-05-02 10:00:00,false,Ibex,three,0,false,", "'three' is not a whole"),
    ('"=HYPERLINK(""http://x.example/"",""y"")",D2,,false,Snow Leopard,1,0,false,',
     "is not a file name"),
    ("passwd,..\\..\\etc,2024-05-02 10:00:00,false,Snow Leopard,1,0,false,",
     "leaves the Timelapse"),
    ("IMG_0008.JPG,D2,2024-05-02 10:05:00,false,=cmd|' /C calc'!A0,1,0,false,",
     "=cmd|' /C calc'!A0"),
    ("IMG_0009.JPG,D2,2024-05-02 10:06:00,false,Ounce,1,0,false,", "snow_leopard"),
    ("IMG_0010.JPG,D2,2024-05-02 10:07:00,false,Ibex,1,0,false,", "different labels"),
    ("IMG_0010.JPG,D2,2024-05-02 10:07:00,false,Snow Leopard,1,0,false,", "different labels"),
    ("IMG_0011.JPG,D2,2024-05-02 10:08:00,false,Snow Leopard,1,2,false,", "two labels"),
    ("IMG_0012.JPG,D2,2024-05-02 10:09:00,false,Snow Leopard,0,0,false,", "no label"),
    ('IMG_0013.JPG,D2,2024-05-02 10:10:00,false,"Snow\nLeopard",1,0,false,', "control characters"),
    ("IMG_0014.JPG,D2,31-Feb-2024 25:00:00,false,,,3,false,", "ibex"),
    ("IMG_0015.JPG,D2,2024-05-02 10:11:00,maybe,Snow Leopard,1,0,false,", "neither true nor false"),
    ("IMG_0016.JPG,D2,2024-05-02 10:12:00,false,,,0,false,", "no label"),
]  # fmt: skip


def _export(tmp_path: Path) -> Path:
    path = tmp_path / "tost-export.csv"
    text = HEADER + "".join(row + "\n" for row, _ in ROWS)
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())  # Timelapse writes a BOM
    return path


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_a_timelapse_export_becomes_training_labels_and_a_report_of_every_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "labels"
    argv = ["import", "timelapse", str(_export(tmp_path)), "--out", str(out), "--counter",
            "Ibex=ibex", "--flag", "Empty=empty", "--map", "ounce=snow_leopard"]  # fmt: skip
    assert main(argv) == 0
    said = capsys.readouterr().out
    assert f"read {len(ROWS)} row(s); wrote 6 frame label(s)" in said
    labels = {r["file"]: r["label"] for r in _read(out / "labels.csv")}
    assert labels == {
        "D1/2024-05/IMG_0001.JPG": "snow_leopard",
        "D1/2024-05/IMG_0002.JPG": "snow_leopard",
        "D2/IMG_0004.JPG": "empty",
        "D2/IMG_0008.JPG": "'=cmd|' /C calc'!A0",  # a formula cell, escaped for spreadsheets
        "D2/IMG_0009.JPG": "snow_leopard",
        "D2/IMG_0014.JPG": "ibex",
    }
    report = _read(out / "timelapse_rows.csv")
    assert len(report) == len(ROWS)
    for (_, expected), row in zip(ROWS, report, strict=True):
        assert expected in (row["label"] if not row["left_out"] else row["left_out"]) or (
            expected == row["label"].lstrip("'")
        ), (expected, row)
    assert report[0]["datetime"] == "2024-05-01T06:00:00"
    assert report[14]["datetime"] == ""  # 31 February: no time, the label still counts
    assert not any(Path(r["file"]).is_absolute() or ".." in r["file"] for r in report
                   if not r["left_out"])  # fmt: skip

    # `uncia train` reads it: files under the Timelapse root, the first folder the station.
    root = tmp_path / "root"
    root.mkdir()
    frames = read_labelled_frames(root, out / "labels.csv").to_pylist()
    by_file = {f["relative_path"]: f for f in frames}
    assert by_file["D1/2024-05/IMG_0001.JPG"]["deployment"] == "D1"
    assert by_file["D2/IMG_0008.JPG"]["label"] == "=cmd|' /C calc'!A0"  # unescaped again
    assert by_file["D2/IMG_0004.JPG"]["file_path"] == str(root / "D2" / "IMG_0004.JPG")


def test_a_template_without_the_species_column_says_which_options_to_give(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "other.csv"
    path.write_text("File,RelativePath,DateTime,DeleteFlag,Animal\nA.JPG,D1,,false,fox\n")
    assert main(["import", "timelapse", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--species-column" in err
    argv = ["import", "timelapse", str(path), "--out", str(tmp_path / "o"),
            "--species-column", "Animal"]  # fmt: skip
    assert main(argv) == 0
    assert _read(tmp_path / "o" / "labels.csv") == [{"file": "D1/A.JPG", "label": "fox"}]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Name,Folder\nA.JPG,D1\n", "no column(s) File, RelativePath"),
        ("File,RelativePath,Species\nA.JPG,D1,fox,extra\n", "more cells than the header"),
        ("", "no rows"),
        ("File,RelativePath,Species\nA.JPG,D1,fox\n", "no column(s) Kind"),  # --species-column
    ],
)
def test_a_csv_that_is_not_a_timelapse_export_gets_a_one_line_error(
    text: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    named = ["--species-column", "Kind"] if "Kind" in expected else []
    assert main(["import", "timelapse", str(path), "--out", str(tmp_path / "o"), *named]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err


def test_a_mapping_option_without_a_label_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["import", "timelapse", str(_export(tmp_path)), "--out", str(tmp_path / "o"),
            "--counter", "Ibex"]  # fmt: skip
    assert main(argv) == 2
    assert "--counter takes COLUMN=LABEL" in capsys.readouterr().err
