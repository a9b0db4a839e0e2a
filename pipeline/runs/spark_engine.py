"""The Spark engine: the same decode → embed → classify stage functions, run by Apache Spark.

The frame list becomes a DataFrame; `mapInArrow` runs `classify_partition` on the workers, which
load the model once per Python worker (cached in this importable module) and call the very
`decode_frame` and `scoring.classify_batch` the local engine uses. The driver collects each
chunk's small result rows (no pixels) and writes them through the same store, so bursts, events,
H3 and resume work exactly as with the local engine.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TextIO

import pyarrow as pa
import torch

from pipeline.config import RunOptions
from pipeline.errors import ConfigError
from pipeline.runs.scoring import DETECTOR_COLUMN, classify_batch
from pipeline.schema import FRAME_RESULTS, conform
from pipeline.stages.classify import Classifier, ZeroShotImageNet
from pipeline.stages.decode import decode_frame
from pipeline.stages.embed import Backbone, load_backbone
from pipeline.stages.infobar import InfoBarPreset
from pipeline.stages.views import ViewOptions

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# Columns of the frame list that travel to the workers.
FRAME_INPUT_COLUMNS = ["image_id", "deploymentID", "file_path", "relative_path", "file_size"]
# Batches per partition in one chunk: enough work to hide a job's fixed cost, small enough that
# a killed run loses little (each chunk is written as soon as it is done).
BATCHES_PER_PARTITION = 8

# One model per Python worker process: Spark reuses workers, so this survives across tasks.
_WORKER_MODELS: dict[tuple[Any, ...], tuple[Backbone, Classifier]] = {}


@dataclass(frozen=True)
class WorkerConfig:
    """What a Spark worker needs to classify frames; small and picklable."""

    backbone: str
    weights: str | None
    device: str
    precision: str
    runtime: str
    input_size: int
    batch_size: int
    run_id: str
    torch_threads: int
    deployments: dict[str, dict[str, Any]]
    views: ViewOptions
    burst_gap_seconds: float
    infobar: InfoBarPreset | None = None


def _worker_model(cfg: WorkerConfig) -> tuple[Backbone, Classifier]:
    key = (cfg.backbone, cfg.weights, cfg.device, cfg.precision, cfg.runtime)
    if key not in _WORKER_MODELS:
        backbone = load_backbone(
            cfg.backbone, cfg.weights, cfg.device, cfg.precision, runtime=cfg.runtime
        )
        _WORKER_MODELS[key] = (backbone, ZeroShotImageNet(backbone))
    return _WORKER_MODELS[key]


def classify_partition(
    batches: Iterator[pa.RecordBatch], cfg: WorkerConfig
) -> Iterator[pa.RecordBatch]:
    """Spark `mapInArrow` function: frame-list batches in, FRAME_RESULTS batches out."""
    torch.set_num_threads(cfg.torch_threads)
    backbone, classifier = _worker_model(cfg)
    for batch in batches:
        rows = pa.Table.from_batches([batch])
        working_side = cfg.views.working_side if cfg.views.tiled else None
        decoded = [
            decode_frame(p, cfg.input_size, working_side=working_side)
            for p in rows.column("file_path").to_pylist()
        ]
        part = classify_batch(
            rows,
            decoded,
            cfg.deployments,
            backbone,
            classifier,
            cfg.run_id,
            pad_to=cfg.batch_size,
            views=cfg.views,
            burst_gap_seconds=cfg.burst_gap_seconds,
            infobar=cfg.infobar,
        )
        yield from part.to_batches()


def spark_session(master: str, batch_size: int) -> SparkSession:
    """Start (or reuse) a Spark session for `master`, one Arrow batch per `batch_size` rows.

    Raises ConfigError when pyspark or Java is missing, naming the fix.
    """
    try:
        # pyspark is the optional [spark] extra: imported only when the Spark engine starts.
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise ConfigError(
            "--engine spark needs pyspark: pip install '.[spark]' (or pip install pyspark)"
        ) from exc
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise ConfigError("--engine spark needs Java 17: apt-get install openjdk-17-jre-headless")
    # Workers must use this interpreter, or they import from the wrong Python.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    active = SparkSession.getActiveSession()
    if active is not None and active.sparkContext.master != master:
        # getOrCreate would hand back the other master's session (and its task slots and
        # reused workers) without a word: a run asked for `master`, so it gets it.
        active.stop()
    spark = (
        SparkSession.builder.master(master)
        .appName("uncia")
        # One Arrow batch is one model batch: the default 10,000 rows is far too much memory.
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_size))
        .config("spark.python.worker.reuse", "true")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "8")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _spark_schema() -> Any:
    # pyspark is the optional [spark] extra; spark_session has already imported it.
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(FRAME_RESULTS)


def classify_on_spark(
    frames: pa.Table,
    deployments: dict[str, dict[str, Any]],
    options: RunOptions,
    run_id: str,
    log: TextIO = sys.stderr,
) -> Iterator[pa.Table]:
    """The Spark engine: yield FRAME_RESULTS tables, one per chunk of frames, as they finish."""
    spark = spark_session(options.spark_master, options.batch_size)
    parallelism = max(1, spark.sparkContext.defaultParallelism)
    task_cpus = int(spark.conf.get("spark.task.cpus", "1") or 1)
    cfg = WorkerConfig(
        backbone=options.backbone,
        weights=str(options.weights) if options.weights else None,
        device=options.device,
        precision=options.precision,
        runtime=options.runtime,
        input_size=options.input_size,
        batch_size=options.batch_size,
        run_id=run_id,
        torch_threads=task_cpus,
        deployments=deployments,
        views=options.view_options(),
        burst_gap_seconds=options.burst_gap_seconds,
        infobar=options.infobar_preset(),
    )
    print(
        f"spark engine: master {options.spark_master}, {parallelism} task slot(s), "
        f"{task_cpus} torch thread(s) per task",
        file=log,
    )
    chunk = options.batch_size * parallelism * BATCHES_PER_PARTITION
    schema = _spark_schema()
    # Imported detector boxes travel with their frames (scoring.DETECTOR_COLUMN).
    work = frames.select(
        [c for c in (*FRAME_INPUT_COLUMNS, DETECTOR_COLUMN) if c in frames.column_names]
    )
    for start in range(0, work.num_rows, chunk):
        piece = work.slice(start, chunk)
        partitions = min(parallelism, max(1, -(-piece.num_rows // options.batch_size)))
        # Ranges of neighbouring files, in order: a burst's frames stay together for its
        # motion views, as in the local engine.
        df = (
            spark.createDataFrame(piece)
            .repartitionByRange(partitions, "deploymentID", "file_path")
            .sortWithinPartitions("deploymentID", "file_path")
        )
        result = df.mapInArrow(partial(classify_partition, cfg=cfg), schema).toArrow()
        yield conform(result, FRAME_RESULTS)
