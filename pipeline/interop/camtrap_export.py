"""`uncia export camtrap-dp`: a store as a Camtrap DP 1.0.2 package (docs/interop.md).

deployments.csv, media.csv and observations.csv with datapackage.json, validated offline
before the command returns. Observations: the model's, one per classified frame (leopard
frames with probability, model and box) and one per independent leopard event; the
reviewers', one per reviewed burst; and those an import brought, as they were. Columns Uncia
has no place for come back from the imported package's own tables, matched by id.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline import __version__
from pipeline.errors import ConfigError
from pipeline.interop import store_tables as st
from pipeline.interop.camtrap_import import imported_package_dir
from pipeline.interop.camtrap_validate import (
    PROFILE_URL,
    TABLE_NAMES,
    shipped_schema,
    table_schema_url,
    validate_package,
)
from pipeline.interop.common import (
    SNOW_LEOPARD,
    is_url,
    offset_minutes,
    read_csv_rows,
    read_descriptor,
    utc_text,
    with_offset,
)
from pipeline.schema import ReviewDecision
from pipeline.store.store import atomic_write_text

SNOW_LEOPARD_TAXON = {
    "scientificName": SNOW_LEOPARD,
    "taxonRank": "species",
    "vernacularNames": {"eng": "snow leopard"},
}
# What a reviewer's relabel word means in Camtrap DP's observationType.
RELABEL_TYPES = {"empty": "blank", "blank": "blank", "human": "human", "person": "human",
                 "vehicle": "vehicle"}  # fmt: skip


@dataclass(frozen=True)
class CamtrapExportOptions:
    """What the package says beyond the store: who made it, under which licences."""

    title: str | None = None
    contributors: tuple[str, ...] = ()  # the first is the contact
    data_license: str = "CC-BY-4.0"
    media_license: str = "CC-BY-4.0"
    utc_offset_minutes: int | None = None  # for deployments whose frames carry none
    threshold: float | None = None  # default: the latest run's
    event_gap_minutes: float = 30.0
    metadata: dict[str, Any] = field(default_factory=dict)  # merged into datapackage.json


@dataclass(frozen=True)
class CamtrapExport:
    deployments: int
    media: int
    observations: dict[str, int]  # per kind: machine-media, machine-event, human, imported
    left_out: dict[str, int]  # frames without a time, their observations, ...
    problems: tuple[str, ...]  # validation: empty when the package is valid


def export_camtrap_dp(
    data_dir: Path, out_dir: Path, options: CamtrapExportOptions | None = None
) -> CamtrapExport:
    """Write the store in `data_dir` as a Camtrap DP package into `out_dir`; validate it.

    Raises StoreError without a store, ConfigError when a deployment's UTC offset or the
    contributors are unknown (give them in `options`).
    """
    options = options or CamtrapExportOptions()
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    st.require_store(data_dir)
    kept = imported_package_dir(data_dir)
    original = {
        name: {_row_id(name, r): r for r in read_csv_rows(kept / f"{name}.csv")}
        if (kept / f"{name}.csv").exists()
        else {}
        for name in TABLE_NAMES
    }
    base = read_descriptor(kept) if (kept / "datapackage.json").exists() else {}
    images = st.rows(data_dir, "images")
    deployments = st.rows(data_dir, "deployments")
    offsets = _offsets(deployments, images, original["deployments"], options)
    left_out: dict[str, int] = {}

    dep_rows = [_deployment_row(d, offsets, original["deployments"]) for d in deployments]
    media, media_ids = _media(data_dir, images, offsets, original["media"], left_out)
    threshold = options.threshold
    if threshold is None:
        threshold = st.latest_threshold(data_dir) or 0.5
    observations, counts = _observations(
        data_dir, offsets, media_ids, original["observations"], threshold, options, left_out
    )
    tables = {"deployments": dep_rows, "media": media, "observations": observations}
    for name, table_rows in tables.items():
        atomic_write_text(_csv_text(name, table_rows), out_dir / f"{name}.csv")
    descriptor = _descriptor(base, options, dep_rows, observations, data_dir)
    atomic_write_text(json.dumps(descriptor, indent=2, ensure_ascii=False) + "\n",
                      out_dir / "datapackage.json")  # fmt: skip
    return CamtrapExport(
        deployments=len(dep_rows),
        media=len(media),
        observations=counts,
        left_out={k: v for k, v in left_out.items() if v},
        problems=tuple(validate_package(out_dir)),
    )


def _row_id(table: str, row: dict[str, str]) -> str:
    key = {"deployments": "deploymentID", "media": "mediaID", "observations": "observationID"}
    return row[key[table]]


def _fields(table: str) -> list[str]:
    return [f["name"] for f in shipped_schema(f"{table}-table-schema")["fields"]]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _csv_text(table: str, table_rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    names = _fields(table)
    writer.writerow(names)
    for row in table_rows:
        writer.writerow([_cell(row.get(n)) for n in names])
    return out.getvalue()


def _offsets(
    deployments: list[dict[str, Any]],
    images: list[dict[str, Any]],
    original: dict[str, dict[str, str]],
    options: CamtrapExportOptions,
) -> dict[str, int]:
    """Minutes east of UTC of each deployment's station clock: from the imported package, else
    the frames' EXIF offsets, else the option; ConfigError naming those still unknown."""
    by_deployment: dict[str, list[Any]] = {}
    for image in images:
        by_deployment.setdefault(image["deploymentID"], []).append(image["utc_offset_minutes"])
    offsets: dict[str, int] = {}
    unknown = []
    for dep in deployments:
        dep_id = dep["deploymentID"]
        found = None
        if dep_id in original:
            found = offset_minutes(datetime.fromisoformat(original[dep_id]["deploymentStart"]))
        if found is None:
            found = st.most_common(by_deployment.get(dep_id, []))
        if found is None:
            found = options.utc_offset_minutes
        if found is None:
            unknown.append(dep_id)
        else:
            offsets[dep_id] = int(found)
    if unknown:
        raise ConfigError(
            f"the UTC offset of deployment(s) {', '.join(unknown)} is unknown (their frames "
            "carry no EXIF OffsetTimeOriginal): give --utc-offset, e.g. --utc-offset +06:00"
        )
    return offsets


