"""`uncia export coco`: a store as COCO Camera Traps JSON, LILA's format (docs/interop.md),
and a structural check of such a file.

Images carry their sequence (the burst: seq_id, seq_num_frames, frame_num), location and
time; each frame gets one annotation: a reviewer's decision on its burst, else an imported
observation's label, else the model's (snow leopard at or above the threshold, with its box in
pixels, else empty). Format: github.com/agentmorris/MegaDetector, data_management/README.md.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.interop import store_tables as st
from pipeline.interop.common import EMPTY_LABEL
from pipeline.interop.megadetector import frame_box
from pipeline.schema import ImageStatus
from pipeline.store.reviews import LEOPARD_LABEL, NOT_LEOPARD_LABEL
from pipeline.store.store import atomic_write_text

CATEGORY_NAMES = {EMPTY_LABEL: "empty", LEOPARD_LABEL: "snow leopard",
                  NOT_LEOPARD_LABEL: "not snow leopard"}  # fmt: skip
FIXED_IDS = {"empty": 0, "snow leopard": 1}  # LILA's habit: 0 is empty


@dataclass(frozen=True)
class CocoExport:
    images: int
    annotations: dict[str, int]  # per source: human, imported, machine
    categories: int
    left_out: dict[str, int]
    problems: tuple[str, ...]


def _category_name(label: str) -> str:
    return CATEGORY_NAMES.get(label, label)


def _frame_numbers(detections: list[dict[str, Any]]) -> dict[str, int]:
    """Each frame's 0-based position in its burst, by capture time then path."""
    by_burst: dict[str, list[dict[str, Any]]] = {}
    for det in detections:
        by_burst.setdefault(det["burst_id"], []).append(det)
    numbers = {}
    for members in by_burst.values():
        members.sort(key=lambda d: (d["captured_at"] or datetime.min, d["file_path"]))
        numbers.update({d["image_id"]: i for i, d in enumerate(members)})
    return numbers


def export_coco(data_dir: Path, out_file: Path, threshold: float | None = None) -> CocoExport:
    """Write the store in `data_dir` as COCO Camera Traps JSON to `out_file` and check it.
    Raises StoreError without a store."""
    data_dir, out_file = Path(data_dir), Path(out_file)
    st.require_store(data_dir)
    if threshold is None:
        threshold = st.latest_threshold(data_dir) or 0.5
    imports = st.import_run_ids(data_dir)
    detections = {d["image_id"]: d for d in st.rows(data_dir, "detections")}
    bursts = {b["burst_id"]: b for b in st.rows(data_dir, "bursts")}
    frame_numbers = _frame_numbers(list(detections.values()))
    deployments = {d["deploymentID"]: d for d in st.rows(data_dir, "deployments")}
    reviews = {r["burst_id"]: r for r in st.latest_reviews(data_dir)}
    observed: dict[str, dict[str, Any]] = {}
    for obs in st.rows(data_dir, "observations"):  # a person's word first
        if obs["mediaID"] and (obs["mediaID"] not in observed or
                               obs["classificationMethod"] == "human"):  # fmt: skip
            observed[obs["mediaID"]] = obs
    localized = st.best_localization_boxes(data_dir)
    images, annotations = [], []
    names: set[str] = set()
    counts = {"human": 0, "imported": 0, "machine": 0}
    left_out = {"unreadable frames": 0}
    for image in sorted(st.rows(data_dir, "images"), key=lambda i: st.survey_file(i, imports)):
        if image["status"] != ImageStatus.OK.value:
            left_out["unreadable frames"] += 1
            continue
        det = detections.get(image["image_id"])
        dep = deployments.get(image["deploymentID"], {})
        entry: dict[str, Any] = {
            "id": image["image_id"],
            "file_name": st.survey_file(image, imports),
            "width": image["width"],
            "height": image["height"],
            "location": dep.get("locationID") or image["deploymentID"],
            "deployment": image["deploymentID"],
        }
        if image["captured_at"] is not None:
            entry["datetime"] = image["captured_at"].strftime("%Y-%m-%d %H:%M:%S")
        if det is not None and det["burst_id"] in bursts:
            entry.update(seq_id=det["burst_id"],
                         seq_num_frames=int(bursts[det["burst_id"]]["n_frames"]),
                         frame_num=frame_numbers[image["image_id"]])  # fmt: skip
        else:
            entry.update(seq_id=image["image_id"], seq_num_frames=1, frame_num=0)
        images.append(entry)
        annotation = _annotation(image, det, reviews, observed, threshold, localized)
        if annotation is None:
            continue
        names.add(annotation.pop("label"))
        counts[annotation["source"]] += 1
        annotations.append(annotation)
    ids = dict(FIXED_IDS)
    for name in sorted(names - set(ids)):
        ids[name] = len(ids)
    for annotation in annotations:
        annotation["category_id"] = ids[annotation.pop("category")]
    data = {
        "info": {
            "version": __version__,
            "description": f"Uncia survey {data_dir.name}: frames, bursts as sequences, labels",
            "contributor": f"Uncia {__version__}",
            "date_created": datetime.now(UTC).strftime("%Y-%m-%d"),
            "leopard_threshold": threshold,
        },
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": n} for n, i in sorted(ids.items(), key=lambda x: x[1])],
    }
    atomic_write_text(json.dumps(data, indent=1) + "\n", out_file)
    return CocoExport(
        images=len(images),
        annotations=counts,
        categories=len(ids),
        left_out={k: v for k, v in left_out.items() if v},
        problems=tuple(validate_coco_camera_traps(json.loads(out_file.read_text("utf-8")))),
    )


