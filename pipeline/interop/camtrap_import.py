"""`uncia import camtrap-dp`: a Camtrap DP package's deployments, media and observations into a
store (docs/interop.md).

Media keep the package's `mediaID` as `image_id` and their time from media.csv (never EXIF);
files resolve relative to the package. Observations land in the `observations` table with a
training label each, and the human media-level ones in a `file,label` CSV for `uncia train`.
The package's own descriptor and tables are kept beside the store, so that an export gives
back the columns Uncia has no place for.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline import __version__
from pipeline.errors import InputError, StoreError
from pipeline.interop.camtrap_validate import TABLE_NAMES
from pipeline.interop.common import (
    is_url,
    label_for_observation,
    offset_minutes,
    read_csv_rows,
    read_descriptor,
)
from pipeline.schema import (
    BURSTS,
    DETECTIONS,
    IMAGES,
    OBSERVATIONS,
    RUNS,
    ImageStatus,
    RunKind,
    RunStatus,
    TimeFlag,
    conform,
)
from pipeline.stages.clock import correct_capture_time
from pipeline.stages.discover import read_deployments
from pipeline.store.store import (
    StorePaths,
    atomic_write_parquet,
    atomic_write_text,
    new_run_id,
    write_tables,
    writer_lock,
)

IMPORTS_DIR = "imports"  # DIR/imports/<format>/: what an import keeps of its source


def imported_package_dir(out_dir: Path) -> Path:
    """Where `uncia import camtrap-dp` keeps the package's descriptor and tables in a store."""
    return Path(out_dir) / IMPORTS_DIR / "camtrap-dp"


@dataclass(frozen=True)
class CamtrapImport:
    """What an import read and wrote."""

    deployments: int
    media: int
    media_local: int
    observations: int
    labels: int
    labels_csv: Path
    problems: tuple[str, ...]


def import_camtrap_dp(package_dir: Path, out_dir: Path, leopard_threshold: float) -> CamtrapImport:
    """Import the Camtrap DP package in `package_dir` into a new store `out_dir`.

    `leopard_threshold` goes into the import's run record (the dashboard's default threshold).
    Raises InputError for a package that cannot be read (no descriptor, a missing table, a bad
    timestamp) and StoreError when `out_dir` already holds a store.
    """
    package_dir, out_dir = Path(package_dir), Path(out_dir)
    descriptor = read_descriptor(package_dir)
    paths = {name: package_dir / _resource_path(descriptor, name) for name in TABLE_NAMES}
    store_paths = StorePaths(out_dir)
    if store_paths.table("images").exists():
        raise StoreError(f"{out_dir} already holds a store: import into a new folder")
    started = datetime.now(UTC)
    run_id = new_run_id(started)
    with writer_lock(out_dir):
        deployments = read_deployments(paths["deployments"])
        windows = {
            d["deploymentID"]: (d["deploymentStart"], d["deploymentEnd"])
            for d in deployments.to_pylist()
        }
        images = _media_rows(paths["media"], package_dir, run_id, windows)
        observations = _observation_rows(
            paths["observations"], descriptor.get("name") or "", started
        )
        known_media = {i["image_id"] for i in images}
        problems = [
            f"observation {o['observationID']}: media {o['mediaID']} is not in media.csv"
            for o in observations
            if o["mediaID"] and o["mediaID"] not in known_media
        ]
        kept = imported_package_dir(out_dir)
        kept.mkdir(parents=True, exist_ok=True)
        descriptor_text = (package_dir / "datapackage.json").read_text("utf-8")
        atomic_write_text(descriptor_text, kept / "datapackage.json")
        for name, path in paths.items():
            shutil.copyfile(path, kept / f"{name}.csv")
        labels_csv = kept / "labels.csv"
        n_labels = _write_labels(labels_csv, observations, images)
        run = _run_record(run_id, started, package_dir, leopard_threshold, len(images))
        write_tables(
            out_dir,
            {
                "deployments": deployments,
                "images": conform(pa.Table.from_pylist(images, IMAGES), IMAGES),
                "detections": DETECTIONS.empty_table(),
                "bursts": BURSTS.empty_table(),
                "runs": conform(pa.Table.from_pylist([run], RUNS), RUNS),
            },
        )
        table = pa.Table.from_pylist(observations, OBSERVATIONS)
        atomic_write_parquet(conform(table, OBSERVATIONS), store_paths.table("observations"))
    return CamtrapImport(
        deployments=deployments.num_rows,
        media=len(images),
        media_local=sum(i["status"] == ImageStatus.OK.value for i in images),
        observations=len(observations),
        labels=n_labels,
        labels_csv=labels_csv,
        problems=tuple(problems),
    )


def _resource_path(descriptor: dict[str, Any], name: str) -> str:
    for resource in descriptor.get("resources", []):
        if resource.get("name") == name and isinstance(resource.get("path"), str):
            return str(resource["path"])
    raise InputError(f"datapackage.json has no {name} resource with a path")


def _parse_time(text: str | None, where: str) -> datetime:
    """An ISO 8601 date-time with its offset (Camtrap DP requires one)."""
    try:
        value = datetime.fromisoformat((text or "").strip())
    except ValueError as exc:
        raise InputError(f"{where}: {text!r} is not an ISO 8601 date-time") from exc
    if value.tzinfo is None:
        raise InputError(f"{where}: {text!r} has no UTC offset (Camtrap DP requires one)")
    return value


