"""Typed, frozen run configuration with one precedence rule.

defaults < config file (TOML, table [run]) < environment (UNCIA_<OPTION>) < command line.
Validators have no side effects; the device is resolved when the model loads, not here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.schema import BurstAggregation, ViewMode
from pipeline.stages.bursts import BurstOptions
from pipeline.stages.infobar import PRESETS, InfoBarPreset, tesseract_available
from pipeline.stages.views import (
    DEFAULT_GRIDS,
    DEFAULT_MOTION_REGIONS,
    DEFAULT_OVERLAP,
    DEFAULT_WORKING_SIDE,
    ZERO_SHOT_THRESHOLDS,
    ViewOptions,
    format_grids,
)

BACKBONE_CHOICES = ("resnet50", "efficientnet_lite0")
DEVICE_CHOICES = ("auto", "cpu", "cuda")
PRECISION_CHOICES = ("auto", "bf16", "fp32")
RUNTIME_CHOICES = ("auto", "torch", "openvino")
ENGINE_CHOICES = ("local", "spark")
ENV_PREFIX = "UNCIA_"


@dataclass(frozen=True)
class RunOptions:
    """Everything `uncia run` needs; see docs/cli.md for each option."""

    images_root: Path
    deployments: Path
    out_dir: Path
    backbone: str = "resnet50"
    weights: Path | None = None
    batch_size: int = 32
    workers: int = 2
    device: str = "auto"
    precision: str = "auto"
    runtime: str = "auto"
    input_size: int = 224
    burst_gap_seconds: float = 60.0
    aggregation: str = BurstAggregation.MAX.value
    event_gap_minutes: float = 30.0
    threshold: float | None = None  # None: ZERO_SHOT_THRESHOLDS of the view mode
    checkpoint_seconds: float = 60.0
    strict: bool = False
    progress: bool = True
    engine: str = "local"
    spark_master: str = "local[2]"
    model_dir: Path | None = None  # a head from `uncia train`; None: zero-shot ImageNet
    tta_flip: bool = False
    views: str = ViewMode.TILES_MOTION.value
    tile_grid: str = format_grids(DEFAULT_GRIDS)
    tile_overlap: float = DEFAULT_OVERLAP
    working_side: int = DEFAULT_WORKING_SIDE
    motion_regions: int = DEFAULT_MOTION_REGIONS
    force: bool = False  # write into a store whose frames another model or setting scored
    infobar: str | None = None  # a PRESETS name: read missing EXIF times from the info bar

    def __post_init__(self) -> None:
        view_options = self.view_options()  # validates the view settings
        if self.threshold is None:
            object.__setattr__(self, "threshold", ZERO_SHOT_THRESHOLDS[view_options.mode])
        if self.backbone not in BACKBONE_CHOICES:
            raise ConfigError(f"backbone must be one of {BACKBONE_CHOICES}, got {self.backbone!r}")
        if self.device not in DEVICE_CHOICES:
            raise ConfigError(f"device must be one of {DEVICE_CHOICES}, got {self.device!r}")
        if self.engine not in ENGINE_CHOICES:
            raise ConfigError(f"engine must be one of {ENGINE_CHOICES}, got {self.engine!r}")
        if self.engine == "spark" and (self.model_dir is not None or self.tta_flip):
            raise ConfigError("--model and --tta-flip work with --engine local only, for now")
        if self.runtime not in RUNTIME_CHOICES:
            raise ConfigError(f"runtime must be one of {RUNTIME_CHOICES}, got {self.runtime!r}")
        if self.precision not in PRECISION_CHOICES:
            raise ConfigError(f"precision must be one of {PRECISION_CHOICES}")
        if self.aggregation not in {a.value for a in BurstAggregation}:
            raise ConfigError(
                f"aggregation must be max, mean or noisy_or, got {self.aggregation!r}"
            )
        if not 1 <= self.batch_size <= 4096:
            raise ConfigError(f"batch size must be 1..4096, got {self.batch_size}")
        if not 1 <= self.workers <= 256:
            raise ConfigError(f"workers must be 1..256, got {self.workers}")
        if not 0.0 <= self.threshold <= 1.0:  # type: ignore[operator]
            raise ConfigError(f"threshold must be within 0..1, got {self.threshold}")
        if not 0 <= self.checkpoint_seconds <= 24 * 3600:  # refuses nan too
            raise ConfigError(
                f"checkpoint seconds must be within 0..86400, got {self.checkpoint_seconds}"
            )
        if not 32 <= self.input_size <= 1024:
            raise ConfigError(f"input size must be 32..1024, got {self.input_size}")
        self.burst_options()  # validates the gaps
        self.infobar_preset()  # validates the preset, and that Tesseract is there

    def infobar_preset(self) -> InfoBarPreset | None:
        if self.infobar is None:
            return None
        if self.infobar not in PRESETS:
            choices = ", ".join(PRESETS)
            raise ConfigError(f"infobar preset must be one of {choices}, got {self.infobar!r}")
        if not tesseract_available():
            raise ConfigError(
                "--infobar needs Tesseract: install Debian's tesseract-ocr (make ocr)"
            )
        return PRESETS[self.infobar]

    def view_options(self) -> ViewOptions:
        return ViewOptions(
            mode=self.views,  # type: ignore[arg-type]
            grids=self.tile_grid,  # type: ignore[arg-type]
            overlap=self.tile_overlap,
            working_side=self.working_side,
            motion_regions=self.motion_regions,
        )

    def burst_options(self) -> BurstOptions:
        return BurstOptions(
            burst_gap_seconds=self.burst_gap_seconds,
            aggregation=BurstAggregation(self.aggregation),
            event_gap_minutes=self.event_gap_minutes,
        )

    def to_json(self) -> str:
        """The resolved options as JSON, stored with the run and printed at its start."""
        return json.dumps(
            {
                k: (str(v) if isinstance(v, Path) else v)
                for k, v in dataclasses.asdict(self).items()
            },
            sort_keys=True,
        )


def _coerce(name: str, value: Any, target: Any) -> Any:
    """Convert a config-file or environment value to the type of field `name`."""
    if value is None:
        return None
    text_type = target if isinstance(target, str) else getattr(target, "__name__", str(target))
    text_type = text_type.replace(" | None", "")
    if text_type.startswith("tuple["):  # a list in TOML, comma-separated in the environment
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise ConfigError(f"option {name}: cannot use {value!r} (a list expected)")
        item_type = text_type[len("tuple[") :].split(",")[0].strip()
        return tuple(_coerce(name, str(i).strip(), item_type) for i in items if str(i).strip())
    try:
        if "Path" in text_type:
            return Path(value)
        if text_type == "bool":
            if isinstance(value, bool):
                return value
            lowered = str(value).strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError(value)
        if text_type == "int":
            return int(value)
        if text_type == "float":
            return float(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"option {name}: cannot use {value!r} ({text_type} expected)") from exc


def read_config_file(path: Path | None, table: str = "run") -> dict[str, Any]:
    """Return the [run] (or other) table of a TOML config file (empty when `path` is None)."""
    if path is None:
        return {}
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: {exc}") from exc
    section = data.get(table, {})
    if not isinstance(section, dict):
        raise ConfigError(f"config file {path}: [{table}] must be a table")
    return section


def merge_layers(
    known: Mapping[str, Any],
    cli: Mapping[str, Any],
    env: Mapping[str, str],
    env_prefix: str,
    config_file: Path | None,
    table: str,
) -> dict[str, Any]:
    """Merge defaults < config file table < environment (`env_prefix` + NAME) < command line
    for the fields `known` (name: type); returns only the values given somewhere.

    `cli` holds the options the user gave (None means "not given"). Raises ConfigError for an
    unknown option in the file or a value of the wrong type anywhere.
    """
    merged: dict[str, Any] = {}
    for name, value in read_config_file(config_file, table).items():
        key = name.replace("-", "_")
        if key not in known:
            raise ConfigError(f"config file {config_file}: unknown option {name!r} in [{table}]")
        merged[key] = _coerce(key, value, known[key])
    for name, kind in known.items():
        raw = env.get(env_prefix + name.upper())
        if raw is not None and raw != "":
            merged[name] = _coerce(name, raw, kind)
    for name, value in cli.items():
        if value is not None:
            merged[name] = _coerce(name, value, known[name])
    return merged


def resolve_run_options(
    cli: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> RunOptions:
    """Merge defaults < config file < environment < command line into RunOptions.

    With a model folder (`model_dir`), its backbone and threshold replace the defaults.

    `cli` holds only the options the user gave (None means "not given").
    """
    env = os.environ if env is None else env
    known = {f.name: f.type for f in fields(RunOptions)}
    merged = merge_layers(known, cli, env, ENV_PREFIX, config_file, "run")
    for required in ("images_root", "deployments", "out_dir"):
        if required not in merged:
            raise ConfigError(f"missing required option {required}")
    if merged.get("model_dir") is not None:
        # A trained model brings its backbone and threshold, just above the defaults. Imported
        # here: the head module loads torch, which resolving options without a model (and any
        # process that only reads the options) need not pay for.
        from pipeline.training.head import model_run_defaults

        merged = {**model_run_defaults(merged["model_dir"]), **merged}
    return RunOptions(**merged)
