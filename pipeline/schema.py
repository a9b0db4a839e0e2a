"""Every table Uncia writes, defined once as pyarrow schemas.

DuckDB DDL (`duckdb_ddl`) and validation (`validate_table`) are derived from these schemas, and
`docs/schema.md` documents each column (a test keeps the two in step). Special values are enums.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pyarrow as pa

from pipeline.errors import StoreError

H3_RESOLUTIONS: tuple[int, ...] = (5, 6, 7, 8, 9)
H3_COLUMNS: tuple[str, ...] = tuple(f"h3_r{r}" for r in H3_RESOLUTIONS)


class TimeFlag(StrEnum):
    """How trustworthy a frame's capture time is. Frames are kept whatever the flag."""

    OK = "ok"
    MISSING = "missing"  # no EXIF capture time at all
    UNPARSEABLE = "unparseable"  # e.g. "0000:00:00 00:00:00" or garbage
    OUTSIDE_DEPLOYMENT = "outside_deployment"  # before deploymentStart or after deploymentEnd
    # No EXIF time: read from the camera's printed info bar (`uncia run --infobar`), both
    # reads agreeing, within the deployment. As trustworthy as ok (TRUSTED_TIME_FLAGS).
    INFOBAR = "infobar"


# Capture times effort, gaps and histories may rely on.
TRUSTED_TIME_FLAGS = (TimeFlag.OK.value, TimeFlag.INFOBAR.value)


class ImageStatus(StrEnum):
    OK = "ok"
    FAILED = "failed"
    MISSING = "missing"  # classified once, its file since deleted or moved out of the root


class BurstAggregation(StrEnum):
    """How a burst's frame scores become the burst score."""

    MAX = "max"
    MEAN = "mean"
    NOISY_OR = "noisy_or"


class ViewMode(StrEnum):
    """Which views of a frame are scored (pipeline/stages/views.py, docs/views.md)."""

    WHOLE = "whole"  # the whole frame squeezed to the model's input
    TILES = "tiles"  # the whole frame and overlapping tiles of a larger decode
    TILES_MOTION = "tiles+motion"  # those, and crops of what moves within a burst


class ViewKind(StrEnum):
    """What the best-scoring view of a frame was."""

    WHOLE = "whole"
    TILE = "tile"
    MOTION = "motion"
    # A moving region of this frame, tracked through the burst to a better-scored view of the
    # same animal in another frame (pipeline/stages/tracks.py): the score is that view's.
    TRACK = "track"
    # A crop around a box another detector found in this frame (MegaDetector batch output,
    # imported by `uncia import megadetector`): the box, not the crop, is the view's box.
    DETECTOR = "detector"


