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

from dashboard.data.analysis import GapCache, attach
from pipeline.errors import StoreError
from pipeline.store import matches, reviews
from pipeline.store.reviews import read_reviews, reviews_signature
from pipeline.store.store import StorePaths

_ALIAS = "survey"  # the attached store file's name in each snapshot


class Store:
    """One output folder, open for the dashboard: its paths, a read-only DuckDB snapshot that
    is reopened when a checkpoint replaces the file, the decisions people recorded there, and
    the caches that depend only on the store's version.

    Each snapshot is a fresh in-memory DuckDB with the file attached read-only: DuckDB caches
    database instances by path, so connecting to the same path again would keep serving the
    replaced file. Cursors on an old snapshot keep working until they are closed.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.paths = StorePaths(self.data_dir)
        self.path = self.paths.duckdb
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._version: str | None = None
        # Camera gaps per store version, shared with the server's other processes through
        # DIR/work/dashboard (GapCache says what that saves).
        self.gaps = GapCache(shared_folder=self.paths.dashboard_cache)

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



    def state(self) -> str:
        """A signature of everything the dashboard reads here (`data_state`)."""
        return data_state(self.data_dir)

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

    def prepare(self, con: duckdb.DuckDBPyConnection, gap_days: int) -> None:
        """Register on `con` this snapshot's camera gaps (cached per store version), the latest
        reviews and the operating nights the effort queries read (`analysis.attach`)."""
        gaps = self.gaps.get(con, self.version(), gap_days)
        attach(con, gaps, self.reviews(), cache_key=f"g{gap_days}")


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
