"""`uncia localize` and `uncia identify` on real photographs: the 19 jaguar frames of animl-py
(../shared/data/camera-traps, skipped when absent), one deployment folder per station, boxes
measured against the detector boxes of `reid_manifest.csv`.

The photographs are linked into tmp_path, never copied into the repository. There are no
individual labels for these jaguars, so identification is checked for what can be checked:
every crop is a query with ranked candidates, and a mirrored copy of one frame (in a
deployment of its own) is that frame's best candidate and the other way round.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageOps

from bench.localize_eval import JAGUAR_CLASS, jaguar_frames
from pipeline.stages.localize import Box, box_iou
from tests.helpers import SHARED_PHOTOS, deployment, uncia, write_deployments

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.model,
    pytest.mark.skipif(not SHARED_PHOTOS.exists(), reason="../shared/data/camera-traps is absent"),
]

# Measured on these frames with efficientnet_lite0, Grad-CAM at 320 px (bench/results/
# localize.json): 8 of 19 boxes at IoU >= 0.5 (0.42), mean IoU 0.45. The floor leaves room for
# bf16/fp32 and library differences (two frames) without letting localization quietly break.
IOU50_FLOOR = 0.30
MIRRORED = "RL 5_20051003_1721.jpg"  # a large, well-lit jaguar; its mirror image is a new frame
MIRROR_DEPLOYMENT = "RL 5 mirrored"


def station(name: str) -> str:
    """`RL 7_20051004_1735.jpg` -> `RL 7` (the name before the underscore date)."""
    return name.rsplit("_", 2)[0]


def mean_box_baseline(truth: list[Box]) -> list[float]:
    """IoU of each frame's box with the mean of the *other* frames' boxes: the best fixed box a
    survey's own labels could suggest, chosen without looking at the frame."""
    boxes = np.array(truth)
    return [
        box_iou(tuple(np.delete(boxes, i, axis=0).mean(axis=0)), b)  # type: ignore[arg-type]
        for i, b in enumerate(truth)
    ]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict:
    frames = [f for f in jaguar_frames(SHARED_PHOTOS) if f[0].exists()]
    assert len(frames) == 19, "the animl-py Jaguar folder changed"
    base = tmp_path_factory.mktemp("jaguars")
    root = base / "images"
    for path, _, _ in frames:
        folder = root / station(path.name)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / path.name).symlink_to(path)
    mirror_folder = root / MIRROR_DEPLOYMENT
    mirror_folder.mkdir()
    with Image.open(frames[0][0].parent / MIRRORED) as image:
        ImageOps.mirror(image).save(mirror_folder / MIRRORED, "JPEG", quality=92)
    stations = sorted(p.name for p in root.iterdir())
    # Coordinates are invented for the test; the frames carry no EXIF time.
    rows = [
        deployment(
            s,
            18.5 + i * 0.01,
            -88.5 - i * 0.01,
            deploymentStart="2005-09-01",
            deploymentEnd="2005-11-30",
        )
        for i, s in enumerate(stations)
    ]
    csv = write_deployments(base / "deployments.csv", rows)
    out = base / "out"
    seconds = {}
    start = time.perf_counter()
    uncia(
        "run", root, "--deployments", csv, "--out", out,
        "--backbone", "efficientnet_lite0", "--no-progress",
    )  # fmt: skip
    seconds["run"] = time.perf_counter() - start
    start = time.perf_counter()
    localized = uncia(
        "localize", "--data", out, "--method", "gradcam", "--threshold", "0",
        "--target-class", str(JAGUAR_CLASS),
    )  # fmt: skip
    seconds["localize"] = time.perf_counter() - start
    images = pq.read_table(out / "parquet" / "images.parquet").to_pylist()
    return {
        "out": out,
        "frames": frames,
        "localize_stdout": localized.stdout,
        "image": {r["image_id"]: r for r in images},
        "seconds": seconds,
    }


def test_gradcam_boxes_every_real_frame_and_beats_boxes_that_ignore_the_image(
    store: dict,
) -> None:
    out: Path = store["out"]
    assert "localized 20 frame(s)" in store["localize_stdout"]
    assert "(0 failed" in store["localize_stdout"]
    rows = pq.read_table(out / "parquet" / "localizations.parquet").to_pylist()
    assert len(rows) == 20
    by_file = {}
    for row in rows:
        image = store["image"][row["image_id"]]
        assert row["failure"] is None and row["method"] == "gradcam"
        assert row["target"] == f"imagenet:{JAGUAR_CLASS}"
        assert 0 <= row["box_x"] < row["box_x"] + row["box_width"] <= 1.0001
        assert 0 <= row["box_y"] < row["box_y"] + row["box_height"] <= 1.0001
        with Image.open(out / row["crop_path"]) as crop:
            assert crop.format == "JPEG" and min(crop.size) > 16 and max(crop.size) <= 640
        with Image.open(out / row["heatmap_path"]) as heat:
            assert heat.format == "PNG"
        box = (row["box_x"], row["box_y"], row["box_width"], row["box_height"])
        by_file[(image["deploymentID"], image["relative_path"])] = box

    truth = {path.name: boxes for path, boxes, _ in store["frames"]}
    names = sorted(truth)
    ious = [max(box_iou(by_file[station(n), n], b) for b in truth[n]) for n in names]
    baselines = {
        "whole frame": [max(box_iou((0, 0, 1, 1), b) for b in truth[n]) for n in names],
        "centred half": [max(box_iou((0.25, 0.25, 0.5, 0.5), b) for b in truth[n]) for n in names],
        "mean of the others' boxes": mean_box_baseline([truth[n][0] for n in names]),
    }
    rate = sum(i >= 0.5 for i in ious) / len(ious)
    print(
        f"\nGrad-CAM on {len(ious)} jaguar frames: IoU>=0.5 rate {rate:.3f}, "
        f"mean IoU {np.mean(ious):.3f}; "
        + ", ".join(
            f"{k}: mean {np.mean(v):.3f}, rate {np.mean(np.array(v) >= 0.5):.3f}"
            for k, v in baselines.items()
        )
        + f"; seconds {store['seconds']}"
    )
    assert rate >= IOU50_FLOOR
    for name, values in baselines.items():
        assert np.mean(ious) > np.mean(values) + 0.05, name
        assert rate > np.mean(np.array(values) >= 0.5), name

    # The mirrored frame's box is (about) the mirror image of the original frame's box
    # (measured IoU 0.85; Grad-CAM is not exactly flip-equivariant).
    original = by_file[station(MIRRORED), MIRRORED]
    x, y, w, h = by_file[MIRROR_DEPLOYMENT, MIRRORED]
    flipped_iou = box_iou((1 - x - w, y, w, h), original)
    print(f"mirrored frame's box against the original's, mirrored: IoU {flipped_iou:.3f}")
    assert flipped_iou >= 0.6


