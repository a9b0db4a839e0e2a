"""Human review decisions on candidate leopard bursts: append-only files, never rewritten.

Each decision is one Parquet file `DIR/reviews/<UTC time>-<tag>-<id>.parquet` (schema.REVIEWS),
written atomically under the folder's lock; a pipeline checkpoint never touches the folder. The
latest decision per burst wins; earlier ones stay on disk as the history. A decision equal to the
burst's current one (same decision, label and reviewer) is not stored again, so a decision
re-sent after a lost answer (a dashboard killed mid-request, a double click) is not a second one.
`training_labels_csv` turns decisions into the `file,label` CSV that `uncia train --labels` reads.
"""

from __future__ import annotations

import csv
import io
import secrets
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import ConfigError
from pipeline.schema import REVIEWS, ReviewDecision, conform, csv_cell
from pipeline.store.store import StorePaths, atomic_write_parquet, decision_lock, decision_tag

LEOPARD_LABEL = "snow_leopard"  # what `uncia train` counts as positive by default
NOT_LEOPARD_LABEL = "not_leopard"


def reviews_dir(out_dir: Path) -> Path:
    return StorePaths(Path(out_dir)).root / "reviews"


def label_for(decision: ReviewDecision, label: str | None) -> str:
    """The training label a decision stands for; relabel needs a non-empty `label`."""
    if decision is ReviewDecision.CONFIRM:
        return LEOPARD_LABEL
    if decision is ReviewDecision.REJECT:
        return NOT_LEOPARD_LABEL
    cleaned = (label or "").strip()
    if not cleaned or "," in cleaned or "\n" in cleaned:
        raise ConfigError("a new label must be a non-empty word without commas")
    return cleaned


def record_review(
    out_dir: Path,
    *,
    burst_id: str,
    image_id: str,
    decision: ReviewDecision | str,
    reviewer: str,
    label: str | None = None,
    score: float | None = None,
    model_name: str | None = None,
    now: datetime | None = None,
) -> dict:
    """Append one decision for `burst_id` to `out_dir`'s reviews; return the stored row.

    When the burst's latest decision already is this one (same decision, label and reviewer),
    nothing is written and that row is returned: re-sending a decision is idempotent.
    Raises ConfigError for an unknown decision, an empty reviewer or a bad relabel label.
    """
    decision = ReviewDecision(decision)
    reviewer = reviewer.strip()
    if not reviewer:
        raise ConfigError("a review needs the reviewer's name")
    label = label_for(decision, label)
    folder = reviews_dir(out_dir)
    with decision_lock(folder):
        current = latest_review(out_dir, burst_id)
        if current is not None and (
            (current["decision"], current["label"], current["reviewer"])
            == (decision.value, label, reviewer)
        ):
            return current
        now = now or datetime.now(UTC)
        review_id = f"{now:%Y%m%dT%H%M%S%fZ}-{decision_tag(burst_id)}-{secrets.token_hex(4)}"
        row = {
            "review_id": review_id,
            "burst_id": burst_id,
            "image_id": image_id,
            "decision": decision.value,
            "label": label,
            "reviewer": reviewer,
            "reviewed_at": now,
            "score": score,
            "model_name": model_name,
        }
        table = conform(pa.Table.from_pylist([row]), REVIEWS)
        atomic_write_parquet(table, folder / f"{review_id}.parquet")
    return row


def latest_review(out_dir: Path, burst_id: str) -> dict | None:
    """The latest stored decision on `burst_id` (a REVIEWS row), or None.

    Looks only at files named with the burst's `decision_tag` (written since tags exist).
    """
    named = reviews_dir(out_dir).glob(f"*-{decision_tag(burst_id)}-*.parquet")
    for path in sorted(named, reverse=True):  # newest first: names start with the time
        row = conform(pq.read_table(path), REVIEWS).to_pylist()[0]
        if row["burst_id"] == burst_id:  # else another burst with the same tag
            return row
    return None


def read_reviews(out_dir: Path, latest_only: bool = True) -> pa.Table:
    """Return review decisions (REVIEWS), the latest per burst when `latest_only`, by time."""
    folder = reviews_dir(out_dir)
    if not folder.exists() or not any(folder.glob("*.parquet")):
        return REVIEWS.empty_table()
    con = duckdb.connect()
    glob = str(folder / "*.parquet")
    sql = "SELECT * FROM read_parquet($glob)"
    if latest_only:
        sql += " QUALIFY row_number() OVER (PARTITION BY burst_id ORDER BY review_id DESC) = 1"
    table = con.sql(sql + " ORDER BY review_id", params={"glob": glob}).to_arrow_table()
    return conform(table, REVIEWS)


def reviews_signature(out_dir: Path) -> str:
    """Cheap signature of the reviews folder (file count and newest name) for caches."""
    folder = reviews_dir(out_dir)
    names = sorted(p.name for p in folder.glob("*.parquet")) if folder.exists() else []
    return f"{len(names)}-{names[-1] if names else ''}"


def training_labels_csv(reviews: pa.Table, images: pa.Table) -> str:
    """CSV text `file,label` for `uncia train --labels`, one row per reviewed burst's frame.

    `reviews` holds the latest decision per burst; `images` maps image_id to deploymentID and
    relative_path (the images table). `file` is relative to the images root:
    `<deploymentID>/<relative path>`, as `uncia run` lays frames out.
    """
    where = {r["image_id"]: f"{r['deploymentID']}/{r['relative_path']}" for r in images.to_pylist()}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["file", "label"])
    seen = set()
    for row in reviews.to_pylist():
        file = where.get(row["image_id"])
        if file is None or file in seen:
            continue
        seen.add(file)
        writer.writerow([csv_cell(file), csv_cell(row["label"])])
    return out.getvalue()
