"""Camera outages: the periods a deployed camera is known not to have worked (a full card, a
flat battery, snow over the lens), read from a CSV a field team keeps beside the survey.

camtrapR builds camera operation from setup, retrieval and problem dates; this is the problem
table. Columns: `deploymentID`, `outageStart`, `outageEnd` (ISO dates or date-times; an empty
end means the camera never came back before retrieval), and any others (e.g. `reason`), kept
out of the numbers. The days from the start's day to the end's day, both included, are not
trap-nights.
"""

from __future__ import annotations

import csv
import hashlib
import os
from datetime import date
from pathlib import Path

import pyarrow as pa

from pipeline.errors import ConfigError

OUTAGES = pa.schema(
    [
        pa.field("deploymentID", pa.string()),
        pa.field("outage_first", pa.date32()),
        pa.field("outage_last", pa.date32()),  # null: until the deployment's end
    ]
)
REQUIRED = ("deploymentID", "outageStart", "outageEnd")
DEFAULT_NAME = "outages.csv"  # looked for in the data folder when no file is configured


def _day(value: str, row: int, column: str) -> date | None:
    text = value.strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise ConfigError(
            f"outages file, row {row}: {column} must be an ISO date, got {text[:40]!r}"
        ) from None


def read_outages(path: Path) -> pa.Table:
    """The outages in CSV file `path` as an OUTAGES table.

    Raises ConfigError (one line, no path) for a missing column, a bad date, an outage that
    ends before it starts, or a file that cannot be read.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise ConfigError(f"outages file lacks the column(s) {', '.join(missing)}")
            rows = []
            for n, record in enumerate(reader, start=2):  # row 1 is the header
                deployment = (record.get("deploymentID") or "").strip()
                if not deployment:
                    raise ConfigError(f"outages file, row {n}: deploymentID is empty")
                first = _day(record.get("outageStart") or "", n, "outageStart")
                if first is None:
                    raise ConfigError(f"outages file, row {n}: outageStart is empty")
                last = _day(record.get("outageEnd") or "", n, "outageEnd")
                if last is not None and last < first:
                    raise ConfigError(f"outages file, row {n}: outageEnd is before outageStart")
                rows.append(
                    {"deploymentID": deployment, "outage_first": first, "outage_last": last}
                )
    except OSError as exc:
        raise ConfigError(f"cannot read the outages file ({exc.strerror})") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(
            f"the outages file is not a UTF-8 CSV ({exc.__class__.__name__})"
        ) from exc
    return pa.Table.from_pylist(rows, schema=OUTAGES)


def outages_path(data_dir: Path, configured: Path | None) -> Path | None:
    """The outages file to read: the configured one, else DIR/outages.csv when it exists."""
    if configured is not None:
        return configured
    default = Path(data_dir) / DEFAULT_NAME
    return default if default.exists() else None


def signature(path: Path | None) -> str:
    """A short key that changes when the outages file does ("" without one)."""
    if path is None:
        return ""
    try:
        st = os.stat(path)
    except OSError:
        return "missing"
    text = f"{Path(path).resolve()}|{st.st_ino}|{st.st_mtime_ns}|{st.st_size}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]
