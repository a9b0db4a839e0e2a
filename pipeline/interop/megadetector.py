"""MegaDetector batch output (format 1.5) out of a store and into one (docs/interop.md).

Export: one entry per classified frame, named as Timelapse finds it under the survey's root;
its detection is the frame's box (the localization, else the best view, else the whole frame)
with the leopard score as `conf` and as the one classification, "snow leopard". Import:
another run's boxes, checked first (megadetector_validate), into the `detector_boxes` table,
matched to the store's frames by path; files with no box at or above a threshold are marked
likely empty.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline import __version__
from pipeline.errors import InputError
from pipeline.interop import store_tables as st
from pipeline.interop.megadetector_validate import BatchValidation, validate_batch_results
from pipeline.schema import DETECTOR_BOXES, ImageStatus, RunKind, conform
from pipeline.store.store import StorePaths, atomic_write_parquet, atomic_write_text, writer_lock

FORMAT_VERSION = "1.5"
ANIMAL = "1"
DETECTION_CATEGORIES = {"1": "animal", "2": "person", "3": "vehicle"}
LEOPARD_CLASS = "0"
CLASSIFICATION_CATEGORIES = {LEOPARD_CLASS: "snow leopard"}
DEFAULT_IMPORT_THRESHOLD = 0.2  # MegaDetector v5's typical detection threshold
DECIMALS = 4  # as MegaDetector writes boxes and confidences


@dataclass(frozen=True)
class DetectorViews:
    """One frame's imported boxes that become views (`uncia run`, docs/views.md): [x, y, w, h]
    fractions, and when the latest of them was imported."""

    boxes: tuple[tuple[float, float, float, float], ...]
    imported_at: datetime


def detector_views(data_dir: Path) -> dict[str, DetectorViews]:
    """The store's imported boxes that `uncia run` scores as views, by image_id: boxes of the
    category named `animal` (a person or vehicle is no leopard) at or above their import's
    threshold, in frames of the store. Empty without imports."""
    found: dict[str, tuple[list[tuple[float, float, float, float]], datetime]] = {}
    for row in st.rows(Path(data_dir), "detector_boxes"):
        threshold = row.get("threshold")
        threshold = DEFAULT_IMPORT_THRESHOLD if threshold is None else float(threshold)
        if (
            row["image_id"] is None
            or row["bbox_x"] is None
            or (row["category_name"] or "").lower() != "animal"
            or row["conf"] is None
            or row["conf"] < threshold
        ):
            continue
        boxes, when = found.setdefault(row["image_id"], ([], row["imported_at"]))
        boxes.append((row["bbox_x"], row["bbox_y"], row["bbox_width"], row["bbox_height"]))
        found[row["image_id"]] = (boxes, max(when, row["imported_at"]))
    return {k: DetectorViews(tuple(b), when) for k, (b, when) in found.items()}


ANIMAL_BOX_TARGET = "megadetector:animal"  # localizations.target of a detector box


@dataclass(frozen=True)
class DetectorBox:
    """A frame's box for `uncia localize --method megadetector` (docs/identification.md): the
    best imported animal box at or above its import's threshold, clipped to the frame, with
    the detector's confidence; or, with `box` None, why the frame has none (`failure`)."""

    box: tuple[float, float, float, float] | None
    conf: float | None
    failure: str | None = None


def _inside(bbox: tuple[Any, ...]) -> tuple[float, float, float, float] | None:
    """[x, y, w, h] clipped to the frame; None when it has no area inside it (or is not finite)."""
    try:
        x, y, w, h = (float(v) for v in bbox)
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        return None
    left, top = max(0.0, x), max(0.0, y)
    right, bottom = min(1.0, x + w), min(1.0, y + h)
    if right <= left or bottom <= top:
        return None
    return left, top, right - left, bottom - top


