"""What every format module shares: CSV and descriptor reading, UTC offsets, training labels."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError, InputError
from pipeline.store.reviews import LEOPARD_LABEL

SNOW_LEOPARD = "Panthera uncia"
EMPTY_LABEL = "empty"  # what a blank frame is called in a `file,label` CSV


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """Every row of a CSV with a header; raise InputError when it cannot be read."""
    try:
        with Path(path).open(newline="", encoding="utf-8-sig") as fh:
            return list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc


def read_descriptor(package_dir: Path) -> dict[str, Any]:
    """The package's datapackage.json; InputError when it is missing or not JSON."""
    path = Path(package_dir) / "datapackage.json"
    try:
        descriptor = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    if not isinstance(descriptor, dict):
        raise InputError(f"{path}: not a JSON object")
    return descriptor


def offset_minutes(value: datetime) -> int | None:
    delta = value.utcoffset()
    return None if delta is None else int(delta.total_seconds() // 60)


def parse_utc_offset(text: str) -> int:
    """'+05:00', '-03:30', 'Z' -> minutes east of UTC; ConfigError otherwise."""
    cleaned = text.strip()
    if cleaned in {"Z", "z", "UTC"}:
        return 0
    try:
        sign = {"+": 1, "-": -1}[cleaned[0]]
        hours, minutes = cleaned[1:].split(":")
        total = sign * (int(hours) * 60 + int(minutes))
    except (KeyError, IndexError, ValueError):
        raise ConfigError(f"a UTC offset looks like +05:00 or -03:30, not {text!r}") from None
    if abs(total) > 14 * 60:
        raise ConfigError(f"UTC offset {text!r} is out of range")
    return total


def with_offset(local: datetime, minutes: int) -> str:
    """A naive station wall-clock time as Camtrap DP's `%Y-%m-%dT%H:%M:%S%z` text."""
    aware = local.replace(tzinfo=timezone(timedelta(minutes=minutes)))
    return aware.isoformat(timespec="seconds")


def utc_text(value: datetime) -> str:
    """An aware time (UTC or not) as `YYYY-MM-DDTHH:MM:SSZ`."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def label_for_observation(observation_type: str, scientific_name: str | None) -> str:
    """The training label of one observation: `snow_leopard` for Panthera uncia, `empty` for a
    blank frame, the scientific name of another animal, else the observation type."""
    if scientific_name and scientific_name.strip().lower() == SNOW_LEOPARD.lower():
        return LEOPARD_LABEL
    if observation_type == "blank":
        return EMPTY_LABEL
    if scientific_name:
        return scientific_name.strip()
    return observation_type