class RunStatus(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # stopped by SIGINT (Ctrl-C) or SIGTERM (docker stop)


class RunKind(StrEnum):
    PIPELINE = "pipeline"
    DEMO = "demo"  # simulated survey: the dashboard says so plainly
    IMPORT = "import"  # `uncia import`: frames and labels of another tool, not classified here


TS = pa.timestamp("us")  # naive local wall-clock time at the station
_h3_fields = [pa.field(c, pa.string()) for c in H3_COLUMNS]

DEPLOYMENTS = pa.schema(
    [
        pa.field("deploymentID", pa.string(), nullable=False),
        pa.field("locationID", pa.string(), nullable=False),
        pa.field("locationName", pa.string()),
        pa.field("latitude", pa.float64(), nullable=False),
        pa.field("longitude", pa.float64(), nullable=False),
        pa.field("deploymentStart", TS, nullable=False),
        pa.field("deploymentEnd", TS, nullable=False),
        pa.field("cameraID", pa.string()),
        pa.field("clockOffsetSeconds", pa.int64(), nullable=False),
        *_h3_fields,
    ]
)

# One row per file discovered, including files that failed: nothing is lost.
IMAGES = pa.schema(
    [
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("deploymentID", pa.string(), nullable=False),
        pa.field("file_path", pa.string(), nullable=False),
        pa.field("relative_path", pa.string(), nullable=False),
        pa.field("file_size", pa.int64()),
        pa.field("content_sha256", pa.string()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("exif_datetime", pa.string()),
        pa.field("captured_at", TS),
        pa.field("utc_offset_minutes", pa.int32()),
        pa.field("time_flag", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("failure", pa.string()),
    ]
)

# The view that gave a frame its score, and where it lies: a first, coarse box (fractions of the
# upright frame, the `localizations` convention). Null for frames scored before views existed.
VIEW_FIELDS = [
    pa.field("view", pa.string()),
    pa.field("view_box_x", pa.float32()),
    pa.field("view_box_y", pa.float32()),
    pa.field("view_box_width", pa.float32()),
    pa.field("view_box_height", pa.float32()),
]

# What the classify stage adds to an image row; written per batch, the resume source.
SCORE_FIELDS = [
    pa.field("score", pa.float32()),
    pa.field("top5_labels", pa.list_(pa.string())),
    pa.field("top5_scores", pa.list_(pa.float32())),
    pa.field("model_name", pa.string()),
    pa.field("backbone", pa.string()),
    pa.field("weights_sha256", pa.string()),
    *VIEW_FIELDS,
]
# When the file was last modified (st_mtime_ns), beside file_size: resume re-reads a frame whose
# size or time changed since it was classified (the same path, another photograph).
FILE_MTIME = pa.field("file_mtime_ns", pa.int64())
FRAME_RESULTS = pa.schema([*IMAGES, FILE_MTIME, *SCORE_FIELDS])

# One row per classified frame, keyed by camera location.
DETECTIONS = pa.schema(
    [
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("deploymentID", pa.string(), nullable=False),
        pa.field("locationID", pa.string(), nullable=False),
        pa.field("latitude", pa.float64(), nullable=False),
        pa.field("longitude", pa.float64(), nullable=False),
        pa.field("captured_at", TS),
        pa.field("time_flag", pa.string(), nullable=False),
        pa.field("score", pa.float32(), nullable=False),
        pa.field("top5_labels", pa.list_(pa.string())),
        pa.field("top5_scores", pa.list_(pa.float32())),
        pa.field("burst_id", pa.string(), nullable=False),
        pa.field("model_name", pa.string(), nullable=False),
        pa.field("backbone", pa.string(), nullable=False),
        pa.field("weights_sha256", pa.string(), nullable=False),
        pa.field("file_path", pa.string(), nullable=False),
        *VIEW_FIELDS,
        *_h3_fields,
    ]
)

BURSTS = pa.schema(
    [
        pa.field("burst_id", pa.string(), nullable=False),
        pa.field("deploymentID", pa.string(), nullable=False),
        pa.field("locationID", pa.string(), nullable=False),
        pa.field("start_time", TS),
        pa.field("end_time", TS),
        pa.field("n_frames", pa.int32(), nullable=False),
        pa.field("score", pa.float32(), nullable=False),
        pa.field("aggregation", pa.string(), nullable=False),
        pa.field("best_image_id", pa.string(), nullable=False),
    ]
)

RUNS = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("started_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("finished_at", pa.timestamp("us", tz="UTC")),
        pa.field("images_root", pa.string()),
        pa.field("model_name", pa.string()),
        pa.field("backbone", pa.string()),
        pa.field("weights_sha256", pa.string()),
        pa.field("leopard_threshold", pa.float32(), nullable=False),
        pa.field("options_json", pa.string(), nullable=False),
        pa.field("frames_done", pa.int64(), nullable=False),
        pa.field("frames_failed", pa.int64(), nullable=False),
        pa.field("frames_skipped", pa.int64(), nullable=False),
        pa.field("uncia_version", pa.string(), nullable=False),
    ]
)


class FrameSource(StrEnum):
    """Where a labelled frame of `uncia train` comes from."""

    SURVEY = "survey"  # the labelled survey: trained on, validated on, tested on
    EXTRA_POSITIVE = "extra_positive"  # --extra-positive folders: training only
    EXTRA_NEGATIVE = "extra_negative"  # --extra-negative folders: training only


class Split(StrEnum):
    TRAIN = "train"  # fitted on, and scored out-of-fold for calibration and the threshold
    TEST = "test"  # held out, grouped by deployment or burst
    SKIPPED = "skipped"  # failed to decode, or a byte-identical copy of an earlier frame


# Files of `uncia train` and `uncia evaluate` (not store tables; see docs/training.md).
# EMBEDDINGS: the embedding cache, one row per (content, backbone, weights, flip).
EMBEDDINGS = pa.schema(
    [
        pa.field("content_sha256", pa.string(), nullable=False),
        pa.field("flip", pa.bool_(), nullable=False),
        pa.field("backbone", pa.string(), nullable=False),
        pa.field("weights_sha256", pa.string(), nullable=False),
        pa.field("input_size", pa.int32(), nullable=False),
        pa.field("features", pa.list_(pa.float32())),  # null when the file failed to decode
        pa.field("failure", pa.string()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("exif_datetime", pa.string()),
        pa.field("exif_offset", pa.string()),
    ]
)
# VIEW_EMBEDDINGS: the view embedding cache, one row per (content, backbone, weights, view
# layout, flip): the features of the frame's whole view and tiles (pipeline/stages/views.py),
# in order.
VIEW_EMBEDDINGS = pa.schema(
    [
        pa.field("content_sha256", pa.string(), nullable=False),
        pa.field("flip", pa.bool_(), nullable=False),
        pa.field("backbone", pa.string(), nullable=False),
        pa.field("weights_sha256", pa.string(), nullable=False),
        pa.field("input_size", pa.int32(), nullable=False),
        pa.field("layout", pa.string(), nullable=False),
        pa.field("views", pa.int32()),  # how many views: 1 + the tiles (null when failed)
        pa.field("features", pa.list_(pa.float32())),  # views x feature_dim, view by view
        pa.field("boxes", pa.list_(pa.float32())),  # views x (left, top, width, height)
        pa.field("failure", pa.string()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("exif_datetime", pa.string()),
        pa.field("exif_offset", pa.string()),
    ]
)
_LABELLED_FIELDS = [
    pa.field("file_path", pa.string(), nullable=False),
    pa.field("relative_path", pa.string(), nullable=False),
    pa.field("label", pa.string(), nullable=False),
    pa.field("deployment", pa.string(), nullable=False),
    pa.field("content_sha256", pa.string()),
    pa.field("captured_at", TS),
    pa.field("burst_id", pa.string()),
    pa.field("failure", pa.string()),
]
# MODEL_DIR/training_frames.parquet: every frame `uncia train` was given and what it did with it.
TRAINING_FRAMES = pa.schema(
    [
        *_LABELLED_FIELDS,
        pa.field("source", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("fold", pa.int32()),
        pa.field("score", pa.float32()),
    ]
)
# REPORT_DIR/frames.parquet: every frame `uncia evaluate` scored.
EVALUATED_FRAMES = pa.schema(
    [
        *_LABELLED_FIELDS,
        pa.field("positive", pa.bool_(), nullable=False),
        pa.field("score", pa.float32()),
        pa.field("flagged", pa.bool_()),
        pa.field("view", pa.string()),  # ViewKind of the view that gave the score
    ]
)


class ReviewDecision(StrEnum):
    """What a person decided about a candidate leopard burst in the dashboard's review gallery."""

    CONFIRM = "confirm"  # a snow leopard
    REJECT = "reject"  # not a snow leopard
    RELABEL = "relabel"  # something else, named in `label`


# DIR/reviews/<time>-<id>.parquet: append-only review decisions, one file per decision; not
# in RUN_TABLES, so a pipeline checkpoint (store.finalize) never rewrites them.
REVIEWS = pa.schema(
    [
        pa.field("review_id", pa.string(), nullable=False),
        pa.field("burst_id", pa.string(), nullable=False),
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("decision", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        pa.field("reviewer", pa.string(), nullable=False),
        pa.field("reviewed_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("score", pa.float32()),
        pa.field("model_name", pa.string()),
    ]
)


class LocalizeMethod(StrEnum):
    LIME = "lime"
    GRADCAM = "gradcam"
    MEGADETECTOR = "megadetector"  # an imported detector box, no explanation (no heat map)


class MatchDecision(StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"


# Tables of `uncia localize` and `uncia identify`. They are not in RUN_TABLES (which
# `store.finalize` rebuilds from run parts): each lives in its own file
# DIR/parquet/<name>.parquet, written atomically by its command, and the dashboard reads it
# when present (docs/schema.md).
# LOCALIZATIONS: one row per (frame, method, target) localized; paths are relative to DIR.
LOCALIZATIONS = pa.schema(
    [
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("method", pa.string(), nullable=False),
        pa.field("target", pa.string(), nullable=False),
        pa.field("score", pa.float32()),
        pa.field("target_score", pa.float32()),
        pa.field("box_x", pa.float32()),
        pa.field("box_y", pa.float32()),
        pa.field("box_width", pa.float32()),
        pa.field("box_height", pa.float32()),
        pa.field("heatmap_path", pa.string()),
        pa.field("crop_path", pa.string()),
        pa.field("seconds", pa.float32()),
        pa.field("failure", pa.string()),
    ]
)
# MATCHES: the ranked candidates of every crop (top k), from `uncia identify`.
MATCHES = pa.schema(
    [
        pa.field("query_id", pa.string(), nullable=False),
        pa.field("candidate_id", pa.string(), nullable=False),
        pa.field("rank", pa.int32(), nullable=False),
        pa.field("score", pa.float32(), nullable=False),
        pa.field("inliers", pa.int32(), nullable=False),
        pa.field("mirrored", pa.bool_(), nullable=False),
        pa.field("proposed", pa.bool_(), nullable=False),
    ]
)
# MATCH_REVIEWS: a person's decisions on proposed matches, append-only (one file per decision).
MATCH_REVIEWS = pa.schema(
    [
        pa.field("query_id", pa.string(), nullable=False),
        pa.field("candidate_id", pa.string(), nullable=False),
        pa.field("decision", pa.string(), nullable=False),
        pa.field("reviewer", pa.string(), nullable=False),
        pa.field("decided_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)
# INDIVIDUALS: image_id -> individualID, from accepted matches joined by union-find.
INDIVIDUALS = pa.schema(
    [
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("individualID", pa.string(), nullable=False),
        pa.field("sightings", pa.int32(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
    ]
)

# OBSERVATIONS: what a person or another tool said a frame or event shows, as imported by
# `uncia import` (Camtrap DP observations; docs/interop.md). Written whole to
# DIR/parquet/observations.parquet; the Camtrap DP column names, times in UTC.
UTC_TS = pa.timestamp("us", tz="UTC")
OBSERVATIONS = pa.schema(
    [
        pa.field("observationID", pa.string(), nullable=False),
        pa.field("deploymentID", pa.string(), nullable=False),
        pa.field("mediaID", pa.string()),  # images.image_id; null for an event's observation
        pa.field("eventID", pa.string()),
        pa.field("eventStart", UTC_TS, nullable=False),
        pa.field("eventEnd", UTC_TS, nullable=False),
        pa.field("observationLevel", pa.string(), nullable=False),
        pa.field("observationType", pa.string(), nullable=False),
        pa.field("scientificName", pa.string()),
        pa.field("count", pa.int32()),
        pa.field("individualID", pa.string()),
        pa.field("bboxX", pa.float64()),
        pa.field("bboxY", pa.float64()),
        pa.field("bboxWidth", pa.float64()),
        pa.field("bboxHeight", pa.float64()),
        pa.field("classificationMethod", pa.string()),
        pa.field("classifiedBy", pa.string()),
        pa.field("classificationTimestamp", UTC_TS),
        pa.field("classificationProbability", pa.float64()),
        pa.field("label", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("imported_at", UTC_TS),  # when `uncia import` wrote it (verdict precedence)
    ]
)

# DETECTOR_BOXES: the boxes of another detector's run (MegaDetector batch output, imported by
# `uncia import megadetector`; docs/interop.md): one row per box, or one row with null box
# columns for a file with no box or a failure. Written whole to DIR/parquet/detector_boxes.parquet;
# re-importing the same results file replaces its rows.
DETECTOR_BOXES = pa.schema(
    [
        pa.field("results_file", pa.string(), nullable=False),
        pa.field("file", pa.string(), nullable=False),
        pa.field("image_id", pa.string()),  # images.image_id; null when not in the store
        pa.field("detector", pa.string()),
        pa.field("category", pa.string()),
        pa.field("category_name", pa.string()),
        pa.field("conf", pa.float64()),
        pa.field("bbox_x", pa.float64()),
        pa.field("bbox_y", pa.float64()),
        pa.field("bbox_width", pa.float64()),
        pa.field("bbox_height", pa.float64()),
        pa.field("classification", pa.string()),
        pa.field("classification_conf", pa.float64()),
        pa.field("failure", pa.string()),
        pa.field("likely_empty", pa.bool_(), nullable=False),
        # The import's threshold: boxes at or above it (category animal) become views for
        # scoring at the next `uncia run`; null in tables imported before it was kept.
        pa.field("threshold", pa.float64()),
        pa.field("imported_at", UTC_TS, nullable=False),
    ]
)

# The tables `store.finalize` rebuilds from the run parts at every checkpoint.
RUN_TABLES: dict[str, pa.Schema] = {
    "deployments": DEPLOYMENTS,
    "images": IMAGES,
    "detections": DETECTIONS,
    "bursts": BURSTS,
    "runs": RUNS,
}
# Every table of a store (docs/schema.md): the run tables, the people's append-only decisions,
# and the tables `uncia localize` and `uncia identify` write whole.
TABLES: dict[str, pa.Schema] = {
    **RUN_TABLES,
    "reviews": REVIEWS,
    "localizations": LOCALIZATIONS,
    "matches": MATCHES,
    "match_reviews": MATCH_REVIEWS,
    "individuals": INDIVIDUALS,
    "observations": OBSERVATIONS,
    "detector_boxes": DETECTOR_BOXES,
}


@dataclass(frozen=True)
class SchemaProblem:
    column: str
    problem: str

    def __str__(self) -> str:
        return f"{self.column}: {self.problem}"


def _duckdb_type(t: pa.DataType) -> str:
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "VARCHAR"
    if pa.types.is_float64(t):
        return "DOUBLE"
    if pa.types.is_float32(t):
        return "FLOAT"
    if pa.types.is_int64(t):
        return "BIGINT"
    if pa.types.is_int32(t):
        return "INTEGER"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    if pa.types.is_list(t):
        return f"{_duckdb_type(t.value_type)}[]"
    raise TypeError(f"no DuckDB type for {t}")


def duckdb_ddl(name: str, schema: pa.Schema | None = None) -> str:
    """Return `CREATE TABLE` for one of `TABLES` (or any schema given a name)."""
    schema = schema if schema is not None else TABLES[name]
    cols = ",\n  ".join(
        f'"{f.name}" {_duckdb_type(f.type)}{"" if f.nullable else " NOT NULL"}' for f in schema
    )
    return f'CREATE TABLE "{name}" (\n  {cols}\n)'


def _same_type(actual: pa.DataType, expected: pa.DataType) -> bool:
    """Type equality that treats UTC spellings ("UTC", "Etc/UTC") as one zone."""
    if pa.types.is_timestamp(actual) and pa.types.is_timestamp(expected):
        utc = {"UTC", "Etc/UTC", "+00:00", "Z"}
        same_zone = actual.tz == expected.tz or {actual.tz, expected.tz} <= utc
        return actual.unit == expected.unit and same_zone
    return actual.equals(expected)


def validate_table(table: pa.Table, schema: pa.Schema) -> list[SchemaProblem]:
    """List what keeps `table` from matching `schema` (missing columns, types, nulls)."""
    problems: list[SchemaProblem] = []
    for f in schema:
        if f.name not in table.column_names:
            problems.append(SchemaProblem(f.name, "missing column"))
            continue
        col = table.column(f.name)
        if not _same_type(col.type, f.type):
            problems.append(SchemaProblem(f.name, f"type {col.type}, expected {f.type}"))
        if not f.nullable and col.null_count:
            problems.append(SchemaProblem(f.name, f"{col.null_count} null value(s)"))
    extra = set(table.column_names) - set(schema.names)
    problems.extend(SchemaProblem(c, "unexpected column") for c in sorted(extra))
    return problems


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Select and cast `table`'s columns to `schema` (order and types); raise on problems."""
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise StoreError(f"missing column(s) {missing} for schema {schema.names}")
    out = (
        pa.Table.from_arrays([table.column(f.name).cast(f.type) for f in schema], schema=schema)
        if table.num_rows
        else schema.empty_table()
    )
    problems = validate_table(out, schema)
    if problems:
        raise StoreError("; ".join(map(str, problems)))
    return out


# CSV cells a spreadsheet would run as a formula (=, +, -, @, and tab or CR before one): every
# CSV Uncia writes prefixes them with ' (OWASP's advice), and every CSV it reads drops it again,
# so a folder named "=HYPERLINK(…)" is text in Excel and the same path to `uncia train`.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(text: str) -> str:
    """`text` made safe for a spreadsheet: a formula-like cell gets a leading '."""
    return "'" + text if text.lstrip("'").startswith(FORMULA_STARTS) else text


def csv_uncell(text: str) -> str:
    """The text `csv_cell` escaped (other text unchanged)."""
    if text.startswith("'") and text.lstrip("'").startswith(FORMULA_STARTS):
        return text[1:]
    return text