def detector_boxes_for_localization(data_dir: Path) -> dict[str, DetectorBox]:
    """By image_id, each frame of the store that an imported results file lists: its best
    animal box (highest conf, any import) at or above that import's threshold with some area
    inside the frame, or the reason it has none. Frames no import lists are absent."""
    rows_by_image: dict[str, list[dict[str, Any]]] = {}
    for row in st.rows(Path(data_dir), "detector_boxes"):
        if row["image_id"] is not None:
            rows_by_image.setdefault(row["image_id"], []).append(row)
    found: dict[str, DetectorBox] = {}
    for image_id, rows in rows_by_image.items():
        boxes = [r for r in rows if r["bbox_x"] is not None and r["conf"] is not None]
        animals = [r for r in boxes if (r["category_name"] or "").lower() == "animal"]
        usable = [r for r in animals if r["conf"] >= _threshold(r)]
        usable.sort(key=lambda r: r["conf"], reverse=True)
        for row in usable:
            inside = _inside((row["bbox_x"], row["bbox_y"], row["bbox_width"], row["bbox_height"]))
            if inside is not None:
                found[image_id] = DetectorBox(inside, float(row["conf"]))
                break
        else:
            found[image_id] = DetectorBox(None, None, _why_no_box(rows, boxes, animals, usable))
    return found


def _threshold(row: dict[str, Any]) -> float:
    threshold = row.get("threshold")
    return DEFAULT_IMPORT_THRESHOLD if threshold is None else float(threshold)


def _why_no_box(
    rows: list[dict[str, Any]],
    boxes: list[dict[str, Any]],
    animals: list[dict[str, Any]],
    usable: list[dict[str, Any]],
) -> str:
    if usable:
        return (
            f"MegaDetector's {len(usable)} animal box(es) at or above the import threshold "
            "lie outside the frame"
        )
    if animals:
        best = max(animals, key=lambda r: r["conf"])
        return (
            f"MegaDetector's {len(animals)} animal box(es) are all below the import threshold "
            f"{_threshold(best):g} (best conf {best['conf']:.3g})"
        )
    if boxes:
        names = sorted({(r["category_name"] or r["category"] or "?").lower() for r in boxes})
        return f"MegaDetector found no animal, only {' and '.join(names)} box(es)"
    failures = [r["failure"] for r in rows if r["failure"]]
    if failures:
        return f"MegaDetector could not read this frame: {failures[0]}"
    return "MegaDetector found no box in this frame"


@dataclass(frozen=True)
class MegadetectorExportOptions:
    threshold: float | None = None  # the typical threshold Timelapse offers; default the run's
    min_conf: float = 0.05  # frames scoring below get an empty detections list


@dataclass(frozen=True)
class MegadetectorExport:
    images: int
    detections: int
    failures: int
    left_out: dict[str, int]
    validation: BatchValidation


