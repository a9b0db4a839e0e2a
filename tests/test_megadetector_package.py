"""Our MegaDetector export against the `megadetector` package's own batch-results validator
(megadetector.postprocessing.validate_batch_results), not only our port of it.

`make install-dev` installs the package's wheel with --no-deps (its full dependency set
conflicts with our pins; the validator needs only cv2, tqdm, jsonpickle, numpy, Pillow and
requests, which the lock has). The real `uncia run` store's export is checked in
tests/test_cli_defaults.py.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from tests.interop_fixtures import megadetector_store

validator = pytest.importorskip(
    "megadetector.postprocessing.validate_batch_results",
    reason="the megadetector package is not installed (`make install-dev` installs it)",
)


def megadetector_errors(path: Path) -> list[str]:
    """The errors MegaDetector's validator finds in the results file at `path`."""
    result = validator.validate_batch_results(str(path))
    return list(result["validation_results"]["errors"])


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("md")
    out = tmp / "md.json"
    assert main(["export", "megadetector", "--data", str(megadetector_store(tmp)),
                 "--out", str(out)]) == 0  # fmt: skip
    return dict(json.loads(out.read_text()))


def test_our_export_passes_megadetectors_own_validator(
    exported: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "md.json"
    path.write_text(json.dumps(exported))
    assert megadetector_errors(path) == []
    # What it checked is there: boxes, a failure, and the classification categories.
    assert any(im.get("failure") for im in exported["images"])
    assert any(im.get("detections") for im in exported["images"])


def _break_failure_with_detections(data: dict[str, Any]) -> None:
    failed = next(im for im in data["images"] if im.get("failure"))
    failed["detections"] = [{"category": "1", "conf": 0.5, "bbox": [0.1, 0.1, 0.2, 0.2]}]


def _break_unknown_classification(data: dict[str, Any]) -> None:
    box = next(d for im in data["images"] for d in im.get("detections") or [])
    box["classifications"] = [["7", 0.9]]


BREAKS = {
    "no format version": lambda d: d["info"].pop("format_version"),
    "format 1.2": lambda d: d["info"].update(format_version="1.2"),
    "no detection categories": lambda d: d.pop("detection_categories"),
    "detections not a list": lambda d: next(
        im for im in d["images"] if im.get("detections")
    ).update(detections="none"),
    "failure with detections": _break_failure_with_detections,
    "classification category not declared": _break_unknown_classification,
    "image without a file name": lambda d: d["images"][0].pop("file"),
}


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_megadetectors_validator_refuses_a_broken_export(
    name: str, exported: dict[str, Any], tmp_path: Path
) -> None:
    """The same export, broken one way: the real validator must say so (so the check above
    can fail), and so must `uncia import megadetector`."""
    broken = copy.deepcopy(exported)
    BREAKS[name](broken)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    errors = megadetector_errors(path)
    assert len(errors) == 1, (name, errors)
    store = megadetector_store(tmp_path)
    assert main(["import", "megadetector", str(path), "--data", str(store)]) == 2
