"""Check a MegaDetector batch-output file (format 1.3 to 1.5) before anything reads it.

Modelled on MegaDetector's own `postprocessing/validate_batch_results.py` (the `megadetector`
package does not install beside Uncia's pinned dependencies), and stricter where a reader
would otherwise store nonsense: a box is four finite fractions inside the frame, a confidence
is a number in [0, 1], classifications name known categories in descending order, a file
appears once. The format: https://lila.science/megadetector-output-format
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

KNOWN_VERSIONS = ("1.3", "1.4", "1.5")  # the versions whose images look alike
REQUIRED_KEYS = ("info", "images", "detection_categories")
TYPICAL_KEYS = ("classification_categories", "classification_category_descriptions")
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".wmv", ".m4v", ".mpg", ".mpeg", ".asf"}
_SLACK = 1e-4  # rounding: MegaDetector writes boxes with 4 decimals


class BatchResultsError(ValueError):
    """What makes a file not MegaDetector batch output (one line)."""


@dataclass
class BatchValidation:
    """The first error (None when valid) and the warnings of one file."""

    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return self.error is None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _int_key(key: Any) -> bool:
    return isinstance(key, str) and key.isdigit()


def _categories(value: Any, name: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise BatchResultsError(f"{name} is not an object of id -> name")
    for key, label in value.items():
        if not _int_key(key):
            raise BatchResultsError(f"{name}: id {key!r} is not a string-formatted integer")
        if not isinstance(label, str) or not label.strip():
            raise BatchResultsError(f"{name}: category {key} has no name")
    return value


def check_bbox(bbox: Any, where: str) -> None:
    """BatchResultsError unless `bbox` is [x_min, y_min, width, height] within the frame."""
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(_number(v) for v in bbox):
        raise BatchResultsError(f"{where}: bbox {bbox!r} is not four numbers")
    x, y, w, h = bbox
    if min(x, y) < 0 or w <= 0 or h <= 0 or x + w > 1 + _SLACK or y + h > 1 + _SLACK:
        raise BatchResultsError(
            f"{where}: bbox {bbox!r} is not [x_min, y_min, width, height] as fractions of the "
            "frame (non-negative, width and height above 0, inside the frame)"
        )


def _check_detection(
    det: Any, where: str, detection_categories: dict, classification_categories: dict | None,
    video: bool,
) -> None:  # fmt: skip
    if not isinstance(det, dict):
        raise BatchResultsError(f"{where}: a detection is not an object")
    for key in ("category", "conf", "bbox"):
        if key not in det:
            raise BatchResultsError(f"{where}: a detection has no {key}")
    if det["category"] not in detection_categories:
        raise BatchResultsError(f"{where}: detection category {det['category']!r} is not mapped")
    if not _number(det["conf"]) or not 0 <= det["conf"] <= 1:
        raise BatchResultsError(f"{where}: conf {det['conf']!r} is not a number in [0, 1]")
    check_bbox(det["bbox"], where)
    if video and not (isinstance(det.get("frame_number"), int) and det["frame_number"] >= 0):
        raise BatchResultsError(f"{where}: a video detection without a frame_number")
    classifications = det.get("classifications")
    if classifications is None:
        return
    if not isinstance(classifications, list):
        raise BatchResultsError(f"{where}: classifications is not a list")
    previous = math.inf
    for pair in classifications:
        if not (isinstance(pair, list) and len(pair) == 2 and _int_key(pair[0])):
            raise BatchResultsError(f'{where}: classification {pair!r} is not ["id", conf]')
        if classification_categories is None or pair[0] not in classification_categories:
            raise BatchResultsError(f"{where}: classification category {pair[0]!r} is not mapped")
        if not _number(pair[1]) or not 0 <= pair[1] <= 1:
            raise BatchResultsError(f"{where}: classification conf {pair[1]!r} not in [0, 1]")
        if pair[1] > previous:
            raise BatchResultsError(f"{where}: classifications not in descending confidence")
        previous = pair[1]


def _check_image(image: Any, index: int, data: dict, version: float, seen: set[str],
                 warnings: list[str]) -> None:  # fmt: skip
    if not isinstance(image, dict):
        raise BatchResultsError(f"images[{index}] is not an object")
    file = image.get("file")
    if not isinstance(file, str) or not file.strip():
        raise BatchResultsError(f"images[{index}] has no file name")
    if file in seen:
        raise BatchResultsError(f"image {file!r} appears twice")
    seen.add(file)
    where = f"image {file!r}"
    failure = image.get("failure")
    detections = image.get("detections")
    if failure is not None:
        if not isinstance(failure, str):
            raise BatchResultsError(f"{where}: failure {failure!r} is not text")
        if detections is not None:
            raise BatchResultsError(f"{where}: a failure and detections at once")
        if "detections" not in image:
            warnings.append(f"{where} failed and has no (null) detections field")
        return
    if not isinstance(detections, list):
        raise BatchResultsError(f"{where}: no detections list (and no failure)")
    video = PurePosixPath(file).suffix.lower() in VIDEO_SUFFIXES and version >= 1.4
    if video:
        rate: Any = image.get("frame_rate")
        if not _number(rate) or rate <= 0:
            raise BatchResultsError(f"{where}: a video without a positive frame_rate")
    for det in detections:
        _check_detection(det, where, data["detection_categories"],
                         data.get("classification_categories"), video)  # fmt: skip


def validate_batch_results(data: Any) -> BatchValidation:
    """Check `data` (a parsed results file); the first error stops the check, as upstream."""
    result = BatchValidation()
    try:
        if not isinstance(data, dict):
            raise BatchResultsError("the file is not a JSON object")
        for key in REQUIRED_KEYS:
            if key not in data:
                raise BatchResultsError(f"no {key!r} field")
        info = data["info"]
        if not isinstance(info, dict):
            raise BatchResultsError("'info' is not an object")
        if "format_version" not in info:
            raise BatchResultsError("info has no format_version")
        version_text = str(info["format_version"]).strip()
        if version_text not in KNOWN_VERSIONS and f"{version_text}.0" not in KNOWN_VERSIONS:
            raise BatchResultsError(
                f"format_version {info['format_version']!r} is not one of "
                f"{', '.join(KNOWN_VERSIONS)}"
            )
        _categories(data["detection_categories"], "detection_categories")
        if "classification_categories" in data:
            _categories(data["classification_categories"], "classification_categories")
        if not isinstance(data["images"], list):
            raise BatchResultsError("'images' is not a list")
        seen: set[str] = set()
        for index, image in enumerate(data["images"]):
            _check_image(image, index, data, float(version_text), seen, result.warnings)
        for key in data:
            if key not in REQUIRED_KEYS and key not in TYPICAL_KEYS:
                result.warnings.append(f"non-standard key {key!r} at file level")
    except BatchResultsError as exc:
        result.error = str(exc)
    return result
