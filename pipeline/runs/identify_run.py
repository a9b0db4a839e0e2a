"""`uncia identify`: match every localized crop of a store, then form individuals.

Reads DIR/parquet/localizations.parquet (crops from `uncia localize`) and the person's match
decisions (`store.matches`, append-only), writes DIR/parquet/matches.parquet (MATCHES) and
DIR/parquet/individuals.parquet (INDIVIDUALS), each atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image

from pipeline.errors import StoreError
from pipeline.runs.localize_run import read_localizations
from pipeline.schema import INDIVIDUALS, MATCHES, MatchDecision, conform
from pipeline.stages.identify import IdentifyOptions, individuals_from_pairs, match_catalog
from pipeline.store.matches import latest_decisions
from pipeline.store.store import StorePaths, atomic_write_parquet, writer_lock


@dataclass(frozen=True)
class IdentifyRunOptions:
    """`confirmed_only`: individuals join crops only through pairs a person accepted; otherwise
    machine-proposed pairs count too unless a person rejected them."""

    data_dir: Path
    identify: IdentifyOptions = IdentifyOptions()
    confirmed_only: bool = False


def _crops(data_dir: Path) -> tuple[list[str], list[str]]:
    table = read_localizations(data_dir)
    latest: dict[str, tuple[str, str]] = {}
    for row in table.to_pylist():
        if row["crop_path"] and not row["failure"]:
            current = latest.get(row["image_id"])
            if current is None or row["run_id"] >= current[0]:
                latest[row["image_id"]] = (row["run_id"], row["crop_path"])
    ids = sorted(latest)
    return ids, [latest[i][1] for i in ids]


def _pair(pair: frozenset[str]) -> tuple[str, str]:
    first, second = sorted(pair)
    return first, second


def run_identify(options: IdentifyRunOptions) -> dict[str, Any]:
    """Match the store's crops and write matches and individuals; return a summary.

    Raises StoreError when the store has no localized crops, or while another command holds
    the store's writer lock."""
    with writer_lock(Path(options.data_dir)):
        return _run_identify_locked(options)


def _run_identify_locked(options: IdentifyRunOptions) -> dict[str, Any]:
    data_dir = Path(options.data_dir)
    ids, paths = _crops(data_dir)
    if not ids:
        raise StoreError(f"{data_dir} holds no crops (run `uncia localize` first)")
    pictures = []
    for rel in paths:
        with Image.open(data_dir / rel) as opened:
            pictures.append(np.asarray(opened.convert("RGB")))
    matches = match_catalog(ids, pictures, options.identify)
    decisions = latest_decisions(data_dir)
    accepted = [p for p, d in decisions.items() if d == MatchDecision.ACCEPT and len(p) == 2]
    rejected = [p for p, d in decisions.items() if d == MatchDecision.REJECT and len(p) == 2]
    pairs: list[tuple[str, str]] = [_pair(p) for p in accepted]
    if not options.confirmed_only:
        pairs += [(r["query_id"], r["candidate_id"]) for r in matches.to_pylist() if r["proposed"]]
    individual_of = individuals_from_pairs(ids, pairs, [_pair(p) for p in rejected])
    confirmed = {c for p in accepted for c in p}
    linked = {c for p in pairs for c in p if frozenset(p) not in set(rejected)}
    sizes: dict[str, int] = {}
    for who in individual_of.values():
        sizes[who] = sizes.get(who, 0) + 1
    individuals = pa.Table.from_pylist(
        [
            {
                "image_id": c,
                "individualID": individual_of[c],
                "sightings": sizes[individual_of[c]],
                "status": "confirmed"
                if c in confirmed
                else "proposed"
                if c in linked
                else "single",
            }
            for c in ids
        ],
        schema=INDIVIDUALS,
    )
    store = StorePaths(data_dir)
    atomic_write_parquet(conform(matches, MATCHES), store.table("matches"))
    atomic_write_parquet(conform(individuals, INDIVIDUALS), store.table("individuals"))
    return {
        "crops": len(ids),
        "matches": matches.num_rows,
        "proposed": int(sum(matches.column("proposed").to_pylist())),
        "decisions": len(decisions),
        "individuals": len(sizes),
    }
