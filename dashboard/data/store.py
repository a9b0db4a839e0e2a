"""The store handle: one object for the data folder the dashboard shows (`Store`), owning its
paths, its DuckDB snapshots, the decisions recorded there, and the caches that depend only on
the store's version. Every view reaches the store through it.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import duckdb
import pyarrow as pa

from dashboard.data.analysis import GapCache, attach, gap_rule
from pipeline.interop.outages import outages_path, read_outages
from pipeline.interop.outages import signature as outages_signature
from pipeline.errors import StoreError
from pipeline.store import matches, reviews
from pipeline.store.reviews import read_reviews, reviews_signature
from pipeline.store.store import StorePaths
from pipeline.store.verdicts import human_observations, verdicts

_ALIAS = "survey"  # the attached store file's name in each snapshot


class Store:
    """One output folder, open for the dashboard: its paths, a read-only DuckDB snapshot that
    is reopened when a checkpoint replaces the file, the decisions people recorded there, and
    the caches that depend only on the store's version.

    Each snapshot is a fresh in-memory DuckDB with the file attached read-only: DuckDB caches
    database instances by path, so connecting to the same path again would keep serving the
    replaced file. Cursors on an old snapshot keep working until they are closed.
    """

    def __init__(
        self,
        data_dir: Path,
        outages_file: Path | None = None,
        *,
        keep_gaps: bool = True,
        share_gaps: bool = True,
        keep_operating_nights: bool = True,
    ) -> None:
        """Open `data_dir` (no file is read yet). The three switches are on except in
        bench/caches_bench.py, which turns each off to measure what it saves
        (docs/dashboard.md#caches-and-why): `keep_gaps` keeps each store version's camera gaps
        in this process, `share_gaps` writes them to DIR/work/dashboard for the server's other
        processes and the next start, `keep_operating_nights` materializes the operating nights
        and spans once per snapshot instead of computing them in every query."""
        self.data_dir = Path(data_dir)
        # Known camera outages: the configured CSV, else DIR/outages.csv when there is one.
        self.outages_file = outages_file
        self.paths = StorePaths(self.data_dir)
        self.path = self.paths.duckdb
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._version: str | None = None
        # Camera gaps per store version, shared with the server's other processes through
        # DIR/work/dashboard (GapCache says what that saves).
        self.gaps = GapCache(
            entries=GapCache.ENTRIES if keep_gaps else 0,
            shared_folder=self.paths.dashboard_cache if share_gaps else None,
        )
        self.keep_operating_nights = keep_operating_nights
        self._outages: tuple[str, pa.Table] | None = None
        self._verdicts: tuple[str, pa.Table] | None = None

    def version(self) -> str | None:
        """Return a cheap signature of the store file (inode, mtime, size), None when absent."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return f"{st.st_ino}-{st.st_mtime_ns}-{st.st_size}"

    def connect(self) -> duckdb.DuckDBPyConnection:
        """Return a new cursor on the newest snapshot (close it after use).

        Raises StoreError when the folder holds no store yet or the file cannot be read.
        """
        with self._lock:
            current = self.version()
            if current is None:
                raise StoreError("no Uncia store in the data folder yet")
            if self._con is None or current != self._version:
                self._con = self._attach()
                self._version = current
            cursor = self._con.cursor()
        cursor.execute(f"USE {_ALIAS}")
        return cursor

    def _attach(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect()
        quoted = str(self.path).replace("'", "''")
        try:
            con.execute(f"ATTACH '{quoted}' AS {_ALIAS} (READ_ONLY)")
        except duckdb.Error as exc:
            con.close()
            raise StoreError(f"cannot read the store: {exc}") from exc
        return con

    def close(self) -> None:
        """Close the current snapshot, and with it every cursor handed out on it (DuckDB closes
        a connection's cursors with it): only when no request is using the store, as the bench
        does between apps. The next `connect` opens a new snapshot."""
        with self._lock:
            if self._con is not None:
                self._con.close()
            self._con = self._version = None

    def state(self) -> str:
        """A signature of everything the dashboard reads here (`data_state`, and the outages
        file)."""
        path = outages_path(self.data_dir, self.outages_file)
        return f"{data_state(self.data_dir)}|{outages_signature(path)}"

    def table(self, name: str) -> Path | None:
        """The Parquet file of table `name` (DIR/parquet), or None when nothing wrote it yet."""
        path = self.paths.table(name)
        return path if path.exists() else None

    def reviews(self) -> pa.Table:
        """The latest review decision per burst."""
        return read_reviews(self.data_dir)

    def reviews_signature(self) -> str:
        """Changes whenever a review decision is recorded."""
        return reviews_signature(self.data_dir)

    def verdicts(self, con: duckdb.DuckDBPyConnection) -> pa.Table:
        """A person's verdict per burst (pipeline.store.verdicts.VERDICTS): the latest review
        decision, or a newer human label imported from Camtrap DP or Timelapse. Computed on
        `con` once per store version, reviews and observations file."""
        observations = self.table("observations")
        key = f"{self.version()}|{self.reviews_signature()}|{_signature(observations)}"
        with self._lock:
            if self._verdicts is not None and self._verdicts[0] == key:
                return self._verdicts[1]
        table = verdicts(con, self.reviews(), human_observations(observations))
        with self._lock:
            self._verdicts = (key, table)
        return table

    def outages(self) -> tuple[pa.Table | None, str]:
        """The known camera outages (pipeline.interop.outages) and a key that changes with their file;
        (None, "") without a file. Raises ConfigError for a file that cannot be used."""
        path = outages_path(self.data_dir, self.outages_file)
        key = outages_signature(path)
        if path is None:
            return None, ""
        with self._lock:
            if self._outages is not None and self._outages[0] == key:
                return self._outages[1], key
        table = read_outages(path)
        with self._lock:
            self._outages = (key, table)
        return table, key

    def prepare(self, con: duckdb.DuckDBPyConnection, gap_days: int | None) -> None:
        """Register on `con` this snapshot's camera gaps (outages, and silences over `gap_days`
        days when set; cached per store version), the verdicts and the operating nights
        the effort queries read (`analysis.attach`)."""
        outages, key = self.outages()
        gaps = self.gaps.get(con, self.version(), gap_days, outages, key)
        rule = gap_rule(gap_days, key) if self.keep_operating_nights else None
        attach(con, gaps, self.verdicts(con), cache_key=rule)


def _signature(path: Path | None) -> str:
    try:
        st = os.stat(path) if path is not None else None
    except OSError:
        st = None
    return "-" if st is None else f"{st.st_ino}-{st.st_mtime_ns}-{st.st_size}"


def data_state(data_dir: Path) -> str:
    """A signature of what the dashboard reads in `data_dir`: the folder, the store file,
    DIR/parquet and the two folders of review decisions."""
    parts = []
    # DIR/parquet changes when `uncia localize` or `uncia identify` renames a table into it;
    # a decision is a file renamed into its folder, which changes that folder's mtime.
    paths = StorePaths(data_dir)
    watched = (
        data_dir,
        paths.duckdb,
        paths.parquet,
        reviews.reviews_dir(data_dir),
        matches.reviews_dir(data_dir),
    )
    for path in watched:
        try:
            st = os.stat(path)
            parts.append(f"{st.st_ino}-{st.st_mtime_ns}-{st.st_size}")
        except OSError:
            parts.append("-")
    return "|".join(parts)
