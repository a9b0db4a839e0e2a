"""Localization evaluation: boxes from LIME and Grad-CAM against known boxes on real photographs.

    python -m bench.localize_eval [--samples 300] [--backbone efficientnet_lite0] [--limit N]

Known boxes: the 19 jaguar frames of animl-py (detector boxes in `reid_manifest.csv`,
explained class ImageNet 290 "jaguar") and the 14-frame squirrel sequence of
microsoft/CameraTraps (YOLO labels, explained class ImageNet 335 "fox squirrel"). A frame counts
as found when the predicted box has IoU >= 0.5 with any known box. The heat maps are also cut at
several box fractions (reported as a sweep; the default fraction was chosen before looking at
these frames only for LIME, for Grad-CAM see docs/identification.md). Results go to
bench/results/localize.json (written atomically).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from pipeline.runs.localize_run import GRADCAM_INPUT_SIZE
from pipeline.stages.decode import decode_frame
from pipeline.stages.embed import load_backbone
from pipeline.stages.localize import (
    Box,
    GradCamOptions,
    ImageNetTarget,
    LimeOptions,
    box_from_heatmap,
    box_iou,
    gradcam_explain,
    lime_explain,
    score_function,
)
from pipeline.store.store import atomic_write_text

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "camera-traps"
RESULTS = Path(__file__).resolve().parent / "results" / "localize.json"
JAGUAR_CLASS = 290
FOX_SQUIRREL_CLASS = 335
SWEEP = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def jaguar_frames(root: Path = PHOTOS) -> list[tuple[Path, list[Box], int]]:
    folder = root / "conservationtechlab-animl-py" / "examples" / "Jaguar"
    boxes: dict[str, list[Box]] = {}
    with (folder / "reid_manifest.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            x, y, w, h = (float(row[k]) for k in ("bbox_x", "bbox_y", "bbox_w", "bbox_h"))
            box = (x, y, w, h)
            boxes.setdefault(row["filename"], []).append(box)
    return [(folder / name, b, JAGUAR_CLASS) for name, b in sorted(boxes.items())]


def squirrel_frames(root: Path = PHOTOS) -> list[tuple[Path, list[Box], int]]:
    base = root / "microsoft-CameraTraps" / "PW_FT_detection" / "data" / "data_example"
    out = []
    for image in sorted((base / "images").glob("*/*.jpg")):
        label = base / "labels" / image.parent.name / f"{image.stem}.txt"
        boxes = []
        for line in label.read_text().split("\n"):
            parts = line.split()
            if len(parts) == 5:
                cx, cy, w, h = map(float, parts[1:])
                boxes.append((cx - w / 2, cy - h / 2, w, h))
        out.append((image, boxes, FOX_SQUIRREL_CLASS))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=LimeOptions().samples)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--limit", type=int, help="frames per set (default all)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not PHOTOS.is_dir():
        print(f"skipped: no photographs at {PHOTOS} (they are not part of the repository)")
        return 0
    backbone = load_backbone(args.backbone, device=args.device)
    lime_options = LimeOptions(samples=args.samples)
    gradcam_options = GradCamOptions()
    result: dict = {
        "backbone": backbone.name,
        "device": backbone.device,
        "precision": backbone.precision,
        "lime_samples": args.samples,
        "input_size": {"lime": backbone.input_size, "gradcam": GRADCAM_INPUT_SIZE},
        "box_fraction": {
            "lime": lime_options.box_fraction,
            "gradcam": gradcam_options.box_fraction,
        },
        "sets": {},
    }
    for set_name, frames in (("jaguar", jaguar_frames()), ("squirrel", squirrel_frames())):
        frames = frames[: args.limit] if args.limit else frames
        per_method: dict[str, dict] = {}
        for method in ("gradcam", "lime"):
            ious, seconds, sweep = [], [], {f: 0 for f in SWEEP}
            for path, boxes, class_index in frames:
                size = backbone.input_size if method == "lime" else GRADCAM_INPUT_SIZE
                decoded = decode_frame(path, size)
                if decoded.pixels is None:
                    continue
                target = ImageNetTarget(backbone, class_index)
                start = time.perf_counter()
                if method == "lime":
                    explanation = lime_explain(
                        decoded.pixels, score_function(backbone, target), lime_options
                    )
                else:
                    explanation = gradcam_explain(
                        decoded.pixels[None], backbone, target, gradcam_options
                    )[0]
                seconds.append(time.perf_counter() - start)
                ious.append(max(box_iou(explanation.box, b) for b in boxes))  # type: ignore[arg-type]
                for fraction in SWEEP:
                    box = box_from_heatmap(explanation.heatmap, fraction)
                    sweep[fraction] += max(box_iou(box, b) for b in boxes) >= 0.5  # type: ignore[arg-type]
            per_method[method] = {
                "frames": len(ious),
                "iou50_rate": round(sum(i >= 0.5 for i in ious) / max(1, len(ious)), 3),
                "mean_iou": round(float(np.mean(ious)) if ious else 0.0, 3),
                "seconds_per_frame_median": round(statistics.median(seconds), 3)
                if seconds
                else None,
                "iou50_rate_by_box_fraction": {
                    str(f): round(n / max(1, len(ious)), 3) for f, n in sweep.items()
                },
            }
            print(set_name, method, json.dumps(per_method[method]), flush=True)
        result["sets"][set_name] = per_method
    atomic_write_text(json.dumps(result, indent=2) + "\n", args.out)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
