"""COCO Camera Traps export: bursts become sequences, each frame one annotation (a reviewer's,
else the model's with its box in pixels), and the structure checks out; the checker finds
broken databases."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from pipeline.interop.coco import validate_coco_camera_traps
from pipeline.stages.discover import image_id_for
from pipeline.store.reviews import record_review
from tests.interop_fixtures import megadetector_store


def _export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    store = megadetector_store(tmp_path)
    record_review(store, burst_id="D1/20240301T060000", image_id=image_id_for("D1", "a1.jpg"),
                  decision="confirm", reviewer="Tenzin")  # fmt: skip
    record_review(store, burst_id="D2/20240303T060000", image_id=image_id_for("D2", "e2.jpg"),
                  decision="reject", reviewer="Tenzin")  # fmt: skip
    out = tmp_path / "coco.json"
    assert main(["export", "coco", "--data", str(store), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "wrote 6 image(s), 6 annotation(s) (3 human, 3 machine)" in said
    assert "left out: 1 unreadable frames" in said and "0 errors" in said
    return json.loads(out.read_text())


def test_a_store_exports_sequences_annotations_and_categories(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _export(tmp_path, capsys)
    assert validate_coco_camera_traps(data) == []
    images = {im["file_name"]: im for im in data["images"]}
    assert sorted(images) == ["D1/a1.jpg", "D1/a2.jpg", "D1/a3.jpg", "D1/e1.jpg", "D2/e2.jpg",
                              "D2/untimed.jpg"]  # fmt: skip
    a1, a2 = images["D1/a1.jpg"], images["D1/a2.jpg"]
    assert (a1["seq_id"], a1["seq_num_frames"], a1["frame_num"]) == ("D1/20240301T060000", 2, 0)
    assert (a2["seq_id"], a2["seq_num_frames"], a2["frame_num"]) == ("D1/20240301T060000", 2, 1)
    assert images["D1/a3.jpg"]["seq_num_frames"] == 1
    assert a1["datetime"] == "2024-03-01 06:00:00" and a1["location"] == "LD1"
    assert (a1["width"], a1["height"]) == (1920, 1080)
    assert "datetime" not in images["D2/untimed.jpg"]

    categories = {c["name"]: c["id"] for c in data["categories"]}
    assert categories == {"empty": 0, "snow leopard": 1, "not snow leopard": 2}
    names = {v: k for k, v in categories.items()}
    by_file = {
        next(f for f, im in images.items() if im["id"] == a["image_id"]): a
        for a in data["annotations"]
    }
    assert {f: (names[a["category_id"]], a["source"]) for f, a in by_file.items()} == {
        "D1/a1.jpg": ("snow leopard", "human"),  # the reviewer confirmed the burst
        "D1/a2.jpg": ("snow leopard", "human"),
        "D1/a3.jpg": ("snow leopard", "machine"),
        "D1/e1.jpg": ("empty", "machine"),
        "D2/e2.jpg": ("not snow leopard", "human"),  # rejected, whatever the score said
        "D2/untimed.jpg": ("snow leopard", "machine"),
    }
    assert by_file["D1/a1.jpg"]["sequence_level_annotation"] is True
    # The localization (0.1, 0.2, 0.3, 0.4 of 1920 x 1080) in pixels.
    assert by_file["D1/a3.jpg"]["bbox"] == [192.0, 216.0, 576.0, 432.0]
    assert by_file["D1/a3.jpg"]["conf"] == 0.8
    assert by_file["D2/untimed.jpg"]["bbox"] == [0.0, 0.0, 1920.0, 1080.0]
    assert "bbox" not in by_file["D1/e1.jpg"]


def test_the_checker_finds_broken_databases(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _export(tmp_path, capsys)

    def broken(change: Any) -> list[str]:
        data = copy.deepcopy(good)
        change(data)
        return validate_coco_camera_traps(data)

    assert broken(lambda d: d["images"].append(dict(d["images"][0])))[0].endswith("id twice")
    assert "is not in images" in broken(lambda d: d["annotations"][0].update(image_id="nope"))[0]
    assert "is not in categories" in broken(lambda d: d["annotations"][0].update(category_id=9))[0]
    assert "frame_num 5 of seq_num_frames 2" in broken(
        lambda d: d["images"][0].update(frame_num=5))[0]  # fmt: skip
    assert "of 2 and 3 frames" in broken(lambda d: d["images"][1].update(seq_num_frames=3))[0]
    leopard = next(i for i, a in enumerate(good["annotations"]) if "bbox" in a)
    assert "leaves the 1920x1080 image" in broken(
        lambda d: d["annotations"][leopard].update(bbox=[1800, 0, 300, 10]))[0]  # fmt: skip
    assert "not YYYY-MM-DD" in broken(lambda d: d["images"][0].update(datetime="yesterday"))[0]
    assert broken(lambda d: d.pop("categories")) == ["no 'categories' list"]
    assert validate_coco_camera_traps([]) == ["the file is not a JSON object"]


def test_export_without_a_store_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", "coco", "--data", str(tmp_path), "--out", str(tmp_path / "c.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no Uncia store" in err