def test_identify_ranks_every_real_crop_and_finds_the_mirrored_copy(store: dict) -> None:
    out: Path = store["out"]
    start = time.perf_counter()
    result = uncia("identify", "--data", out)
    seconds = time.perf_counter() - start
    assert "matched 20 crop(s)" in result.stdout
    crops = {
        r["image_id"] for r in pq.read_table(out / "parquet" / "localizations.parquet").to_pylist()
    }
    matches = pq.read_table(out / "parquet" / "matches.parquet").to_pylist()
    by_query: dict[str, list[dict]] = {}
    for m in matches:
        by_query.setdefault(m["query_id"], []).append(m)
    assert set(by_query) == crops
    for query, ranked in by_query.items():
        ranked.sort(key=lambda m: m["rank"])
        assert [m["rank"] for m in ranked] == list(range(1, len(ranked) + 1))
        assert 0 < len(ranked) <= 5
        scores = [m["score"] for m in ranked]
        assert scores == sorted(scores, reverse=True)
        assert all(m["candidate_id"] != query and m["candidate_id"] in crops for m in ranked)
    individuals = pq.read_table(out / "parquet" / "individuals.parquet").to_pylist()
    assert {i["image_id"] for i in individuals} == crops
    assert all(i["individualID"].startswith("ind-") for i in individuals)

    proposed = {frozenset((m["query_id"], m["candidate_id"])) for m in matches if m["proposed"]}
    ids = {(r["deploymentID"], r["relative_path"]): i for i, r in store["image"].items()}
    original, mirrored = ids[station(MIRRORED), MIRRORED], ids[MIRROR_DEPLOYMENT, MIRRORED]
    print(
        f"\nidentify in {seconds:.1f} s: {result.stdout.strip()}\n"
        f"{len(proposed)} pair(s) proposed, {len(proposed - {frozenset((original, mirrored))})} "
        "of them between two of the 19 real frames; best non-self scores: "
        + ", ".join(f"{by_query[q][0]['score']:.1f}" for q in sorted(by_query))
    )
    # The one checkable identity: a frame and its mirror image show the same flank of the same
    # animal, so each is the other's best candidate, found through the mirror matching.
    for query, other in ((mirrored, original), (original, mirrored)):
        best = by_query[query][0]
        assert best["candidate_id"] == other and best["mirrored"] and best["proposed"]
    who = {i["image_id"]: i for i in individuals}
    assert who[original]["individualID"] == who[mirrored]["individualID"]
    assert who[original]["status"] == "proposed" and who[original]["sightings"] >= 2

    # Control: without mirror matching the flipped copy is not proposed (SIFT is not
    # flip-invariant), so the match above came from the mirror step, not from shared pixels.
    uncia("identify", "--data", out, "--no-mirror")
    plain = pq.read_table(out / "parquet" / "matches.parquet").to_pylist()
    assert not any(m["mirrored"] for m in plain)
    assert not any(
        m["proposed"] and {m["query_id"], m["candidate_id"]} == {original, mirrored} for m in plain
    )


def test_lime_localizes_real_frames_too(store: dict) -> None:
    """LIME on two frames with few samples: it runs on real photographs; accuracy is Grad-CAM's
    test above and bench/localize_eval.py's (LIME at 300 samples is ~5 s a frame here). Last in
    the file: its crops replace Grad-CAM's for those two frames in the shared store."""
    out: Path = store["out"]
    result = uncia(
        "localize", "--data", out, "--method", "lime", "--threshold", "0",
        "--target-class", str(JAGUAR_CLASS), "--samples", "30", "--limit", "2",
    )  # fmt: skip
    assert "localized 2 frame(s)" in result.stdout and "(0 failed" in result.stdout
    rows = [
        r
        for r in pq.read_table(out / "parquet" / "localizations.parquet").to_pylist()
        if r["method"] == "lime"
    ]
    assert len(rows) == 2
    for row in rows:
        assert row["failure"] is None and row["target"] == f"imagenet:{JAGUAR_CLASS}"
        assert 0 <= row["box_x"] < row["box_x"] + row["box_width"] <= 1.0001
        assert 0 <= row["box_y"] < row["box_y"] + row["box_height"] <= 1.0001
        assert (out / row["crop_path"]).is_file() and (out / row["heatmap_path"]).is_file()
