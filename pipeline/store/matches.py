"""Match decisions: a person's accept or reject of a proposed match between two crops.

One file per decision in DIR/work/match_reviews/ (MATCH_REVIEWS), written under the folder's
lock and never rewritten; the last decision on a pair wins. The dashboard's match review writes
them and `uncia identify` reads them.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import ConfigError
from pipeline.schema import MATCH_REVIEWS, MatchDecision
from pipeline.store.store import atomic_write_parquet, decision_lock, decision_tag


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