def _annotation(
    image: dict[str, Any],
    det: dict[str, Any] | None,
    reviews: dict[str, dict[str, Any]],
    observed: dict[str, dict[str, Any]],
    threshold: float,
    localized: dict[str, tuple[float, float, float, float]],
) -> dict[str, Any] | None:
    image_id = image["image_id"]
    base = {"id": f"{image_id}-uncia", "image_id": image_id}
    review = reviews.get(det["burst_id"]) if det is not None else None
    if review is not None:
        return {**base, "category": _category_name(review["label"]), "label": _category_name(
            review["label"]), "source": "human", "sequence_level_annotation": True}  # fmt: skip
    obs = observed.get(image_id)
    if obs is not None:
        name = _category_name(obs["label"])
        out = {**base, "category": name, "label": name, "source": "imported"}
        if obs["bboxX"] is not None and image["width"] and image["height"]:
            out["bbox"] = _pixels([obs["bboxX"], obs["bboxY"], obs["bboxWidth"],
                                   obs["bboxHeight"]], image)  # fmt: skip
        return out
    if det is None:
        return None
    leopard = float(det["score"]) >= threshold
    name = CATEGORY_NAMES[LEOPARD_LABEL if leopard else EMPTY_LABEL]
    out = {**base, "category": name, "label": name, "source": "machine",
           "conf": round(float(det["score"]), 4)}  # fmt: skip
    if leopard and image["width"] and image["height"]:
        out["bbox"] = _pixels(frame_box(det, localized), image)
    return out