def _stamp(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value else None


def frame_box(
    detection: dict[str, Any], localized: dict[str, tuple[float, float, float, float]]
) -> list[float]:
    """The box a frame's leopard score belongs to, as MegaDetector's [x, y, width, height]
    fractions: the localization, else the best view (a tile or crop), else the whole frame."""
    box: tuple[Any, ...] | None = localized.get(detection["image_id"])
    if box is None and detection.get("view") not in (None, "whole"):
        box = (detection["view_box_x"], detection["view_box_y"],
               detection["view_box_width"], detection["view_box_height"])  # fmt: skip
    if box is None or any(v is None for v in box) or min(box[2], box[3]) <= 0:
        box = (0.0, 0.0, 1.0, 1.0)
    x = min(max(float(box[0]), 0.0), 1.0)
    y = min(max(float(box[1]), 0.0), 1.0)
    w = min(float(box[2]), 1.0 - x)
    h = min(float(box[3]), 1.0 - y)
    # Round down the size so that x + w stays inside the frame after rounding.
    return [round(x, DECIMALS), round(y, DECIMALS),
            _floor(w, DECIMALS), _floor(h, DECIMALS)]  # fmt: skip


def _floor(value: float, decimals: int) -> float:
    scale = 10**decimals
    return max(int(value * scale + 1e-9), 1) / scale


def _detections_by_image(data_dir: Path) -> dict[str, dict[str, Any]]:
    """Each classified frame's row (score, best view and its box)."""
    return {r["image_id"]: r for r in st.rows(data_dir, "detections")}


def export_megadetector(
    data_dir: Path, out_file: Path, options: MegadetectorExportOptions | None = None
) -> MegadetectorExport:
    """Write the store in `data_dir` as MegaDetector batch output 1.5 to `out_file`, then
    check it with the validator. Raises StoreError without a store."""
    options = options or MegadetectorExportOptions()
    data_dir, out_file = Path(data_dir), Path(out_file)
    st.require_store(data_dir)
    threshold = options.threshold
    if threshold is None:
        threshold = st.latest_threshold(data_dir) or 0.5
    imports = st.import_run_ids(data_dir)
    detections = _detections_by_image(data_dir)
    localized = st.best_localization_boxes(data_dir)
    images: list[dict[str, Any]] = []
    left_out = {"frames never classified": 0}
    n_boxes = n_failed = 0
    for image in sorted(st.rows(data_dir, "images"), key=lambda i: st.survey_file(i, imports)):
        entry: dict[str, Any] = {"file": st.survey_file(image, imports)}
        if image["status"] != ImageStatus.OK.value:
            entry.update(failure=image["failure"] or "unreadable", detections=None)
            n_failed += 1
        elif image["image_id"] not in detections:
            left_out["frames never classified"] += 1
            continue
        else:
            det = detections[image["image_id"]]
            conf = round(float(det["score"]), DECIMALS)
            entry["detections"] = []
            if conf >= options.min_conf:
                entry["detections"].append(
                    {
                        "category": ANIMAL,
                        "conf": conf,
                        "bbox": frame_box(det, localized),
                        "classifications": [[LEOPARD_CLASS, conf]],
                    }
                )
                n_boxes += 1
        images.append(entry)
    data = {
        "info": _info(data_dir, threshold, options, detections),
        "detection_categories": DETECTION_CATEGORIES,
        "classification_categories": CLASSIFICATION_CATEGORIES,
        "images": images,
    }
    atomic_write_text(json.dumps(data, indent=1) + "\n", out_file)
    return MegadetectorExport(
        images=len(images),
        detections=n_boxes,
        failures=n_failed,
        left_out={k: v for k, v in left_out.items() if v},
        validation=validate_batch_results(json.loads(out_file.read_text("utf-8"))),
    )


def _info(
    data_dir: Path,
    threshold: float,
    options: MegadetectorExportOptions,
    detections: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    runs = [r for r in st.rows(data_dir, "runs") if r["kind"] != RunKind.IMPORT]
    latest = max(runs, key=lambda r: r["run_id"]) if runs else None
    model = latest["model_name"] if latest else None
    backbone = latest["backbone"] if latest else None
    if latest is None and detections:
        any_det = next(iter(detections.values()))
        model, backbone = any_det["model_name"], any_det["backbone"]
    name = f"uncia-{model or 'unknown'}-{backbone or 'unknown'}"
    finished = _stamp(latest["finished_at"]) if latest else None
    return {
        "format_version": FORMAT_VERSION,
        "detector": name,
        "detection_completion_time": finished,
        "classifier": name,
        "classification_completion_time": finished,
        "detector_metadata": {
            "typical_detection_threshold": round(threshold, DECIMALS),
            "conservative_detection_threshold": round(min(options.min_conf, threshold), DECIMALS),
            "uncia_version": __version__,
            "weights_sha256": latest["weights_sha256"] if latest else None,
            "box": "the localization box, else the best-scoring view, else the whole frame; "
            "conf is the frame's snow-leopard score, not an object detector's",
        },
        "classifier_metadata": {"typical_classification_threshold": round(threshold, DECIMALS)},
    }


@dataclass(frozen=True)
class MegadetectorImport:
    files: int
    boxes: int
    matched: int  # files that are frames of the store
    unmatched: tuple[str, ...]  # files the store does not have
    failures: int
    likely_empty: int
    threshold: float
    warnings: tuple[str, ...]
    frames_with_views: int = 0  # frames of the store with an animal box >= threshold


def read_batch_results(path: Path) -> tuple[dict[str, Any], BatchValidation]:
    """The parsed results file; InputError (one line) when it is unreadable or malformed."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    validation = validate_batch_results(data)
    if validation.error:
        raise InputError(f"{path}: not MegaDetector batch output: {validation.error}")
    return data, validation


def file_index(data_dir: Path) -> dict[str, str]:
    """Every name under which another tool may list a frame -> its image_id."""
    imports = st.import_run_ids(data_dir)
    index: dict[str, str] = {}
    by_relative: dict[str, set[str]] = {}
    for image in st.rows(data_dir, "images"):
        index[st.survey_file(image, imports)] = image["image_id"]
        index[image["file_path"].replace("\\", "/")] = image["image_id"]
        by_relative.setdefault(image["relative_path"], set()).add(image["image_id"])
    for relative, ids in by_relative.items():
        if len(ids) == 1:  # a bare name shared by two deployments matches neither
            index.setdefault(relative, next(iter(ids)))
    return index


def match_file(file: str, index: dict[str, str]) -> str | None:
    """The image_id of `file` (a results file's path: relative to any folder above the
    survey's root, or absolute; / or \\), or None."""
    parts = [p for p in file.replace("\\", "/").split("/") if p not in ("", ".")]
    if file.replace("\\", "/") in index:
        return index[file.replace("\\", "/")]
    for start in range(len(parts)):
        found = index.get("/".join(parts[start:]))
        if found is not None:
            return found
    return None


def import_megadetector(
    results_file: Path, data_dir: Path, threshold: float | None = None
) -> MegadetectorImport:
    """Import the boxes of `results_file` into the store `data_dir` (`detector_boxes`).

    `threshold`: a file with no box at or above it is likely empty (default the file's
    typical_detection_threshold, else 0.2). Raises InputError for a malformed file, StoreError
    without a store.
    """
    results_file, data_dir = Path(results_file), Path(data_dir)
    data, validation = read_batch_results(results_file)
    st.require_store(data_dir)
    info = data["info"]
    if threshold is None:
        typical = (info.get("detector_metadata") or {}).get("typical_detection_threshold")
        threshold = float(typical) if isinstance(typical, int | float) else DEFAULT_IMPORT_THRESHOLD
    index = file_index(data_dir)
    categories = data["detection_categories"]
    classes = data.get("classification_categories") or {}
    now = datetime.now(UTC)
    new_rows: list[dict[str, Any]] = []
    unmatched: list[str] = []
    failures = likely_empty = 0
    for image in data["images"]:
        image_id = match_file(image["file"], index)
        if image_id is None:
            unmatched.append(image["file"])
        detections = image.get("detections") or []
        empty = image.get("failure") is None and not any(d["conf"] >= threshold for d in detections)
        failures += image.get("failure") is not None
        likely_empty += empty
        base = {
            "results_file": results_file.name,
            "file": image["file"],
            "image_id": image_id,
            "detector": info.get("detector"),
            "failure": image.get("failure"),
            "likely_empty": empty,
            "threshold": threshold,
            "imported_at": now,
        }
        if not detections:
            new_rows.append(base)
        for det in detections:
            top = (det.get("classifications") or [[None, None]])[0]
            x, y, w, h = (float(v) for v in det["bbox"])
            new_rows.append(
                {
                    **base,
                    "category": det["category"],
                    "category_name": categories[det["category"]],
                    "conf": float(det["conf"]),
                    "bbox_x": x,
                    "bbox_y": y,
                    "bbox_width": w,
                    "bbox_height": h,
                    "classification": classes.get(top[0]) if top[0] is not None else None,
                    "classification_conf": float(top[1]) if top[1] is not None else None,
                }
            )
    with writer_lock(data_dir):
        kept = [
            r for r in st.rows(data_dir, "detector_boxes") if r["results_file"] != results_file.name
        ]
        table = pa.Table.from_pylist(kept + new_rows, DETECTOR_BOXES)
        atomic_write_parquet(conform(table, DETECTOR_BOXES),
                             StorePaths(data_dir).table("detector_boxes"))  # fmt: skip
    return MegadetectorImport(
        files=len(data["images"]),
        boxes=sum(r.get("bbox_x") is not None for r in new_rows),
        matched=len(data["images"]) - len(unmatched),
        unmatched=tuple(unmatched),
        failures=failures,
        likely_empty=likely_empty,
        threshold=threshold,
        warnings=tuple(validation.warnings),
        frames_with_views=len(
            {
                r["image_id"]
                for r in new_rows
                if r["image_id"] is not None
                and r.get("conf") is not None
                and r["conf"] >= threshold
                and (r.get("category_name") or "").lower() == "animal"
            }
        ),
    )
