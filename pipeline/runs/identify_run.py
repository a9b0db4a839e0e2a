"""`uncia identify`: match every localized crop of a store, then form individuals.

Reads DIR/parquet/localizations.parquet (crops from `uncia localize`) and the person's match
decisions (DIR/work/match_reviews/*.parquet, append-only), writes DIR/parquet/matches.parquet
(MATCHES) and DIR/parquet/individuals.parquet (INDIVIDUALS), each atomically.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from pipeline.errors import ConfigError, StoreError
from pipeline.schema import INDIVIDUALS, MATCH_REVIEWS, MATCHES, MatchDecision, conform
from pipeline.stages.identify import IdentifyOptions, individuals_from_pairs, match_catalog
from pipeline.store.store import StorePaths, atomic_write_parquet, decision_lock, decision_tag


@dataclass(frozen=True)
class IdentifyRunOptions:
    """`confirmed_only`: individuals join crops only through pairs a person accepted; otherwise
    machine-proposed pairs count too unless a person rejected them."""

    data_dir: Path
    identify: IdentifyOptions = IdentifyOptions()
    confirmed_only: bool = False


def reviews_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "work" / "match_reviews"


def record_match_review(
    data_dir: Path,
    query_id: str,
    candidate_id: str,
    decision: str,
    reviewer: str,
    decided_at: datetime | None = None,
) -> Path:
    """Append one decision on a proposed match (a file of its own; nothing is overwritten).

    Written under the folder's lock. When the pair's latest decision already is this one (same
    decision and reviewer, either order of the pair), nothing is written and that decision's
    file is returned: a decision re-sent after a lost answer is not a second one.
    Raises ConfigError for an unknown decision or an empty reviewer name."""
    if decision not in {d.value for d in MatchDecision}:
        raise ConfigError(f"decision must be accept or reject, got {decision!r}")
    if not reviewer.strip():
        raise ConfigError("a match decision needs the reviewer's name")
    folder = reviews_dir(data_dir)
    with decision_lock(folder):
        current = _latest_pair_decision(folder, query_id, candidate_id)
        if current is not None and current[1:] == (decision, reviewer):
            return current[0]
        when = decided_at or datetime.now(UTC)
        row = {
            "query_id": query_id,
            "candidate_id": candidate_id,
            "decision": decision,
            "reviewer": reviewer,
            "decided_at": when,
        }
        tag = decision_tag(query_id, candidate_id)
        target = folder / f"{when:%Y%m%dT%H%M%S%fZ}-{tag}-{secrets.token_hex(3)}.parquet"
        atomic_write_parquet(pa.Table.from_pylist([row], schema=MATCH_REVIEWS), target)
    return target


def _latest_pair_decision(
    folder: Path, query_id: str, candidate_id: str
) -> tuple[Path, str, str] | None:
    """(file, decision, reviewer) of the latest decision on the unordered pair, or None.

    Looks only at files named with the pair's `decision_tag` (written since tags exist)."""
    pair = {query_id, candidate_id}
    named = folder.glob(f"*-{decision_tag(query_id, candidate_id)}-*.parquet")
    for path in sorted(named, reverse=True):  # newest first: names start with the time
        row = pq.read_table(path).to_pylist()[0]
        if {row["query_id"], row["candidate_id"]} == pair:  # else another pair with the tag
            return path, row["decision"], row["reviewer"]
    return None


def latest_decisions(data_dir: Path) -> dict[frozenset[str], str]:
    """The last decision per unordered crop pair."""
    folder = reviews_dir(data_dir)
    if not folder.exists() or not any(folder.glob("*.parquet")):
        return {}
    rows = (
        duckdb.connect()
        .execute(
            "SELECT query_id, candidate_id, decision FROM read_parquet(?, filename = true) "
            "ORDER BY decided_at, filename",
            [str(folder / "*.parquet")],
        )
        .fetchall()
    )
    return {frozenset((q, c)): d for q, c, d in rows}


def _crops(data_dir: Path) -> tuple[list[str], list[str]]:
    # Here, not at the top: localize_run loads torch, which the dashboard (it imports this
    # module for match decisions) should not pay for.
    from pipeline.runs.localize_run import read_localizations

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

    Raises StoreError when the store has no localized crops."""
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


def read_individuals(data_dir: Path) -> pa.Table:
    """The individuals table of a store (empty when `uncia identify` never ran there)."""
    path = StorePaths(Path(data_dir)).table("individuals")
    return pq.read_table(path) if path.exists() else INDIVIDUALS.empty_table()