def _pixels(box: list[float], image: dict[str, Any]) -> list[float]:
    """A [x, y, w, h] box in fractions as COCO's absolute pixels."""
    w, h = image["width"], image["height"]
    return [round(box[0] * w, 1), round(box[1] * h, 1), round(box[2] * w, 1),
            round(box[3] * h, 1)]  # fmt: skip


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def validate_coco_camera_traps(data: Any) -> list[str]:
    """What keeps `data` from being a COCO Camera Traps database (empty when it is one):
    required keys and types, unique ids, annotations pointing at known images and categories,
    boxes inside their image, sequences whose frames agree on their length."""
    if not isinstance(data, dict):
        return ["the file is not a JSON object"]
    problems = [f"no {k!r} list" for k in ("images", "annotations", "categories")
                if not isinstance(data.get(k), list)]  # fmt: skip
    if not isinstance(data.get("info"), dict):
        problems.append("no 'info' object")
    if problems:
        return problems
    categories: set[int] = set()
    for cat in data["categories"]:
        if not (isinstance(cat, dict) and isinstance(cat.get("id"), int)
                and isinstance(cat.get("name"), str) and cat["name"]):  # fmt: skip
            problems.append(f"category {cat!r}: needs an integer id and a name")
        elif cat["id"] in categories:
            problems.append(f"category id {cat['id']} twice")
        else:
            categories.add(cat["id"])
    images: dict[Any, dict[str, Any]] = {}
    sequences: dict[str, tuple[int, set[int]]] = {}
    for image in data["images"]:
        if not isinstance(image, dict) or not isinstance(image.get("id"), str | int):
            problems.append(f"image {image!r:.60}: no id")
            continue
        where = f"image {image['id']}"
        if image["id"] in images:
            problems.append(f"{where}: id twice")
        images[image["id"]] = image
        if not isinstance(image.get("file_name"), str) or not image["file_name"]:
            problems.append(f"{where}: no file_name")
        for key in ("width", "height"):
            if key in image and image[key] is not None and not _positive_int(image[key]):
                problems.append(f"{where}: {key} {image[key]!r} is not a positive integer")
        if "datetime" in image:
            try:
                datetime.strptime(str(image["datetime"]), "%Y-%m-%d %H:%M:%S")
            except ValueError:
                problems.append(f"{where}: datetime {image['datetime']!r} is not "
                                "YYYY-MM-DD HH:MM:SS")  # fmt: skip
        if "seq_id" in image:
            n: Any = image.get("seq_num_frames")
            num: Any = image.get("frame_num")
            if not _positive_int(n) or not isinstance(num, int) or not 0 <= num < n:
                problems.append(f"{where}: frame_num {num!r} of seq_num_frames {n!r}")
                continue
            known_n, nums = sequences.setdefault(image["seq_id"], (n, set()))
            if known_n != n:
                problems.append(f"{where}: sequence {image['seq_id']} of {known_n} and {n} frames")
            if num in nums:
                problems.append(f"{where}: frame {num} of sequence {image['seq_id']} twice")
            nums.add(num)
    seen: set[Any] = set()
    for ann in data["annotations"]:
        if not isinstance(ann, dict) or "id" not in ann:
            problems.append(f"annotation {ann!r:.60}: no id")
            continue
        where = f"annotation {ann['id']}"
        if ann["id"] in seen:
            problems.append(f"{where}: id twice")
        seen.add(ann["id"])
        if ann.get("image_id") not in images:
            problems.append(f"{where}: image {ann.get('image_id')!r} is not in images")
        if ann.get("category_id") not in categories:
            problems.append(f"{where}: category {ann.get('category_id')!r} is not in categories")
        if "bbox" in ann:
            problems.extend(_bbox_problems(ann["bbox"], images.get(ann.get("image_id")), where))
    return problems


def _bbox_problems(bbox: Any, image: dict[str, Any] | None, where: str) -> list[str]:
    numbers = (
        isinstance(bbox, list)
        and len(bbox) == 4
        and all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in bbox
        )
    )
    if not numbers:
        return [f"{where}: bbox {bbox!r} is not four numbers"]
    x, y, w, h = bbox
    if min(x, y) < 0 or w <= 0 or h <= 0:
        return [f"{where}: bbox {bbox!r} is not [x, y, width, height] in pixels"]
    width, height = (image or {}).get("width"), (image or {}).get("height")
    if width and height and (x + w > width + 0.5 or y + h > height + 0.5):
        return [f"{where}: bbox {bbox!r} leaves the {width}x{height} image"]
    return []