def _media_rows(
    path: Path,
    package_dir: Path,
    run_id: str,
    windows: dict[str, tuple[datetime, datetime]],
) -> list[dict[str, Any]]:
    rows = []
    for line, media in enumerate(read_csv_rows(path), start=2):
        where = f"{path.name} line {line}"
        stamp = _parse_time(media.get("timestamp"), f"{where} timestamp")
        local = stamp.replace(tzinfo=None)
        start, end = windows.get(media["deploymentID"], (None, None))
        captured, flag = correct_capture_time(local, TimeFlag.OK, 0, start, end)
        file_path = (media.get("filePath") or "").strip()
        status, failure, size = ImageStatus.OK.value, None, None
        if is_url(file_path):
            status, failure = ImageStatus.FAILED.value, "remote file, not downloaded"
            resolved = file_path
        else:
            local_file = (package_dir / file_path).resolve()
            resolved = str(local_file)
            if local_file.is_file():
                size = local_file.stat().st_size
            else:
                status, failure = ImageStatus.FAILED.value, "missing from the package"
        if media["deploymentID"] not in windows:
            status, failure = ImageStatus.FAILED.value, "deployment not in deployments.csv"
        rows.append(
            {
                "image_id": media["mediaID"],
                "run_id": run_id,
                "deploymentID": media["deploymentID"],
                "file_path": resolved,
                "relative_path": file_path,
                "file_size": size,
                "exif_datetime": None,
                "captured_at": captured,
                "utc_offset_minutes": offset_minutes(stamp),
                "time_flag": flag.value,
                "status": status,
                "failure": failure,
            }
        )
    return rows


def _number(text: str | None) -> float | None:
    text = (text or "").strip()
    return float(text) if text else None


def _observation_rows(
    path: Path, package_name: str, imported_at: datetime
) -> list[dict[str, Any]]:
    rows = []
    for line, obs in enumerate(read_csv_rows(path), start=2):
        where = f"{path.name} line {line}"
        stamp = (obs.get("classificationTimestamp") or "").strip()
        count = (obs.get("count") or "").strip()
        row: dict[str, Any] = {
            "observationID": obs["observationID"],
            "deploymentID": obs["deploymentID"],
            "mediaID": (obs.get("mediaID") or "").strip() or None,
            "eventID": (obs.get("eventID") or "").strip() or None,
            "eventStart": _parse_time(obs.get("eventStart"), f"{where} eventStart").astimezone(UTC),
            "eventEnd": _parse_time(obs.get("eventEnd"), f"{where} eventEnd").astimezone(UTC),
            "observationLevel": obs["observationLevel"],
            "observationType": obs["observationType"],
            "scientificName": (obs.get("scientificName") or "").strip() or None,
            "count": int(count) if count else None,
            "individualID": (obs.get("individualID") or "").strip() or None,
            "bboxX": _number(obs.get("bboxX")),
            "bboxY": _number(obs.get("bboxY")),
            "bboxWidth": _number(obs.get("bboxWidth")),
            "bboxHeight": _number(obs.get("bboxHeight")),
            "classificationMethod": (obs.get("classificationMethod") or "").strip() or None,
            "classifiedBy": (obs.get("classifiedBy") or "").strip() or None,
            "classificationTimestamp": (
                _parse_time(stamp, f"{where} classificationTimestamp").astimezone(UTC)
                if stamp
                else None
            ),
            "classificationProbability": _number(obs.get("classificationProbability")),
            "source": f"camtrap-dp:{package_name}",
            "imported_at": imported_at,
        }
        row["label"] = label_for_observation(obs["observationType"], row["scientificName"])
        rows.append(row)
    return rows


def _write_labels(
    path: Path, observations: list[dict[str, Any]], images: list[dict[str, Any]]
) -> int:
    """Write `file,label` (files relative to the package) of the frames a person labelled.

    Human media-level observations of files in the package; a frame with two different labels
    (two species) is left out: `uncia train` takes one label a frame. Returns rows written.
    """
    local = {i["image_id"]: i["relative_path"] for i in images if i["status"] == "ok"}
    labels: dict[str, set[str]] = {}
    for obs in observations:
        if (
            obs["classificationMethod"] == "human"
            and obs["observationLevel"] == "media"
            and obs["mediaID"] in local
        ):
            labels.setdefault(local[obs["mediaID"]], set()).add(obs["label"])
    single = {file: next(iter(found)) for file, found in labels.items() if len(found) == 1}
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["file", "label"])
        writer.writerows(sorted(single.items()))
    return len(single)


def _run_record(
    run_id: str, started: datetime, package_dir: Path, threshold: float, n_media: int
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "kind": RunKind.IMPORT.value,
        "status": RunStatus.FINISHED.value,
        "started_at": started,
        "finished_at": datetime.now(UTC),
        "images_root": str(package_dir.resolve()),
        "model_name": None,
        "backbone": None,
        "weights_sha256": None,
        "leopard_threshold": threshold,
        "options_json": "{}",
        "frames_done": 0,
        "frames_failed": 0,
        "frames_skipped": n_media,
        "uncia_version": __version__,
    }
