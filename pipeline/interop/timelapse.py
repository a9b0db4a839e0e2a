"""`uncia import timelapse`: a Timelapse 2/3 CSV export of human labels as the `file,label`
CSV `uncia train` reads, with a report of every row (docs/interop.md).

Timelapse's fixed columns are File, RelativePath, DateTime (or Date and Time) and DeleteFlag;
the species columns are whatever the team's template defines, so the mapping is an option:
a choice column holding the species, counter columns (a count above 0 means that label) and
flag columns (checked means that label). A row a person deleted, left unlabelled or labelled
twice is reported, never guessed.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath

from pipeline.errors import ConfigError, InputError
from pipeline.interop.common import EMPTY_LABEL, read_csv_rows
from pipeline.schema import csv_cell, csv_uncell
from pipeline.store.reviews import LEOPARD_LABEL
from pipeline.store.store import atomic_write_text

REQUIRED_COLUMNS = ("File", "RelativePath")
TRUE_CELLS = {"true", "1", "yes", "y", "x", "checked"}
FALSE_CELLS = {"false", "0", "no", "n", ""}
# Species words that mean the snow leopard or an empty frame, compared case- and
# separator-insensitively; --map adds to them.
DEFAULT_MAP = {
    "snow leopard": LEOPARD_LABEL, "snowleopard": LEOPARD_LABEL, "panthera uncia": LEOPARD_LABEL,
    "uncia uncia": LEOPARD_LABEL, "irbis": LEOPARD_LABEL,
    "empty": EMPTY_LABEL, "blank": EMPTY_LABEL, "none": EMPTY_LABEL, "nothing": EMPTY_LABEL,
}  # fmt: skip
DATETIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y:%m:%d %H:%M:%S", "%d-%b-%Y %H:%M:%S",
    "%Y-%m-%d %H:%M", "%d/%m/%Y %H:%M:%S",
)  # fmt: skip
MAX_LABEL = 100
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class TimelapseMapping:
    """Which template columns carry the labels (docs/interop.md, "Timelapse")."""

    species_column: str | None = "Species"  # a choice/note column holding the species
    count_column: str | None = "Count"  # its count: 0 means the species is not there
    counters: tuple[tuple[str, str], ...] = ()  # (column, label): a count above 0 is label
    flags: tuple[tuple[str, str], ...] = ()  # (column, label): checked is label
    value_map: dict[str, str] = field(default_factory=dict)  # species value -> label
    named: tuple[str, ...] = ()  # columns a person named: a CSV without one is refused


@dataclass(frozen=True)
class TimelapseImport:
    rows: int
    labels: dict[str, int]  # label -> frames
    left_out: dict[str, int]  # reason -> rows
    labels_csv: Path
    report_csv: Path
    frame_labels: dict[str, str] = field(default_factory=dict)  # file -> label, as written


def parse_pairs(values: list[str], option: str) -> tuple[tuple[str, str], ...]:
    """['Col=label', …] -> (('Col', 'label'), …); ConfigError naming the option otherwise."""
    pairs = []
    for value in values:
        name, sep, label = value.partition("=")
        if not sep or not name.strip() or not label.strip():
            raise ConfigError(f"{option} takes COLUMN=LABEL (or VALUE=LABEL), not {value!r}")
        pairs.append((name.strip(), label.strip()))
    return tuple(pairs)


def _key(text: str) -> str:
    return re.sub(r"[\s_\-]+", " ", text.strip().lower())


def _label_text(text: str, mapping: dict[str, str]) -> str:
    """A species cell as a training label; ValueError for text no label should be."""
    cleaned = csv_uncell(text.strip())
    if _CONTROL.search(cleaned) or len(cleaned) > MAX_LABEL:
        raise ValueError(f"species cell {text[:40]!r} is not a label (control characters or long)")
    return mapping.get(_key(cleaned), cleaned)


def _whole(text: str, column: str) -> int:
    cleaned = text.strip()
    if not cleaned:
        return 0
    if not cleaned.isdigit():
        raise ValueError(f"{column} {text[:40]!r} is not a whole number")
    return int(cleaned)


def _checked(text: str, column: str) -> bool:
    cleaned = text.strip().lower()
    if cleaned in TRUE_CELLS:
        return True
    if cleaned in FALSE_CELLS:
        return False
    raise ValueError(f"{column} {text[:40]!r} is neither true nor false")


def _parse_time(row: dict[str, str]) -> str:
    text = (row.get("DateTime") or "").strip()
    if not text and row.get("Date"):
        text = f"{row['Date'].strip()} {(row.get('Time') or '').strip()}"
    for fmt in DATETIME_FORMATS:
        try:
            return datetime.strptime(text, fmt).isoformat()
        except ValueError:
            continue
    return ""


def _safe_file(row: dict[str, str]) -> str:
    """RelativePath/File as a path under the Timelapse root; ValueError when it leaves it."""
    name = csv_uncell((row.get("File") or "").strip())
    folder = csv_uncell((row.get("RelativePath") or "").strip()).replace("\\", "/")
    if not name or "/" in name or "\\" in name:
        raise ValueError(f"File {name[:40]!r} is not a file name")
    path = PurePosixPath(folder, name) if folder else PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or re.match(r"^[A-Za-z]:", str(path)):
        raise ValueError(f"{str(path)[:60]!r} leaves the Timelapse root folder")
    if _CONTROL.search(str(path)):
        raise ValueError(f"{str(path)[:60]!r} holds control characters")
    return str(path)


def _row_labels(
    row: dict[str, str], mapping: TimelapseMapping, value_map: dict[str, str]
) -> set[str]:
    found: set[str] = set()
    species = (row.get(mapping.species_column) or "") if mapping.species_column else ""
    if species.strip():
        count = None
        if mapping.count_column and mapping.count_column in row:
            count = _whole(row[mapping.count_column] or "", mapping.count_column)
        label = _label_text(species, value_map)
        if count != 0 or label == EMPTY_LABEL:
            found.add(label)
    for column, label in mapping.counters:
        if _whole(row.get(column) or "", column) > 0:
            found.add(label)
    for column, label in mapping.flags:
        if _checked(row.get(column) or "", column):
            found.add(label)
    return found


def _check_columns(rows: list[dict[str, str]], mapping: TimelapseMapping, path: Path) -> None:
    header = set(rows[0]) if rows else set()
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    named = [c for c, _ in mapping.counters + mapping.flags] + list(mapping.named)
    missing += [c for c in dict.fromkeys(named) if c not in header]
    if missing:
        raise InputError(
            f"{path}: no column(s) {', '.join(missing)} (the header has "
            f"{', '.join(sorted(header))[:200] or 'nothing'})"
        )
    has_species = bool(mapping.species_column and mapping.species_column in header)
    if not (has_species or mapping.counters or mapping.flags):
        raise InputError(
            f"{path}: no species column {mapping.species_column!r}: name the template's with "
            "--species-column, --counter COLUMN=LABEL or --flag COLUMN=LABEL"
        )


def import_timelapse(
    csv_path: Path, out_dir: Path, mapping: TimelapseMapping | None = None
) -> TimelapseImport:
    """Read a Timelapse CSV export; write `out_dir/labels.csv` (`file,label`, files
    relative to the Timelapse root folder) and `out_dir/timelapse_rows.csv` (every row: its
    file, time, label or why it was left out). Raises InputError for a CSV without the
    columns, ConfigError for a mapping that cannot be used."""
    mapping = mapping or TimelapseMapping()
    csv_path, out_dir = Path(csv_path), Path(out_dir)
    rows = read_csv_rows(csv_path)
    if not rows:
        raise InputError(f"{csv_path}: no rows (a Timelapse export has a header and a row a file)")
    if None in rows[0] or any(None in r for r in rows):
        line = next(i for i, r in enumerate(rows, start=2) if None in r)
        raise InputError(f"{csv_path} line {line}: more cells than the header has columns")
    _check_columns(rows, mapping, csv_path)
    value_map = {**DEFAULT_MAP, **{_key(k): v for k, v in mapping.value_map.items()}}
    per_file: dict[str, set[str]] = {}
    report: list[list[str]] = []
    left_out: dict[str, int] = {}
    for line, row in enumerate(rows, start=2):
        time = _parse_time(row)
        file = "/".join(c for c in [csv_uncell((row.get("RelativePath") or "").strip())
                                    .replace("\\", "/"),
                                    csv_uncell((row.get("File") or "").strip())] if c)  # fmt: skip
        try:
            file = _safe_file(row)
            deleted = _checked(row.get("DeleteFlag") or "", "DeleteFlag")
            found = _row_labels(row, mapping, value_map)
        except ValueError as exc:
            reason = str(exc)
            left_out["unreadable cell"] = left_out.get("unreadable cell", 0) + 1
            report.append([str(line), file, time, "", reason])
            continue
        reason = ""
        if deleted:
            reason = "DeleteFlag set"
        elif not found:
            reason = "no label"
        elif len(found) > 1:
            reason = "two labels: " + ", ".join(sorted(found))
        if reason:
            kind = reason.split(":")[0]
            left_out[kind] = left_out.get(kind, 0) + 1
            report.append([str(line), file, time, "", reason])
            continue
        per_file.setdefault(file, set()).update(found)
        report.append([str(line), file, time, next(iter(found)), ""])
    labels = {f: next(iter(v)) for f, v in per_file.items() if len(v) == 1}
    conflicting = {f for f, v in per_file.items() if len(v) > 1}
    if conflicting:
        left_out["rows of one file with different labels"] = len(conflicting)
        for entry in report:
            if entry[1] in conflicting and not entry[4]:
                entry[3], entry[4] = "", "the file has rows with different labels"
    labels_csv, report_csv = out_dir / "labels.csv", out_dir / "timelapse_rows.csv"
    # No deployment column: `uncia train` takes a file's first folder, Timelapse's station.
    atomic_write_text(_csv([["file", "label"], *map(list, sorted(labels.items()))]), labels_csv)
    atomic_write_text(_csv([["line", "file", "datetime", "label", "left_out"]] + report),
                      report_csv)  # fmt: skip
    counts: dict[str, int] = {}
    for label in labels.values():
        counts[label] = counts.get(label, 0) + 1
    return TimelapseImport(
        rows=len(rows), labels=dict(sorted(counts.items())), left_out=left_out,
        labels_csv=labels_csv, report_csv=report_csv, frame_labels=dict(sorted(labels.items())),
    )  # fmt: skip


def _csv(table: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows([[csv_cell(c) for c in row] for row in table])
    return out.getvalue()