def _deployment_row(
    dep: dict[str, Any], offsets: dict[str, int], original: dict[str, dict[str, str]]
) -> dict[str, Any]:
    row: dict[str, Any] = dict(original.get(dep["deploymentID"], {}))
    offset = offsets[dep["deploymentID"]]
    row.update(
        deploymentID=dep["deploymentID"],
        locationID=dep["locationID"],
        locationName=dep["locationName"],
        latitude=dep["latitude"],
        longitude=dep["longitude"],
        deploymentStart=with_offset(dep["deploymentStart"], offset),
        deploymentEnd=with_offset(dep["deploymentEnd"], offset),
        cameraID=dep["cameraID"] if dep["cameraID"] is not None else row.get("cameraID"),
    )
    return row


_MEDIATYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}


def _media(
    data_dir: Path,
    images: list[dict[str, Any]],
    offsets: dict[str, int],
    original: dict[str, dict[str, str]],
    left_out: dict[str, int],
) -> tuple[list[dict[str, Any]], set[str]]:
    imports = st.import_run_ids(data_dir)
    media = []
    left_out["frames without a capture time"] = 0
    left_out["frames of an unknown deployment"] = 0
    untimed = datetime.min
    for image in sorted(images, key=lambda i: (i["deploymentID"], i["captured_at"] or untimed)):
        if image["deploymentID"] not in offsets:
            left_out["frames of an unknown deployment"] += 1
            continue
        if image["captured_at"] is None:  # Camtrap DP requires a timestamp
            left_out["frames without a capture time"] += 1
            continue
        offset = image["utc_offset_minutes"]
        offset = offsets[image["deploymentID"]] if offset is None else offset
        path = st.survey_file(image, imports)
        row: dict[str, Any] = dict(original.get(image["image_id"], {}))
        name = PurePosixPath(image["relative_path"]).name
        row.update(
            mediaID=image["image_id"],
            deploymentID=image["deploymentID"],
            timestamp=with_offset(image["captured_at"], offset),
            filePath=path,
            filePublic=row.get("filePublic") or is_url(path),
            fileName=row.get("fileName") or name,
            fileMediatype=row.get("fileMediatype")
            or _MEDIATYPES.get(PurePosixPath(name).suffix.lower(), "image/jpeg"),
        )
        row.setdefault("captureMethod", "activityDetection")
        media.append(row)
    return media, {m["mediaID"] for m in media}


def _classified_by(detection: dict[str, Any]) -> str:
    return (
        f"{detection['model_name']} ({detection['backbone']}, weights "
        f"{detection['weights_sha256'][:12]}), Uncia {__version__}"
    )


def _box(detection: dict[str, Any], localized: dict[str, tuple]) -> dict[str, float | None]:
    box = localized.get(detection["image_id"])
    if box is None and detection["view"] not in (None, "whole"):
        box = (detection["view_box_x"], detection["view_box_y"],
               detection["view_box_width"], detection["view_box_height"])  # fmt: skip
    if box is None or any(v is None for v in box) or min(box[2], box[3]) <= 0:
        return {}
    x, y, w, h = (round(float(v), 5) for v in box)
    x, y = min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0)
    return {"bboxX": x, "bboxY": y, "bboxWidth": min(w, 1.0), "bboxHeight": min(h, 1.0)}


def _observations(
    data_dir: Path,
    offsets: dict[str, int],
    media_ids: set[str],
    original: dict[str, dict[str, str]],
    threshold: float,
    options: CamtrapExportOptions,
    left_out: dict[str, int],
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    out: list[dict[str, Any]] = []
    counts = dict.fromkeys(("machine-media", "machine-event", "human", "imported"), 0)

    def local(dep_id: str, when: datetime) -> str:
        return with_offset(when, offsets[dep_id])

    events = st.leopard_events(data_dir, threshold, options.event_gap_minutes)
    event_of_burst = {b["burst_id"]: b["event_id"] for b in events}
    individuals = {r["image_id"]: r["individualID"] for r in st.rows(data_dir, "individuals")}
    boxes = st.best_localization_boxes(data_dir)
    finished = {r["run_id"]: r["finished_at"] for r in st.rows(data_dir, "runs")}
    for det in st.rows(data_dir, "detections"):
        if det["image_id"] not in media_ids:
            continue
        when = local(det["deploymentID"], det["captured_at"])
        row = {
            "observationID": f"{det['image_id']}-uncia",
            "deploymentID": det["deploymentID"],
            "mediaID": det["image_id"],
            "eventID": event_of_burst.get(det["burst_id"], det["burst_id"]),
            "eventStart": when,
            "eventEnd": when,
            "observationLevel": "media",
            "observationType": "unclassified",
        }
        if det["score"] >= threshold:
            stamp = finished.get(det["run_id"])
            row.update(
                observationType="animal",
                scientificName=SNOW_LEOPARD,
                individualID=individuals.get(det["image_id"]),
                classificationMethod="machine",
                classifiedBy=_classified_by(det),
                classificationTimestamp=utc_text(stamp) if stamp else None,
                classificationProbability=round(float(det["score"]), 5),
                **_box(det, boxes),
            )
        out.append(row)
        counts["machine-media"] += 1
    by_event: dict[str, list[dict[str, Any]]] = {}
    for burst in events:
        by_event.setdefault(burst["event_id"], []).append(burst)
    for event_id, bursts in by_event.items():
        dep = bursts[0]["deploymentID"]
        out.append(
            {
                "observationID": f"{event_id}-uncia",
                "deploymentID": dep,
                "eventID": event_id,
                "eventStart": local(dep, min(b["start_time"] for b in bursts)),
                "eventEnd": local(dep, max(b["end_time"] for b in bursts)),
                "observationLevel": "event",
                "observationType": "animal",
                "scientificName": SNOW_LEOPARD,
                "classificationMethod": "machine",
                "classifiedBy": "Uncia independent events "
                f"({options.event_gap_minutes:g} min apart, score >= {threshold:g})",
                "classificationProbability": round(max(float(b["score"]) for b in bursts), 5),
            }
        )
        counts["machine-event"] += 1
    out.extend(_reviewed(data_dir, offsets, event_of_burst, counts))
    left_out["imported observations of frames left out"] = 0
    observations = st.rows(data_dir, "observations")
    # A label imported from Timelapse carries the frame's time in UTC as far as the frame knew
    # its offset; the package's media use the deployment's offset, and so must its observation.
    frame_times = {
        i["image_id"]: local(i["deploymentID"], i["captured_at"])
        for i in (st.rows(data_dir, "images") if any(
            o["source"].startswith("timelapse:") for o in observations) else [])
        if i["image_id"] in media_ids
    }  # fmt: skip
    for obs in observations:
        orphan = obs["mediaID"] is not None and obs["mediaID"] not in media_ids
        if obs["deploymentID"] not in offsets or orphan:
            left_out["imported observations of frames left out"] += 1
            continue
        row = dict(original.get(obs["observationID"], {}))
        row.update(
            {k: obs[k] for k in obs if k not in {"label", "source", "imported_at"}},
            eventStart=utc_text(obs["eventStart"]),
            eventEnd=utc_text(obs["eventEnd"]),
            classificationTimestamp=(
                utc_text(obs["classificationTimestamp"]) if obs["classificationTimestamp"] else None
            ),
        )
        if obs["source"].startswith("timelapse:") and obs["mediaID"] in frame_times:
            row.update(eventStart=frame_times[obs["mediaID"]], eventEnd=frame_times[obs["mediaID"]])
        out.append(row)
        counts["imported"] += 1
    return out, counts


def _reviewed(
    data_dir: Path,
    offsets: dict[str, int],
    event_of_burst: dict[str, str],
    counts: dict[str, int],
) -> list[dict[str, Any]]:
    """One event observation per reviewed burst: the reviewer's latest decision."""
    bursts = {b["burst_id"]: b for b in st.rows(data_dir, "bursts")}
    out = []
    for review in st.latest_reviews(data_dir):
        burst = bursts.get(review["burst_id"])
        if burst is None or burst["start_time"] is None or burst["deploymentID"] not in offsets:
            continue
        offset = offsets[burst["deploymentID"]]
        row: dict[str, Any] = {
            "observationID": review["review_id"],
            "deploymentID": burst["deploymentID"],
            "eventID": event_of_burst.get(burst["burst_id"], burst["burst_id"]),
            "eventStart": with_offset(burst["start_time"], offset),
            "eventEnd": with_offset(burst["end_time"], offset),
            "observationLevel": "event",
            "classificationMethod": "human",
            "classifiedBy": review["reviewer"],
            "classificationTimestamp": utc_text(review["reviewed_at"]),
        }
        if review["decision"] == ReviewDecision.CONFIRM:
            row.update(observationType="animal", scientificName=SNOW_LEOPARD)
        elif review["decision"] == ReviewDecision.REJECT:
            row.update(observationType="unknown", observationComments="not a snow leopard")
        else:
            kind = RELABEL_TYPES.get(review["label"].lower(), "animal")
            row.update(observationType=kind, observationTags=f"uncia:label:{review['label']}")
        out.append(row)
        counts["human"] += 1
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-") or "uncia-survey"


def _descriptor(
    base: dict[str, Any],
    options: CamtrapExportOptions,
    deployments: list[dict[str, Any]],
    observations: list[dict[str, Any]],
    data_dir: Path,
) -> dict[str, Any]:
    descriptor = {k: v for k, v in base.items() if k != "resources"}
    descriptor.update(options.metadata)
    title = options.title or descriptor.get("title") or f"Uncia survey {data_dir.name}"
    if options.contributors:
        descriptor["contributors"] = [
            {"title": name, "role": "contact" if i == 0 else "contributor"}
            for i, name in enumerate(options.contributors)
        ]
    if not descriptor.get("contributors"):
        raise ConfigError("a Camtrap DP package names its contributors: give --contributor NAME")
    extra = [
        r for r in base.get("resources", []) if r.get("name") not in TABLE_NAMES and "data" in r
    ]
    descriptor.update(
        profile=PROFILE_URL,
        name=descriptor.get("name") or _slug(title),
        id=descriptor.get("id") or str(uuid.uuid4()),
        created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        title=title,
        resources=[
            {
                "name": name,
                "path": f"{name}.csv",
                "profile": "tabular-data-resource",
                "format": "csv",
                "mediatype": "text/csv",
                "encoding": "utf-8",
                "schema": table_schema_url(name),
            }
            for name in TABLE_NAMES
        ]
        + extra,
    )
    descriptor.setdefault(
        "licenses",
        [{"name": options.data_license, "scope": "data"},
         {"name": options.media_license, "scope": "media"}],
    )  # fmt: skip
    has_individuals = any(o.get("individualID") for o in observations)
    descriptor.setdefault(
        "project",
        {
            "title": title,
            "samplingDesign": "targeted",
            "captureMethod": ["activityDetection"],
            "individualAnimals": has_individuals,
            "observationLevel": ["media", "event"],
        },
    )
    descriptor["spatial"] = _spatial(deployments)
    starts = [d["deploymentStart"][:10] for d in deployments]
    ends = [d["deploymentEnd"][:10] for d in deployments]
    descriptor["temporal"] = {"start": min(starts, default=""), "end": max(ends, default="")}
    known = {t["scientificName"]: t for t in base.get("taxonomic", [])}
    known.setdefault(SNOW_LEOPARD, SNOW_LEOPARD_TAXON)
    names = sorted({o["scientificName"] for o in observations if o.get("scientificName")})
    descriptor["taxonomic"] = [known.get(n, {"scientificName": n}) for n in names]
    sources = list(descriptor.get("sources", []))
    if not any(s.get("title") == "Uncia" for s in sources):
        sources.append({"title": "Uncia", "version": __version__})
    descriptor["sources"] = sources
    return descriptor


def _spatial(deployments: list[dict[str, Any]]) -> dict[str, Any]:
    """The deployments' bounding box as a GeoJSON polygon (a point for a single location)."""
    lats = [float(d["latitude"]) for d in deployments]
    lngs = [float(d["longitude"]) for d in deployments]
    if not lats:
        return {"type": "Polygon", "coordinates": []}
    south, north, west, east = min(lats), max(lats), min(lngs), max(lngs)
    if south == north and west == east:
        return {"type": "Point", "coordinates": [west, south]}
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}
